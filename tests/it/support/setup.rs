//! A backup setup for the tests that run the operator's scripts: a config
//! file on a source `mongod`, a backup root with a local directory store (or
//! the suite's OSS server), and the bin dir the scripts use; a restore into
//! a fresh database; a bin dir with one stage replaced by a wrapper.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mb::format::records::State;

use super::mongod::Mongod;
use super::oss_server::OssServer;
use super::{assert_ok, bin, bin_dir, temp_dir};

/// A backup setup: config file, backup root, and the bin dir the scripts use.
pub struct Setup {
    /// Holds the config and backups; removed on drop.
    pub _dir: tempfile::TempDir,
    pub config: PathBuf,
    pub root: PathBuf,
    pub bin_dir: PathBuf,
}

impl Setup {
    /// Incremental backups of `db` on `source` into a local store.
    pub fn new(source: &Mongod, db: &str, incremental: bool) -> Setup {
        let dir = temp_dir();
        let root = dir.path().join("backups");
        let config = dir.path().join("backup.conf");
        std::fs::write(
            &config,
            format!(
                "[backup]\ndb_host = 127.0.0.1\ndb_port = {}\ndb_name = {db}\ndb_backup_root_path = {}\n\
                 is_inc_backup = {}\nfull_backup_period = 7\nis_upload_to_oss = 0\nbucket = backups\n",
                source.port,
                root.display(),
                u8::from(incremental)
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        Setup { _dir: dir, config, root, bin_dir: bin_dir() }
    }

    /// Backups go to the suite's OSS server (`is_upload_to_oss = 1`).
    pub fn with_oss(source: &Mongod, db: &str, oss: &OssServer, bucket: &str, secret: &str) -> Setup {
        let setup = Setup::new(source, db, true);
        let config =
            std::fs::read_to_string(&setup.config).unwrap().replace("is_upload_to_oss = 0\nbucket = backups\n", "");
        std::fs::write(
            &setup.config,
            format!(
                "{config}is_upload_to_oss = 1\nendpoint = {}\nregion = cn-hangzhou\nbucket = {bucket}\naccessKeyId = {}\naccessKeySecret = {secret}\n",
                oss.endpoint(),
                oss.access_key_id()
            ),
        )
        .unwrap();
        setup
    }

    fn script(&self, name: &str) -> Command {
        self.script_with(name, &self.config)
    }

    /// `scripts/NAME CONFIG` with another config file.
    pub fn script_with(&self, name: &str, config: &Path) -> Command {
        let mut cmd = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name));
        cmd.arg(config).env("MB_BIN_DIR", &self.bin_dir).env_remove("MB_MONGO_URI");
        cmd
    }

    /// Sets a config key (replacing any line that sets it).
    pub fn set_key(&self, key: &str, value: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let other = |line: &&str| line.split('=').next().map(str::trim) != Some(key);
        let mut kept: String = text.lines().filter(other).map(|l| format!("{l}\n")).collect();
        kept.push_str(&format!("{key} = {value}\n"));
        std::fs::write(&self.config, kept).unwrap();
    }

    /// The stored bytes of a key of the local store.
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.join("store/backups").join(key)
    }

    /// Runs `scripts/mb-backup CONFIG`.
    pub fn backup(&self) -> Output {
        self.script("mb-backup").output().unwrap()
    }

    /// Runs `scripts/mb-restore CONFIG ARGS...`.
    pub fn restore(&self, args: &[&str]) -> Output {
        self.script("mb-restore").args(args).output().unwrap()
    }

    /// The checkpoint file's bytes, if any.
    pub fn state_bytes(&self) -> Option<Vec<u8>> {
        std::fs::read(self.root.join("state.json")).ok()
    }

    /// The checkpoint.
    pub fn state(&self) -> State {
        serde_json::from_slice(&self.state_bytes().expect("a state file")).unwrap()
    }

    /// Every object key in the store.
    pub fn stored_keys(&self) -> Vec<String> {
        let base = self.root.join("store/backups");
        let mut keys = Vec::new();
        let mut stack = vec![base.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    keys.push(path.strip_prefix(&base).unwrap().display().to_string());
                }
            }
        }
        keys.sort();
        keys
    }
}

/// Restores the latest cycle into a fresh database on `target` and returns its dbHash.
pub fn restore_fresh(setup: &Setup, target: &Mongod, db: &str, extra: &[&str]) -> (String, mongodb::bson::Document) {
    let client = target.client();
    crate::support::mongod::block_on(async { client.database(db).drop().await }).unwrap();
    let uri = target.uri();
    let mut args = vec!["--uri", uri.as_str(), "--drop"];
    args.extend_from_slice(extra);
    let output = setup.restore(&args);
    assert_ok(&output);
    target.db_hash(db)
}

/// A bin dir where `stage` is replaced by `wrapper` (a bash script body that
/// may call "$real" "$@") and every other stage is the real one.
pub fn bin_dir_with(stage: &str, wrapper: &str) -> tempfile::TempDir {
    let dir = temp_dir();
    for name in super::BINARIES {
        let path = dir.path().join(name);
        if name == stage {
            let script = format!("#!/usr/bin/env bash\nreal={}\n{wrapper}\n", bin(name).display());
            std::fs::write(&path, script).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        } else {
            std::os::unix::fs::symlink(bin(name), &path).unwrap();
        }
    }
    dir
}
