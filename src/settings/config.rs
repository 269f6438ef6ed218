//! The config file the scripts and every stage's `--config` read.
//!
//! It keeps the seed's keys (`db_host`, `db_port`, `db_user`, `db_passwd`,
//! `db_name`, `db_backup_root_path`, `is_inc_backup`, `full_backup_period`,
//! `is_upload_to_oss`, `endpoint`, `accessKeyId`, `accessKeySecret`, `bucket`)
//! so users of the old Python scripts can bring theirs. The syntax is INI-like:
//! `key = value` or `key: value` lines, `#` and `;` comments, optional quotes;
//! `[section]` headers are accepted and ignored. Secrets live here (mode 0600),
//! never on a command line: loading a file that holds one (`db_passwd`,
//! `accessKeySecret`, `restore_db_passwd`) and that group or others may read
//! prints a warning, as ssh does for its keys.
//!
//! The scripts never parse this file themselves: `mb-config` ([`stage`])
//! prints what they need, one value a line.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// A parsed config file: keys to values, in file order of last assignment.
#[derive(Clone, Debug, Default)]
pub(crate) struct Config {
    pub(crate) values: BTreeMap<String, String>,
}

impl Config {
    /// Reads and parses a config file.
    pub(crate) fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        let config = Config::parse(&text).with_context(|| format!("in config {}", path.display()))?;
        config.warn_if_exposed(path);
        Ok(config)
    }

    /// Warns when the file holds a secret and group or others may read it.
    /// The scripts check once (`mb-config`) and set `MB_CONFIG_CHECKED` to the
    /// path, so a run's stages do not repeat the warning.
    fn warn_if_exposed(&self, path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        if std::env::var_os("MB_CONFIG_CHECKED").is_some_and(|checked| checked == path.as_os_str()) {
            return;
        }
        let Some(secret) = SECRET_KEYS.iter().find(|key| self.get(key).is_some()) else { return };
        let Ok(meta) = std::fs::metadata(path) else { return };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            crate::warn!(
                "config {} holds {secret} but is readable by others (mode {mode:04o}): chmod 600 {}",
                path.display(),
                path.display()
            );
        }
    }

    /// The databases backed up (`db_name`, comma-separated); empty: all.
    pub(crate) fn databases(&self) -> Vec<String> {
        split_databases(self.get("db_name").unwrap_or(""))
    }

    /// Parses config text.
    pub(crate) fn parse(text: &str) -> Result<Config> {
        let mut values = BTreeMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty()
                || line.starts_with('#')
                || line.starts_with(';')
                || (line.starts_with('[') && line.ends_with(']'))
            {
                continue;
            }
            let Some((key, value)) = line.split_once(['=', ':']) else {
                bail!("line {}: expected `key = value`", number + 1);
            };
            let key = key.trim();
            if key.is_empty() {
                bail!("line {}: empty key", number + 1);
            }
            values.insert(key.to_string(), unquote(value.trim()).to_string());
        }
        Ok(Config { values })
    }

    /// A value, if set and not empty.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// A required value.
    pub(crate) fn require(&self, key: &str) -> Result<&str> {
        self.get(key).with_context(|| format!("config key `{key}` is missing"))
    }

    /// A boolean flag such as `is_inc_backup`: 1/0, true/false, yes/no.
    pub(crate) fn flag(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(None),
            Some("1" | "true" | "yes" | "on") => Ok(Some(true)),
            Some("0" | "false" | "no" | "off") => Ok(Some(false)),
            Some(other) => bail!("config key `{key}` must be 1 or 0, not {other:?}"),
        }
    }
}

/// Keys whose value is a secret.
pub(crate) const SECRET_KEYS: [&str; 4] = ["db_passwd", "accessKeySecret", "securityToken", "restore_db_passwd"];

/// What a key's value may be (`mb-config check` refuses anything else).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Value {
    /// Any text.
    Text,
    /// 1/0, true/false, yes/no, on/off.
    Flag,
    /// A whole number (0 or more).
    Count,
    /// A number of days, 0 or more (fractions allowed).
    Days,
    /// A TCP port, 1 to 65535.
    Port,
    /// One of these words (case-insensitive).
    OneOf(&'static [&'static str]),
}

/// A config key the scripts or stages read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Key {
    /// The key as written in the file.
    pub name: &'static str,
    /// The value used when the key is missing or empty ("": none).
    pub default: &'static str,
    /// What it means, in one line.
    pub meaning: &'static str,
    /// What its value may be.
    pub value: Value,
    /// Whether every config must set it.
    pub required: bool,
}

impl Key {
    /// Whether the value is a secret (never printed, never on a command line).
    pub(crate) fn secret(&self) -> bool {
        SECRET_KEYS.contains(&self.name)
    }
}

const fn key(name: &'static str, default: &'static str, value: Value, meaning: &'static str) -> Key {
    Key { name, default, meaning, value, required: false }
}

const fn required(name: &'static str, value: Value, meaning: &'static str) -> Key {
    Key { name, default: "", meaning, value, required: true }
}

/// Every key a config may hold: the one list `mb-config check` and
/// `examples/mb.conf` (tested against it) follow.
pub(crate) const KEYS: [Key; 36] = {
    use Value::*;
    [
        required("db_host", Text, "MongoDB host(s) to back up, comma-separated for a replica set"),
        key("db_port", "27017", Port, "the port of hosts given without one"),
        key("db_user", "", Text, "MongoDB user (authSource admin)"),
        key("db_passwd", "", Text, "MongoDB password (or $MB_MONGO_PASSWORD)"),
        key("db_name", "", Text, "database(s) to back up, comma-separated; empty: the whole instance"),
        required("db_backup_root_path", Text, "where the checkpoint, the lock and a local store live"),
        key("is_inc_backup", "0", Flag, "1: a full backup starts each cycle, later runs store the oplog"),
        key("full_backup_period", "7", Days, "days per cycle (with is_inc_backup=1)"),
        key("users_and_roles", "0", Flag, "1: also back up the users and roles defined on db_name's databases"),
        key(
            "read_preference",
            "",
            OneOf(&READ_PREFERENCES),
            "which member a backup reads from; unset: one host itself",
        ),
        key("max_lag_seconds", "60", Count, "seconds to wait for a member behind the point a run needs"),
        key("compression", "zstd", OneOf(&["zstd", "gzip"]), "the objects' codec"),
        key("compression_level", "", Count, "the codec's level: zstd 1-19 (default 3), gzip 1-9 (default 6)"),
        key("encrypt_to", "", Text, "age recipients (age1..., comma-separated) every object is encrypted to"),
        key("identity_file", "", Text, "the age identity file restores and mb-verify decrypt with"),
        key("keep_cycles", "0", Count, "after each good run keep the newest N complete cycles; 0: delete none"),
        key("metrics_file", "", Text, "the Prometheus textfile each run writes (node_exporter's textfile collector)"),
        key("is_upload_to_oss", "1", Flag, "1: store in OSS; 0: store in db_backup_root_path/store"),
        key("endpoint", "", Text, "OSS endpoint, e.g. oss-cn-hangzhou.aliyuncs.com (needed with is_upload_to_oss=1)"),
        required(
            "bucket",
            Text,
            "the OSS bucket (a directory under db_backup_root_path/store with is_upload_to_oss=0)",
        ),
        key("region", "", Text, "the bucket's region for V4 signatures; derived from standard endpoints"),
        key("signature_version", "4", OneOf(&["1", "4"]), "OSS request signatures: 4, or 1 for old accounts"),
        key("accessKeyId", "", Text, "OSS AccessKey id (else the credential chain: env, RRSA, ECS role)"),
        key("accessKeySecret", "", Text, "OSS AccessKey secret"),
        key("securityToken", "", Text, "an STS token with a temporary AccessKey"),
        key("storage_class", "", OneOf(&STORAGE_CLASSES), "storage class of new objects (default: the bucket's)"),
        key("sse", "", OneOf(&["AES256", "KMS", "SM4"]), "server-side encryption of new objects"),
        key("sse_key_id", "", Text, "the KMS key with sse = KMS"),
        key("restore_db_host", "", Text, "where mb-restore writes by default (never db_host)"),
        key("restore_db_port", "27017", Port, "the port of restore_db_host"),
        key("restore_db_user", "", Text, "the user mb-restore writes as"),
        key("restore_db_passwd", "", Text, "restore_db_user's password"),
        key("last_circle_backup_dir_name", "", Text, "old restore configs: the cycle to restore (as --cycle)"),
        key("is_drop_old_restore", "0", Flag, "old restore configs: 1 drops before restoring (as --drop)"),
        key("has_download_to_local", "0", Flag, "old restore configs: 1 downloads first (as --download-dir)"),
        key("restore_local_temp_path", "", Text, "old restore configs: the download directory"),
    ]
};

/// Read preference modes, as in a URI's `readPreference`.
pub(crate) const READ_PREFERENCES: [&str; 5] =
    ["primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest"];

/// OSS storage classes a new object may get.
pub(crate) const STORAGE_CLASSES: [&str; 4] = ["Standard", "IA", "Archive", "ColdArchive"];

/// A known key by name.
pub(crate) fn known_key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.name == name)
}

/// Database names from a comma-separated list, trimmed, empty ones dropped.
pub(crate) fn split_databases(names: &str) -> Vec<String> {
    names.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

/// The key prefix of a chain's objects: the databases joined by `+`, or `all`.
pub(crate) fn key_prefix(databases: &[String]) -> String {
    if databases.is_empty() {
        "all".into()
    } else {
        databases.join("+")
    }
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

/// Loads `--config FILE` if one was given.
pub(crate) fn load_optional(path: Option<&Path>) -> Result<Option<Config>> {
    path.map(Config::load).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_seed_keys() {
        let config = Config::parse(
            "[backup]\n# comment\ndb_host = 127.0.0.1\ndb_port: 27017\ndb_passwd = \"p@ss=word\"\nis_inc_backup = 1\nbucket=\n",
        )
        .unwrap();
        assert_eq!(config.get("db_host"), Some("127.0.0.1"));
        assert_eq!(config.get("db_port"), Some("27017"));
        assert_eq!(config.get("db_passwd"), Some("p@ss=word"));
        assert_eq!(config.flag("is_inc_backup").unwrap(), Some(true));
        assert_eq!(config.get("bucket"), None);
        assert!(config.require("bucket").is_err());
    }

    #[test]
    fn databases_and_prefix() {
        let config = Config::parse("db_name = che, other,\n").unwrap();
        assert_eq!(config.databases(), ["che", "other"]);
        assert_eq!(key_prefix(&config.databases()), "che+other");
        assert_eq!(key_prefix(&[]), "all");
    }

    #[test]
    fn secrets_and_requirements_are_keys_of_the_list() {
        for secret in SECRET_KEYS {
            assert!(known_key(secret).is_some_and(Key::secret), "{secret}");
        }
        let names: std::collections::BTreeSet<_> = KEYS.iter().map(|k| k.name).collect();
        assert_eq!(names.len(), KEYS.len(), "a key is listed twice");
        assert!(known_key("bucket").unwrap().required, "no silent default bucket");
    }

    #[test]
    fn the_example_config_lists_every_key_with_its_default_and_meaning() {
        let example: Vec<&str> = include_str!("../../examples/mb.conf").lines().collect();
        for key in KEYS {
            let at = example.iter().position(|line| {
                line.trim_start_matches('#').split_once('=').is_some_and(|(name, _)| name.trim() == key.name)
            });
            let Some(at) = at else { panic!("examples/mb.conf lacks {}", key.name) };
            let (line, comment) = (example[at], example[at - 1]);
            if line.starts_with('#') {
                assert_eq!(
                    line,
                    format!("#{} = {}", key.name, key.default).trim_end(),
                    "a commented key shows its default"
                );
            }
            assert!(comment.to_lowercase().contains(&key.meaning.to_lowercase()[1..]), "{}: {comment}", key.name);
            assert_eq!(comment.contains("SECRET"), key.secret(), "{}: {comment}", key.name);
            assert_eq!(comment.contains("Required"), key.required, "{}: {comment}", key.name);
        }
        let example = Config::parse(&example.join("\n")).unwrap();
        assert!(example.values.keys().all(|name| known_key(name).is_some()));
    }

    #[test]
    fn rejects_garbage_lines() {
        assert!(Config::parse("just words").is_err());
        assert!(Config::parse("is_inc_backup = maybe").unwrap().flag("is_inc_backup").is_err());
    }
}
