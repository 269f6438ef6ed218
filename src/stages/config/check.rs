//! `mb-config check CONFIG`: every problem of a config file before a run
//! starts, one line each: unknown keys (with the nearest known one), missing
//! required keys, values a key cannot take. The known keys, their defaults
//! and meanings are in [`crate::settings::config::KEYS`].

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::cli::usage;
use crate::settings::config::{known_key, Config, Value, KEYS};

/// `mb-config check`'s arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct CheckArgs {
    /// The config file.
    config: PathBuf,
}

/// Prints nothing for a good config; else one line per problem on stderr, exit 2.
pub(crate) fn run(args: &CheckArgs) -> Result<Vec<String>> {
    // Not Config::load: its warning about a readable file is the script's
    // next step's to give (once), and not a problem with the keys.
    let text =
        std::fs::read_to_string(&args.config).with_context(|| format!("reading config {}", args.config.display()))?;
    let config = Config::parse(&text).map_err(|e| usage(format!("{}: {e}", args.config.display())))?;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut problems = problems(&config, env("OSS_BUCKET").is_some(), env("OSS_ENDPOINT").is_some());
    let Some(last) = problems.pop() else { return Ok(Vec::new()) };
    let path = args.config.display();
    for problem in problems {
        eprintln!("{}: {path}: {problem}", crate::cli::program());
    }
    Err(usage(format!("{path}: {last}")))
}

/// What is wrong with `config`, in file-key order; `env_bucket`/`env_endpoint`:
/// `$OSS_BUCKET`/`$OSS_ENDPOINT` are set (they stand in for those keys).
fn problems(config: &Config, env_bucket: bool, env_endpoint: bool) -> Vec<String> {
    let mut problems = Vec::new();
    for name in config.values.keys() {
        if known_key(name).is_none() {
            problems.push(match nearest(name) {
                Some(near) => format!("unknown key `{name}`: did you mean `{near}`?"),
                None => format!("unknown key `{name}`"),
            });
        }
    }
    for key in KEYS.iter().filter(|k| k.required && config.get(k.name).is_none()) {
        if !(key.name == "bucket" && env_bucket) {
            problems.push(format!("missing key `{}`: {}", key.name, key.meaning));
        }
    }
    let upload = config.flag("is_upload_to_oss").unwrap_or(None).unwrap_or(true);
    if upload && config.get("endpoint").is_none() && !env_endpoint {
        problems.push("missing key `endpoint`: is_upload_to_oss = 1 stores in OSS".into());
    }
    for key in &KEYS {
        if let Some(value) = config.get(key.name) {
            if let Err(why) = check_value(key.value, value) {
                problems.push(format!("bad value for `{}`: {value:?} {why}", key.name));
            }
        }
    }
    if let (Some(level), codec) = (config.get("compression_level"), config.get("compression").unwrap_or("zstd")) {
        let top = if codec.eq_ignore_ascii_case("gzip") { 9 } else { 19 };
        if level.parse::<u32>().is_ok_and(|n| n == 0 || n > top) {
            problems.push(format!("bad value for `compression_level`: {level} is not 1 to {top} ({codec})"));
        }
    }
    if config.get("sse_key_id").is_some() && !config.get("sse").is_some_and(|s| s.eq_ignore_ascii_case("KMS")) {
        problems.push("`sse_key_id` needs sse = KMS".into());
    }
    problems
}

/// Why `value` is not one `kind` allows.
fn check_value(kind: Value, value: &str) -> Result<(), String> {
    let ok = match kind {
        Value::Text => true,
        Value::Flag => {
            matches!(value.to_ascii_lowercase().as_str(), "1" | "0" | "true" | "false" | "yes" | "no" | "on" | "off")
        }
        Value::Count => value.parse::<u64>().is_ok(),
        Value::Days => value.parse::<f64>().is_ok_and(|d| d.is_finite() && d >= 0.0),
        Value::Port => value.parse::<u16>().is_ok_and(|p| p > 0),
        Value::OneOf(words) => words.iter().any(|w| w.eq_ignore_ascii_case(value)),
    };
    if ok {
        return Ok(());
    }
    Err(match kind {
        Value::Text => unreachable!("any text is a Text value"),
        Value::Flag => "is not 1 or 0".into(),
        Value::Count => "is not a whole number".into(),
        Value::Days => "is not a number of days (0 or more)".into(),
        Value::Port => "is not a port (1 to 65535)".into(),
        Value::OneOf(words) => format!("is not one of {}", words.join(", ")),
    })
}

/// The known key closest to a mistyped one, if any is close.
fn nearest(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    KEYS.iter()
        .map(|key| (strsim::levenshtein(&lower, &key.name.to_ascii_lowercase()), key.name))
        .filter(|(distance, key)| *distance <= (key.len() / 3).max(2))
        .min()
        .map(|(_, key)| key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "db_host = h\ndb_backup_root_path = /r\nbucket = b\nendpoint = e\n";

    fn problems_of(text: &str) -> Vec<String> {
        problems(&Config::parse(text).unwrap(), false, false)
    }

    #[test]
    fn a_good_config_has_no_problem() {
        assert!(problems_of(GOOD).is_empty(), "{:?}", problems_of(GOOD));
        let local = "db_host = h\ndb_backup_root_path = /r\nbucket = b\nis_upload_to_oss = 0\n";
        assert!(problems_of(local).is_empty());
    }

    #[test]
    fn each_problem_is_named() {
        assert_eq!(problems_of(&format!("{GOOD}bukcet = x\n")), ["unknown key `bukcet`: did you mean `bucket`?"]);
        assert_eq!(problems_of(&format!("{GOOD}IS_INC_BACKUP = 1\n")).len(), 1);
        assert_eq!(problems_of(&format!("{GOOD}zzz = 1\n")), ["unknown key `zzz`"]);
        let no_bucket = problems_of("db_host = h\ndb_backup_root_path = /r\nendpoint = e\n");
        assert!(no_bucket[0].starts_with("missing key `bucket`"), "{no_bucket:?}");
        assert!(problems(
            &Config::parse("db_host = h\ndb_backup_root_path = /r\nendpoint = e\n").unwrap(),
            true,
            false
        )
        .is_empty());
        assert_eq!(
            problems_of(&format!("{GOOD}db_port = 99999\n")),
            ["bad value for `db_port`: \"99999\" is not a port (1 to 65535)"]
        );
        assert_eq!(problems_of(&format!("{GOOD}compression = lz4\n")).len(), 1);
        assert_eq!(problems_of(&format!("{GOOD}compression = gzip\ncompression_level = 12\n")).len(), 1);
        assert_eq!(problems_of(&format!("{GOOD}full_backup_period = -1\n")).len(), 1);
    }
}
