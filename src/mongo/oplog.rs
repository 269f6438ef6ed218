//! The oplog (`local.oplog.rs`): where a backup starts and ends, which entries
//! a dump of some databases carries, and (in `Replayer`, `oplog/replay.rs`)
//! replaying entries into a server.

use anyhow::{Context, Result};
use mongodb::bson::{doc, Document, RawDocument};
use mongodb::options::FindOneOptions;
use mongodb::Client;

use crate::cli;
use crate::format::records::Ts;

mod replay;

pub(crate) use replay::{Flow, ReplayOptions, Replayer};

fn oplog_collection(client: &Client) -> mongodb::Collection<Document> {
    client.database("local").collection("oplog.rs")
}

async fn edge(client: &Client, natural: i32) -> Result<Option<Ts>> {
    let options = FindOneOptions::builder().sort(doc! {"$natural": natural}).projection(doc! {"ts": 1}).build();
    let entry = oplog_collection(client).find_one(doc! {}).with_options(options).await.context("reading the oplog")?;
    match entry {
        Some(entry) => Ok(Some(entry.get_timestamp("ts").context("oplog entry without ts")?.into())),
        None => Ok(None),
    }
}

/// The newest oplog entry's timestamp.
pub async fn newest(client: &Client) -> Result<Ts> {
    edge(client, -1).await?.context("the oplog is empty")
}

/// The oldest oplog entry's timestamp.
pub async fn oldest(client: &Client) -> Result<Ts> {
    edge(client, 1).await?.context("the oplog is empty")
}

/// Where a full dump's oplog capture starts: the newest entry, or the start
/// of the oldest transaction still open (whose first entries are already
/// written), whichever is older.
pub(crate) async fn capture_start(client: &Client) -> Result<Ts> {
    let newest = newest(client).await?;
    let open = client
        .database("config")
        .collection::<Document>("transactions")
        .find_one(doc! {"state": {"$in": ["prepared", "inProgress"]}, "startOpTime.ts": {"$exists": true}})
        .sort(doc! {"startOpTime.ts": 1})
        .await
        .context("looking for open transactions")?;
    let oldest_open = open
        .as_ref()
        .and_then(|t| t.get_document("startOpTime").ok())
        .and_then(|o| o.get_timestamp("ts").ok())
        .map(Ts::from);
    Ok(oldest_open.map_or(newest, |open| open.min(newest)))
}

/// Fails with exit code 5 unless the oplog still holds entries back to `ts`.
pub(crate) async fn check_reaches(client: &Client, ts: Ts) -> Result<()> {
    let oldest = oldest(client).await?;
    if oldest > ts {
        return Err(cli::oplog_gap(format!(
            "the oplog no longer reaches back to {ts}: its oldest entry is {oldest}; \
             the entries in between are lost (make the oplog larger, or back up more often)"
        )));
    }
    Ok(())
}

/// The server-side filter of a dump's oplog read: the time bound, no no-ops,
/// and only namespaces of `databases` (all but local and config when empty)
/// or `admin.$cmd` (transactions and cross-database renames, checked after),
/// and with `users`, `admin.system.users` / `admin.system.roles` (checked
/// after: only those of `databases`).
pub(crate) fn dump_filter(databases: &[String], users: bool, ts_filter: Document) -> Document {
    if databases.is_empty() {
        return doc! {"ts": ts_filter, "op": {"$ne": "n"}, "ns": {"$not": {"$regex": "^(local|config)\\."}}};
    }
    let alternatives: Vec<String> = databases.iter().map(|db| regex_escape(db)).collect();
    let authz = if users { "|^admin\\.system\\.(?:users|roles)$" } else { "" };
    let pattern = format!("^(?:{})\\.|^admin\\.\\$cmd${authz}", alternatives.join("|"));
    doc! {"ts": ts_filter, "op": {"$ne": "n"}, "ns": {"$regex": pattern}}
}

fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if !c.is_ascii_alphanumeric() && c != '_' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The `ts` of an oplog entry.
pub(crate) fn entry_ts(entry: &RawDocument) -> Result<Ts> {
    Ok(entry.get_timestamp("ts").context("oplog entry without a ts")?.into())
}

/// Whether an entry that passed [`dump_filter`] touches `databases`; with
/// `users`, also a write to `admin.system.users` / `system.roles` for a user
/// or role of one of them (alone, or in the transaction a user management
/// command runs), and the creation of those collections.
pub(crate) fn keep_for_databases(entry: &RawDocument, databases: &[String], users: bool) -> Result<bool> {
    if databases.is_empty() {
        return Ok(true);
    }
    let ns = entry.get_str("ns").unwrap_or("");
    let authz_in_scope = |op: &RawDocument| {
        let id = authz_id(op.get_str("op").unwrap_or(""), op.get_document("o").ok(), op.get_document("o2").ok());
        id.is_some_and(|id| databases.iter().any(|db| db == authz_database(id)))
    };
    if is_authz(ns) {
        return Ok(authz_in_scope(entry));
    }
    if users && ns == "admin.$cmd" && is_authz_setup(entry.get_document("o").ok()) {
        return Ok(true);
    }
    if ns != "admin.$cmd" || databases.iter().any(|d| d == "admin") {
        return Ok(true);
    }
    let in_scope = |ns: &str| databases.iter().any(|db| ns.split_once('.').is_some_and(|(d, _)| d == db));
    let Ok(o) = entry.get_document("o") else { return Ok(false) };
    if let Ok(ops) = o.get_array("applyOps") {
        for op in ops {
            let op = op.context("bad applyOps entry")?;
            if let Some(inner) = op.as_document() {
                let inner_ns = inner.get_str("ns").unwrap_or("");
                if in_scope(inner_ns) || (users && is_authz(inner_ns) && authz_in_scope(inner)) {
                    return Ok(true);
                }
            }
        }
        return Ok(false);
    }
    if let Ok(source) = o.get_str("renameCollection") {
        return Ok(in_scope(source) || in_scope(o.get_str("to").unwrap_or("")));
    }
    Ok(false)
}

/// Whether `ns` holds users or roles.
pub(crate) fn is_authz(ns: &str) -> bool {
    matches!(ns, "admin.system.users" | "admin.system.roles")
}

/// Whether an `admin.$cmd` entry's `o` creates `system.users` /
/// `system.roles` or an index on them (the first user or role ever).
pub(crate) fn is_authz_setup(o: Option<&RawDocument>) -> bool {
    let Some(o) = o else { return false };
    let coll = o.get_str("create").or_else(|_| o.get_str("createIndexes")).unwrap_or("");
    matches!(coll, "system.users" | "system.roles")
}

/// The `_id` of the user or role an `admin.system.users` / `system.roles`
/// entry writes (`db.name`): in `o2` for an update, else in `o`.
pub(crate) fn authz_id<'a>(op: &str, o: Option<&'a RawDocument>, o2: Option<&'a RawDocument>) -> Option<&'a str> {
    let holder = if op == "u" { o2 } else { o };
    holder?.get_str("_id").ok()
}

/// The database a user or role `_id` (`db.name`) belongs to (database names hold no dot).
pub(crate) fn authz_database(id: &str) -> &str {
    id.split_once('.').map_or(id, |(db, _)| db)
}

/// The server's error code of a command error, if it has one.
pub(crate) fn server_code(err: &mongodb::error::Error) -> Option<i32> {
    match err.kind.as_ref() {
        mongodb::error::ErrorKind::Command(command) => Some(command.code),
        _ => None,
    }
}
