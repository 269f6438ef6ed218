//! One conformance suite for every storage backend: memory, a local
//! directory, and OSS (against the suite's server). Same calls, same answers.

use std::io::{self, Read};

use mb::cli::{exit_code_of, EXIT_CONFLICT};
use mb::store::local::LocalStore;
use mb::store::memory::MemoryStore;
use mb::store::oss::OssStore;
use mb::store::oss::{Credentials, Endpoint, RetryPolicy, SignatureVersion};
use mb::store::{ByteRange, OssTuning, PutOptions, Store, StoreError};

use crate::support::{oss_server, temp_dir};

fn data(len: usize, seed: u32) -> Vec<u8> {
    crate::support::pseudo_random(len, seed)
}

fn put(store: &dyn Store, key: &str, bytes: &[u8], overwrite: bool) -> anyhow::Result<mb::store::PutResult> {
    store.put(key, &mut &bytes[..], &PutOptions { overwrite, ..PutOptions::default() })
}

fn get(store: &dyn Store, key: &str, range: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let mut object = store.get(key, range.map(|r| r.parse::<ByteRange>().unwrap()))?;
    let mut out = Vec::new();
    object.reader.read_to_end(&mut out)?;
    assert_eq!(out.len() as u64, object.len, "reader yields what it announced");
    Ok(out)
}

/// A reader that fails after `ok` bytes, as a broken input pipe would.
struct FailingReader {
    data: Vec<u8>,
    pos: usize,
    ok: usize,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.ok {
            return Err(io::Error::other("input broke"));
        }
        let n = buf.len().min(self.ok - self.pos).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[track_caller]
fn assert_not_found(err: &anyhow::Error, key: &str) {
    match StoreError::of(err) {
        Some(StoreError::NotFound { key: k, .. }) => assert_eq!(k, key),
        other => panic!("expected NotFound for {key}, got {other:?}: {err:#}"),
    }
}

/// Keys OSS allows that a plain path join would mangle.
const ODD_KEYS: [&str; 6] = ["odd/a//b", "odd/dir/", "odd/x y+z%?=&中", "odd/a/../b", "odd/./c", "odd/.."];

/// The suite. `big` is a size that makes the backend take its multipart path
/// (for OSS with 100 KiB parts), or just a larger object elsewhere.
fn conformance(store: &dyn Store, big: usize) {
    // Put and get, small and large.
    let small = b"hello, conformance".to_vec();
    let result = put(store, "c/small", &small, false).unwrap();
    assert_eq!((result.size, result.crc64), (small.len() as u64, mb::crc64::checksum(&small)));
    assert_eq!(get(store, "c/small", None).unwrap(), small);
    let large = data(big, 1);
    let result = put(store, "c/large.bin", &large, false).unwrap();
    assert_eq!((result.size, result.crc64), (large.len() as u64, mb::crc64::checksum(&large)));
    assert_eq!(get(store, "c/large.bin", None).unwrap(), large);

    // Head: size and CRC-64 of what is stored.
    let head = store.head("c/large.bin").unwrap().expect("head of a stored object");
    assert_eq!(head.size, large.len() as u64);
    assert_eq!(head.crc64, Some(mb::crc64::checksum(&large)));
    assert!(store.head("c/none").unwrap().is_none());

    // Ranges: inclusive end, open end, end past the object, start past it.
    assert_eq!(get(store, "c/large.bin", Some("10-19")).unwrap(), &large[10..20]);
    assert_eq!(get(store, "c/large.bin", Some(&format!("{}-", big - 5))).unwrap(), &large[big - 5..]);
    assert_eq!(get(store, "c/small", Some("5-1000")).unwrap(), &small[5..]);
    assert!(store.get("c/small", Some("1000-".parse().unwrap())).is_err());

    // Empty objects.
    put(store, "c/empty", b"", false).unwrap();
    assert_eq!(get(store, "c/empty", None).unwrap(), b"");
    assert_eq!(store.head("c/empty").unwrap().unwrap().crc64, Some(0));

    // Overwrite refusal: a typed AlreadyExists (exit 4), then an explicit overwrite.
    let err = put(store, "c/small", b"other", false).unwrap_err();
    assert!(matches!(StoreError::of(&err), Some(StoreError::AlreadyExists { key, .. }) if key == "c/small"), "{err:#}");
    assert_eq!(exit_code_of(&err), EXIT_CONFLICT, "{err:#}");
    assert_eq!(get(store, "c/small", None).unwrap(), small, "refused put left the object alone");
    put(store, "c/small", b"replaced", true).unwrap();
    assert_eq!(get(store, "c/small", None).unwrap(), b"replaced");

    // Missing keys.
    let err = store.get("c/missing", None).err().expect("get of a missing key fails");
    assert_not_found(&err, "c/missing");
    store.delete("c/missing").unwrap();

    // A put whose input breaks leaves nothing under the key.
    let mut broken = FailingReader { data: large.clone(), pos: 0, ok: big / 2 };
    assert!(store.put("c/broken", &mut broken, &PutOptions::default()).is_err());
    assert!(store.head("c/broken").unwrap().is_none());

    // Listing with prefix and paging.
    for key in ["p/a", "p/b", "p/c", "p/d/e", "q/x"] {
        put(store, key, key.as_bytes(), false).unwrap();
    }
    let page = store.list_page("p/", None, 2).unwrap();
    assert_eq!(page.entries.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["p/a", "p/b"]);
    let next = page.next.expect("a second page");
    let page = store.list_page("p/", Some(&next), 2).unwrap();
    assert_eq!(page.entries.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["p/c", "p/d/e"]);
    if let Some(next) = page.next {
        assert!(store.list_page("p/", Some(&next), 2).unwrap().entries.is_empty());
    }
    let all = store.list("p/").unwrap();
    assert_eq!(all.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["p/a", "p/b", "p/c", "p/d/e"]);
    assert_eq!(all[3].size, 5);
    assert_eq!(store.list("").unwrap().len(), 8);

    // Delete.
    store.delete("p/a").unwrap();
    assert!(store.head("p/a").unwrap().is_none());
    assert_not_found(&store.get("p/a", None).err().unwrap(), "p/a");
    // Keys OSS refuses are usage errors (exit 2) everywhere.
    for bad in ["/abs", "\\abs", ""] {
        let err = put(store, bad, b"x", false).unwrap_err();
        assert!(matches!(StoreError::of(&err), Some(StoreError::InvalidKey { .. })), "{bad:?}: {err:#}");
        assert_eq!(exit_code_of(&err), mb::cli::EXIT_USAGE);
    }
    assert_eq!(store.list("p/").unwrap().len(), 3);
}

/// Odd but legal OSS keys round trip, each its own object.
fn odd_keys_round_trip(store: &dyn Store) {
    for key in ODD_KEYS {
        put(store, key, key.as_bytes(), false).unwrap();
    }
    for key in ODD_KEYS {
        assert_eq!(get(store, key, None).unwrap(), key.as_bytes(), "{key}");
    }
    let listed: Vec<String> = store.list("odd/").unwrap().into_iter().map(|e| e.key).collect();
    let mut want: Vec<String> = ODD_KEYS.iter().map(|k| k.to_string()).collect();
    want.sort();
    assert_eq!(listed, want);
}

#[test]
fn memory_backend_conforms() {
    let store = MemoryStore::new("bucket");
    conformance(&store, 300_000);
    odd_keys_round_trip(&store);
}

#[test]
fn local_backend_conforms() {
    let dir = temp_dir();
    let store = LocalStore::new(dir.path(), "bucket").unwrap();
    conformance(&store, 300_000);
    // Keys that would alias another file or leave the directory: refused
    // with the reason (exit 2), nothing written outside.
    for key in ["odd/a//b", "odd/dir/", "a/../../escape", "./a", "a/."] {
        let err = put(&store, key, b"x", false).unwrap_err();
        assert!(matches!(StoreError::of(&err), Some(StoreError::InvalidKey { .. })), "{key}: {err:#}");
        assert_eq!(exit_code_of(&err), mb::cli::EXIT_USAGE);
        assert!(err.to_string().contains("local directory store"), "{err:#}");
    }
    assert!(!dir.path().join("escape").exists());
    // No temp files are left behind, even by the failed put.
    let leftovers: Vec<_> = walk(&dir.path().join("bucket")).into_iter().filter(|p| p.contains(".mb-tmp-")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            out.extend(walk(&entry.path()));
        } else {
            out.push(entry.path().display().to_string());
        }
    }
    out
}

#[test]
fn oss_backend_conforms() {
    let server = oss_server::start();
    server.create_bucket("bucket");
    let endpoint = Endpoint::parse(&server.endpoint(), false).unwrap();
    let v4 = SignatureVersion::V4 { region: "cn-hangzhou".into() };
    let creds = Credentials::fixed(&server.access_key_id(), &server.secret(), None, v4);
    let tuning = OssTuning { part_size: 100 << 10, parallel: 3, ..OssTuning::default() };
    let store = OssStore::new(endpoint, creds, "bucket", RetryPolicy::default(), tuning).unwrap();
    conformance(&store, 350_000);
    odd_keys_round_trip(&store);
    for key in ODD_KEYS {
        assert!(server.object("bucket", key).is_some(), "stored under its own key: {key}");
    }
    // The large object went up in parts; the broken one was aborted.
    assert!(server.requests().iter().any(|r| r.contains("partNumber=4")));
    assert!(server.uploads().is_empty(), "no multipart upload left: {:?}", server.uploads());
    assert!(server.object("bucket", "c/broken").is_none());
}
