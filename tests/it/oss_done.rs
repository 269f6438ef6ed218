//! Issue 8's "done when", against a V4-only server in region cn-hangzhou:
//! a 300 MB stream stored with keys from the ECS RAM role and read back with
//! `ALIBABA_CLOUD_*` variables holding an STS token, and a full backup through
//! `scripts/mb-backup` restored byte-exact; the official SDK then reads the
//! objects and matches their CRC-64.

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use crate::support::cred_servers::CredServer;
use crate::support::mongod::Mongod;
use crate::support::oss_server::oss_auth::Key;
use crate::support::oss_server::{self, OssServer};
use crate::support::setup::{restore_fresh, Setup};
use crate::support::{assert_ok, pseudo_random, sdk, stage, stderr_of};

const MIB: usize = 1 << 20;
/// 300 MB, in 1 MiB blocks generated on the fly (block i from seed i).
const BLOCKS: usize = 300;

fn v4_only_server(bucket: &str) -> OssServer {
    let server = oss_server::start();
    server.create_bucket(bucket);
    server.set_v4_only(true);
    server
}

#[test]
fn a_300_mb_stream_round_trips_with_role_and_sts_keys() {
    let server = v4_only_server("big");
    let creds = CredServer::start(server.key_ring(), Duration::from_secs(3600), "unused");
    let mut put = stage("mb-oss-put");
    put.env_remove("OSS_ACCESS_KEY_ID")
        .env_remove("OSS_ACCESS_KEY_SECRET")
        .env("MB_TEST_ONLY_ECS_METADATA_ENDPOINT", creds.url())
        .env("OSS_REGION", "cn-hangzhou")
        .args(["-v", "--endpoint", &server.endpoint(), "--bucket", "big", "--key", "stream/300mb.bin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = put.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        for i in 0..BLOCKS {
            stdin.write_all(&pseudo_random(MIB, i as u32)).unwrap();
        }
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_ok(&output);
    assert!(stderr_of(&output).contains("credentials from ECS RAM role"), "{}", stderr_of(&output));
    let record: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(record["size"].as_u64(), Some((BLOCKS * MIB) as u64));
    let stored = server.object("big", "stream/300mb.bin").expect("stored");
    assert_eq!(Some(stored.crc64), record["crc64"].as_u64());

    // Read back as an STS user: ALIBABA_CLOUD_* with a security token.
    let sts = Key {
        id: "STS.reader".into(),
        secret: "reader-secret-Do-Not-Print".into(),
        token: Some("CAIS-reader-token-Do-Not-Print".into()),
        expires: Some(SystemTime::now() + Duration::from_secs(3600)),
    };
    server.key_ring().add(sts.clone());
    let mut get = stage("mb-oss-get");
    get.env_remove("OSS_ACCESS_KEY_ID")
        .env_remove("OSS_ACCESS_KEY_SECRET")
        .env("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", &sts.id)
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", &sts.secret)
        .env("ALIBABA_CLOUD_SECURITY_TOKEN", sts.token.as_deref().unwrap())
        .env("OSS_REGION", "cn-hangzhou")
        .args(["--endpoint", &server.endpoint(), "--bucket", "big", "--key", "stream/300mb.bin"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = get.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut block = vec![0u8; MIB];
    for i in 0..BLOCKS {
        stdout.read_exact(&mut block).unwrap_or_else(|e| panic!("block {i}: {e}"));
        assert!(block == pseudo_random(MIB, i as u32), "block {i} differs");
    }
    assert_eq!(stdout.read(&mut block).unwrap(), 0, "nothing after the stream");
    let output = child.wait_with_output().unwrap();
    assert_ok(&output);
    let all = stderr_of(&output);
    for secret in [&sts.secret, sts.token.as_ref().unwrap(), &server.secret()] {
        assert!(!all.contains(secret.as_str()), "a secret leaked: {all}");
    }
    if sdk::unavailable().is_none() {
        sdk::check(&server, "big", &[("stream/300mb.bin".into(), stored.size, stored.crc64)]);
    }
}

#[test]
fn a_full_backup_through_mb_backup_round_trips_against_a_v4_only_server() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let server = v4_only_server("db-backup");
    let db = "done_v4";
    crate::support::data::populate(&source.client(), db, 1500);
    let setup = Setup::with_oss(source, db, &server, "db-backup", &server.secret());
    let config = std::fs::read_to_string(&setup.config).unwrap();
    assert!(config.contains("region = cn-hangzhou"), "{config}");
    let run = setup.backup();
    assert_ok(&run);
    assert!(!stderr_of(&run).contains(&server.secret()));
    let state = setup.state();
    let (_, expected) = source.db_hash_at(db, state.to);
    let (_, restored) = restore_fresh(&setup, target, db, &[]);
    assert_eq!(restored, expected, "restore from the V4-only server");
    if sdk::unavailable().is_none() {
        let objects: Vec<(String, u64, u64)> = server
            .keys("db-backup")
            .into_iter()
            .map(|key| {
                let object = server.object("db-backup", &key).unwrap();
                (key, object.size, object.crc64)
            })
            .collect();
        assert_eq!(objects.len(), 3, "the backup, its commit marker and the head record: {objects:?}");
        sdk::check(&server, "db-backup", &objects);
    }
}
