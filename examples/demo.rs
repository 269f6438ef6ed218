//! The main job on embedded defaults (`scripts/demo`): a local mongod from the
//! same wheel the tests use, sample data, a full and an incremental backup
//! with `scripts/mb-backup` into a local directory store, a restore with
//! `scripts/mb-restore` into a second mongod, and a check that they match.

// The test harness's modules, shared so the demo starts mongod the same way.
#[allow(dead_code)]
#[path = "../tests/it/support/data.rs"]
mod data;
#[allow(dead_code)]
#[path = "../tests/it/support/mongod.rs"]
mod mongod;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use mongod::{block_on, Mongod, Options};
use mongodb::bson::{doc, Document};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("demo: FAILED: {message}");
            ExitCode::FAILURE
        }
    }
}

fn script(name: &str, args: &[&str], bin_dir: &Path) -> Result<(), String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name);
    eprintln!("demo: $ scripts/{name} {}", args.join(" "));
    let status = Command::new(&path)
        .args(args)
        .env("MB_BIN_DIR", bin_dir)
        .status()
        .map_err(|e| format!("running {name}: {e}"))?;
    if !status.success() {
        return Err(format!("scripts/{name} exited with {status}"));
    }
    Ok(())
}

fn run() -> Result<(), String> {
    let bin_dir: PathBuf = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf();
    if !bin_dir.join("mb-dump").exists() {
        return Err(format!("no mb-dump in {}: run `cargo build --release` first", bin_dir.display()));
    }
    eprintln!("demo: starting a replica set (the source) and a standalone (the restore target)");
    let source = Mongod::start(Options::default());
    let target = Mongod::start(Options { replica_set: false, ..Options::default() });
    let db = "shop";
    eprintln!("demo: loading sample data into {db}");
    data::populate(&source.client(), db, 20_000);

    let work = tempfile::Builder::new().prefix("mb-demo-").tempdir().map_err(|e| e.to_string())?;
    let config = work.path().join("backup.conf");
    let backups = work.path().join("backups");
    std::fs::write(
        &config,
        format!(
            "# written by the demo; see README.md for every key\n\
             db_host = 127.0.0.1\ndb_port = {}\ndb_name = {db}\n\
             db_backup_root_path = {}\nis_inc_backup = 1\nfull_backup_period = 7\n\
             is_upload_to_oss = 0\nbucket = backups\n",
            source.port,
            backups.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let config = config.to_str().unwrap();

    script("mb-backup", &[config], &bin_dir)?;
    eprintln!("demo: changing the data: inserts, updates, deletes, a new collection and index");
    let client = source.client();
    block_on(async {
        let shop = client.database(db);
        data::insert_big(&client, db, 100_000, 2_000).await;
        shop.collection::<Document>("big")
            .update_many(doc! {"n": {"$lt": 1000}}, doc! {"$set": {"on_sale": true}})
            .await?;
        shop.collection::<Document>("big").delete_many(doc! {"n": {"$gte": 19_000, "$lt": 19_500}}).await?;
        shop.collection::<Document>("reviews")
            .insert_many((0..500).map(|i| doc! {"stars": i % 5, "text": "great"}))
            .await?;
        shop.collection::<Document>("reviews")
            .create_index(mongodb::IndexModel::builder().keys(doc! {"stars": 1}).build())
            .await?;
        Ok::<_, mongodb::error::Error>(())
    })
    .map_err(|e| e.to_string())?;
    script("mb-backup", &[config], &bin_dir)?;
    script("mb-restore", &[config, "--list"], &bin_dir)?;
    script("mb-restore", &[config, "--uri", &target.uri(), "--drop"], &bin_dir)?;

    let (source_md5, source_collections) = source.db_hash(db);
    let (target_md5, target_collections) = target.db_hash(db);
    if source_collections != target_collections || source_md5 != target_md5 {
        return Err(format!(
            "the restore differs from the source:\n source {source_collections}\n target {target_collections}"
        ));
    }
    let shape = |m: &Mongod| data::shape(&m.client(), db);
    if shape(&source) != shape(&target) {
        return Err("collection options or indexes differ after the restore".into());
    }
    eprintln!(
        "demo: OK: the restored {db} matches the source: dbHash {target_md5} over {} collections, same options and indexes",
        target_collections.len()
    );
    Ok(())
}
