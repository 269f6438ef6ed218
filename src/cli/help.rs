//! What every stage's command line shares beyond its flags: `--version` with
//! the git commit, the examples after `--help`, and usage errors on one line.
//!
//! The clap definitions are the one source of each stage's help: `--help`,
//! the man pages and the shell completions (`mb-config generate`) all come
//! from [`command`].

use std::ffi::OsString;

/// `--version`'s text: the crate's version and the commit it was built from
/// (`unknown` when built outside a git checkout).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("MB_GIT_COMMIT"), ")");

/// Examples for stages whose file cannot carry them yet (shown after `--help`).
// mb-oplog-range's file is being reworked on another branch; its examples
// move into its `#[command(after_help)]` when that lands.
const EXAMPLES: [(&str, &str); 1] = [(
    "mb-oplog-range",
    "Examples:
  # What the next run of an incremental chain stores (full or oplog slice):
  mb-oplog-range --config /etc/mb/shop.conf --state /var/backups/mb/state.json > range.json
  # A new cycle's full backup, without asking the server:
  mb-oplog-range --full --db shop --codec gzip
  # Move the checkpoint once the object is stored and verified:
  mb-oplog-range --commit --state state.json --range range.json --manifest manifest.json --put put.json",
)];

/// A stage's clap command as users see it: with `--version` and examples.
pub fn command<T: clap::CommandFactory>() -> clap::Command {
    let mut command = T::command().version(VERSION);
    if command.get_after_help().is_none() {
        if let Some((_, examples)) = EXAMPLES.iter().find(|(name, _)| *name == command.get_name()) {
            command = command.after_help(*examples);
        }
    }
    command
}

/// Parses the process's arguments (see [`parse_args_from`]).
pub(crate) fn parse_args<T: clap::Parser>() -> anyhow::Result<T> {
    parse_args_from(std::env::args_os())
}

/// Parses `args`, returning clap's error (help, version, usage) as an
/// `anyhow::Error` so [`super::main`] can print it the clap way.
pub(crate) fn parse_args_from<T: clap::Parser>(args: impl IntoIterator<Item = OsString>) -> anyhow::Result<T> {
    let mut command = command::<T>();
    let matches = command.try_get_matches_from_mut(args)?;
    T::from_arg_matches(&matches).map_err(|err| err.format(&mut command).into())
}

/// Clap's usage error on one line, as every other error: its message, its
/// hints ("a similar argument exists: '--ns-include'") and what it lists
/// (missing arguments), without the usage block.
pub(crate) fn one_line(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let lines = text.lines().map(str::trim).take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more"));
    let mut message = String::new();
    for line in lines.filter(|l| !l.is_empty()) {
        match line.strip_prefix("tip:") {
            Some(tip) => {
                message.push(';');
                message.push_str(tip);
            }
            None if message.is_empty() => message.push_str(line.trim_start_matches("error: ")),
            None => {
                message.push(' ');
                message.push_str(line);
            }
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser, Debug)]
    #[command(name = "mb-test")]
    struct Args {
        /// A flag.
        #[arg(long)]
        ns_include: Vec<String>,
        /// Another.
        #[arg(long, required = true)]
        key: String,
    }

    fn error_of(args: &[&str]) -> String {
        let err = parse_args_from::<Args>(args.iter().map(OsString::from)).unwrap_err();
        one_line(err.downcast_ref::<clap::Error>().unwrap())
    }

    #[test]
    fn a_misspelled_flag_keeps_its_suggestion_on_one_line() {
        let line = error_of(&["mb-test", "--key", "k", "--ns-inclde", "x"]);
        assert_eq!(line, "unexpected argument '--ns-inclde' found; a similar argument exists: '--ns-include'");
        let missing = error_of(&["mb-test"]);
        assert_eq!(missing, "the following required arguments were not provided: --key <KEY>");
    }

    #[test]
    fn every_command_answers_version_with_the_commit() {
        let err = parse_args_from::<Args>(["mb-test", "--version"].map(OsString::from)).unwrap_err();
        let err = err.downcast::<clap::Error>().unwrap();
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayVersion);
        assert!(err.render().to_string().contains(VERSION), "{}", err.render());
    }
}
