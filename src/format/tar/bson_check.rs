//! The structural check of every BSON document a stream carries, before any
//! of its chunk reaches a server (what `mb-apply` and `--dry-run` promise).
//!
//! Written here rather than by iterating `bson::RawDocument`: that walk
//! decodes every element and recurses per nesting level, which took a third
//! of `mb-apply`'s CPU on a 300 MB restore (docs/BENCHMARKS.md) and could
//! overflow the stack on a hostile document nested millions deep. This one
//! reads each element's type and length once, keeps open documents on a
//! small stack, and stops at mongod's own nesting limit. It is as strict as
//! the crate's walk but for one thing (`as_strict_as_the_crate` below checks
//! that): string values need not be UTF-8. mongod stores such strings (old
//! drivers wrote them) and mb-dump backs them up, so refusing them here made
//! those backups unrestorable (`a_string_that_is_not_utf8_restores`).

use std::fmt;

/// Deepest nesting accepted: mongod's own limit for stored documents is
/// 180 levels (`BSONDepth`), so nothing a server holds comes near it.
pub(crate) const MAX_DEPTH: usize = 200;

/// Why a document is not well-formed BSON, and where.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BsonError {
    /// Byte offset in the document.
    pub(crate) at: usize,
    pub(crate) what: &'static str,
}

impl fmt::Display for BsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad BSON at byte {} of the document: {}", self.at, self.what)
    }
}

impl std::error::Error for BsonError {}

fn bad<T>(at: usize, what: &'static str) -> Result<T, BsonError> {
    Err(BsonError { at, what })
}

/// Checks that `doc` is exactly one well-formed BSON document: lengths,
/// element types, NUL terminators, UTF-8 names, booleans, and nesting no
/// deeper than [`MAX_DEPTH`]. String values are bytes, as mongod keeps them.
#[cfg(test)]
pub(crate) fn validate_document(doc: &[u8]) -> Result<(), BsonError> {
    check_document(doc).map(|_| ())
}

/// What the check saw besides well-formedness.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Checked {
    /// A top-level field holds `Timestamp(0, 0)`, which mongod replaces with
    /// the current time on insert: the restore must set it back. Seen here,
    /// in the walk every document gets anyway, so documents without one
    /// (nearly all) are not walked again for it.
    pub(crate) zero_timestamp: bool,
}

/// Checks that `doc` is exactly one well-formed BSON document (as
/// `validate_document` says), and tells what it saw on the way.
pub(crate) fn check_document(doc: &[u8]) -> Result<Checked, BsonError> {
    let mut checked = Checked::default();
    validate_within(doc, MAX_DEPTH, Some(&mut checked))?;
    Ok(checked)
}

/// `depth`: the levels of nesting left, this document's included; `checked`:
/// where to note what the top level holds (`None` for a nested document).
fn validate_within(doc: &[u8], depth: usize, mut checked: Option<&mut Checked>) -> Result<(), BsonError> {
    if depth == 0 {
        return bad(0, "nested deeper than mongod allows");
    }
    let end = open(doc, 0, doc.len())?;
    if end != doc.len() {
        return bad(0, "its length is not the size of the document");
    }
    // The end (one past the terminating NUL) of each document still open.
    let mut open_ends = vec![end];
    let mut at = 4;
    while let Some(&end) = open_ends.last() {
        let kind = doc[at];
        if kind == 0 {
            if at != end - 1 {
                return bad(at, "a NUL where an element should be");
            }
            open_ends.pop();
            at = end;
            continue;
        }
        // Every element ends before the NUL that closes its document.
        let limit = end - 1;
        let element = at;
        at = cstring(doc, at + 1, limit)?;
        at = match kind {
            0x11 => {
                let end = fixed(at, 8, limit)?;
                if open_ends.len() == 1 && doc[at..end] == [0; 8] {
                    if let Some(checked) = checked.as_deref_mut() {
                        checked.zero_timestamp = true;
                    }
                }
                end
            }
            0x01 | 0x09 | 0x12 => fixed(at, 8, limit)?,
            0x10 => fixed(at, 4, limit)?,
            0x07 => fixed(at, 12, limit)?,
            0x13 => fixed(at, 16, limit)?,
            0x06 | 0x0A | 0x7F | 0xFF => at,
            0x08 => match doc.get(at) {
                Some(0 | 1) if at < limit => at + 1,
                _ => return bad(at, "a boolean that is neither 0 nor 1"),
            },
            0x02 | 0x0D | 0x0E => string(doc, at, limit)?,
            0x0B => cstring(doc, cstring(doc, at, limit)?, limit)?,
            0x0C => fixed(string(doc, at, limit)?, 12, limit)?,
            0x05 => binary(doc, at, limit)?,
            0x03 | 0x04 => {
                let inner_end = open(doc, at, limit)?;
                if open_ends.len() >= depth {
                    return bad(at, "nested deeper than mongod allows");
                }
                open_ends.push(inner_end);
                at + 4
            }
            // open_ends never holds more than `depth` documents.
            0x0F => code_with_scope(doc, at, limit, depth - open_ends.len())?,
            _ => return bad(element, "an unknown element type"),
        };
    }
    Ok(())
}

/// The little-endian i32 at `at`, if the 4 bytes are before `limit`.
fn int32(doc: &[u8], at: usize, limit: usize) -> Result<i32, BsonError> {
    match doc.get(at..at.saturating_add(4)) {
        Some(bytes) if at + 4 <= limit => Ok(i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
        _ => bad(at, "a length that runs past the document"),
    }
}

/// A document's length header at `at`; its end (one past its NUL), within `limit`.
fn open(doc: &[u8], at: usize, limit: usize) -> Result<usize, BsonError> {
    let length = int32(doc, at, limit)?;
    let end = usize::try_from(length).ok().filter(|&n| n >= 5).and_then(|n| at.checked_add(n));
    match end {
        Some(end) if end <= limit && doc[end - 1] == 0 => Ok(end),
        Some(end) if end <= limit => bad(end - 1, "a document that does not end with NUL"),
        _ => bad(at, "a document length that does not fit"),
    }
}

/// `n` fixed bytes at `at`.
fn fixed(at: usize, n: usize, limit: usize) -> Result<usize, BsonError> {
    if at + n <= limit {
        Ok(at + n)
    } else {
        bad(at, "a value that runs past its document")
    }
}

/// A NUL-terminated UTF-8 string (a key or a regex part) at `at`.
fn cstring(doc: &[u8], at: usize, limit: usize) -> Result<usize, BsonError> {
    let Some(bytes) = doc.get(at..limit) else { return bad(at, "a name that runs past its document") };
    // One pass finds the NUL and whether the name is ASCII (nearly every
    // key is): names are short, so a separate UTF-8 check per name cost
    // about a tenth of mb-apply's CPU.
    let mut ascii = true;
    let Some(nul) = bytes.iter().position(|&b| {
        ascii &= b < 0x80;
        b == 0
    }) else {
        return bad(at, "a name without its NUL");
    };
    if !ascii {
        std::str::from_utf8(&bytes[..nul]).or(bad(at, "a name that is not UTF-8"))?;
    }
    Ok(at + nul + 1)
}

/// A length-prefixed, NUL-terminated string at `at`, its bytes as they are.
fn string(doc: &[u8], at: usize, limit: usize) -> Result<usize, BsonError> {
    let length = int32(doc, at, limit)?;
    let end = usize::try_from(length).ok().filter(|&n| n >= 1).and_then(|n| (at + 4).checked_add(n));
    let Some(end) = end.filter(|&end| end <= limit) else { return bad(at, "a string length that does not fit") };
    if doc[end - 1] != 0 {
        return bad(end - 1, "a string that does not end with NUL");
    }
    Ok(end)
}

/// Binary data: length, subtype, bytes (subtype 2 repeats the length inside).
fn binary(doc: &[u8], at: usize, limit: usize) -> Result<usize, BsonError> {
    let length = int32(doc, at, limit)?;
    let Ok(length) = usize::try_from(length) else { return bad(at, "a negative binary length") };
    let end = fixed(at + 4, 1, limit).and_then(|data| fixed(data, length, limit))?;
    if doc[at + 4] == 2 && (length < 4 || int32(doc, at + 5, limit)? as i64 != length as i64 - 4) {
        return bad(at, "an old binary whose inner length does not match");
    }
    Ok(end)
}

/// JavaScript code with its scope document, which must fill the element exactly.
fn code_with_scope(doc: &[u8], at: usize, limit: usize, depth: usize) -> Result<usize, BsonError> {
    let total = int32(doc, at, limit)?;
    let end = usize::try_from(total).ok().filter(|&n| n >= 14).and_then(|n| at.checked_add(n));
    let Some(end) = end.filter(|&end| end <= limit) else {
        return bad(at, "a code-with-scope length that does not fit");
    };
    let scope = string(doc, at + 4, end)?;
    validate_within(&doc[scope..end], depth, None).map_err(|e| BsonError { at: scope + e.at, what: e.what })?;
    Ok(end)
}

#[cfg(test)]
#[path = "bson_check_tests.rs"]
mod tests;
