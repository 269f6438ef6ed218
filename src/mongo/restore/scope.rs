//! The parts of a restore beyond collections: `--drop` of the backup's scope
//! on the target, and users and roles.

use anyhow::{Context, Result};
use mongodb::bson::{doc, Document};
use mongodb::{Client, Database};

use crate::format::records::Header;
use crate::info;
use crate::mongo::ns::NsMap;

/// Which of users and roles a stream carries: its metadata of
/// `admin.system.users` / `system.roles` (a backup of named databases with
/// `--users-and-roles` always has both, a whole instance those the source has).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Authz {
    pub(crate) users: bool,
    pub(crate) roles: bool,
}

/// Users and roles go through temp collections and `_mergeAuthzCollections`,
/// as mongorestore does: the server does not take direct writes to them.
/// Called once the full backup's data is in, before its oplog is replayed
/// (which changes them further). With `drop`, the target's users and roles of
/// the backup's databases that the backup does not hold are removed, also
/// when it holds none; without, the target's stay.
pub(crate) async fn merge_users_and_roles(client: &Client, header: &Header, drop: bool, carried: Authz) -> Result<()> {
    if !carried.users && !carried.roles {
        return Ok(());
    }
    let admin = client.database("admin");
    let (users, roles) = (carried.users, carried.roles);
    let carried =
        [(carried.users, "mbtempusers", "tempUsersCollection"), (carried.roles, "mbtemproles", "tempRolesCollection")];
    for (_, temp, _) in carried.iter().filter(|(carried, ..)| *carried) {
        // A backup without any user has no documents: the temp collection must still be there.
        match admin.run_command(doc! {"create": *temp}).await {
            Ok(_) => {}
            Err(err) if crate::mongo::oplog::server_code(&err) == Some(48) => {}
            Err(err) => return Err(err).with_context(|| format!("creating admin.{temp}")),
        }
    }
    // The oplog replayed next may write users or roles the server never had
    // here: their collections must exist, as the server makes them.
    for (carried, collection, key) in [(users, "system.users", "user"), (roles, "system.roles", "role")] {
        if carried {
            create_authz_collection(&admin, collection, key).await?;
        }
    }
    let databases = if header.databases.is_empty() { vec![String::new()] } else { header.databases.clone() };
    for db in databases {
        let mut command = doc! {"_mergeAuthzCollections": 1, "drop": drop, "db": &db};
        for (_, temp, field) in carried.iter().filter(|(carried, ..)| *carried) {
            command.insert(*field, format!("admin.{temp}"));
        }
        admin.run_command(command).await.context("restoring users and roles")?;
    }
    for name in ["mbtempusers", "mbtemproles"] {
        admin.collection::<Document>(name).drop().await.ok();
    }
    Ok(())
}

/// Creates `admin.<collection>` with the unique index the server gives it
/// (`{<key>: 1, db: 1}`), unless it is there.
async fn create_authz_collection(admin: &Database, collection: &str, key: &str) -> Result<()> {
    match admin.run_command(doc! {"create": collection}).await {
        Ok(_) => {}
        Err(err) if crate::mongo::oplog::server_code(&err) == Some(48) => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("creating admin.{collection}")),
    }
    let index = doc! {"key": {key: 1, "db": 1}, "name": format!("{key}_1_db_1"), "unique": true};
    admin
        .run_command(doc! {"createIndexes": collection, "indexes": [index]})
        .await
        .with_context(|| format!("indexing admin.{collection}"))?;
    Ok(())
}

/// `--drop`: before anything is restored, drops every collection and view
/// of the target that the backup's scope covers (its `databases`, or every
/// database but admin, local and config when it is the whole instance), as
/// the namespace filters map them. Collections the chain creates later, and
/// ones the source never had, must not survive into the restored database.
pub(crate) async fn drop_scope(client: &Client, databases: &[String], ns_map: &NsMap) -> Result<u64> {
    let sources: Vec<String> = if databases.is_empty() {
        let on_target = client.list_database_names().await.context("listing the target's databases")?;
        on_target.into_iter().filter(|db| !matches!(db.as_str(), "admin" | "local" | "config")).collect()
    } else {
        databases.to_vec()
    };
    let mut dropped = 0;
    for source_db in sources {
        let target_db = ns_map.map_db(&source_db).unwrap_or_else(|| source_db.clone());
        let db = client.database(&target_db);
        let names = db.list_collection_names().await.with_context(|| format!("listing {target_db}"))?;
        // Views (system.views) last: it cannot go while a timeseries is there,
        // and only once empty, so that views a filter excludes stay.
        let (views, names): (Vec<String>, Vec<String>) = names.into_iter().partition(|n| n == "system.views");
        for name in names.into_iter().chain(views) {
            // The server's own collections stay; a timeseries' buckets go with it.
            let system = name.starts_with("system.") && !matches!(name.as_str(), "system.views" | "system.js");
            if system || target_db == "admin" && name.starts_with("system.") {
                continue;
            }
            let target_ns = format!("{target_db}.{name}");
            if ns_map.map(&source_db, &name).as_deref() != Some(target_ns.as_str()) {
                continue;
            }
            if name == "system.views" {
                let left = db.collection::<Document>(&name).estimated_document_count().await.unwrap_or(1);
                if left > 0 {
                    continue;
                }
            }
            if drop_collection(&db, &name).await? {
                dropped += 1;
            }
        }
    }
    Ok(dropped)
}

/// Drops a collection (true if it was there). `system.js` cannot be
/// dropped ("can't drop system collection"): it is emptied, as mongorestore
/// skips it, and said.
pub(crate) async fn drop_collection(db: &Database, name: &str) -> Result<bool> {
    let ns = format!("{}.{name}", db.name());
    if name == "system.js" {
        let emptied =
            db.collection::<Document>(name).delete_many(doc! {}).await.with_context(|| format!("emptying {ns}"))?;
        info!(
            "--drop: emptied {ns} ({} stored functions; a system collection cannot be dropped)",
            emptied.deleted_count
        );
        return Ok(true);
    }
    match db.run_command(doc! {"drop": name}).await {
        Ok(_) => Ok(true),
        Err(err) if crate::mongo::oplog::server_code(&err) == Some(26) => Ok(false),
        Err(err) => Err(err).with_context(|| format!("dropping {ns}")),
    }
}
