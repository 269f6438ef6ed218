//! `mb-config`: what the scripts need from a config file or a JSON record,
//! one value a line, so bash reads it with `mapfile` and never parses INI or
//! JSON itself.
//!
//! ```text
//! Usage: mb-config get CONFIG KEY[=DEFAULT]...     values of config keys, one a line
//!        mb-config prefix CONFIG                    the chain's key prefix (db_name joined by +, or all)
//!        mb-config field RECORD NAME...             fields of a one-record JSON file, one a line
//!        mb-config field --each FILE NAME...        the same for every line of a JSON-lines file
//!        mb-config window RECORD                    an apply record's restorable window: 4 lines
//!        mb-config metrics FILE --prefix P --started SECS [--failed] [--range R]
//!                  [--manifest M] [--put P]         update mb-backup's Prometheus textfile
//!        mb-config restore-target CONFIG [--uri URI] [--drop] [--yes-drop-the-source]
//!                  [--dry-run] [--write-config FILE]
//!
//! Values go one per line, in the order asked, an empty line for a missing
//! one; control characters in a value print as spaces, so one value is one
//! line. Secret keys (db_passwd, accessKeySecret, restore_db_passwd) are
//! never printed. Loading the config warns if it holds a secret and group or
//! others may read it.
//!
//! restore-target decides where mb-restore writes, and prints five lines: the
//! mb-apply target flag (--config or --uri; empty for --dry-run, or when the
//! target is $MB_MONGO_URI, which mb-apply reads itself), its value,
//! drop (1 or 0), the cycle and the download directory the config asks for.
//!   - A restore config of the seed's scripts (it has one of the keys
//!     last_circle_backup_dir_name, is_drop_old_restore, has_download_to_local,
//!     restore_local_temp_path): its db_host is the target, and those keys
//!     act as --cycle, --drop and --download-dir (restore_local_temp_path when
//!     has_download_to_local=1).
//!   - A backup config: the target is --uri (or $MB_MONGO_URI), else the restore_db_host,
//!     restore_db_port, restore_db_user, restore_db_passwd keys (written as a
//!     0600 config to --write-config FILE); its db_host, the backup source, is
//!     never a target by default. Dropping on the source itself needs
//!     --yes-drop-the-source.
//! No target, or a drop on the source without the confirmation: exit 2.
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{key_prefix, Config, SECRET_KEYS};
use crate::cli::{Failure, EXIT_USAGE};

/// `mb-config`'s flags.
#[derive(clap::Parser, Debug)]
#[command(name = "mb-config", version, about = "Print config values and record fields for the scripts")]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Values of config keys, one a line (KEY=DEFAULT gives a default).
    Get {
        /// The config file.
        config: PathBuf,
        /// Keys to print.
        #[arg(required = true, value_name = "KEY[=DEFAULT]")]
        keys: Vec<String>,
    },
    /// The key prefix of the chain's objects.
    Prefix {
        /// The config file.
        config: PathBuf,
    },
    /// Fields of a one-record JSON file (`-`: stdin), one a line.
    Field {
        /// The file holds one record a line (mb-oss-get --list): fields of each.
        #[arg(long)]
        each: bool,
        /// The record file.
        record: PathBuf,
        /// Field names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// The restorable window of an apply record: from time, from t,i, to time, to t,i.
    Window {
        /// The apply record (mb-apply --dry-run over a cycle).
        record: PathBuf,
    },
    /// Update mb-backup's Prometheus textfile after a run (see src/config/metrics.rs).
    Metrics(super::metrics::MetricsArgs),
    /// Decide the restore target (see the usage text).
    RestoreTarget {
        /// The config file.
        config: PathBuf,
        /// The target given on the command line.
        #[arg(long, value_name = "URI")]
        uri: Option<String>,
        /// The user asked for --drop.
        #[arg(long)]
        drop: bool,
        /// The user confirmed dropping on the backup source.
        #[arg(long)]
        yes_drop_the_source: bool,
        /// Nothing is written: no target needed.
        #[arg(long)]
        dry_run: bool,
        /// Where to write the target config built from restore_db_* keys.
        #[arg(long, value_name = "FILE")]
        write_config: Option<PathBuf>,
    },
}

/// Runs `mb-config`.
pub fn run() -> Result<()> {
    let args: Args = crate::cli::parse_args()?;
    let lines = match args.command {
        Command::Get { config, keys } => {
            let config = Config::load(&config)?;
            keys.iter()
                .map(|spec| {
                    let (key, default) = spec.split_once('=').unwrap_or((spec, ""));
                    if SECRET_KEYS.contains(&key) {
                        return Err(usage(format!("{key} is a secret: the stages read it themselves")));
                    }
                    Ok(config.get(key).unwrap_or(default).to_string())
                })
                .collect::<Result<Vec<_>>>()?
        }
        Command::Prefix { config } => vec![key_prefix(&Config::load(&config)?.databases())],
        Command::Field { each: false, record, names } => {
            let what = record.display().to_string();
            fields(&crate::record::read_json(crate::cli::open_input(Some(&record))?, &what)?, &names)
        }
        Command::Field { each: true, record, names } => {
            let mut lines = Vec::new();
            for (number, line) in
                std::io::BufRead::lines(std::io::BufReader::new(crate::cli::open_input(Some(&record))?)).enumerate()
            {
                let line = line.with_context(|| format!("reading {}", record.display()))?;
                if line.trim().is_empty() {
                    continue;
                }
                let value = serde_json::from_str(&line)
                    .with_context(|| format!("{} line {} is not a JSON record", record.display(), number + 1))?;
                lines.extend(fields(&value, &names));
            }
            lines
        }
        Command::Window { record } => {
            let what = record.display().to_string();
            super::window::window_lines(&crate::record::read_json(crate::cli::open_input(Some(&record))?, &what)?)?
        }
        Command::Metrics(metrics) => super::metrics::run(&metrics)?,
        Command::RestoreTarget { config, uri, drop, yes_drop_the_source, dry_run, write_config } => {
            let path = config;
            let config = Config::load(&path)?;
            let env_uri = std::env::var("MB_MONGO_URI").ok().filter(|u| !u.is_empty());
            let asked = Asked { uri, env_uri, drop, yes_drop_the_source, dry_run };
            restore_target(&path, &config, &asked, write_config.as_deref())?
        }
    };
    let mut out = String::new();
    for line in lines {
        out.extend(line.chars().map(|c| if c.is_control() { ' ' } else { c }));
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}

fn usage(message: String) -> anyhow::Error {
    Failure { code: EXIT_USAGE, message }.into()
}

fn fields(value: &serde_json::Value, names: &[String]) -> Vec<String> {
    names
        .iter()
        .map(|name| match value.get(name) {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        })
        .collect()
}

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
            return Err(usage("has_download_to_local=1 needs restore_local_temp_path".into()));
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
        let file = write_config.context("a restore_db_host target needs --write-config FILE")?;
        write_target_config(file, config, host, port)?;
        ("--config".to_string(), file.display().to_string(), Some(config_hosts(host, port)))
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
fn write_target_config(file: &Path, config: &Config, host: &str, port: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut text = format!("db_host = {host}\ndb_port = {port}\n");
    for (from, to) in [("restore_db_user", "db_user"), ("restore_db_passwd", "db_passwd")] {
        if let Some(value) = config.get(from) {
            text.push_str(&format!("{to} = {value}\n"));
        }
    }
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
        assert_eq!(crate::cli::exit_code_of(&err), EXIT_USAGE, "{err:#}");
        let to_other = Asked { uri: Some("mongodb://10.0.0.6:27017/".into()), drop: true, ..Default::default() };
        assert_eq!(target(backup, &to_other).unwrap()[..3], ["--uri", "mongodb://10.0.0.6:27017/", "1"]);
        let to_source = Asked { uri: Some("mongodb://u:p@10.0.0.5/?x=1".into()), drop: true, ..Default::default() };
        assert_eq!(crate::cli::exit_code_of(&target(backup, &to_source).unwrap_err()), EXIT_USAGE);
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
