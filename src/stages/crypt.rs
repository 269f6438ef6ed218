//! mb-crypt: client-side encryption of a stream in the age format, so that
//! only the holder of an identity can read the backups in the bucket.
//!
//! ```text
//! Usage:
//!     mb-crypt --to <recipients> [INPUT]          encrypt stdin to stdout
//!     mb-crypt -d [--identity <file>]... [INPUT]  decrypt (other input passes through)
//!     mb-crypt --help
//!
//! --to takes one or more X25519 recipients (age1...), separated by commas or
//! spaces (the config key encrypt_to); any one recipient's identity decrypts.
//! The output is a standard age file: `age -d -i KEY` reads it, and mb-crypt
//! -d reads what `age -r RECIPIENT` wrote. In a backup it sits after
//! mb-pack: compressed, then encrypted.
//!
//! -d reads an age file and writes the plaintext. Input that is not an age
//! file (it does not start with "age-encryption.org/v1") is copied through
//! unchanged, so a restore pipes every object through it: encrypted or not is
//! detected, never configured. An age file without --identity, or with
//! identities none of which it was encrypted to, is one error line.
//! --identity files hold AGE-SECRET-KEY-1... lines (age-keygen's output;
//! `#` comments allowed).
//!
//! Exit status: 0 done; 1 failure (no or wrong identity, I/O); 2 usage (a bad
//! recipient or identity file); 3 the ciphertext is corrupt or cut short.
//! ```

use std::io::{self, BufReader, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

use crate::pack::age::{decrypt, encrypt, recipients};

/// Command-line arguments (see the module docs for the usage text).
#[derive(Parser, Debug)]
#[command(name = "mb-crypt", about = "Encrypt or decrypt a stream in the age format")]
pub(crate) struct Args {
    /// Encrypt to these recipients (age1..., separated by commas or spaces)
    #[arg(long, value_name = "RECIPIENTS", required_unless_present = "decrypt", conflicts_with = "decrypt")]
    pub to: Option<String>,
    /// Decrypt an age stream (input that is not one passes through)
    #[arg(short, long)]
    pub decrypt: bool,
    /// With -d: an identity file (AGE-SECRET-KEY-1... lines); repeatable
    #[arg(long, value_name = "FILE", requires = "decrypt")]
    pub identity: Vec<PathBuf>,
    /// Input file (`-` or none: stdin)
    pub input: Option<PathBuf>,
    #[command(flatten)]
    pub log: crate::cli::LogArgs,
}

/// Runs mb-crypt.
pub fn run() -> Result<()> {
    let args: Args = crate::cli::parse_args()?;
    args.log.apply();
    let input = BufReader::with_capacity(1 << 20, crate::cli::io::open_input(args.input.as_deref())?);
    let mut out = io::BufWriter::with_capacity(1 << 20, io::stdout().lock());
    match &args.to {
        Some(to) => encrypt(&recipients(to)?, input, &mut out)?,
        None => decrypt(&args.identity, input, &mut out)?,
    }
    out.flush().context("writing stdout")
}
