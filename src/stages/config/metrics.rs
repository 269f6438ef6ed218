//! `mb-config metrics FILE ...`: `mb-backup`'s Prometheus textfile (the
//! node_exporter textfile collector's format), written atomically (temp file
//! in the same directory, fsync, rename) after every run, good or failed.
//!
//! Series are labelled `kind` (`full`, `oplog`), `prefix`, `store` (the
//! bucket, or the local store's directory) and `databases`, so two configs
//! backing up the same database to two stores write two series. The file
//! keeps every series it already holds (another kind, another chain writing
//! the same file), so a failed run updates its failure metrics and keeps the
//! last success time. A run that failed before it knew its kind updates the
//! failure metrics of every kind the file holds for its chain (`full` if
//! none). Series without a `store` label (written by an older mb) are
//! dropped: the run writes their labelled successors. A file that cannot be
//! written exits 6, so monitoring never goes blind silently.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::format::records::{Kind, Manifest, RangeRecord};

/// `mb-config metrics`' flags.
#[derive(clap::Args, Debug)]
pub(crate) struct MetricsArgs {
    /// The textfile to update (e.g. /var/lib/node_exporter/textfile/mb.prom).
    file: PathBuf,
    /// The chain's key prefix (label `prefix`).
    #[arg(long)]
    prefix: String,
    /// Where the chain is stored: `oss://BUCKET` or the store's directory (label `store`).
    #[arg(long)]
    store: String,
    /// The databases backed up, comma-separated, or `all` (label `databases`).
    #[arg(long)]
    databases: String,
    /// When the run started, seconds since the epoch.
    #[arg(long, value_name = "SECS")]
    started: i64,
    /// The run failed.
    #[arg(long)]
    failed: bool,
    /// The run's range record (its kind; an oplog slice's end).
    #[arg(long, value_name = "FILE")]
    range: Option<PathBuf>,
    /// The run's manifest (a full backup's consistency point).
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// The run's put record (bytes stored).
    #[arg(long, value_name = "FILE")]
    put: Option<PathBuf>,
}

const LAST_SUCCESS: &str = "mb_backup_last_success_timestamp_seconds";
const LAST_RUN: &str = "mb_backup_last_run_timestamp_seconds";
const LAST_RUN_SUCCESS: &str = "mb_backup_last_run_success";
const BYTES: &str = "mb_backup_bytes";
const DURATION: &str = "mb_backup_duration_seconds";
const RESTORABLE_UNTIL: &str = "mb_backup_restorable_until_timestamp_seconds";

/// Every metric, with its help text, in the order written.
const METRICS: [(&str, &str); 6] = [
    (LAST_SUCCESS, "When the last successful mb-backup run of this kind ended."),
    (LAST_RUN, "When the last mb-backup run of this kind ended, successful or not."),
    (LAST_RUN_SUCCESS, "1 if the last mb-backup run of this kind succeeded, else 0."),
    (BYTES, "Bytes stored by the last successful mb-backup run of this kind."),
    (DURATION, "How long the last mb-backup run of this kind took."),
    (RESTORABLE_UNTIL, "The newest point the stored chain restores to (its oplog end, or a standalone dump's end)."),
];

/// The labels of one series.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Labels {
    kind: String,
    prefix: String,
    store: String,
    databases: String,
}

impl Labels {
    /// Whether the series belongs to the same chain as `other` (any kind).
    fn same_chain(&self, other: &Labels) -> bool {
        (&self.prefix, &self.store, &self.databases) == (&other.prefix, &other.store, &other.databases)
    }
}

/// `(metric, labels)` → value.
type Series = BTreeMap<(String, Labels), f64>;

/// Updates the file for one run; prints nothing.
pub(crate) fn run(args: &MetricsArgs) -> Result<Vec<String>> {
    let mut series = match std::fs::read_to_string(&args.file) {
        Ok(text) => parse(&text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Series::new(),
        Err(err) => return Err(monitoring(err.into(), "reading", &args.file)),
    };
    let now = crate::format::time::now_secs();
    let range: Option<RangeRecord> = args.range.as_deref().map(|p| read(p, "the range record")).transpose()?;
    let chain = Labels {
        kind: String::new(),
        prefix: args.prefix.clone(),
        store: args.store.clone(),
        databases: args.databases.clone(),
    };
    let kinds: Vec<String> = match &range {
        Some(range) => vec![range.kind.to_string()],
        None => {
            let known: std::collections::BTreeSet<String> =
                series.keys().filter(|(_, labels)| labels.same_chain(&chain)).map(|(_, l)| l.kind.clone()).collect();
            if known.is_empty() {
                vec![Kind::Full.to_string()]
            } else {
                known.into_iter().collect()
            }
        }
    };
    for kind in &kinds {
        let mut set = |metric: &str, value: f64| {
            series.insert((metric.to_string(), Labels { kind: kind.clone(), ..chain.clone() }), value);
        };
        set(LAST_RUN, now as f64);
        set(LAST_RUN_SUCCESS, if args.failed { 0.0 } else { 1.0 });
        set(DURATION, (now - args.started).max(0) as f64);
        if !args.failed {
            set(LAST_SUCCESS, now as f64);
            if let Some(put) = &args.put {
                let put: serde_json::Value = read(put, "the put record")?;
                set(
                    BYTES,
                    put.get("size").and_then(serde_json::Value::as_u64).context("the put record has no size")? as f64,
                );
            }
            if let Some(until) = restorable_until(range.as_ref(), args.manifest.as_deref())? {
                set(RESTORABLE_UNTIL, until as f64);
            }
        }
    }
    write_atomically(&args.file, &render(&series)).map_err(|err| monitoring(err, "writing", &args.file))?;
    Ok(Vec::new())
}

/// The metrics file could not be read or written: its own exit code, so the
/// run fails loudly instead of leaving monitoring blind.
fn monitoring(err: anyhow::Error, doing: &str, file: &Path) -> anyhow::Error {
    let message = crate::cli::one_line(&err.context(format!("{doing} the metrics file {}", file.display())));
    crate::cli::Failure { code: crate::cli::EXIT_MONITORING, message }.into()
}

fn read<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    crate::format::records::read_json(file, what)
}

/// An oplog slice's end; a full backup's consistency point, else (a standalone) its dump's end.
fn restorable_until(range: Option<&RangeRecord>, manifest: Option<&Path>) -> Result<Option<i64>> {
    if let Some(to) = range.and_then(|r| r.to) {
        return Ok(Some(i64::from(to.t)));
    }
    let Some(manifest) = manifest else { return Ok(None) };
    let manifest: Manifest = read(manifest, "the manifest")?;
    match (manifest.oplog.map(|o| o.to).or(manifest.consistent_at), manifest.finished.as_str()) {
        (Some(ts), _) => Ok(Some(i64::from(ts.t))),
        (None, finished) => Ok(crate::format::time::parse_rfc3339(finished).ok()),
    }
}

/// The series of a textfile this module wrote (other lines are dropped).
fn parse(text: &str) -> Series {
    let mut series = Series::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, rest)) = line.split_once('{') else { continue };
        let Some((labels, value)) = rest.rsplit_once('}') else { continue };
        let Ok(value) = value.trim().parse::<f64>() else { continue };
        let mut labels = parse_labels(labels);
        let mut take = |name: &str| labels.remove(name);
        if let (Some(kind), Some(prefix), Some(store), Some(databases)) =
            (take("kind"), take("prefix"), take("store"), take("databases"))
        {
            if METRICS.iter().any(|(m, _)| *m == name) {
                series.insert((name.to_string(), Labels { kind, prefix, store, databases }), value);
            }
        }
    }
    series
}

/// `a="x",b="y\"z"` → {a: x, b: y"z}.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect::<String>().trim_matches([',', ' ']).into();
        if name.is_empty() || chars.next() != Some('"') {
            return labels;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                c => value.push(c),
            }
        }
        labels.insert(name, value);
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn render(series: &Series) -> String {
    let mut out = String::new();
    for (metric, help) in METRICS {
        out.push_str(&format!("# HELP {metric} {help}\n# TYPE {metric} gauge\n"));
        for ((_, labels), value) in series.iter().filter(|((m, _), _)| m == metric) {
            let Labels { kind, prefix, store, databases } = labels;
            out.push_str(&format!(
                "{metric}{{kind=\"{}\",prefix=\"{}\",store=\"{}\",databases=\"{}\"}} {value}\n",
                escape(kind),
                escape(prefix),
                escape(store),
                escape(databases)
            ));
        }
    }
    out
}

/// Temp file beside `path`, fsync, rename: the collector never reads half a file.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let mut file = crate::cli::io::AtomicFile::create(path, ".mb-metrics")?;
    file.file().write_all(text.as_bytes()).context("writing the metrics")?;
    // The collector runs as another user; the metrics hold no secret.
    file.set_mode(0o644)?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendered_file_parses_back() {
        let labels = |kind: &str, prefix: &str| Labels {
            kind: kind.into(),
            prefix: prefix.into(),
            store: "oss://backups".into(),
            databases: "shop".into(),
        };
        let mut series = Series::new();
        series.insert((LAST_SUCCESS.into(), labels("full", "a+\"b\\")), 1_795_489_209.0);
        series.insert((BYTES.into(), labels("oplog", "shop")), 64556.0);
        let text = render(&series);
        assert!(
            text.contains(
                "mb_backup_bytes{kind=\"oplog\",prefix=\"shop\",store=\"oss://backups\",databases=\"shop\"} 64556\n"
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE mb_backup_last_run_success gauge\n"), "{text}");
        assert_eq!(parse(&text), series);
        assert!(parse("garbage{\nmb_backup_bytes{kind=\"x\"} 1\n{}{}").is_empty());
        assert!(parse("mb_backup_bytes{kind=\"full\",prefix=\"shop\"} 1\n").is_empty(), "no store label: dropped");
    }
}
