//! The restore privileges check: before `mb-apply` writes anything, it asks
//! the server what the user may do (`connectionStatus` with
//! `showPrivileges`) and fails naming what is missing and what to grant,
//! rather than half-way through with the server's raw `applyOps` error.
//!
//! A restore inserts documents and creates collections and indexes (the
//! built-in `restore` role), and replays the oplog, whose updates and
//! deletes need `update` and `remove` on the restored databases, which
//! `restore` lacks.

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};
use mongodb::bson::{doc, Bson, Document};
use mongodb::Client;

/// Actions a restore needs on every restored database.
const NEEDED: [&str; 5] = ["insert", "update", "remove", "createCollection", "createIndex"];
/// Also needed with `--drop`.
const NEEDED_TO_DROP: &str = "dropCollection";

/// Fails if the user may not restore the backup of `databases` (empty: the
/// whole instance, so any database), which `map_db` maps to their targets
/// (None: filtered out). Without authentication (no authenticated user)
/// there is nothing to check.
pub(crate) async fn check_restore(
    client: &Client,
    databases: &[String],
    map_db: impl Fn(&str) -> Option<String>,
    drop: bool,
) -> Result<()> {
    let mapped: Vec<String> = databases.iter().filter_map(|db| map_db(db)).collect();
    let databases = if databases.is_empty() { None } else { Some(mapped.as_slice()) };
    if databases.is_some_and(<[String]>::is_empty) {
        return Ok(());
    }
    let status = client
        .database("admin")
        .run_command(doc! {"connectionStatus": 1, "showPrivileges": true})
        .await
        .context("asking the server the user's privileges (connectionStatus)")?;
    let auth = status.get_document("authInfo").context("connectionStatus without authInfo")?;
    if auth.get_array("authenticatedUsers").map_or(true, |users| users.is_empty()) {
        return Ok(());
    }
    let privileges: Vec<&Document> = auth
        .get_array("authenticatedUserPrivileges")
        .map(|list| list.iter().filter_map(Bson::as_document).collect())
        .unwrap_or_default();
    let mut needed: Vec<&str> = NEEDED.to_vec();
    if drop {
        needed.push(NEEDED_TO_DROP);
    }
    let targets: Vec<&str> = match databases {
        None => vec![""],
        Some(databases) => databases.iter().map(String::as_str).collect(),
    };
    let mut missing: BTreeSet<(String, &str)> = BTreeSet::new();
    for db in &targets {
        for action in &needed {
            if !privileges.iter().any(|p| grants(p, db, action)) {
                missing.insert((db.to_string(), action));
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let user = auth
        .get_array("authenticatedUsers")
        .ok()
        .and_then(|u| u.first())
        .and_then(Bson::as_document)
        .map(|u| format!("{}@{}", u.get_str("user").unwrap_or("?"), u.get_str("db").unwrap_or("?")))
        .unwrap_or_default();
    let mut by_db: Vec<String> = Vec::new();
    for db in targets {
        let actions: Vec<&str> = missing.iter().filter(|(d, _)| d == db).map(|(_, a)| *a).collect();
        if !actions.is_empty() {
            let name = if db.is_empty() { "every database".to_string() } else { format!("database {db}") };
            by_db.push(format!("{} on {name}", actions.join(", ")));
        }
    }
    bail!(
        "user {user} may not restore here: missing {}; grant the `restore` role plus a role with update and remove \
         on the restored databases (README: Least privilege); nothing was written",
        by_db.join("; ")
    )
}

/// Whether one privilege entry allows `action` on every collection of `db`
/// (`db` empty: of every database).
fn grants(privilege: &Document, db: &str, action: &str) -> bool {
    let Ok(actions) = privilege.get_array("actions") else { return false };
    if !actions.iter().any(|a| matches!(a.as_str(), Some(x) if x == action || x == "anyAction")) {
        return false;
    }
    let Ok(resource) = privilege.get_document("resource") else { return false };
    if resource.get_bool("anyResource").unwrap_or(false) {
        return true;
    }
    let (Ok(on_db), Ok(on_collection)) = (resource.get_str("db"), resource.get_str("collection")) else {
        return false;
    };
    on_collection.is_empty() && (on_db.is_empty() || on_db == db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_and_any_database_grants_count_collection_grants_do_not() {
        let on = |db: &str, coll: &str| doc! {"resource": {"db": db, "collection": coll}, "actions": ["update"]};
        assert!(grants(&on("shop", ""), "shop", "update"));
        assert!(grants(&on("", ""), "shop", "update"));
        assert!(!grants(&on("other", ""), "shop", "update"));
        assert!(!grants(&on("shop", "orders"), "shop", "update"));
        assert!(!grants(&on("shop", ""), "shop", "remove"));
        assert!(!grants(&on("shop", ""), "", "update"), "one database is not every database");
        let root = doc! {"resource": {"anyResource": true}, "actions": ["anyAction"]};
        assert!(grants(&root, "", "remove"));
    }
}
