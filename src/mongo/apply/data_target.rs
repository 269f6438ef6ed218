//! Where one collection's chunks go, learned from its metadata.

use mongodb::bson::Document;

/// Where one collection's chunks go.
#[derive(Clone, Debug)]
pub(super) struct DataTarget {
    /// The namespace the documents are inserted into (a timeseries' buckets,
    /// the temp collections of users and roles).
    pub(super) data_ns: String,
    /// Capped collections keep insertion order: one chunk at a time.
    pub(super) capped: bool,
    /// Users or roles (`system.users`, `system.roles`), which a directory
    /// holds in mongodump's layout.
    pub(super) authz: Option<&'static str>,
}

impl DataTarget {
    pub(super) fn new(source_db: &str, source_coll: &str, target_ns: &str, metadata: &Document) -> DataTarget {
        let (db, coll) = target_ns.split_once('.').unwrap_or((target_ns, ""));
        let data_ns = match (source_db, source_coll, metadata.get_str("type").unwrap_or("collection")) {
            ("admin", "system.users", _) => "admin.mbtempusers".to_string(),
            ("admin", "system.roles", _) => "admin.mbtemproles".to_string(),
            (_, _, "timeseries") => format!("{db}.system.buckets.{coll}"),
            _ => target_ns.to_string(),
        };
        let capped = metadata.get_document("options").ok().and_then(|o| o.get_bool("capped").ok()).unwrap_or(false);
        let authz = match (source_db, source_coll) {
            ("admin", "system.users") => Some("system.users"),
            ("admin", "system.roles") => Some("system.roles"),
            _ => None,
        };
        DataTarget { data_ns, capped, authz }
    }
}
