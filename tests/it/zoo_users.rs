//! Issue 18's users and roles cases: a backup of named databases with
//! `--users-and-roles` (the config's `users_and_roles = 1`) carries their
//! changes after the full backup, restores them `--until` a mid point, writes
//! them in mongodump's `--dumpDbUsersAndRoles` layout under `--to-dir`, and
//! `--drop` leaves no stale user of a backed-up database behind.

use mongodb::bson::{doc, Document};

use crate::replay::{now, run};
use crate::support::mongod::{block_on, cursor, Mongod};
use crate::support::{assert_ok, run_with_input, stage, temp_dir};
use crate::zoo_cases::{bson_documents, fresh, full_with, slice_with};

const USERS: &[&str] = &["--users-and-roles"];

/// The users or roles (`system.users` / `system.roles`) of `db` on `server`,
/// as stored (credentials included), sorted by `_id`.
fn stored(server: &Mongod, collection: &str, db: &str) -> Vec<Document> {
    let admin = server.client().database("admin");
    block_on(cursor(&admin, doc! {"find": collection, "filter": {"db": db}, "sort": {"_id": 1}}))
}

fn users_and_roles(server: &Mongod, db: &str) -> (Vec<Document>, Vec<Document>) {
    (stored(server, "system.users", db), stored(server, "system.roles", db))
}

/// Removes every user and role of `databases` on each server.
fn no_users(servers: &[&Mongod], databases: &[&str]) {
    for server in servers {
        for db in databases {
            run(&server.client(), db, doc! {"dropAllUsersFromDatabase": 1});
            run(&server.client(), db, doc! {"dropAllRolesFromDatabase": 1});
        }
    }
}

fn reader_role(db: &str, name: &str) -> Document {
    doc! {"createRole": name, "privileges": [{"resource": {"db": db, "collection": ""}, "actions": ["find"]}], "roles": []}
}

/// Item 3: user and role changes after the full backup reach the slices and
/// are replayed, at the end and `--until` a mid point; other databases' stay out.
#[test]
fn user_and_role_changes_after_the_full_backup_are_restored() {
    let (source, target) = (Mongod::shared_replica_set(), Mongod::shared_standalone());
    let (db, other) = ("zoo_users_app", "zoo_users_other");
    fresh(&[source, target], &[db, other]);
    no_users(&[source, target], &[db, other]);
    let client = source.client();
    run(&client, db, doc! {"insert": "c", "documents": [{"_id": 1}]});
    run(&client, db, reader_role(db, "reader"));
    run(&client, db, doc! {"createUser": "alice", "pwd": "alice-1", "roles": ["reader"]});
    run(&client, db, doc! {"createUser": "gone", "pwd": "gone-1", "roles": []});
    let mut chain = full_with(source, &[db], USERS);
    run(&client, db, doc! {"updateUser": "alice", "pwd": "alice-2"});
    run(&client, db, doc! {"createUser": "bob", "pwd": "bob-1", "roles": ["read"]});
    run(&client, db, reader_role(db, "auditor"));
    run(&client, other, doc! {"createUser": "stranger", "pwd": "x", "roles": []});
    let mid = now(source);
    let at_mid = users_and_roles(source, db);
    slice_with(&mut chain, USERS);
    run(&client, db, doc! {"dropUser": "gone"});
    run(&client, db, doc! {"grantRolesToUser": "bob", "roles": ["auditor"]});
    run(&client, db, doc! {"updateRole": "reader", "privileges": [], "roles": []});
    run(&client, db, doc! {"dropRole": "auditor"});
    slice_with(&mut chain, USERS);
    let at_end = users_and_roles(source, db);

    assert_ok(&chain.apply(target, &["--drop", "-q"]));
    assert_eq!(users_and_roles(target, db), at_end, "users and roles as the source has them now");
    assert_eq!(stored(target, "system.users", other), Vec::<Document>::new(), "no user of another database");
    no_users(&[target], &[db]);
    assert_ok(&chain.apply(target, &["--drop", "-q", "--until", &mid.to_string()]));
    assert_eq!(users_and_roles(target, db), at_mid, "users and roles as they were at {mid}");
    no_users(&[source, target], &[db, other]);
}

/// Item 5: mongorestore `--restoreDbUsersAndRoles` reads a database's users
/// and roles from `<db>/$admin.system.users.bson` and `$admin.system.roles.bson`.
#[test]
fn to_dir_writes_users_and_roles_in_mongodumps_layout() {
    let source = Mongod::shared_replica_set();
    let dbs = ["zoo_dir_one", "zoo_dir_two"];
    fresh(&[source], &dbs);
    no_users(&[source], &dbs);
    for db in dbs {
        run(&source.client(), db, doc! {"insert": "c", "documents": [{"_id": 1}]});
        run(&source.client(), db, reader_role(db, "reader"));
        run(&source.client(), db, doc! {"createUser": format!("{db}_user"), "pwd": "pw", "roles": ["reader"]});
    }
    let chain = full_with(source, &dbs, USERS);
    let dir = temp_dir();
    let out = dir.path().join("dump");
    assert_ok(&run_with_input(stage("mb-apply").arg("--to-dir").arg(&out).arg("-q"), &chain.bytes()));
    for db in dbs {
        let read = |name: &str| {
            let path = out.join(db).join(name);
            bson_documents(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        };
        assert_eq!(read("$admin.system.users.bson"), stored(source, "system.users", db), "{db}'s users");
        assert_eq!(read("$admin.system.roles.bson"), stored(source, "system.roles", db), "{db}'s roles");
    }
    let admin_files: Vec<String> = std::fs::read_dir(out.join("admin"))
        .map(|list| list.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(admin_files.is_empty(), "no temp or admin collections a mongorestore would restore: {admin_files:?}");
    no_users(&[source], &dbs);
}

/// Item 6: a backup that carries users and roles makes the target's users
/// of its databases the backup's, also when it has none; one that does not
/// carry them leaves them.
#[test]
fn drop_removes_stale_users_when_the_backup_carries_users() {
    let (source, target) = (Mongod::shared_replica_set(), Mongod::shared_standalone());
    let db = "zoo_stale";
    fresh(&[source, target], &[db]);
    no_users(&[source, target], &[db]);
    run(&source.client(), db, doc! {"insert": "c", "documents": [{"_id": 1}]});
    let stale = || {
        run(&target.client(), db, reader_role(db, "stale_role"));
        run(&target.client(), db, doc! {"createUser": "stale", "pwd": "pw", "roles": ["stale_role"]});
    };
    stale();
    let without = full_with(source, &[db], &[]);
    assert_ok(&without.apply(target, &["--drop", "-q"]));
    assert_eq!(stored(target, "system.users", db).len(), 1, "a backup without users leaves the target's");
    let with = full_with(source, &[db], USERS);
    assert_ok(&with.apply(target, &["--drop", "-q"]));
    assert_eq!(users_and_roles(target, db), (Vec::new(), Vec::new()), "the backup has no users: none are left");
    // Without --drop the target's users stay, as the documents would.
    stale();
    assert_ok(&with.apply(target, &["-q"]));
    assert_eq!(stored(target, "system.users", db).len(), 1);
    no_users(&[target], &[db]);
}
