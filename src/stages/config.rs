//! `mb-config`: what the scripts need from a config file or a JSON record,
//! one value a line, so bash reads it with `mapfile` and never parses INI or
//! JSON itself. Its help text is on `Args`.

mod chain;
mod check;
mod generate;
mod metrics;
mod status;
mod window;

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::cli::usage;
use crate::format::records::read_json_file;
use crate::settings::config::{key_prefix, known_key, Config, Key};
use crate::settings::restore_target::{restore_target, Asked};

/// Print config values and record fields for the scripts.
///
/// Values go one per line, in the order asked, an empty line for a missing
/// one; control characters in a value print as spaces, so one value is one
/// line. Secret keys (db_passwd, accessKeySecret, securityToken,
/// restore_db_passwd) are never printed. Loading the config warns if it holds
/// a secret and group or others may read it.
///
/// restore-target decides where mb-restore writes, and prints five lines: the
/// mb-apply target flag (--config or --uri; empty for --dry-run, or when the
/// target is $MB_MONGO_URI, which mb-apply reads itself), its value, drop (1
/// or 0), the cycle and the download directory the config asks for. A restore
/// config of the old Python scripts (it has one of last_circle_backup_dir_name,
/// is_drop_old_restore, has_download_to_local, restore_local_temp_path) names
/// its target in db_host, and those keys act as --cycle, --drop and
/// --download-dir. A backup config's target is --uri (or $MB_MONGO_URI), else
/// its restore_db_host, restore_db_port, restore_db_user, restore_db_passwd
/// keys (written as a 0600 config to --write-config FILE; without it the path
/// line is empty and --print-config prints that config for a pipe, so the
/// password never lands on disk); its db_host, the backup source, is never a
/// target by default. Dropping on the source itself needs
/// --yes-drop-the-source. No target, or a drop on the source without the
/// confirmation: exit 2.
///
/// chain: the chain's records (commit markers, head records), its catalog
/// (`chain list`, what `mb-restore --list` prints) and restore plans (`chain
/// plan`: the objects that restore a point, after every check that can refuse
/// before a write). status: is the backup healthy (what `mb-status` prints).
///
/// Exit status: 0 done; 1 failure (a missing file, a bad record); 2 usage
/// (a bad flag, a secret asked for, a config `check` refuses).
#[derive(clap::Parser, Debug)]
#[command(name = "mb-config", after_help = EXAMPLES)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Values of config keys, one a line (KEY=DEFAULT gives a default, else
    /// the documented one: examples/mb.conf).
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
    /// Check a config file: unknown keys (and the nearest known one), missing
    /// required keys, bad values; one line each on stderr, exit 2.
    Check(check::CheckArgs),
    /// Update mb-backup's Prometheus textfile after a run (node_exporter's
    /// textfile collector format; README: Monitoring).
    Metrics(metrics::MetricsArgs),
    /// Is the backup healthy: last success and failure, window, checkpoint, next full backup.
    Status(status::StatusArgs),
    /// Record a backup run's outcome (mb-backup, after every run).
    RunRecord(status::RunRecordArgs),
    /// The chain: commit markers, head records, the catalog, restore plans.
    #[command(subcommand)]
    Chain(chain::ChainCommand),
    /// Decide where mb-restore writes: five lines (see mb-config --help).
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
        /// Print only the target's config (from the restore_db_* keys), for
        /// a pipe: the restore password never lands on disk.
        #[arg(long, conflicts_with = "write_config")]
        print_config: bool,
    },
    /// Write the man pages or shell completions of every binary (for packaging).
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
}

const EXAMPLES: &str = "Examples:
  # Check a config before the first run (one line per problem, exit 2):
  mb-config check /etc/mb/shop.conf
  # Values for a script, one a line, with defaults:
  mb-config get /etc/mb/shop.conf db_backup_root_path keep_cycles=0
  # Fields of a record mb-oss-put printed:
  mb-config field put.json size crc64
  # The catalog of a local store's chain, one mb-cycle/1 record per cycle:
  mb-config chain list --store-dir /var/backups/mb/store --bucket backups --prefix shop --json";

/// Runs `mb-config`.
pub fn run() -> Result<()> {
    let args: Args = crate::cli::parse_args()?;
    let lines = match args.command {
        Command::Get { config, keys } => {
            let config = Config::load(&config)?;
            keys.iter()
                .map(|spec| {
                    // Without `=DEFAULT`, the key's documented default (settings::config::KEYS).
                    let known = known_key(spec).map_or("", |key| key.default);
                    let (key, default) = spec.split_once('=').unwrap_or((spec, known));
                    if known_key(key).is_some_and(Key::secret) {
                        return Err(usage(format!("{key} is a secret: the stages read it themselves")));
                    }
                    Ok(config.get(key).unwrap_or(default).to_string())
                })
                .collect::<Result<Vec<_>>>()?
        }
        Command::Prefix { config } => vec![key_prefix(&Config::load(&config)?.databases())],
        Command::Field { each: false, record, names } => {
            fields(&read_json_file(&record, &record.display().to_string())?, &names)
        }
        Command::Field { each: true, record, names } => {
            let mut lines = Vec::new();
            for (number, line) in
                std::io::BufRead::lines(std::io::BufReader::new(crate::cli::io::open_input(Some(&record))?)).enumerate()
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
        Command::Window { record } => window::window_lines(&read_json_file(&record, &record.display().to_string())?)?,
        Command::Check(args) => check::run(&args)?,
        Command::Metrics(args) => metrics::run(&args)?,
        Command::Generate(args) => generate::run(&args)?,
        Command::Chain(command) => chain::run(command)?,
        Command::Status(args) => status::status(&args)?,
        Command::RunRecord(args) => status::record_run(&args)?,
        Command::RestoreTarget { config, print_config: true, .. } => {
            crate::settings::restore_target::target_config_lines(&Config::load(&config)?)
                .ok_or_else(|| usage(format!("{} has no restore_db_host", config.display())))?
        }
        Command::RestoreTarget {
            config,
            uri,
            drop,
            yes_drop_the_source,
            dry_run,
            write_config,
            print_config: false,
        } => {
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
