//! `mb-config generate man|completions DIR` (hidden): the man pages and the
//! bash, zsh and fish completions of every binary, from the same clap
//! definitions as their `--help`. `scripts/install` and the Debian package
//! install what it writes.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap_complete::Shell;

use crate::cli::help::command;
use crate::stages;

/// `mb-config generate`'s arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct GenerateArgs {
    /// man: DIR/NAME.1 for each binary; completions: DIR/bash/NAME,
    /// DIR/zsh/_NAME and DIR/fish/NAME.fish.
    #[arg(value_enum)]
    what: What,
    /// The directory to write into (created if missing).
    dir: PathBuf,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum What {
    Man,
    Completions,
}

/// Every binary's command, as its `--help` shows it.
pub(crate) fn commands() -> Vec<clap::Command> {
    vec![
        command::<stages::apply::Args>(),
        command::<super::Args>(),
        command::<stages::crypt::Args>(),
        command::<stages::dump::Args>(),
        command::<stages::oplog_range::Args>(),
        command::<stages::oss_get::Args>(),
        command::<stages::oss_put::Args>(),
        command::<stages::oss_rm::Args>(),
        command::<stages::pack::Args>(),
    ]
}

/// Writes the files; prints the paths written, one a line.
pub(crate) fn run(args: &GenerateArgs) -> Result<Vec<String>> {
    let mut written = Vec::new();
    for mut cmd in commands() {
        let name = cmd.get_name().to_string();
        match args.what {
            What::Man => {
                let mut page = Vec::new();
                clap_mangen::Man::new(cmd).render(&mut page).context("rendering a man page")?;
                written.push(write(&args.dir.join(format!("{name}.1")), &page)?);
            }
            What::Completions => {
                for (shell, file) in [
                    (Shell::Bash, format!("bash/{name}")),
                    (Shell::Zsh, format!("zsh/_{name}")),
                    (Shell::Fish, format!("fish/{name}.fish")),
                ] {
                    let mut script = Vec::new();
                    clap_complete::generate(shell, &mut cmd, &name, &mut script);
                    written.push(write(&args.dir.join(file), &script)?);
                }
            }
        }
    }
    Ok(written)
}

fn write(path: &Path, bytes: &[u8]) -> Result<String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(path.display().to_string())
}
