//! The chain's object layout, the one place keys are built and parsed:
//!
//! ```text
//! PREFIX/CYCLE/000000-full.tar.EXT                       the cycle's full backup
//! PREFIX/CYCLE/SEQ-oplog-FROMt_FROMi-TOt_TOi.tar.EXT      oplog slice SEQ: (FROM, TO]
//! KEY.done                                               KEY's commit marker
//! PREFIX/CYCLE/head.json                                 the cycle's head record
//! ```
//!
//! SEQ is six digits and every `t`, `i` ten, zero-padded, so a listing sorts
//! into the chain. CYCLE is the cycle's start time to the microsecond
//! (`20261124T031500.123456Z`; older cycles `20261124T031500Z`). PREFIX may
//! itself hold slashes: keys are always parsed relative to a known prefix.

use std::fmt;

use crate::format::records::{Kind, Ts, MARKER_SUFFIX};

/// The name of a cycle's head record, beside its objects.
pub(crate) const HEAD_NAME: &str = "head.json";

/// What one chain object is, as its key says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectKey {
    /// The chain's prefix (no trailing `/`).
    pub prefix: String,
    /// The cycle's name.
    pub cycle: String,
    /// Position in the cycle: 0 for the full backup.
    pub seq: u64,
    /// Full backup or oplog slice.
    pub kind: Kind,
    /// Oplog slices: `(from, to]`, as the key spells them.
    pub span: Option<(Ts, Ts)>,
    /// What follows `.tar` (`zst`, `gz`), the codec.
    pub ext: String,
}

impl ObjectKey {
    /// A full backup's key (`.tar` plus `ext_with_dot`, e.g. `.zst`, added by the caller's codec).
    pub fn full(prefix: &str, cycle: &str) -> String {
        format!("{prefix}/{cycle}/{:06}-full.tar", 0)
    }

    /// An oplog slice's key, without the codec's extension (`.zst`, `.gz`).
    pub fn slice(prefix: &str, cycle: &str, seq: u64, from: Ts, to: Ts) -> String {
        format!("{prefix}/{cycle}/{seq:06}-oplog-{:010}_{:010}-{:010}_{:010}.tar", from.t, from.i, to.t, to.i)
    }

    /// Parses `key` as an object of the chain under `prefix`; `None` for
    /// anything else (markers, head records, foreign keys).
    pub fn parse(prefix: &str, key: &str) -> Option<ObjectKey> {
        let (cycle, name) = split(prefix, key)?;
        if name.ends_with(MARKER_SUFFIX) {
            return None;
        }
        let seq: u64 = name.get(..6).filter(|s| s.bytes().all(|b| b.is_ascii_digit()))?.parse().ok()?;
        let rest = name.get(6..)?.strip_prefix('-')?;
        let (body, ext) = rest.split_once(".tar.")?;
        if ext.is_empty() || !ext.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let (kind, span) = match body {
            "full" if seq == 0 => (Kind::Full, None),
            _ => {
                let (from, to) = body.strip_prefix("oplog-")?.split_once('-')?;
                let (from, to) = (parse_point(from)?, parse_point(to)?);
                if seq == 0 || from >= to {
                    return None;
                }
                (Kind::Oplog, Some((from, to)))
            }
        };
        Some(ObjectKey { prefix: prefix.to_string(), cycle: cycle.to_string(), seq, kind, span, ext: ext.to_string() })
    }

    /// This object's key.
    pub fn key(&self) -> String {
        let stem = match (self.kind, self.span) {
            (Kind::Oplog, Some((from, to))) => Self::slice(&self.prefix, &self.cycle, self.seq, from, to),
            _ => Self::full(&self.prefix, &self.cycle),
        };
        format!("{stem}.{}", self.ext)
    }

    /// The key of this object's commit marker.
    pub fn marker(&self) -> String {
        marker_key(&self.key())
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// `KEY.done`.
pub fn marker_key(key: &str) -> String {
    format!("{key}{MARKER_SUFFIX}")
}

/// The key of a cycle's head record.
pub fn head_key(prefix: &str, cycle: &str) -> String {
    format!("{prefix}/{cycle}/{HEAD_NAME}")
}

/// What a key under the prefix is to the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A stored stream.
    Object(ObjectKey),
    /// A commit marker of the object with this key.
    Marker(ObjectKey),
    /// A cycle's head record.
    Head { cycle: String },
}

/// Classifies a listed key; `None` for keys that are not the chain's.
pub(crate) fn classify(prefix: &str, key: &str) -> Option<Entry> {
    if let Some(object) = key.strip_suffix(MARKER_SUFFIX) {
        return ObjectKey::parse(prefix, object).map(Entry::Marker);
    }
    if let Some(object) = ObjectKey::parse(prefix, key) {
        return Some(Entry::Object(object));
    }
    let (cycle, name) = split(prefix, key)?;
    (name == HEAD_NAME).then(|| Entry::Head { cycle: cycle.to_string() })
}

/// `PREFIX/CYCLE/NAME` into (CYCLE, NAME), checking CYCLE's shape.
fn split<'a>(prefix: &str, key: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = key.strip_prefix(prefix)?.strip_prefix('/')?;
    let (cycle, name) = rest.split_once('/')?;
    (is_cycle_name(cycle) && !name.contains('/') && !name.is_empty()).then_some((cycle, name))
}

/// `YYYYMMDDTHHMMSS[.ffffff]Z`.
pub(crate) fn is_cycle_name(cycle: &str) -> bool {
    let b = cycle.as_bytes();
    cycle.is_ascii()
        && b.len() >= 16
        && b[8] == b'T'
        && cycle.ends_with('Z')
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
        && (b.len() == 16 || (b.len() > 17 && b[15] == b'.' && b[16..b.len() - 1].iter().all(u8::is_ascii_digit)))
}

/// `TTTTTTTTTT_IIIIIIIIII`.
fn parse_point(text: &str) -> Option<Ts> {
    let (t, i) = text.split_once('_')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(t) && digits(i)).then(|| Some(Ts::new(t.parse().ok()?, i.parse().ok()?))).flatten()
}

/// A cycle's name: its start time to the microsecond, fixed width
/// (`20261124T031500.123456Z`), so two full backups in one second get
/// different keys. Names come from the local clock: they make keys unique,
/// never order cycles (the catalog orders them by their oplog times).
pub fn cycle_name(now: std::time::SystemTime) -> String {
    let since = now.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = crate::format::time::format_rfc3339(since.as_secs() as i64).replace(['-', ':'], "");
    format!("{}.{:06}Z", secs.trim_end_matches('Z'), since.subsec_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CYCLE: &str = "20261124T031500.000001Z";

    #[test]
    fn keys_round_trip() {
        let full = format!("{}.zst", ObjectKey::full("a/b+c", CYCLE));
        let parsed = ObjectKey::parse("a/b+c", &full).unwrap();
        assert_eq!((parsed.kind, parsed.seq, parsed.ext.as_str()), (Kind::Full, 0, "zst"));
        assert_eq!(parsed.key(), full);
        let slice = format!("{}.gz", ObjectKey::slice("shop", CYCLE, 7, Ts::new(5, 1), Ts::new(1_795_490_100, 12)));
        assert_eq!(slice, format!("shop/{CYCLE}/000007-oplog-0000000005_0000000001-1795490100_0000000012.tar.gz"));
        let parsed = ObjectKey::parse("shop", &slice).unwrap();
        assert_eq!(parsed.span, Some((Ts::new(5, 1), Ts::new(1_795_490_100, 12))));
        assert_eq!(parsed.key(), slice);
        assert_eq!(parsed.marker(), format!("{slice}.done"));
    }

    #[test]
    fn other_keys_are_not_the_chains() {
        for key in [
            "shop/notes.txt",
            &format!("shop/{CYCLE}/sub/000000-full.tar.gz"),
            &format!("shopx/{CYCLE}/000000-full.tar.gz"),
            &format!("shop/{CYCLE}/000001-full.tar.gz"),
            &format!("shop/{CYCLE}/000000-oplog-0000000001_0000000001-0000000002_0000000001.tar.gz"),
            &format!("shop/{CYCLE}/000001-oplog-0000000002_0000000001-0000000001_0000000001.tar.gz"),
            &format!("shop/{CYCLE}/000000-full.tar."),
            "shop/2026112T031500Z/000000-full.tar.gz",
        ] {
            assert_eq!(ObjectKey::parse("shop", key), None, "{key}");
        }
        assert_eq!(classify("shop", &format!("shop/{CYCLE}/head.json")), Some(Entry::Head { cycle: CYCLE.into() }));
        assert!(matches!(classify("shop", &format!("shop/{CYCLE}/000000-full.tar.zst.done")), Some(Entry::Marker(_))));
        assert!(is_cycle_name("20261124T031500Z") && !is_cycle_name("20261124T031500.Z1"));
    }

    #[test]
    fn cycle_names_are_unique_within_a_second_and_fixed_width() {
        let base = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_490_100);
        let first = cycle_name(base + std::time::Duration::from_micros(1));
        let second = cycle_name(base + std::time::Duration::from_micros(2));
        assert_eq!(first, "20261124T031500.000001Z");
        assert!(first < second && is_cycle_name(&first));
    }
}
