//! What a new user types first: `--version`, `--help` and a mistyped flag,
//! for every binary and every script.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{bin, bin_dir, stderr_of, BINARIES};

/// Scripts a user runs besides the operator's (`support::SCRIPTS`).
const OTHER_SCRIPTS: [&str; 2] = ["demo", "install"];

fn script(name: &str) -> Command {
    let mut cmd = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name));
    cmd.env("MB_BIN_DIR", bin_dir());
    cmd
}

/// Every program, as a command to add arguments to.
fn programs() -> Vec<(String, Box<dyn Fn() -> Command>)> {
    let mut all: Vec<(String, Box<dyn Fn() -> Command>)> = Vec::new();
    for name in BINARIES {
        all.push((name.to_string(), Box::new(move || Command::new(bin(name)))));
    }
    for name in crate::support::SCRIPTS.into_iter().chain(OTHER_SCRIPTS) {
        all.push((name.to_string(), Box::new(move || script(name))));
    }
    all
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn every_program_answers_version_with_its_commit() {
    // Built in this checkout: the commit is HEAD's (build.rs reruns when HEAD moves).
    let head = Command::new("git").args(["rev-parse", "--short", "HEAD"]).output().unwrap();
    let commit = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert!(head.status.success() && !commit.is_empty(), "not a git checkout");
    for (name, command) in programs() {
        let output = command().arg("--version").output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{name} --version: {}", stderr_of(&output));
        let expected = format!("{name} {} ({commit})\n", env!("CARGO_PKG_VERSION"));
        assert_eq!(stdout_of(&output), expected, "{name} --version");
    }
}

#[test]
fn every_program_answers_help_on_stdout_with_examples() {
    for (name, command) in programs() {
        let output = command().arg("--help").output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{name} --help: {}", stderr_of(&output));
        let help = stdout_of(&output);
        assert!(output.stderr.is_empty(), "{name} --help wrote on stderr: {}", stderr_of(&output));
        let examples = help.split_once("Examples:\n").map(|(_, rest)| rest).unwrap_or("");
        let first = examples.lines().find(|l| !l.trim_start().starts_with('#')).unwrap_or("");
        assert!(first.contains(&name), "{name} --help has no example running it: {help}");
        assert!(!help.contains("seed's"), "{name} --help speaks of the seed: {help}");
    }
}

#[test]
fn a_misspelled_flag_is_one_line_naming_it_exit_2() {
    for (name, command) in programs() {
        let mut command = command();
        let config = tempfile::NamedTempFile::new().unwrap();
        if crate::support::SCRIPTS.contains(&name.as_str()) {
            command.arg(config.path());
        }
        let output = command.arg("--util").output().unwrap();
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{name} --util: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name} --util: {stderr}");
        assert!(stderr.starts_with(&format!("{name}: ")) && stderr.contains("'--util'"), "{name}: {stderr}");
        assert!(output.stdout.is_empty(), "{name} --util printed on stdout");
    }
}

/// clap's "did you mean" survives the one-line error; mongo-tools' names work.
#[test]
fn usage_errors_keep_the_suggestion_and_mongo_tools_names_work() {
    let output = Command::new(bin("mb-apply")).args(["--ns-inclde", "shop.*"]).output().unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr.trim(),
        "mb-apply: unexpected argument '--ns-inclde' found; a similar argument exists: '--ns-include' \
         (see mb-apply --help)"
    );
    let fixture = crate::support::fixture("mb-apply", "good.tar");
    for args in [
        &["--dryRun", "--nsInclude", "shop.*", "--nsExclude", "shop.x", "-j", "2"][..],
        &["--dry-run", "--nsFrom", "shop.$c$", "--nsTo", "copy.$c$", "--numParallelCollections", "2"],
        &["--dryRun", "--oplogLimit", "1700000000:1"],
    ] {
        let output = Command::new(bin("mb-apply")).args(args).arg(&fixture).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", stderr_of(&output));
    }
    let both = Command::new(bin("mb-apply")).args(["--dryRun", "--until", "1,1", "--oplogLimit", "2"]).output();
    assert_eq!(both.unwrap().status.code(), Some(2), "--oplogLimit and --until exclude each other");
    let gzip = Command::new(bin("mb-pack")).args(["--gzip", "-o", "/dev/null"]).output().unwrap();
    assert_eq!(gzip.status.code(), Some(0), "{}", stderr_of(&gzip));
    let dump = Command::new(bin("mb-dump")).arg("--help").output().unwrap();
    assert!(stdout_of(&dump).contains("--numParallelCollections"));
}

/// Each stage lists only the flags that mean something to it.
#[test]
fn stages_list_only_their_own_flags() {
    let help = |name: &str| stdout_of(&Command::new(bin(name)).arg("--help").output().unwrap());
    let apply = help("mb-apply");
    for flag in ["--read-preference", "--max-lag"] {
        assert!(!apply.contains(flag), "mb-apply --help lists {flag}");
        assert!(help("mb-dump").contains(flag), "mb-dump --help lacks {flag}");
    }
    assert!(apply.contains("--server-timeout"));
    let config = help("mb-config");
    assert!(!config.contains(".rs"), "mb-config --help points at source files: {config}");
    for name in BINARIES {
        let text = help(name);
        assert!(!text.contains("[default: 1M]") && !text.contains(" 32K "), "{name}: sizes are written 8MiB: {text}");
    }
}

/// The man pages and completions come from the same definitions as --help.
#[test]
fn man_pages_and_completions_are_generated_for_every_binary() {
    let dir = crate::support::temp_dir();
    for what in ["man", "completions"] {
        let into = if what == "man" { dir.path().to_path_buf() } else { dir.path().join("completions") };
        let output = Command::new(bin("mb-config")).args(["generate", what]).arg(into).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    }
    for name in BINARIES {
        let page = std::fs::read_to_string(dir.path().join(format!("{name}.1"))).unwrap();
        assert!(page.contains(".TH") && page.contains("Examples:"), "{name}.1: {page}");
        let files: [PathBuf; 3] = [
            dir.path().join(format!("completions/bash/{name}")),
            dir.path().join(format!("completions/zsh/_{name}")),
            dir.path().join(format!("completions/fish/{name}.fish")),
        ];
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(text.contains("--help"), "{}", file.display());
        }
    }
    let apply = std::fs::read_to_string(dir.path().join("completions/bash/mb-apply")).unwrap();
    assert!(apply.contains("--ns-include") && !apply.contains("--read-preference"));
}
