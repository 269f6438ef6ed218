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

mod metrics;
pub mod stage;
mod window;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// A parsed config file: keys to values, in file order of last assignment.
#[derive(Clone, Debug, Default)]
pub struct Config {
    values: BTreeMap<String, String>,
}

impl Config {
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Config> {
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
    pub fn databases(&self) -> Vec<String> {
        split_databases(self.get("db_name").unwrap_or(""))
    }

    /// Parses config text.
    pub fn parse(text: &str) -> Result<Config> {
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
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// A required value.
    pub fn require(&self, key: &str) -> Result<&str> {
        self.get(key).with_context(|| format!("config key `{key}` is missing"))
    }

    /// A boolean flag such as `is_inc_backup`: 1/0, true/false, yes/no.
    pub fn flag(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(None),
            Some("1" | "true" | "yes" | "on") => Ok(Some(true)),
            Some("0" | "false" | "no" | "off") => Ok(Some(false)),
            Some(other) => bail!("config key `{key}` must be 1 or 0, not {other:?}"),
        }
    }
}

/// Keys whose value is a secret.
pub const SECRET_KEYS: [&str; 3] = ["db_passwd", "accessKeySecret", "restore_db_passwd"];

/// Database names from a comma-separated list, trimmed, empty ones dropped.
pub fn split_databases(names: &str) -> Vec<String> {
    names.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

/// The key prefix of a chain's objects: the databases joined by `+`, or `all`.
pub fn key_prefix(databases: &[String]) -> String {
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
pub fn load_optional(path: Option<&Path>) -> Result<Option<Config>> {
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
    fn rejects_garbage_lines() {
        assert!(Config::parse("just words").is_err());
        assert!(Config::parse("is_inc_backup = maybe").unwrap().flag("is_inc_backup").is_err());
    }
}
