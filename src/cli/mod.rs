//! The runner every `mb-*` binary shares: exit codes, error printing, logging.
//!
//! Each binary's `main` is one line that hands its `run` to [`main`]. `run`
//! parses its own arguments and returns `anyhow::Result<()>`; errors print on
//! stderr as one line, `prog: what failed: cause: cause`, and map to the exit
//! codes below. Data goes to stdout only; logs and progress go to stderr.
//!
//! # Exit codes (the one place they are defined)
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | failure: anything not listed below (connection, I/O, server error) |
//! | 2 | usage: bad flags or arguments |
//! | 3 | integrity: the data failed a check (CRC-64, length, truncated or corrupt gzip/tar/BSON) |
//! | 4 | conflict: refused to overwrite an object, another run holds the lock, or a restore met conflicting documents |
//! | 5 | oplog gap: the oplog rolled past the position a backup needed |
//! | 6 | monitoring: the metrics file could not be written (`mb-backup`: after the backup was stored) |

pub mod help;
pub(crate) mod io;
pub mod malloc;
pub mod progress;

use std::fmt;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

pub(crate) use help::{parse_args, parse_args_from};

/// Exit status of a successful run.
pub const EXIT_OK: u8 = 0;
/// Exit status of any failure without a more specific code.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status of a usage error.
pub const EXIT_USAGE: u8 = 2;
/// Exit status when data failed an integrity check.
pub const EXIT_INTEGRITY: u8 = 3;
/// Exit status when the run refused to overwrite or could not take the lock.
pub const EXIT_CONFLICT: u8 = 4;
/// Exit status when the oplog no longer holds the entries a backup needed.
pub const EXIT_OPLOG_GAP: u8 = 5;

/// Exit status when the metrics file could not be written.
pub const EXIT_MONITORING: u8 = 6;

/// A failure with a specific exit code; put it anywhere in an error chain.
#[derive(Debug)]
pub struct Failure {
    /// The exit code the process ends with.
    pub code: u8,
    /// What went wrong, in a few words.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// An error that exits with [`EXIT_INTEGRITY`].
pub fn integrity(message: impl Into<String>) -> anyhow::Error {
    Failure { code: EXIT_INTEGRITY, message: message.into() }.into()
}

/// An error that exits with [`EXIT_CONFLICT`].
pub fn conflict(message: impl Into<String>) -> anyhow::Error {
    Failure { code: EXIT_CONFLICT, message: message.into() }.into()
}

/// An error that exits with [`EXIT_OPLOG_GAP`].
pub fn oplog_gap(message: impl Into<String>) -> anyhow::Error {
    Failure { code: EXIT_OPLOG_GAP, message: message.into() }.into()
}

/// A usage error: bad flags or arguments, exit [`EXIT_USAGE`].
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Failure { code: EXIT_USAGE, message: message.into() }.into()
}

/// The exit code an error maps to: the first [`Failure`] in its chain, else 1.
pub fn exit_code_of(err: &anyhow::Error) -> u8 {
    err.chain().find_map(|cause| cause.downcast_ref::<Failure>().map(|f| f.code)).unwrap_or(EXIT_FAILURE)
}

/// `text` with its control characters escaped (`\u{1b}`), so bytes quoted
/// from a stream (a tar name, a header field) never reach a terminal raw.
/// Newlines and tabs stay unless `one_line` is set.
pub fn printable(text: &str, one_line: bool) -> std::borrow::Cow<'_, str> {
    let raw = |c: char| c.is_control() && (one_line || !matches!(c, '\n' | '\t'));
    if !text.chars().any(raw) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if raw(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// One line for an error and its whole chain of causes, control
/// characters escaped.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let mut text = cause.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        // The MongoDB driver appends labels and the raw server reply: noise on a log line.
        if let Some(cut) = text.find(", labels: ") {
            text.truncate(cut);
        }
        // Its server selection errors describe the whole topology: too long for a line.
        if let Some(cut) = text.find(" Topology: {") {
            text.truncate(cut);
        }
        if let Some(rest) = text.strip_prefix("Kind: ") {
            text = rest.to_string();
        }
        // Drivers often repeat their cause inside their own message; skip echoes.
        if parts.last().is_some_and(|prev| prev.contains(&text)) || text.is_empty() {
            continue;
        }
        parts.push(text);
    }
    printable(&parts.join(": "), true).into_owned()
}

static PROGRAM: OnceLock<&'static str> = OnceLock::new();
static VERBOSITY: AtomicU8 = AtomicU8::new(1);

/// The running binary's name, for messages.
pub fn program() -> &'static str {
    PROGRAM.get().copied().unwrap_or("mb")
}

/// Quiet (0) prints errors only; normal (1) prints progress; debug (2) more.
pub fn set_verbosity(level: u8) {
    VERBOSITY.store(level, Ordering::Relaxed);
}

/// The current verbosity (see [`set_verbosity`]).
pub fn verbosity() -> u8 {
    VERBOSITY.load(Ordering::Relaxed)
}

/// Prints a progress line on stderr unless quiet: `prog: message`.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => {
        if $crate::cli::verbosity() >= 1 {
            $crate::cli::progress::message(format_args!("{}: {}", $crate::cli::program(), format_args!($($arg)*)));
        }
    };
}

/// Prints a warning on stderr, even when quiet: `prog: warning: message`.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => {
        $crate::cli::progress::message(format_args!("{}: warning: {}", $crate::cli::program(), format_args!($($arg)*)));
    };
}

/// Prints a debug line on stderr with `MB_LOG=debug` or `-vv`.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => {
        if $crate::cli::verbosity() >= 2 {
            $crate::cli::progress::message(format_args!("{}: {}", $crate::cli::program(), format_args!($($arg)*)));
        }
    };
}

/// Runs a binary: sets its name, runs `run`, prints the error, picks the exit code.
pub fn main(program: &'static str, run: fn() -> anyhow::Result<()>) -> ExitCode {
    let _ = PROGRAM.set(program);
    match std::env::var("MB_LOG").as_deref() {
        Ok("quiet") => set_verbosity(0),
        Ok("debug") => set_verbosity(2),
        _ => {}
    }
    match run() {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(err) => {
            if let Some(clap_err) = err.downcast_ref::<clap::Error>() {
                if !clap_err.use_stderr() {
                    // Help and version are not errors; print them as clap formats them.
                    let _ = clap_err.print();
                    return ExitCode::from(EXIT_OK);
                }
                eprintln!("{program}: {} (see {program} --help)", help::one_line(clap_err));
                return ExitCode::from(EXIT_USAGE);
            }
            if is_broken_pipe(&err) {
                // Rust ignores SIGPIPE, so a closed pipe is an EPIPE error: the
                // reader went away (`mb-dump | head`) and says why itself. Still
                // exit 1: a stage must never report success when cut short.
                return ExitCode::from(EXIT_FAILURE);
            }
            progress::message(format_args!("{}: {}", program, one_line(&err)));
            ExitCode::from(exit_code_of(&err))
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}

/// The `-q` / `-v` flags every stage takes.
#[derive(clap::Args, Debug, Clone, Copy, Default)]
pub(crate) struct LogArgs {
    /// Print errors only
    #[arg(short, long)]
    pub quiet: bool,
    /// Print more (repeat for debug output)
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl LogArgs {
    /// Sets the process's verbosity from the flags.
    pub(crate) fn apply(self) {
        if self.quiet {
            set_verbosity(0);
        } else if self.verbose > 0 {
            set_verbosity(1 + self.verbose);
        }
    }
}

/// Parses a count that must be at least 1 (`--parallel`, `--oplog-batch`):
/// refused by the flag parser, so every such flag says the same, exit 2.
pub(crate) fn parse_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Parses a byte size such as `8MiB`, `100KiB`, `1G`, `512k` or `4096`.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("bad size {text:?}: expected a number like 8MiB"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("bad size unit in {text:?}: use KiB, MiB, GiB or TiB")),
    };
    number.checked_mul(multiplier).ok_or_else(|| format!("size {text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn failure_code_survives_context() {
        let err = Err::<(), _>(integrity("crc mismatch")).context("reading shop/orders.bson.000001").unwrap_err();
        assert_eq!(exit_code_of(&err), EXIT_INTEGRITY);
        assert_eq!(one_line(&err), "reading shop/orders.bson.000001: crc mismatch");
    }

    #[test]
    fn plain_errors_exit_one_on_one_line() {
        let err = anyhow::anyhow!("line one\nline two");
        assert_eq!(exit_code_of(&err), EXIT_FAILURE);
        assert_eq!(one_line(&err), "line one line two");
        let err = anyhow::anyhow!("entry fixture/\x1b[2J\x07bell: bad").context("in \u{9b}x");
        assert_eq!(one_line(&err), "in \\u{9b}x: entry fixture/\\u{1b}[2J\\u{7}bell: bad");
        assert_eq!(printable("a\tb\nc\x7f", false), "a\tb\nc\\u{7f}");
    }
}
