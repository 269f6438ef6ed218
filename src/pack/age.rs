//! The age format for `mb-crypt`: encrypt a stream to X25519 recipients, or
//! decrypt it with identity files; input that is not age passes through, so
//! a restore detects encryption instead of being told.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::cli::usage;

/// How every age v1 file begins; what `-d` and `mb-oss-put` detect.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// Whether `bytes` (a stream's first bytes) begin an age file.
pub fn is_age(bytes: &[u8]) -> bool {
    bytes.starts_with(AGE_MAGIC)
}

pub(crate) fn recipients(text: &str) -> Result<Vec<age::x25519::Recipient>> {
    let list: Vec<&str> = text.split([',', ' ', '\t']).filter(|r| !r.is_empty()).collect();
    if list.is_empty() {
        return Err(usage("--to needs at least one recipient (age1...)"));
    }
    list.into_iter()
        .map(|r| {
            r.parse().map_err(|e| usage(format!("bad recipient {r:?}: {e} (expected an X25519 recipient, age1...)")))
        })
        .collect()
}

pub(crate) fn encrypt(recipients: &[age::x25519::Recipient], mut input: impl Read, out: &mut impl Write) -> Result<()> {
    let encryptor = age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
        .context("setting up the encryption")?;
    let mut writer = encryptor.wrap_output(out).context("writing the age header")?;
    io::copy(&mut input, &mut writer).context("encrypting")?;
    writer.finish().context("writing the last chunk")?;
    Ok(())
}

pub(crate) fn decrypt(identity_files: &[PathBuf], mut input: impl BufRead, out: &mut impl Write) -> Result<()> {
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
    let identities = load_identities(identity_files)?;
    let mut reader = open(&identities, input)?;
    io::copy(&mut reader, out)
        .map_err(|e| crate::cli::integrity(format!("decrypting: {e} (the ciphertext is corrupt or cut short)")))?;
    Ok(())
}

type Identities = Vec<Box<dyn age::Identity>>;

/// The identities in these files (`AGE-SECRET-KEY-1...` lines); none is an error.
fn load_identities(identity_files: &[PathBuf]) -> Result<Identities> {
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
    Ok(identities)
}

/// The plaintext reader of an age stream, once its header opened with one of `identities`.
fn open<R: Read>(identities: &Identities, input: R) -> Result<age::stream::StreamReader<BufReader<R>>> {
    let decryptor = age::Decryptor::new_buffered(BufReader::new(input))
        .map_err(|e| crate::cli::integrity(format!("a bad age header: {e}")))?;
    unlock(identities, decryptor)
}

/// The plaintext of a seekable age stream, positioned by the caller: the
/// header is read with exact reads, so `input` stays where the payload
/// starts, and age maps each plaintext position to its 64 KiB chunk.
pub(crate) fn open_seekable<R: Read + io::Seek>(
    identity_files: &[PathBuf],
    input: R,
) -> Result<age::stream::StreamReader<R>> {
    let identities = load_identities(identity_files)?;
    let decryptor = age::Decryptor::new(input).map_err(|e| crate::cli::integrity(format!("a bad age header: {e}")))?;
    unlock(&identities, decryptor)
}

/// Opens the payload with one of `identities`, saying which failure it was.
fn unlock<R: Read>(identities: &Identities, decryptor: age::Decryptor<R>) -> Result<age::stream::StreamReader<R>> {
    match decryptor.decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity)) {
        Ok(reader) => Ok(reader),
        Err(age::DecryptError::NoMatchingKeys) => {
            anyhow::bail!("the stream is encrypted (age) to none of the identities given: wrong identity file")
        }
        Err(e) => Err(crate::cli::integrity(format!("cannot decrypt the stream: {e}"))),
    }
}

/// Whether the age stream that begins with `head` (its header and more)
/// opens with one of these identity files: the check a restore makes before
/// it writes anything.
pub(crate) fn opens(identity_files: &[PathBuf], head: &[u8]) -> Result<()> {
    open(&load_identities(identity_files)?, head).map(drop)
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
