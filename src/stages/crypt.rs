//! `mb-crypt`: client-side encryption of a stream in the age format, so that
//! only the holder of an identity can read the backups in the bucket. Its
//! help text is on `Args`.

use std::io::{self, BufReader, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

use crate::pack::age::{decrypt, encrypt, recipients};

/// Encrypt or decrypt a stream in the age format.
///
/// --to takes one or more X25519 recipients (age1...), separated by commas or
/// spaces (the config key encrypt_to); any one recipient's identity decrypts.
/// The output is a standard age file: `age -d -i KEY` reads it, and
/// `mb-crypt -d` reads what `age -r RECIPIENT` wrote. In a backup it sits
/// after mb-pack: compressed, then encrypted.
///
/// -d reads an age file and writes the plaintext. Input that is not an age
/// file (it does not start with "age-encryption.org/v1") is copied through
/// unchanged, so a restore pipes every object through it. An age file without
/// --identity, or with identities none of which it was encrypted to, is one
/// error line. --identity files hold AGE-SECRET-KEY-1... lines (age-keygen's
/// output; `#` comments allowed).
///
/// Exit status: 0 done; 1 failure (no or wrong identity, I/O); 2 usage (a bad
/// recipient or identity file); 3 the ciphertext is corrupt or cut short.
#[derive(Parser, Debug)]
#[command(name = "mb-crypt", after_help = EXAMPLES)]
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

const EXAMPLES: &str = "Examples:
  # Encrypt to two recipients (either identity decrypts):
  mb-pack < dump.tar | mb-crypt --to age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p > dump.tar.zst.age
  # Decrypt (plain input passes through unchanged):
  mb-crypt -d --identity /etc/mb/backup.key dump.tar.zst.age | mb-pack -d > dump.tar";

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
