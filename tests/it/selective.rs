//! Selective restore reads only its bytes: `mb-restore … -- --ns-include X`
//! fetches, of the seekable full backup, only the blocks X needs (checked one
//! by one), plus the slices; the result equals the source's X at the point
//! asked, also renamed, up to `--until`, through `--download-dir`, encrypted
//! and gzip-compressed. An object without a block index is read whole,
//! saying so; a damaged block fails the restore.

use mb::format::block_index::{BlockIndex, Part};
use mb::format::records::Ts;
use mb::pack::seekable::{read_index, Footer, MAX_FOOTER_LEN};
use mongodb::bson::{doc, Binary, Document};

use crate::support::mongod::{block_on, Mongod};
use crate::support::oss_server::{self, Fault, Op};
use crate::support::setup::{bin_dir_with, Setup};
use crate::support::{assert_fails_with, assert_ok, pseudo_random, stage, stderr_of};

const BUCKET: &str = "selective";

/// `events`: 16 MiB of incompressible documents; `orders`: about 1% of that.
fn fill(source: &Mongod, db: &str) {
    let client = source.client();
    block_on(async {
        let db = client.database(db);
        db.drop().await.unwrap();
        let events = db.collection::<Document>("events");
        for batch in 0..16 {
            let docs = (0..256).map(|i| {
                let n = batch * 256 + i;
                doc! {"_id": n, "blob": Binary { subtype: mongodb::bson::spec::BinarySubtype::Generic,
                bytes: pseudo_random(4096, n as u32) }}
            });
            events.insert_many(docs).await.unwrap();
        }
        let orders = db.collection::<Document>("orders");
        orders
            .insert_many((0..1500).map(|i| doc! {"_id": i, "item": format!("item {}", i % 37), "qty": i % 9}))
            .await
            .unwrap();
        db.collection::<Document>("users")
            .insert_many((0..300).map(|i| doc! {"_id": i, "name": format!("u{i}")}))
            .await
            .unwrap();
    });
}

/// Changes orders (and events) once; returns the oplog time of the change.
fn change(source: &Mongod, db: &str, step: i32) -> Ts {
    let client = source.client();
    block_on(async {
        let mut session = client.start_session().await.unwrap();
        let orders = client.database(db).collection::<Document>("orders");
        orders.update_many(doc! {"qty": step}, doc! {"$inc": {"qty": 100}}).session(&mut session).await.unwrap();
        orders.delete_many(doc! {"_id": {"$lt": step * 10}}).session(&mut session).await.unwrap();
        orders.insert_one(doc! {"_id": 10_000 + step, "item": "late"}).session(&mut session).await.unwrap();
        let events = client.database(db).collection::<Document>("events");
        events.insert_one(doc! {"_id": 100_000 + step}).session(&mut session).await.unwrap();
        let ts = session.operation_time().expect("an operation time");
        Ts::new(ts.time, ts.increment)
    })
}

/// The hash of one collection in a `dbHash` answer.
fn hash_of(collections: &Document, coll: &str) -> String {
    collections.get_str(coll).unwrap_or_else(|_| panic!("no {coll} in {collections}")).to_string()
}

/// The block index of a stored seekable object.
fn index_of(object: &[u8]) -> BlockIndex {
    let footer = Footer::parse(&object[object.len() - MAX_FOOTER_LEN as usize..]).expect("the object is seekable");
    read_index(&object[footer.index_offset as usize..object.len() - footer.len as usize], &footer).unwrap()
}

/// The bytes `mb-oss-get` said it read of the full backup, and the object's size.
fn reported_read(stderr: &str) -> (u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.contains("-full.tar.") && l.contains(": read "))
        .unwrap_or_else(|| panic!("{stderr}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "read").unwrap();
    (words[at + 1].parse().unwrap(), words[at + 3].parse().unwrap())
}

#[test]
fn one_collection_restores_from_its_blocks_and_the_slices_alone() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "sel_shop";
    fill(source, db);
    let server = oss_server::start();
    server.create_bucket(BUCKET);
    let setup = Setup::with_oss(source, db, &server, BUCKET, &server.secret());
    assert_ok(&setup.backup());
    let between = change(source, db, 1);
    assert_ok(&setup.backup());
    change(source, db, 2);
    assert_ok(&setup.backup());
    let end = setup.state().to;

    let keys = server.keys(BUCKET);
    let full_key = keys.iter().find(|k| k.ends_with("-full.tar.zst")).unwrap().clone();
    let full = server.object(BUCKET, &full_key).unwrap().data;
    let index = index_of(&full);
    let orders = Part::Collection { db: db.into(), coll: "orders".into() };
    let needed: u64 = index
        .blocks
        .iter()
        .filter(|b| matches!(b.part, Part::Header | Part::Oplog | Part::Manifest) || b.part == orders)
        .map(|b| b.len)
        .sum();
    let trailer = full.len() as u64 - index.blocks.last().map(|b| b.offset + b.len).unwrap();
    let others: u64 =
        keys.iter().filter(|k| **k != full_key).map(|k| server.object(BUCKET, k).unwrap().data.len() as u64).sum();

    // The latest point, into a fresh database.
    let uri = target.uri();
    block_on(async { target.client().database(db).drop().await }).unwrap();
    server.clear_requests();
    let output = setup.restore(&["--uri", &uri, "--", "--ns-include", &format!("{db}.orders")]);
    assert_ok(&output);
    let stderr = stderr_of(&output);
    let (read, size) = reported_read(&stderr);
    // Besides the blocks and the trailer: its first 22 bytes, to tell an age
    // file, and the end as long as the longest footer (gzip's 50 bytes; zstd's is 32).
    let age_magic = b"age-encryption.org/v1\n".len() as u64;
    let longer_footer = MAX_FOOTER_LEN - 32;
    assert_eq!((read, size), (needed + trailer + age_magic + longer_footer, full.len() as u64), "{stderr}");
    assert!(read * 10 < size, "orders is about 1% of the backup, yet {read} of {size} bytes were read");
    let served = server.bytes_served();
    assert!(served <= read + others, "the store served {served} bytes: more than {read} of the full backup + {others}");
    let (_, expected) = source.db_hash_at(db, end);
    let (_, restored) = target.db_hash(db);
    assert_eq!(hash_of(&restored, "orders"), hash_of(&expected, "orders"));
    assert_eq!(restored.keys().collect::<Vec<_>>(), ["orders"], "only orders is restored");

    // Broken connections: block GETs cut halfway resume, and the bytes are the same.
    let select_events = || {
        stage("mb-oss-get")
            .env("OSS_ACCESS_KEY_ID", server.access_key_id())
            .env("OSS_ACCESS_KEY_SECRET", server.secret())
            .env("OSS_REGION", "cn-hangzhou")
            .args(["--endpoint", &server.endpoint(), "--bucket", BUCKET, "--key", &full_key])
            .args(["--ns-include", &format!("{db}.events")])
            .output()
            .unwrap()
    };
    let gets = || server.requests().iter().filter(|r| r.starts_with("GET ")).count();
    server.clear_requests();
    let clean = select_events();
    assert_ok(&clean);
    let clean_gets = gets();
    // GETs: the first 22 bytes, the footer, the index, then the blocks'.
    server.clear_requests();
    server.inject(Op::GetObject, Fault::Reset, 3, 2);
    let resumed = select_events();
    assert_ok(&resumed);
    assert_eq!(gets(), clean_gets + 2, "two block GETs were cut and resumed");
    assert!(resumed.stdout == clean.stdout, "resumed reads give the same bytes");

    // Renamed, at a point between the full backup and the last slice, through a download directory.
    let download = crate::support::temp_dir();
    let download_dir = download.path().to_str().unwrap();
    let until = format!("{},{}", between.t, between.i);
    let output = setup.restore(&[
        "--uri",
        &uri,
        "--until",
        &until,
        "--download-dir",
        download_dir,
        "--",
        "--nsInclude",
        &format!("{db}.orders"),
        "--ns-from",
        &format!("{db}.orders"),
        "--ns-to",
        "sel_copy.orders_then",
    ]);
    assert_ok(&output);
    let (_, then) = source.db_hash_at(db, between);
    let (_, restored) = target.db_hash("sel_copy");
    assert_eq!(hash_of(&restored, "orders_then"), hash_of(&then, "orders"), "{}", stderr_of(&output));
    assert_ne!(hash_of(&then, "orders"), hash_of(&expected, "orders"), "the point is not the end");
    let part = download.path().join(full_key.rsplit('/').next().unwrap().replace(".tar.zst", ".selected.tar.zst"));
    let kept = std::fs::metadata(&part).unwrap_or_else(|e| panic!("{}: {e}", part.display())).len();
    assert_eq!(kept, needed, "the download holds the blocks read, not the whole backup");
}

#[test]
fn unindexed_objects_are_read_whole_and_damaged_blocks_fail() {
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "sel_damage";
    fill(source, db);
    let uri = target.uri();

    // gzip objects are seekable too; one written without --seekable (as
    // before this format) is read whole, with a warning, and still right.
    let unindexed = bin_dir_with(
        "mb-pack",
        r#"args=(); for a in "$@"; do [[ $a == --seekable ]] || args+=("$a"); done; exec "$real" "${args[@]}""#,
    );
    for (codec, bin_dir) in [("gzip", None), ("zstd", Some(unindexed.path()))] {
        let mut setup = Setup::new(source, db, true);
        setup.set_key("compression", codec);
        if let Some(dir) = bin_dir {
            setup.bin_dir = dir.to_path_buf();
        }
        assert_ok(&setup.backup());
        setup.bin_dir = crate::support::bin_dir();
        block_on(async { target.client().database(db).drop().await }).unwrap();
        let output = setup.restore(&["--uri", &uri, "--", "--ns-include", &format!("{db}.users")]);
        assert_ok(&output);
        let stderr = stderr_of(&output);
        if bin_dir.is_some() {
            assert!(stderr.contains("no block index"), "{stderr}");
        } else {
            let (read, size) = reported_read(&stderr);
            assert!(read * 10 < size, "{stderr}");
        }
        let (_, restored) = target.db_hash(db);
        assert_eq!(restored.keys().collect::<Vec<_>>(), ["users"], "{stderr}");
    }

    // A seekable object: the selected stream passes a filtered restore, and
    // an unfiltered one refuses it (the collections left out are missing).
    let setup = Setup::new(source, db, true);
    assert_ok(&setup.backup());
    let full_key = setup.stored_keys().into_iter().find(|k| k.ends_with("-full.tar.zst")).unwrap();
    let store_dir = setup.root.join("store");
    let store = ["--store-dir", store_dir.to_str().unwrap(), "--bucket", "backups"];
    let selected = stage("mb-oss-get")
        .args(store)
        .args(["--key", &full_key, "--ns-include", &format!("{db}.users")])
        .output()
        .unwrap();
    assert_ok(&selected);
    let tar = crate::support::run_with_input(stage("mb-pack").arg("-d"), &selected.stdout);
    assert_ok(&tar);
    let dry =
        |filter: &[&str]| crate::support::run_with_input(stage("mb-apply").arg("--dry-run").args(filter), &tar.stdout);
    assert_ok(&dry(&["--ns-include", &format!("{db}.users")]));
    assert_fails_with(&dry(&[]), 3, &format!("{db}.events is in the manifest but missing from the stream"));

    // One flipped byte in an orders block: the restore fails naming the block.
    let object = std::fs::read(setup.object_path(&full_key)).unwrap();
    let index = index_of(&object);
    let block =
        index.blocks.iter().find(|b| b.part == Part::Collection { db: db.into(), coll: "orders".into() }).unwrap();
    let mut damaged = object.clone();
    damaged[(block.offset + block.len / 2) as usize] ^= 0x40;
    std::fs::write(setup.object_path(&full_key), &damaged).unwrap();
    let output = setup.restore(&["--uri", &uri, "--dry-run", "--", "--ns-include", &format!("{db}.orders")]);
    assert_fails_with(&output, 3, &format!("the block at {} has CRC-64", block.offset));
}

/// `tests/fixtures/mb-pack/seekable.tar.zst` is `mb-pack --seekable -j1` of
/// `tests/fixtures/mb-apply/good.tar`; its trailer is read here byte by byte
/// as docs/FORMAT.md specifies it, not with mb's own reader.
#[test]
fn the_seekable_fixture_reads_as_format_md_specifies() {
    let object = std::fs::read(crate::support::fixture("mb-pack", "seekable.tar.zst")).unwrap();
    let plain = std::fs::read(crate::support::fixture("mb-apply", "good.tar")).unwrap();
    let le32 = |at: usize| u32::from_le_bytes(object[at..at + 4].try_into().unwrap());
    let le64 = |at: usize| u64::from_le_bytes(object[at..at + 8].try_into().unwrap());
    let footer = object.len() - 32;
    assert_eq!((le32(footer), le32(footer + 4), &object[footer + 8..footer + 16]), (0x184D2A5E, 24, &b"mb-index"[..]));
    let (offset, crc) = (le64(footer + 16) as usize, le64(footer + 24));
    assert_eq!(le32(offset), 0x184D2A5E, "the index is a skippable frame");
    let json = &object[offset + 8..offset + 8 + le32(offset + 4) as usize];
    assert_eq!(offset + 8 + json.len(), footer, "the footer follows the index");
    assert_eq!(mb::crc64::checksum(json), crc);
    let expected = std::fs::read(crate::support::fixture("mb-pack", "seekable.index.json")).unwrap();
    assert_eq!(json, expected.trim_ascii_end(), "the index as stored");

    // Each block is one zstd frame of whole tar entries; together they are the stream.
    let index: serde_json::Value = serde_json::from_slice(json).unwrap();
    let mut at = 0usize;
    for block in index["blocks"].as_array().unwrap() {
        let (start, len, raw) = (
            block["offset"].as_u64().unwrap() as usize,
            block["len"].as_u64().unwrap() as usize,
            block["raw"].as_u64().unwrap() as usize,
        );
        let frame = &object[start..start + len];
        assert_eq!(mb::crc64::checksum(frame), block["crc64"].as_u64().unwrap());
        assert_eq!(zstd::stream::decode_all(frame).unwrap(), plain[at..at + raw]);
        at += raw;
    }
    assert_eq!(at, plain.len());
    let unpacked = crate::support::run_with_input(stage("mb-pack").arg("-d"), &object);
    assert_ok(&unpacked);
    assert_eq!(unpacked.stdout, plain, "mb-pack -d skips the trailer");

    // Today's mb-pack cuts the same blocks.
    let packed = crate::support::run_with_input(stage("mb-pack").args(["--seekable", "-j", "2"]), &plain);
    assert_ok(&packed);
    let parts = |index: &BlockIndex| index.blocks.iter().map(|b| (b.part.clone(), b.raw)).collect::<Vec<_>>();
    assert_eq!(parts(&index_of(&packed.stdout)), parts(&index_of(&object)));
}

/// An encrypted seekable backup: streamed into a restore, only the age
/// chunks around the blocks needed are read and decrypted; with
/// `--download-dir` it is read whole, and only ciphertext lands on disk.
#[test]
fn an_encrypted_backup_reads_only_the_age_chunks_around_its_blocks() {
    use age::secrecy::ExposeSecret;
    let source = Mongod::shared_replica_set();
    let target = Mongod::shared_standalone();
    let db = "sel_sealed";
    fill(source, db);
    let server = oss_server::start();
    server.create_bucket(BUCKET);
    let setup = Setup::with_oss(source, db, &server, BUCKET, &server.secret());
    let identity = age::x25519::Identity::generate();
    let key_file = setup.root.parent().unwrap().join("backup.key");
    std::fs::write(&key_file, format!("{}\n", identity.to_string().expose_secret())).unwrap();
    std::fs::set_permissions(&key_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    setup.set_key("encrypt_to", &identity.to_public().to_string());
    setup.set_key("identity_file", key_file.to_str().unwrap());
    assert_ok(&setup.backup());
    change(source, db, 3);
    assert_ok(&setup.backup());
    let end = setup.state().to;
    let keys = server.keys(BUCKET);
    let full_key = keys.iter().find(|k| k.ends_with("-full.tar.zst")).unwrap().clone();
    let size = server.object(BUCKET, &full_key).unwrap().data.len() as u64;

    let uri = target.uri();
    block_on(async { target.client().database(db).drop().await }).unwrap();
    let output = setup.restore(&["--uri", &uri, "--", "--ns-include", &format!("{db}.orders")]);
    assert_ok(&output);
    let (read, whole) = reported_read(&stderr_of(&output));
    assert_eq!(whole, size);
    assert!(read * 10 < size, "{read} of {size} bytes read: {}", stderr_of(&output));
    let (_, expected) = source.db_hash_at(db, end);
    let (_, restored) = target.db_hash(db);
    assert_eq!(hash_of(&restored, "orders"), hash_of(&expected, "orders"));
    assert_eq!(restored.keys().collect::<Vec<_>>(), ["orders"]);

    let download = crate::support::temp_dir();
    block_on(async { target.client().database(db).drop().await }).unwrap();
    let args = ["--uri", &uri, "--download-dir", download.path().to_str().unwrap(), "--", "--ns-include"];
    let output = setup.restore(&[&args[..], &[&format!("{db}.users")]].concat());
    assert_ok(&output);
    assert!(stderr_of(&output).contains("encrypted, and no --identity"), "{}", stderr_of(&output));
    for file in std::fs::read_dir(download.path()).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        assert!(bytes.starts_with(b"age-encryption.org/v1\n"), "only ciphertext on disk");
    }
    assert_eq!(target.db_hash(db).1.keys().collect::<Vec<_>>(), ["users"]);
}
