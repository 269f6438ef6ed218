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
//!                  [--dry-run] [--write-config FILE | --print-config]
//!        mb-config chain marker|head|list|plan ...     the chain's records, catalog and
//!                                                    restore plans (see `config/chain.rs`)
//!        mb-config status [STORE] --prefix P --root DIR [--period D] [--incremental]
//!                  [--json] [--max-age DURATION]      is the backup healthy (scripts/mb-status)
//!        mb-config run-record FILE --started SECS --exit N [--key K] [--log FILE]
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
//!     0600 config to --write-config FILE; without it the path line is empty,
//!     and --print-config prints that config for a pipe, so the password never
//!     lands on disk); its db_host, the backup source, is
//!     never a target by default. Dropping on the source itself needs
//!     --yes-drop-the-source.
//! No target, or a drop on the source without the confirmation: exit 2.
//! ```

mod chain;
mod metrics;
mod status;
mod window;

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::cli::usage;
use crate::settings::config::{key_prefix, Config, SECRET_KEYS};
use crate::settings::restore_target::{restore_target, Asked};

/// `mb-config`'s flags.
#[derive(clap::Parser, Debug)]
#[command(name = "mb-config", version, about = "Print config values and record fields for the scripts")]
pub(crate) struct Args {
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
    /// Update mb-backup's Prometheus textfile after a run (see `metrics.rs`).
    Metrics(metrics::MetricsArgs),
    /// Is the backup healthy: last success and failure, window, checkpoint, next full backup.
    Status(status::StatusArgs),
    /// Record a backup run's outcome (mb-backup, after every run).
    RunRecord(status::RunRecordArgs),
    /// The chain: commit markers, head records, the catalog, restore plans.
    #[command(subcommand)]
    Chain(chain::ChainCommand),
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
        /// Print only the target's config (from the restore_db_* keys), for
        /// a pipe: the restore password never lands on disk.
        #[arg(long, conflicts_with = "write_config")]
        print_config: bool,
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
            fields(&crate::format::records::read_json(crate::cli::io::open_input(Some(&record))?, &what)?, &names)
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
        Command::Window { record } => {
            let what = record.display().to_string();
            window::window_lines(&crate::format::records::read_json(
                crate::cli::io::open_input(Some(&record))?,
                &what,
            )?)?
        }
        Command::Metrics(args) => metrics::run(&args)?,
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
