//! The collections part of a dump: what to read (collections, views,
//! timeseries, users and roles), and each one's metadata and chunks.

use anyhow::{Context, Result};
use mongodb::bson::{doc, Bson, Document};
use mongodb::{Client, Database};
use tokio::sync::{mpsc, Mutex, Semaphore};

use super::read::{read_ranges, ChunkSink};
use super::send;
use super::split::ReadRange;
use crate::format::records::CollectionEntry;
use crate::format::tar::chunk::{BufferPool, ChunkNumbering};
use crate::format::tar::{Entry, EntryName};
use crate::mongo;

/// What one collection task dumps.
#[derive(Debug, Clone)]
pub(crate) struct CollectionPlan {
    db: String,
    /// The name in listCollections (the view's name for timeseries).
    name: String,
    /// `collection`, `view` or `timeseries`.
    kind: String,
    /// listCollections' `options`.
    options: Document,
    /// listCollections' `info.uuid`, as hex.
    uuid: Option<String>,
    /// A filter on the documents read (users and roles of some databases).
    filter: Document,
}

/// Lists what to dump in one database: collections, views, timeseries.
pub(crate) async fn plan_database(db: &Database, whole_instance: bool) -> Result<Vec<CollectionPlan>> {
    let specs = mongo::cursor_command(db, doc! {"listCollections": 1})
        .await
        .with_context(|| format!("listing collections of {}", db.name()))?;
    let mut plans = Vec::new();
    for spec in specs {
        let name = spec.get_str("name").context("listCollections entry without a name")?.to_string();
        let kind = spec.get_str("type").unwrap_or("collection").to_string();
        if name.starts_with("system.") && !keep_system_collection(db.name(), &name, whole_instance) {
            continue;
        }
        let uuid = match spec.get_document("info").ok().and_then(|i| i.get("uuid")) {
            Some(Bson::Binary(b)) => Some(b.bytes.iter().map(|b| format!("{b:02x}")).collect()),
            _ => None,
        };
        plans.push(CollectionPlan {
            db: db.name().to_string(),
            name,
            kind,
            options: spec.get_document("options").cloned().unwrap_or_default(),
            uuid,
            filter: Document::new(),
        });
    }
    Ok(plans)
}

/// System collections that hold user data (as mongodump keeps them); views
/// and timeseries buckets are carried through their owners instead.
fn keep_system_collection(db: &str, name: &str, whole_instance: bool) -> bool {
    name == "system.js"
        || (whole_instance && db == "admin" && matches!(name, "system.users" | "system.roles" | "system.version"))
}

/// The users and roles of `databases`. Both are always listed, also when
/// the server has none (then without data): a restore learns from them that
/// the backup carries users and roles, and `--drop` removes the target's others.
pub(crate) fn plan_users_and_roles(databases: &[String]) -> Vec<CollectionPlan> {
    ["system.users", "system.roles"]
        .into_iter()
        .map(|name| CollectionPlan {
            db: "admin".into(),
            name: name.into(),
            kind: "collection".into(),
            options: Document::new(),
            uuid: None,
            filter: doc! {"db": {"$in": databases}},
        })
        .collect()
}

/// Writes one collection's metadata and chunks; returns its manifest entry.
/// `record_ids`: a big collection may be split into ranges of its record ids
/// (one `mongod` of 4.4 or later serves every read).
pub(crate) async fn dump_collection(
    client: &Client,
    plan: CollectionPlan,
    options: &super::DumpOptions,
    pool: &BufferPool,
    tx: &mpsc::Sender<Entry>,
    readers: &Semaphore,
    record_ids: bool,
) -> Result<CollectionEntry> {
    let db = client.database(&plan.db);
    let ns = format!("{}.{}", plan.db, plan.name);
    let indexes = if plan.kind == "view" {
        Vec::new()
    } else {
        match mongo::cursor_command(&db, doc! {"listIndexes": &plan.name}).await {
            Ok(indexes) => indexes,
            // Users and roles are listed also when the server has none (no collection).
            Err(err) if !plan.filter.is_empty() && is_namespace_not_found(&err) => Vec::new(),
            Err(err) => return Err(err).with_context(|| format!("listing indexes of {ns}")),
        }
    };
    let metadata = serde_json::to_vec(&metadata_json(&plan, indexes))?;
    // Covered like the data: a CRC-64 in a PAX record (checked before the
    // metadata is used) and in the manifest.
    let metadata_crc64 = crate::crc64::checksum(&metadata);
    let metadata_entry = Entry {
        path: EntryName::Metadata { db: plan.db.clone(), coll: plan.name.clone() }.path(),
        data: metadata,
        pax: vec![(crate::format::tar::PAX_CRC64, metadata_crc64.to_string())],
    };
    send(tx, metadata_entry).await?;

    let mut entry = CollectionEntry {
        db: plan.db.clone(),
        name: plan.name.clone(),
        kind: plan.kind.clone(),
        docs: 0,
        bytes: 0,
        crc64: 0,
        chunks: 0,
        metadata_crc64: Some(metadata_crc64),
    };
    // Timeseries data lives in its buckets collection; views have none.
    let data_collection = match plan.kind.as_str() {
        "view" => return Ok(entry),
        "timeseries" => format!("system.buckets.{}", plan.name),
        _ => plan.name.clone(),
    };
    let ranges = if plan.kind == "collection" && plan.filter.is_empty() {
        super::split::plan_ranges(&db, &data_collection, &plan.options, options, record_ids).await?
    } else {
        vec![ReadRange::Whole]
    };
    let meter = options.progress.collection(&ns);
    let sink = ChunkSink {
        numbering: Mutex::new(ChunkNumbering::new(|seq| {
            EntryName::Chunk { db: plan.db.clone(), coll: plan.name.clone(), seq }.path()
        })),
        tx,
        pool,
        meter: &meter,
        chunk_size: options.chunk_size,
        readers,
    };
    read_ranges(&db, &data_collection, &plan.filter, ranges, options.parallel, &sink).await?;
    meter.finish();
    (entry.docs, entry.bytes, entry.crc64, entry.chunks) = sink.numbering.into_inner().totals();
    crate::debug!("dumped {ns}: {} documents", entry.docs);
    Ok(entry)
}

fn is_namespace_not_found(err: &anyhow::Error) -> bool {
    err.downcast_ref::<mongodb::error::Error>().and_then(mongo::oplog::server_code) == Some(26)
}

/// mongodump's `<coll>.metadata.json`, as canonical Extended JSON v2.
fn metadata_json(plan: &CollectionPlan, indexes: Vec<Document>) -> serde_json::Value {
    let indexes: Vec<Bson> = indexes
        .into_iter()
        .map(|mut index| {
            index.remove("ns");
            Bson::Document(index)
        })
        .collect();
    let mut metadata = doc! {
        "options": plan.options.clone(),
        "indexes": indexes,
        "collectionName": &plan.name,
        "type": &plan.kind,
    };
    if let Some(uuid) = &plan.uuid {
        metadata.insert("uuid", uuid);
    }
    Bson::Document(metadata).into_canonical_extjson()
}

/// Whether a database defines users or roles (it counts as existing for
/// --users-and-roles).
pub(crate) async fn defines_users_or_roles(db: &Database) -> Result<bool> {
    for (command, field) in [("usersInfo", "users"), ("rolesInfo", "roles")] {
        let reply =
            db.run_command(doc! {command: 1}).await.with_context(|| format!("asking {command} of {}", db.name()))?;
        if reply.get_array(field).is_ok_and(|list| !list.is_empty()) {
            return Ok(true);
        }
    }
    Ok(false)
}
