//! Tests of the BSON check: every type accepted, damaged documents refused
//! at least wherever the `bson` crate's own walk refuses them, and hostile
//! nesting refused without overflowing the stack.

use bson::spec::BinarySubtype;
use bson::{doc, Binary, Bson, Decimal128, JavaScriptCodeWithScope, Regex, Timestamp};

use super::*;

/// The reference: the `bson` crate decoding every element (the check
/// `mb-apply` ran before this module), taking a string value that is not
/// UTF-8 as mongod does.
fn crate_accepts(doc: &[u8]) -> bool {
    // A name that is not UTF-8 is refused by the check itself
    // (`damage_is_named_where_it_is`), so any UTF-8 error may pass here.
    fn fine(error: &bson::raw::Error) -> bool {
        matches!(error.kind, bson::raw::ErrorKind::Utf8EncodingError(_))
    }
    fn walk(raw: &bson::RawDocument) -> bool {
        raw.into_iter().all(|element| match element {
            Ok((_, bson::RawBsonRef::Document(d))) => walk(d),
            Ok((_, bson::RawBsonRef::Array(a))) => a.into_iter().all(|item| match item {
                Ok(bson::RawBsonRef::Document(d)) => walk(d),
                Ok(_) => true,
                Err(e) => fine(&e),
            }),
            Ok(_) => true,
            Err(e) => fine(&e),
        })
    }
    bson::RawDocument::from_bytes(doc).is_ok_and(walk)
}

fn every_type() -> Vec<u8> {
    let document = doc! {
        "_id": bson::oid::ObjectId::from_bytes([7; 12]),
        "double": 1.5,
        "string": "grüße",
        "empty": "",
        "document": {"a": 1, "b": {"c": [1, 2, {"d": "e"}]}},
        "array": [1_i64, "two", 3.0, Bson::Null],
        "binary": Binary { subtype: BinarySubtype::Generic, bytes: vec![1, 2, 3] },
        "old binary": Binary { subtype: BinarySubtype::BinaryOld, bytes: vec![9, 8] },
        "undefined": Bson::Undefined,
        "true": true,
        "false": false,
        "date": bson::DateTime::from_millis(1_700_000_000_000),
        "null": Bson::Null,
        "regex": Regex { pattern: "^a.*b$".into(), options: "i".into() },
        "code": Bson::JavaScriptCode("function() { return 1; }".into()),
        "symbol": Bson::Symbol("sym".into()),
        "code with scope": JavaScriptCodeWithScope { code: "x + 1".into(), scope: doc! {"x": 41, "n": {"m": 1}} },
        "int32": 32_i32,
        "timestamp": Timestamp { time: 1_700_000_000, increment: 3 },
        "int64": 64_i64,
        "decimal": Decimal128::from_bytes([1; 16]),
        "min": Bson::MinKey,
        "max": Bson::MaxKey,
    };
    bson::to_vec(&document).unwrap()
}

#[test]
fn every_type_is_accepted() {
    let bytes = every_type();
    assert!(crate_accepts(&bytes));
    assert_eq!(validate_document(&bytes), Ok(()));
    assert_eq!(validate_document(&bson::to_vec(&doc! {}).unwrap()), Ok(()));
}

/// A small deterministic generator, so a failure names a reproducible case.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn as_strict_as_the_crate() {
    let good = every_type();
    let mut rng = Lcg(12);
    let (mut refused, mut tried) = (0, 0);
    for round in 0..60_000 {
        let mut bytes = good.clone();
        match round % 4 {
            // One byte changed anywhere.
            0 => {
                let at = rng.next() as usize % bytes.len();
                bytes[at] = rng.next() as u8;
            }
            // A small value written over a length or a type.
            1 => {
                let at = rng.next() as usize % bytes.len();
                bytes[at] = [0, 1, 2, 4, 5, 0x7f, 0xff, 0x80][rng.next() as usize % 8];
            }
            // Cut short (the outer length fixed up, so only the inside is wrong).
            2 => {
                let len = 5 + rng.next() as usize % (bytes.len() - 5);
                bytes.truncate(len);
                bytes[..4].copy_from_slice(&(len as i32).to_le_bytes());
                *bytes.last_mut().unwrap() = 0;
            }
            // Two bytes changed.
            _ => {
                for _ in 0..2 {
                    let at = rng.next() as usize % bytes.len();
                    bytes[at] ^= 1 << (rng.next() % 8);
                }
            }
        }
        tried += 1;
        match validate_document(&bytes) {
            Ok(()) => assert!(crate_accepts(&bytes), "round {round}: accepted what the bson crate refuses: {bytes:?}"),
            Err(_) => refused += 1,
        }
    }
    assert!(refused > tried / 4, "only {refused} of {tried} damaged documents refused");
}

#[test]
fn damage_is_named_where_it_is() {
    let good = bson::to_vec(&doc! {"a": "xyz"}).unwrap();
    let mut value_not_utf8 = good.clone();
    value_not_utf8[11] = 0xff;
    assert_eq!(validate_document(&value_not_utf8), Ok(()), "mongod keeps such strings");
    let mut name_not_utf8 = good.clone();
    name_not_utf8[5] = 0xff;
    assert_eq!(validate_document(&name_not_utf8).unwrap_err().what, "a name that is not UTF-8");
    let mut bad_type = good.clone();
    bad_type[4] = 0x42;
    assert_eq!(validate_document(&bad_type).unwrap_err(), BsonError { at: 4, what: "an unknown element type" });
    let mut longer = good.clone();
    longer.push(0);
    assert!(validate_document(&longer).is_err(), "trailing bytes after the document");
    assert!(validate_document(&[5, 0, 0]).is_err());
    assert!(validate_document(&[]).is_err());
    assert!(validate_document(&[0xff, 0xff, 0xff, 0xff, 0]).is_err());
    let mut bool_two = bson::to_vec(&doc! {"t": true}).unwrap();
    bool_two[7] = 2;
    assert!(validate_document(&bool_two).is_err());
}

/// `depth` documents inside each other: {"": {"": ... {} ...}}, written
/// front to back (each level's length is known: 7 bytes more than the one inside).
fn nested(depth: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(5 + 7 * depth);
    for level in 0..depth {
        bytes.extend_from_slice(&((5 + 7 * (depth - level)) as i32).to_le_bytes());
        bytes.extend_from_slice(&[0x03, 0]);
    }
    bytes.extend_from_slice(&[5, 0, 0, 0, 0]);
    bytes.resize(bytes.len() + depth, 0);
    bytes
}

#[test]
fn hostile_nesting_is_refused_without_overflowing_the_stack() {
    assert_eq!(validate_document(&nested(150)), Ok(()));
    let error = validate_document(&nested(MAX_DEPTH + 1)).unwrap_err();
    assert_eq!(error.what, "nested deeper than mongod allows");
    // 16 MB of nesting, over two million levels: refused, not a crash.
    assert!(validate_document(&nested(16 << 20 >> 3)).is_err());
    // The same through code with scope: {"s": code "1" with scope {"s": ...}}.
    let mut scope = vec![5, 0, 0, 0, 0];
    for level in 0..MAX_DEPTH + 5 {
        let total = 4 + 6 + scope.len();
        let mut outer = ((total + 8) as i32).to_le_bytes().to_vec();
        outer.extend_from_slice(&[0x0F, b's', 0]);
        outer.extend_from_slice(&(total as i32).to_le_bytes());
        outer.extend_from_slice(&[2, 0, 0, 0, b'1', 0]);
        outer.extend_from_slice(&scope);
        outer.push(0);
        scope = outer;
        if level == 10 {
            assert_eq!(validate_document(&scope), Ok(()), "code with scope 11 deep");
            assert!(crate_accepts(&scope));
        }
    }
    assert_eq!(validate_document(&scope).unwrap_err().what, "nested deeper than mongod allows");
}

#[test]
fn a_top_level_zero_timestamp_is_noted_a_nested_or_nonzero_one_is_not() {
    let zero = Timestamp { time: 0, increment: 0 };
    let top = bson::to_vec(&doc! {"_id": 1, "at": zero}).unwrap();
    assert_eq!(check_document(&top), Ok(Checked { zero_timestamp: true }));
    let nested = bson::to_vec(&doc! {"_id": 1, "in": {"at": zero}}).unwrap();
    assert_eq!(check_document(&nested), Ok(Checked { zero_timestamp: false }));
    let set = bson::to_vec(&doc! {"_id": 1, "at": Timestamp { time: 5, increment: 0 }}).unwrap();
    assert_eq!(check_document(&set), Ok(Checked { zero_timestamp: false }));
}

#[test]
fn a_name_that_is_not_utf8_is_refused_after_ascii_ones() {
    let mut bytes = bson::to_vec(&doc! {"plain": 1, "abc": 2}).unwrap();
    let at = bytes.windows(3).position(|w| w == b"abc").unwrap();
    bytes[at + 1] = 0xC3; // a lead byte without its continuation
    assert_eq!(validate_document(&bytes).unwrap_err().what, "a name that is not UTF-8");
}
