//! Which worker applies a CRUD operation, as a secondary partitions its
//! oplog application: by document (namespace and `_id`), so each document's
//! operations keep their order on one connection while different documents
//! go in parallel.
//!
//! A secondary may relax constraints that a primary or standalone target
//! enforces, so some collections go to one worker whole (by namespace):
//! capped collections (insertion order is the data), collections with a
//! non-simple default collation (`"A"` and `"a"` may be one `_id`), those
//! with a unique index other than `_id` (two documents can hand a value to
//! each other: applied out of order, that is a duplicate key), `system.*`
//! collections (timeseries buckets, users, roles) and collections the target
//! does not have (yet). What each collection is gets learned once, and
//! forgotten at every command the oplog carries ([`Partitioner::forget`]).

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use mongodb::bson::{doc, Bson, Document, RawDocument};
use mongodb::Client;

use crate::debug;

/// How one collection's operations are spread over the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// By namespace and `_id`: documents in parallel.
    ByDocument,
    /// The whole collection on one worker, in order.
    ByNamespace,
}

/// Routes CRUD operations to workers.
pub(super) struct Partitioner {
    workers: usize,
    routes: HashMap<String, Route>,
}

impl Partitioner {
    pub(super) fn new(workers: usize) -> Self {
        Partitioner { workers: workers.max(1), routes: HashMap::new() }
    }

    /// Forgets what was learned of the target's collections: a command may
    /// have created, dropped, renamed or re-indexed any of them.
    pub(super) fn forget(&mut self) {
        self.routes.clear();
    }

    /// The worker for a CRUD operation, or None when it does not name one
    /// document (applied alone, behind a barrier).
    pub(super) async fn worker_for(&mut self, client: &Client, op: &RawDocument) -> Option<usize> {
        if self.workers == 1 {
            return Some(0);
        }
        let ns = op.get_str("ns").unwrap_or_default();
        let route = match self.routes.get(ns) {
            Some(route) => *route,
            None => {
                let route = learn(client, ns).await;
                debug!("replaying {ns}: {route:?}");
                self.routes.insert(ns.to_string(), route);
                route
            }
        };
        let mut hasher = DefaultHasher::new();
        ns.hash(&mut hasher);
        if route == Route::ByDocument {
            hash_id(&document_id(op)?, &mut hasher);
        }
        Some((hasher.finish() % self.workers as u64) as usize)
    }
}

/// The `_id` of the document an insert, update or delete entry writes.
fn document_id(op: &RawDocument) -> Option<Bson> {
    let holder = match op.get_str("op").ok()? {
        "i" | "d" => "o",
        "u" => "o2",
        _ => return None,
    };
    let id = op.get_document(holder).ok()?.get("_id").ok()??;
    Bson::try_from(id.to_raw_bson()).ok()
}

/// What the target's collection `ns` is, from listCollections and
/// listIndexes. Anything unknown or unreadable: by namespace (safe, slower).
async fn learn(client: &Client, ns: &str) -> Route {
    let Some((db, coll)) = ns.split_once('.') else { return Route::ByNamespace };
    if coll.starts_with("system.") {
        return Route::ByNamespace;
    }
    let database = client.database(db);
    let first_batch = |reply: mongodb::error::Result<Document>| -> Option<Vec<Bson>> {
        match reply {
            Ok(reply) => reply.get_document("cursor").ok()?.get_array("firstBatch").ok().cloned(),
            Err(err) => {
                debug!("learning what {ns} is on the target: {err}");
                None
            }
        }
    };
    let listed = database.run_command(doc! {"listCollections": 1, "filter": {"name": coll}}).await;
    let Some(collections) = first_batch(listed) else { return Route::ByNamespace };
    let Some(Bson::Document(spec)) = collections.first() else { return Route::ByNamespace };
    if spec.get_str("type").unwrap_or("collection") != "collection" {
        return Route::ByNamespace;
    }
    let options = spec.get_document("options").cloned().unwrap_or_default();
    if options.get_bool("capped").unwrap_or(false) {
        return Route::ByNamespace;
    }
    if let Ok(collation) = options.get_document("collation") {
        if collation.get_str("locale").unwrap_or("simple") != "simple" {
            return Route::ByNamespace;
        }
    }
    // listIndexes' first batch holds up to 101 specs; a collection has at most 64 indexes.
    let Some(indexes) = first_batch(database.run_command(doc! {"listIndexes": coll}).await) else {
        return Route::ByNamespace;
    };
    let unique_beyond_id = indexes.iter().any(|spec| {
        let Some(spec) = spec.as_document() else { return true };
        let unique = match spec.get("unique") {
            Some(Bson::Boolean(unique)) => *unique,
            Some(Bson::Int32(n)) => *n != 0,
            Some(Bson::Int64(n)) => *n != 0,
            Some(Bson::Double(n)) => *n != 0.0,
            _ => false,
        };
        let only_id = spec.get_document("key").is_ok_and(|key| key.len() == 1 && key.contains_key("_id"));
        unique && !only_id
    });
    if unique_beyond_id {
        Route::ByNamespace
    } else {
        Route::ByDocument
    }
}

/// Feeds a canonical form of an `_id` to `hasher`: values the server takes
/// for one `_id` hash alike. Numbers compare by value across types (int32 1,
/// int64 1, double 1.0 and decimal 1 are one `_id`): an integer in the i64
/// range hashes as that integer, every other number as one shared token
/// (coarser, never wrong). A string and a symbol compare equal; so do null
/// and undefined. Documents and arrays hash their parts in order.
pub(super) fn hash_id(value: &Bson, hasher: &mut impl Hasher) {
    match value {
        Bson::Int32(n) => hash_integer(Some(i64::from(*n)), hasher),
        Bson::Int64(n) => hash_integer(Some(*n), hasher),
        Bson::Double(d) => hash_integer(double_as_integer(*d), hasher),
        Bson::Decimal128(d) => hash_integer(decimal_as_integer(&d.to_string()), hasher),
        Bson::String(s) | Bson::Symbol(s) => (1u8, s).hash(hasher),
        Bson::Document(document) => {
            2u8.hash(hasher);
            for (key, value) in document {
                key.hash(hasher);
                hash_id(value, hasher);
            }
            document.len().hash(hasher);
        }
        Bson::Array(items) => {
            3u8.hash(hasher);
            for item in items {
                hash_id(item, hasher);
            }
            items.len().hash(hasher);
        }
        Bson::ObjectId(id) => (4u8, id.bytes()).hash(hasher),
        Bson::Boolean(b) => (5u8, b).hash(hasher),
        Bson::DateTime(t) => (6u8, t.timestamp_millis()).hash(hasher),
        Bson::Timestamp(t) => (7u8, t.time, t.increment).hash(hasher),
        Bson::Binary(b) => (8u8, u8::from(b.subtype), &b.bytes).hash(hasher),
        Bson::RegularExpression(r) => (9u8, &r.pattern, &r.options).hash(hasher),
        Bson::JavaScriptCode(code) => (10u8, code).hash(hasher),
        Bson::Null | Bson::Undefined => 11u8.hash(hasher),
        Bson::MinKey => 12u8.hash(hasher),
        Bson::MaxKey => 13u8.hash(hasher),
        // Rare types whose equality is not worth modelling: one token each.
        Bson::JavaScriptCodeWithScope(_) => 14u8.hash(hasher),
        Bson::DbPointer(_) => 15u8.hash(hasher),
    }
}

/// Numbers: `Some(n)` for an integer value in the i64 range, None for any other.
fn hash_integer(value: Option<i64>, hasher: &mut impl Hasher) {
    (0u8, value).hash(hasher);
}

fn double_as_integer(d: f64) -> Option<i64> {
    // -2^63 <= d < 2^63: exactly representable as i64 when integral.
    (d.is_finite() && d.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&d))
        .then_some(d as i64)
}

/// A decimal128's value (as `Display` writes it: `-12.50`, `1E+3`,
/// `1.0E-7`, `NaN`, `Infinity`) when it is an integer in the i64 range.
fn decimal_as_integer(text: &str) -> Option<i64> {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match text.split_once(['E', 'e']) {
        Some((m, e)) => (m, e.parse::<i64>().ok()?),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() || !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()) {
        return None; // NaN, Infinity
    }
    let mut digits: String = format!("{whole}{fraction}").trim_start_matches('0').to_string();
    let mut scale = exponent - fraction.len() as i64;
    if digits.is_empty() {
        return Some(0); // 0, -0, 0E+5, 0.000
    }
    while scale < 0 && digits.ends_with('0') {
        digits.pop();
        scale += 1;
    }
    if scale < 0 || digits.len() as i64 + scale > 19 {
        return None;
    }
    let mut value: i128 = digits.parse().ok()?;
    for _ in 0..scale {
        value *= 10;
    }
    i64::try_from(if negative { -value } else { value }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::Decimal128;

    fn hash_of(value: Bson) -> u64 {
        let mut hasher = DefaultHasher::new();
        hash_id(&value, &mut hasher);
        hasher.finish()
    }

    fn decimal(text: &str) -> Bson {
        Bson::Decimal128(text.parse::<Decimal128>().unwrap())
    }

    #[test]
    fn equal_ids_of_different_types_hash_alike() {
        let one = hash_of(Bson::Int32(1));
        for same in [Bson::Int64(1), Bson::Double(1.0), decimal("1"), decimal("1.000"), decimal("0.1E+1")] {
            assert_eq!(hash_of(same.clone()), one, "{same:?}");
        }
        assert_eq!(hash_of(Bson::Double(-0.0)), hash_of(Bson::Int32(0)));
        assert_eq!(hash_of(decimal("-0")), hash_of(Bson::Int64(0)));
        assert_eq!(hash_of(decimal("1E+3")), hash_of(Bson::Int32(1000)));
        assert_eq!(hash_of(decimal("2.5")), hash_of(Bson::Double(2.5)), "every non-integer shares one token");
        assert_eq!(hash_of(Bson::Double(1e20)), hash_of(decimal("1E+20")));
        assert_eq!(
            hash_of(Bson::Document(doc! {"a": 1, "b": [1, {"c": 2}]})),
            hash_of(Bson::Document(doc! {"a": 1.0, "b": [1i64, {"c": decimal("2")}]}))
        );
        assert_eq!(hash_of(Bson::String("x".into())), hash_of(Bson::Symbol("x".into())));
    }

    #[test]
    fn different_ids_mostly_hash_apart() {
        assert_ne!(hash_of(Bson::Int32(1)), hash_of(Bson::Int32(2)));
        assert_ne!(hash_of(Bson::Int32(1)), hash_of(Bson::String("1".into())));
        assert_ne!(hash_of(Bson::Document(doc! {"a": 1, "b": 2})), hash_of(Bson::Document(doc! {"b": 2, "a": 1})));
        assert_ne!(hash_of(Bson::Int64(i64::MAX)), hash_of(Bson::Double(9.223_372_036_854_776e18)));
    }

    #[test]
    fn decimals_read_as_integers_only_when_they_are() {
        assert_eq!(decimal_as_integer("-12.00"), Some(-12));
        assert_eq!(decimal_as_integer("9223372036854775807"), Some(i64::MAX));
        assert_eq!(decimal_as_integer("9223372036854775808"), None);
        assert_eq!(decimal_as_integer("1.5"), None);
        assert_eq!(decimal_as_integer("NaN"), None);
        assert_eq!(decimal_as_integer("-Infinity"), None);
        assert_eq!(decimal_as_integer("1E+400"), None);
    }
}
