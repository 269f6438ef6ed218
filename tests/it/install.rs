//! Installed like a system tool: `scripts/install --prefix DIR` puts every
//! listed file in place, its systemd units pass `systemd-analyze verify`,
//! and the Debian package (cargo deb) holds the same files.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::support::{bin_dir, stderr_of, temp_dir, BINARIES, SCRIPTS};

/// Every file an install holds, relative to its prefix.
fn expected() -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    for name in BINARIES {
        files.insert(format!("bin/{name}"));
        files.insert(format!("share/man/man1/{name}.1"));
        files.insert(format!("share/bash-completion/completions/{name}"));
        files.insert(format!("share/zsh/vendor-completions/_{name}"));
        files.insert(format!("share/fish/vendor_completions.d/{name}.fish"));
    }
    for name in SCRIPTS {
        files.insert(format!("bin/{name}"));
        files.insert(format!("lib/mb/{name}"));
    }
    files.insert("lib/mb/lib.sh".into());
    files.insert("share/doc/mb/examples/mb.conf".into());
    files.insert("lib/systemd/system/mb-backup@.service".into());
    files.insert("lib/systemd/system/mb-backup@.timer".into());
    files
}

fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                files.insert(entry.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    files
}

fn install(args: &[&str]) -> std::process::Output {
    Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install"))
        .args(args)
        .env("MB_BIN_DIR", bin_dir())
        .output()
        .unwrap()
}

#[test]
fn install_into_a_prefix_puts_everything_in_place() {
    let dir = temp_dir();
    let prefix = dir.path().join("usr");
    let output = install(&["--prefix", prefix.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(files_under(&prefix), expected());
    let printed: BTreeSet<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.strip_prefix(&format!("{}/", prefix.display())).unwrap().to_string())
        .collect();
    assert_eq!(printed, expected(), "it prints what it installed");

    // The installed scripts find their lib.sh and the installed binaries.
    let version =
        Command::new(prefix.join("bin/mb-backup")).arg("--version").env_remove("MB_BIN_DIR").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&version.stdout).split(' ').next(), Some("mb-backup"), "{version:?}");
    let unit = std::fs::read_to_string(prefix.join("lib/systemd/system/mb-backup@.service")).unwrap();
    assert!(unit.contains(&format!("ExecStart={}/bin/mb-backup /etc/mb/%i.conf", prefix.display())), "{unit}");

    let Ok(analyze) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("!! SKIPPED systemd-analyze verify: systemd-analyze is not installed (Debian package systemd)");
        return;
    };
    assert!(analyze.status.success());
    let units = prefix.join("lib/systemd/system");
    // An instance of each template, as `systemctl enable mb-backup@shop.timer` makes.
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(units.join("mb-backup@shop.service"))
        .arg(units.join("mb-backup@shop.timer"))
        .output()
        .unwrap();
    assert_eq!(verify.status.code(), Some(0), "{}", stderr_of(&verify));
    assert!(verify.stderr.is_empty(), "systemd-analyze verify complains: {}", stderr_of(&verify));
}

#[test]
fn the_debian_package_holds_what_install_installs() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    if !Command::new(&cargo).args(["deb", "--version"]).output().is_ok_and(|o| o.status.success()) {
        eprintln!("!! SKIPPED the .deb check: cargo-deb is not installed (cargo install cargo-deb; scripts/test does)");
        return;
    }
    // Its own target dir: cargo deb reads Cargo.toml's target/release/deb-root/... there.
    let dir = temp_dir();
    let stage = dir.path().join("release/deb-root");
    let output = install(&["--prefix", "/usr", "--destdir", stage.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    // The debug binaries' debug info would make a package of hundreds of MB;
    // the release profile has none (strip = "debuginfo"), which this mimics.
    for name in BINARIES {
        let _ = Command::new("strip").arg("--strip-debug").arg(stage.join("usr/bin").join(name)).status();
    }
    let deb = dir.path().join("mb.deb");
    let build = Command::new(&cargo)
        .args(["deb", "--no-build", "--no-strip", "--fast", "--output"])
        .arg(&deb)
        .env("CARGO_TARGET_DIR", dir.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(build.status.code(), Some(0), "cargo deb: {}", stderr_of(&build));
    let list = Command::new("dpkg-deb").arg("--contents").arg(&deb).output().unwrap();
    assert_eq!(list.status.code(), Some(0), "{}", stderr_of(&list));
    let packaged: BTreeSet<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|line| !line.starts_with('d'))
        .filter_map(|line| line.split_whitespace().last()?.strip_prefix("./usr/").map(str::to_string))
        .filter(|path| !path.starts_with("share/doc/mb/") || path.ends_with("mb.conf"))
        .collect();
    assert_eq!(packaged, expected());
}
