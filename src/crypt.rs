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

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

use crate::cli::{Failure, EXIT_USAGE};

/// How every age v1 file begins; what `-d` and `mb-oss-put` detect.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// Command-line arguments (see the module docs for the usage text).
#[derive(Parser, Debug)]
#[command(name = "mb-crypt", about = "Encrypt or decrypt a stream in the age format")]
pub struct Args {
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
    let input = BufReader::with_capacity(1 << 20, crate::cli::open_input(args.input.as_deref())?);
    let mut out = io::BufWriter::with_capacity(1 << 20, io::stdout().lock());
    match &args.to {
        Some(to) => encrypt(&recipients(to)?, input, &mut out)?,
        None => decrypt(&args.identity, input, &mut out)?,
    }
    out.flush().context("writing stdout")
}

/// Whether `bytes` (a stream's first bytes) begin an age file.
pub fn is_age(bytes: &[u8]) -> bool {
    bytes.starts_with(AGE_MAGIC)
}

fn recipients(text: &str) -> Result<Vec<age::x25519::Recipient>> {
    let list: Vec<&str> = text.split([',', ' ', '\t']).filter(|r| !r.is_empty()).collect();
    if list.is_empty() {
        return Err(usage("--to needs at least one recipient (age1...)".into()));
    }
    list.into_iter()
        .map(|r| {
            r.parse().map_err(|e| usage(format!("bad recipient {r:?}: {e} (expected an X25519 recipient, age1...)")))
        })
        .collect()
}

fn encrypt(recipients: &[age::x25519::Recipient], mut input: impl Read, out: &mut impl Write) -> Result<()> {
    let encryptor = age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
        .context("setting up the encryption")?;
    let mut writer = encryptor.wrap_output(out).context("writing the age header")?;
    io::copy(&mut input, &mut writer).context("encrypting")?;
    writer.finish().context("writing the last chunk")?;
    Ok(())
}

fn decrypt(identity_files: &[PathBuf], mut input: impl BufRead, out: &mut impl Write) -> Result<()> {
    // Enough of the input to tell an age file: a pipe may hand it over in pieces.
    let mut head = Vec::with_capacity(AGE_MAGIC.len());
    while head.len() < AGE_MAGIC.len() {
        let buf = input.fill_buf().context("reading the input")?;
        if buf.is_empty() {
            break;
        }
        let take = buf.len().min(AGE_MAGIC.len() - head.len());
        head.extend_from_slice(&buf[..take]);
        input.consume(take);
    }
    let mut input = io::Cursor::new(head).chain(input);
    if !is_age(input.get_ref().0.get_ref()) {
        crate::debug!("not an age stream: passed through");
        io::copy(&mut input, out).context("copying the input")?;
        return Ok(());
    }
    if identity_files.is_empty() {
        anyhow::bail!("the stream is encrypted (age); give the identity that decrypts it (--identity FILE, or identity_file in the config)");
    }
    let mut identities = Vec::new();
    for path in identity_files {
        let file = std::fs::File::open(path).with_context(|| format!("reading identity file {}", path.display()))?;
        let parsed = age::IdentityFile::from_buffer(BufReader::new(file))
            .and_then(|f| f.into_identities().map_err(io::Error::other))
            .map_err(|e| usage(format!("identity file {}: {e}", path.display())))?;
        identities.extend(parsed);
    }
    let decryptor = age::Decryptor::new_buffered(BufReader::new(input))
        .map_err(|e| crate::cli::integrity(format!("a bad age header: {e}")))?;
    let mut reader = match decryptor.decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity)) {
        Ok(reader) => reader,
        Err(age::DecryptError::NoMatchingKeys) => {
            anyhow::bail!("the stream is encrypted (age) to none of the identities given: wrong identity file")
        }
        Err(e) => return Err(crate::cli::integrity(format!("cannot decrypt the stream: {e}"))),
    };
    io::copy(&mut reader, out)
        .map_err(|e| crate::cli::integrity(format!("decrypting: {e} (the ciphertext is corrupt or cut short)")))?;
    Ok(())
}

fn usage(message: String) -> anyhow::Error {
    Failure { code: EXIT_USAGE, message }.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn round_trip_pass_through_and_wrong_identity() {
        let dir = tempfile::tempdir().unwrap();
        let identity = age::x25519::Identity::generate();
        let key = dir.path().join("key.txt");
        std::fs::write(&key, format!("# test key\n{}\n", identity.to_string().expose_secret())).unwrap();
        let data: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut sealed = Vec::new();
        encrypt(&recipients(&identity.to_public().to_string()).unwrap(), &data[..], &mut sealed).unwrap();
        assert!(is_age(&sealed));
        let mut opened = Vec::new();
        decrypt(std::slice::from_ref(&key), &sealed[..], &mut opened).unwrap();
        assert_eq!(opened, data);

        let mut passed = Vec::new();
        decrypt(&[], &b"\x1f\x8b not age"[..], &mut passed).unwrap();
        assert_eq!(passed, b"\x1f\x8b not age");

        let err = decrypt(&[], &sealed[..], &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("give the identity"), "{err}");
        let other = dir.path().join("other.txt");
        std::fs::write(&other, age::x25519::Identity::generate().to_string().expose_secret()).unwrap();
        let err = decrypt(&[other], &sealed[..], &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("wrong identity"), "{err}");

        let mut cut = sealed.clone();
        cut.truncate(sealed.len() - 10);
        let err = decrypt(&[key], &cut[..], &mut Vec::new()).unwrap_err();
        assert_eq!(crate::cli::exit_code_of(&err), crate::cli::EXIT_INTEGRITY, "{err}");
        assert!(recipients("age1nope").is_err());
    }
}
