//! Where `mb-restore` writes (`mb-config restore-target`): the target from
//! the command line, `$MB_MONGO_URI`, a restore config of the seed's
//! scripts, or a backup config's restore_db_* keys; never the backup's
//! source by default. The usage text is `mb-config`'s (`crate::stages::config`).

use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::usage;
use crate::settings::config::Config;

/// What the user asked mb-restore for.
#[derive(Debug, Default)]
pub(crate) struct Asked {
    /// `--uri` on the command line.
    pub(crate) uri: Option<String>,
    /// `MB_MONGO_URI`: mb-apply reads it itself, so it is never put on a
    /// command line (it may hold a password).
    pub(crate) env_uri: Option<String>,
    pub(crate) drop: bool,
    pub(crate) yes_drop_the_source: bool,
    pub(crate) dry_run: bool,
}

/// Keys only a restore config of the seed's scripts has.
const RESTORE_CONFIG_KEYS: [&str; 4] =
    ["last_circle_backup_dir_name", "is_drop_old_restore", "has_download_to_local", "restore_local_temp_path"];

/// The five lines of `restore-target` (see the usage text).
pub(crate) fn restore_target(
    path: &Path,
    config: &Config,
    asked: &Asked,
    write_config: Option<&Path>,
) -> Result<Vec<String>> {
    let is_restore_config = RESTORE_CONFIG_KEYS.iter().any(|key| config.values.contains_key(*key));
    let drop = asked.drop || (is_restore_config && config.flag("is_drop_old_restore")?.unwrap_or(false));
    let (cycle, download_dir) = if is_restore_config {
        let download = config.flag("has_download_to_local")?.unwrap_or(false);
        let dir = config.get("restore_local_temp_path").filter(|_| download);
        if download && dir.is_none() {
            return Err(usage("has_download_to_local=1 needs restore_local_temp_path"));
        }
        (config.get("last_circle_backup_dir_name").unwrap_or(""), dir.unwrap_or(""))
    } else {
        ("", "")
    };
    let (flag, value, hosts) = if asked.dry_run {
        (String::new(), String::new(), None)
    } else if let Some(uri) = &asked.uri {
        ("--uri".to_string(), uri.clone(), Some(uri_hosts(uri)))
    } else if let Some(uri) = &asked.env_uri {
        (String::new(), String::new(), Some(uri_hosts(uri)))
    } else if is_restore_config {
        ("--config".to_string(), path.display().to_string(), None)
    } else if let Some(host) = config.get("restore_db_host") {
        let port = config.get("restore_db_port").unwrap_or("27017");
        // Without a file, the config's path is left empty: the caller reads
        // it from `restore-target --print-config` through a pipe, so the
        // restore password never lands on disk.
        let file = match write_config {
            Some(file) => {
                write_target_config(file, config)?;
                file.display().to_string()
            }
            None => String::new(),
        };
        ("--config".to_string(), file, Some(config_hosts(host, port)))
    } else {
        return Err(usage(format!(
            "no restore target: {} is a backup config, and its db_host is the backup source; \
             pass --uri or set restore_db_host (and restore_db_port)",
            path.display()
        )));
    };
    // Only a backup config names a source; a drop on it must be confirmed.
    if let (Some(target), Some(source)) = (hosts, config.get("db_host").filter(|_| !is_restore_config)) {
        let source = config_hosts(source, config.get("db_port").unwrap_or("27017"));
        let same = target.iter().any(|host| source.contains(host));
        if same && drop && !asked.yes_drop_the_source {
            return Err(usage(format!(
                "the restore target {} is the server this config backs up, and --drop would drop its \
                 collections: add --yes-drop-the-source if that is really meant",
                target.join(",")
            )));
        }
    }
    Ok(vec![flag, value, u8::from(drop).to_string(), cycle.to_string(), download_dir.to_string()])
}

/// A config for mb-apply with the restore_db_* keys as its db_* keys (0600).
/// The target's config (`db_host`, `db_port`, `db_user`, `db_passwd` from
/// the `restore_db_*` keys), one `key = value` a line; `None` without `restore_db_host`.
pub(crate) fn target_config_lines(config: &Config) -> Option<Vec<String>> {
    let host = config.get("restore_db_host")?;
    let mut lines =
        vec![format!("db_host = {host}"), format!("db_port = {}", config.get("restore_db_port").unwrap_or("27017"))];
    for (from, to) in [("restore_db_user", "db_user"), ("restore_db_passwd", "db_passwd")] {
        if let Some(value) = config.get(from) {
            lines.push(format!("{to} = {value}"));
        }
    }
    Some(lines)
}

fn write_target_config(file: &Path, config: &Config) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut text = target_config_lines(config).unwrap_or_default().join("\n");
    text.push('\n');
    let _ = std::fs::remove_file(file);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("creating {}", file.display()))?;
    out.write_all(text.as_bytes()).with_context(|| format!("writing {}", file.display()))
}

/// `host:port` of every host in a config's host list, normalized.
fn config_hosts(hosts: &str, port: &str) -> Vec<String> {
    hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| normalize(&if h.contains(':') { h.to_string() } else { format!("{h}:{port}") }))
        .collect()
}

/// `host:port` of every host in a mongodb:// URI, normalized (an SRV name as is).
fn uri_hosts(uri: &str) -> Vec<String> {
    let rest = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    let rest = rest.split(['/', '?']).next().unwrap_or("");
    let rest = rest.rsplit_once('@').map_or(rest, |(_, hosts)| hosts);
    config_hosts(rest, "27017")
}

fn normalize(host_port: &str) -> String {
    let lower = host_port.to_ascii_lowercase();
    let (host, port) = lower.rsplit_once(':').unwrap_or((&lower, "27017"));
    let host = match host {
        "localhost" | "[::1]" | "::1" => "127.0.0.1",
        other => other,
    };
    format!("{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(text: &str, asked: &Asked) -> Result<Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("target.conf");
        restore_target(Path::new("c.conf"), &Config::parse(text).unwrap(), asked, Some(&out))
    }

    #[test]
    fn a_backup_config_is_never_a_silent_target() {
        let backup = "db_host = 10.0.0.5\ndb_port = 27017\n";
        let err = target(backup, &Asked::default()).unwrap_err();
        assert_eq!(crate::cli::exit_code_of(&err), crate::cli::EXIT_USAGE, "{err:#}");
        let to_other = Asked { uri: Some("mongodb://10.0.0.6:27017/".into()), drop: true, ..Default::default() };
        assert_eq!(target(backup, &to_other).unwrap()[..3], ["--uri", "mongodb://10.0.0.6:27017/", "1"]);
        let to_source = Asked { uri: Some("mongodb://u:p@10.0.0.5/?x=1".into()), drop: true, ..Default::default() };
        assert_eq!(crate::cli::exit_code_of(&target(backup, &to_source).unwrap_err()), crate::cli::EXIT_USAGE);
        let confirmed = Asked { yes_drop_the_source: true, ..to_source };
        assert!(target(backup, &confirmed).is_ok());
        let from_env = Asked { env_uri: Some("mongodb://u:secret@10.0.0.6/".into()), ..Default::default() };
        assert_eq!(target(backup, &from_env).unwrap()[..2], ["", ""], "never on a command line");
        let env_on_source = Asked { env_uri: Some("mongodb://10.0.0.5/".into()), drop: true, ..Default::default() };
        assert!(target(backup, &env_on_source).is_err());
        let keyed = format!("{backup}restore_db_host = 10.0.0.7\n");
        assert_eq!(target(&keyed, &Asked::default()).unwrap()[0], "--config");
        assert_eq!(target(backup, &Asked { dry_run: true, ..Default::default() }).unwrap()[0], "");
    }

    #[test]
    fn a_seed_restore_config_names_its_target_and_options() {
        let text = "db_host = 10.0.0.5\nlast_circle_backup_dir_name = 20261124T031500Z\nis_drop_old_restore = 1\n\
                    has_download_to_local = 1\nrestore_local_temp_path = /tmp/r\n";
        assert_eq!(target(text, &Asked::default()).unwrap(), ["--config", "c.conf", "1", "20261124T031500Z", "/tmp/r"]);
    }

    #[test]
    fn hosts_compare_normalized() {
        assert_eq!(uri_hosts("mongodb://a:b@LocalHost,h2:27018/db?replicaSet=x"), ["127.0.0.1:27017", "h2:27018"]);
        assert_eq!(config_hosts("127.0.0.1", "27017"), ["127.0.0.1:27017"]);
    }
}
