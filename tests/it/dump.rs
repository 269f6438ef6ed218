//! `mb-dump` alone: what it writes, and its errors (unreachable server,
//! wrong credentials), with secrets kept out of every message.

use mongodb::bson::{doc, Document};

use crate::support::mongod::{block_on, Mongod, Options};
use crate::support::{assert_fails_with, assert_ok, run_with_input, stage, stderr_of};

/// One line within --server-timeout, naming host and port and what they
/// answered; never the driver's (cut-off) topology description.
#[test]
fn unreachable_server_fails_with_one_line() {
    for (uri, hosts) in [
        ("mongodb://127.0.0.1:1/?directConnection=true", "127.0.0.1:1"),
        ("mongodb://127.0.0.1:1,127.0.0.1:2/?replicaSet=rs0", "127.0.0.1:1,127.0.0.1:2"),
    ] {
        let started = std::time::Instant::now();
        let output = stage("mb-dump").args(["--uri", uri, "--server-timeout", "2"]).output().unwrap();
        // A bound on the timeout (not a speed measurement).
        assert!(started.elapsed() < std::time::Duration::from_secs(15), "{:?}", started.elapsed());
        let stderr = stderr_of(&output);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert_fails_with(&output, 1, &format!("connecting to {hosts}"));
        assert!(stderr.contains("no answer within 2 s (") && stderr.contains("Connection refused"), "{stderr}");
        assert!(!stderr.contains("Topology") && !stderr.contains("Servers:"), "{stderr}");
        assert!(output.stdout.is_empty(), "nothing on stdout when the dump fails");
    }
    let old_name = stage("mb-dump").args(["--uri", "mongodb://127.0.0.1:1/", "--connect-timeout", "1"]).output();
    assert_fails_with(&old_name.unwrap(), 1, "no answer within 1 s");
}

#[test]
fn bad_uri_and_flags_are_usage_or_clear_errors() {
    let output = stage("mb-dump").args(["--uri", "postgres://nope"]).output().unwrap();
    assert_fails_with(&output, 1, "parsing the MongoDB URI");
    let output = stage("mb-dump").arg("--no-such-flag").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = stage("mb-dump").output().unwrap();
    assert_fails_with(&output, 2, "no server given");
}

#[test]
fn standalone_dump_has_no_oplog_and_restores() {
    let server = Mongod::shared_standalone();
    let client = server.client();
    block_on(async {
        let db = client.database("dump_standalone");
        db.drop().await.unwrap();
        db.collection::<Document>("c").insert_many((0..10).map(|i| doc! {"_id": i})).await.unwrap();
    });
    let dump = stage("mb-dump").args(["--uri", &server.uri(), "--db", "dump_standalone"]).output().unwrap();
    assert_ok(&dump);
    assert!(stderr_of(&dump).contains("not a replica set member"), "the consistency caveat is said");
    let check = run_with_input(stage("mb-apply").arg("--dry-run"), &dump.stdout);
    assert_ok(&check);
    let record: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(record["documents"], 10);
    assert!(record.get("consistent_at").is_none());
}

#[test]
fn credentials_come_from_env_or_file_and_never_show() {
    let secret = "s3cret-Pa55word";
    let server = Mongod::start(Options {
        replica_set: false,
        auth: Some(("admin".into(), secret.into())),
        ..Options::default()
    });
    let uri = format!("mongodb://admin@127.0.0.1:{}/?directConnection=true&authSource=admin", server.port);

    let ok = stage("mb-dump")
        .args(["--uri", &uri, "--db", "admin", "-q"])
        .env("MB_MONGO_PASSWORD", secret)
        .output()
        .unwrap();
    assert_ok(&ok);

    let dir = crate::support::temp_dir();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{secret}\n")).unwrap();
    let ok = stage("mb-dump")
        .args(["--uri", &uri, "--db", "admin", "-q", "--password-file"])
        .arg(&password_file)
        .output()
        .unwrap();
    assert_ok(&ok);

    let config = dir.path().join("backup.conf");
    std::fs::write(
        &config,
        format!("db_host = 127.0.0.1\ndb_port = {}\ndb_user = admin\ndb_passwd = {secret}\n", server.port),
    )
    .unwrap();
    let ok = stage("mb-dump").args(["--db", "admin", "-q", "--config"]).arg(&config).output().unwrap();
    assert_ok(&ok);

    let wrong = stage("mb-dump")
        .args(["--uri", &uri, "--db", "admin"])
        .env("MB_MONGO_PASSWORD", "wrong-password")
        .output()
        .unwrap();
    assert_fails_with(&wrong, 1, "Authentication failed");
    let missing = stage("mb-dump").args(["--uri", &uri, "--db", "admin"]).output().unwrap();
    assert_fails_with(&missing, 1, "no password");
    for output in [&ok, &wrong, &missing] {
        assert!(!stderr_of(output).contains(secret), "the password leaked: {}", stderr_of(output));
    }
}

#[test]
fn users_and_roles_of_the_dumped_database_restore() {
    let server = Mongod::shared_replica_set();
    let db = "dump_users";
    server.command(db, doc! {"dropAllUsersFromDatabase": 1});
    server.command(db, doc! {"dropAllRolesFromDatabase": 1});
    server.command(
        db,
        doc! {"createRole": "reader", "privileges": [{"resource": {"db": db, "collection": ""}, "actions": ["find"]}], "roles": []},
    );
    server.command(db, doc! {"createUser": "alice", "pwd": "alice-password", "roles": ["reader"]});
    let dump = stage("mb-dump").args(["--uri", &server.uri(), "--db", db, "--users-and-roles", "-q"]).output().unwrap();
    assert_ok(&dump);
    server.command(db, doc! {"dropAllUsersFromDatabase": 1});
    server.command(db, doc! {"dropAllRolesFromDatabase": 1});

    let apply = run_with_input(stage("mb-apply").args(["--uri", &server.uri(), "-q"]), &dump.stdout);
    assert_ok(&apply);
    let users = server.command(db, doc! {"usersInfo": 1});
    let names: Vec<&str> =
        users.get_array("users").unwrap().iter().map(|u| u.as_document().unwrap().get_str("user").unwrap()).collect();
    assert_eq!(names, ["alice"]);
    let roles = server.command(db, doc! {"rolesInfo": 1});
    assert_eq!(roles.get_array("roles").unwrap().len(), 1, "the role is back: {roles}");
    let admin = server.client().database("admin");
    let leftovers = block_on(async { admin.list_collection_names().await }).unwrap();
    assert!(!leftovers.iter().any(|n| n.starts_with("mbtemp")), "temp collections are dropped: {leftovers:?}");
}
