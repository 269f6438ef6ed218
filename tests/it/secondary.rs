//! Backups from a replica set's secondaries (issue 10) and clean exits
//! (issue 9 item 12): one member per run, lag waited for or refused, least
//! privilege checked before a restore writes anything.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use mb::format::records::{Manifest, RangeRecord, Ts};
use mongodb::bson::doc;

use crate::support::data::{populate, Writer};
use crate::support::mongod::{self, Mongod, Options, ReplicaSet};
use crate::support::setup::{restore_fresh, Setup};
use crate::support::{assert_ok, bin_dir, run_with_input, stage, stderr_of, temp_dir};

/// Server sessions the server knows of (every user's), after a refresh
/// has written the active ones to, and removed the ended from, `config.system.sessions`.
fn live_sessions(server: &Mongod) -> u64 {
    let client = server.client();
    mongod::block_on(async {
        client.database("admin").run_command(doc! {"refreshLogicalSessionCacheNow": 1}).await.unwrap();
        client
            .database("config")
            .collection::<mongodb::bson::Document>("system.sessions")
            .count_documents(doc! {})
            .await
            .unwrap()
    })
}

/// The driver's pool workers panicked when the runtime went away under them
/// (`connection_requester.rs: SendError/RecvError`, about one run in 30): a
/// client dropped without `shutdown` spawns its `endSessions` into a runtime
/// being torn down. Deterministically: that spawned `endSessions` rarely
/// reaches the server, so a stage that does not shut its client down leaves
/// its server sessions open; one that does leaves none (checked: 4 of 6 runs
/// of mb-oplog-range and mb-dump left theirs before the fix). mb-apply runs
/// too, though its runtime outlives its client long enough that the count
/// does not catch a missing shutdown there.
#[test]
fn stages_shut_their_clients_down_before_exit() {
    // Its own server: other tests' sessions would blur the count.
    let server = Mongod::start(Options { oplog_size_mb: 16, ..Options::default() });
    populate(&server.client(), "exit_clean", 20);
    let dir = temp_dir();
    let state = dir.path().join("state.json");
    let before = live_sessions(&server);
    for i in 0..6 {
        let mut cmd = stage(if i % 2 == 0 { "mb-oplog-range" } else { "mb-dump" });
        cmd.args(["--uri", &format!("mongodb://127.0.0.1:{}/", server.port)]);
        if i % 2 == 0 {
            cmd.arg("--state").arg(&state);
        } else {
            cmd.args(["--db", "exit_clean", "-o"]).arg(dir.path().join(format!("{i}.tar")));
        }
        let output = cmd.output().unwrap();
        assert_ok(&output);
        assert!(!stderr_of(&output).contains("panicked"), "a stage panicked: {}", stderr_of(&output));
    }
    for _ in 0..2 {
        let apply = stage("mb-apply")
            .args(["--uri", &server.uri(), "--drop", "--ns-from", "exit_clean.$c$", "--ns-to", "exit_copy.$c$"])
            .arg(dir.path().join("1.tar"))
            .output()
            .unwrap();
        assert_ok(&apply);
        assert!(!stderr_of(&apply).contains("panicked"), "mb-apply panicked: {}", stderr_of(&apply));
    }
    let after = live_sessions(&server);
    assert_eq!(after, before, "the stages left {} server sessions open: a client was not shut down", after - before);
}

/// Points a backup setup's config at every member of `set`, with more keys.
fn through_the_set(setup: &Setup, set: &ReplicaSet, extra: &str) {
    let config = std::fs::read_to_string(&setup.config).unwrap();
    let start = config.find("db_host = ").unwrap();
    let end = config[start..].find("db_name").unwrap() + start;
    let config = format!("{}db_host = {}\n{extra}{}", &config[..start], set.hosts(), &config[end..]);
    std::fs::write(&setup.config, config).unwrap();
}

/// The last line of a failed stage's stderr.
fn last_line(output: &Output) -> String {
    stderr_of(output).lines().last().unwrap_or("").to_string()
}

/// Restores `dump` (a tar stream) into a fresh `db` on `target` and checks it
/// equals the source (the set's primary) at the dump's recorded point.
fn assert_restores_at_its_point(set: &ReplicaSet, target: &Mongod, db: &str, dump: &[u8], what: &str) -> Ts {
    let client = target.client();
    mongod::block_on(async { client.database(db).drop().await }).unwrap();
    let apply = run_with_input(stage("mb-apply").args(["--uri", &target.uri(), "--drop", "-q"]), dump);
    assert_ok(&apply);
    let record: serde_json::Value = serde_json::from_slice(&apply.stdout).unwrap();
    let at: Ts = serde_json::from_value(record["consistent_at"].clone()).expect("a consistent point");
    let (_, expected) = set.primary().db_hash_at(db, at);
    let (_, restored) = target.db_hash(db);
    assert_eq!(restored, expected, "{what} restores equal to the source at its point {at}");
    at
}

/// The scenario: backups through the whole set with
/// `readPreference=secondary` while the writer runs on the primary and one
/// secondary (s2) is held back by `fsyncLock`. Every stored backup restores
/// equal to the source at its recorded point; a run whose only eligible
/// member is behind the checkpoint or the range's end fails, naming it and
/// its lag, and the checkpoint stays.
#[test]
fn a_lagging_secondary_never_makes_a_short_backup() {
    let set = ReplicaSet::shared();
    let target = Mongod::shared_standalone();
    let db = "sec_lag";
    populate(&set.primary().client(), db, 300);
    set.wait_caught_up(&[1, 2]);
    let setup = Setup::new(set.primary(), db, true);
    through_the_set(&setup, set, "read_preference = secondary\nmax_lag_seconds = 2\n");

    let writer = Writer::start(set.primary().client(), db);
    std::thread::sleep(Duration::from_millis(200));
    let held = set.hold_back(2);
    let lagging_at = set.applied(2);
    let mut checkpoints = Vec::new();
    for run in 0..4 {
        std::thread::sleep(Duration::from_millis(400));
        // s1 keeps up: on a loaded machine it may trail by a moment, and a
        // slice ending where s1 stood would prove nothing about s2.
        set.wait_caught_up(&[1]);
        let output = setup.backup();
        assert_ok(&output);
        assert_eq!(setup.state().seq, run, "a full backup, then slices");
        checkpoints.push(setup.state().to);
    }
    assert!(
        checkpoints.iter().skip(1).all(|to| *to > lagging_at),
        "the slices end past the held member's point {lagging_at}: read from the secondary that keeps up"
    );

    // Only the held member is eligible (by its tag): it is behind the
    // checkpoint, so the run waits --max-lag, then fails naming it.
    let state_before = setup.state_bytes();
    let only_s2 = set.uri("&readPreference=secondary&readPreferenceTags=name:s2");
    let range = stage("mb-oplog-range")
        .args(["--uri", &only_s2, "--max-lag", "1", "--db", db, "--state"])
        .arg(setup.root.join("state.json"))
        .output()
        .unwrap();
    let line = last_line(&range);
    assert_eq!(range.status.code(), Some(1), "a member behind the checkpoint fails the run: {}", stderr_of(&range));
    assert!(line.contains(&set.host(2)) && line.contains("s behind") && line.contains("the checkpoint"), "{line}");
    assert!(!line.contains("same replica set"), "lag is named as lag: {line}");
    assert_eq!(setup.state_bytes(), state_before, "the checkpoint stays");
    eprintln!("lagging member refused: {line}");

    // A range decided on s1, dumped by a run pinned to the held s2: refused;
    // dumped through the set, it is read from s1, the member that decided it.
    let dir = temp_dir();
    let range_path = dir.path().join("range.json");
    let only_s1 = set.uri("&readPreference=secondary&readPreferenceTags=name:s1");
    let range = stage("mb-oplog-range")
        .args(["--uri", &only_s1, "--db", db, "--state"])
        .arg(setup.root.join("state.json"))
        .output()
        .unwrap();
    assert_ok(&range);
    std::fs::write(&range_path, &range.stdout).unwrap();
    let record: RangeRecord = serde_json::from_slice(&range.stdout).unwrap();
    assert_eq!(record.member.as_deref(), Some(set.host(1).as_str()), "the range names the member that decided it");
    let direct_s2 = format!("mongodb://{}/?directConnection=true", set.host(2));
    let dump = stage("mb-dump")
        .args(["--uri", &direct_s2, "--max-lag", "1", "-q", "--range"])
        .arg(&range_path)
        .output()
        .unwrap();
    let line = last_line(&dump);
    assert_eq!(dump.status.code(), Some(1), "{}", stderr_of(&dump));
    assert!(line.contains(&set.host(2)) && line.contains("the range's end"), "{line}");
    eprintln!("dump from the lagging member refused: {line}");
    let dump = stage("mb-dump")
        .args(["--uri", &set.uri("&readPreference=secondary"), "-v", "--range"])
        .arg(&range_path)
        .output()
        .unwrap();
    assert_ok(&dump);
    assert!(stderr_of(&dump).contains(&format!("reading from {}", set.host(1))), "{}", stderr_of(&dump));

    // The seed's advice, a secondary's address in db_host: that member is read.
    let one_host = dir.path().join("one.conf");
    std::fs::write(&one_host, format!("db_host = {}\ndb_name = {db}\n", set.host(1))).unwrap();
    let dump = stage("mb-dump").arg("--config").arg(&one_host).args(["-v", "-o", "/dev/null"]).output().unwrap();
    assert_ok(&dump);
    assert!(stderr_of(&dump).contains(&format!("reading from {} (secondary)", set.host(1))), "{}", stderr_of(&dump));

    // A full dump from the held member records its own (old) point, not a newer one.
    let manifest_path = dir.path().join("manifest.json");
    let full = stage("mb-dump")
        .args(["--uri", &only_s2, "--db", db, "-q", "--manifest"])
        .arg(&manifest_path)
        .output()
        .unwrap();
    assert_ok(&full);
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    assert!(manifest.consistent_at.unwrap() <= lagging_at, "a full dump of s2 is consistent at s2's point");
    assert_restores_at_its_point(set, target, db, &full.stdout, "a full dump of the held member");

    drop(held);
    let ops = writer.stop();
    assert!(ops > 100, "the writer barely ran ({ops} operations)");
    assert_ok(&setup.backup());
    checkpoints.push(setup.state().to);
    for (seq, at) in checkpoints.iter().enumerate() {
        let until = format!("{},{}", at.t, at.i);
        let (_, restored) = restore_fresh(&setup, target, db, &["--until", &until]);
        let (_, expected) = set.primary().db_hash_at(db, *at);
        assert_eq!(restored, expected, "the chain restores equal to the source at backup {seq}'s point {at}");
    }
    eprintln!(
        "lagging-secondary test: s2 ({}) held at {lagging_at}; {} backups stored through the set, each restored equal at its point",
        set.host(2),
        checkpoints.len()
    );
}

/// Runs `scripts/mb-restore CONFIG ARGS...` with the password in the environment.
fn restore_as(setup: &Setup, password: &str, args: &[&str]) -> Output {
    Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/mb-restore"))
        .arg(&setup.config)
        .args(args)
        .env("MB_BIN_DIR", bin_dir())
        .env_remove("MB_MONGO_URI")
        .env("MB_MONGO_PASSWORD", password)
        .output()
        .unwrap()
}

/// Least privilege: backups with a user holding only the built-in `backup`
/// role; restores with `restore` plus update and remove on the restored
/// database; a restore with `restore` alone fails before writing anything,
/// naming what is missing.
#[test]
fn minimal_roles_back_up_and_restore_and_missing_ones_are_named_first() {
    let admin = Some(("admin".to_string(), "adminpw".to_string()));
    let source = Mongod::start(Options { oplog_size_mb: 16, auth: admin.clone(), ..Options::default() });
    let target = Mongod::start(Options { replica_set: false, auth: admin, ..Options::default() });
    let db = "sec_priv";
    populate(&source.client(), db, 100);
    source.command(
        "admin",
        doc! {"createUser": "backupUser", "pwd": "b-pw", "roles": [{"role": "backup", "db": "admin"}]},
    );
    target.command(
        "admin",
        doc! {"createRole": "replayUpdates", "privileges": [
            {"resource": {"db": db, "collection": ""}, "actions": ["update", "remove"]}
        ], "roles": []},
    );
    target.command(
        "admin",
        doc! {"createUser": "restorer", "pwd": "r-pw", "roles": [
            {"role": "restore", "db": "admin"}, {"role": "replayUpdates", "db": "admin"}
        ]},
    );
    target.command(
        "admin",
        doc! {"createUser": "restoreOnly", "pwd": "o-pw", "roles": [{"role": "restore", "db": "admin"}]},
    );

    source.command(db, doc! {"createUser": "appUser", "pwd": "a-pw", "roles": [{"role": "readWrite", "db": db}]});

    let setup = Setup::new(&source, db, true);
    let config = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(&setup.config, format!("{config}db_user = backupUser\ndb_passwd = b-pw\n")).unwrap();
    // An empty MB_MONGO_PASSWORD (a cron line's `MB_MONGO_PASSWORD=`) is unset:
    // the config's password is used. users_and_roles = 1 carries the database's users.
    let dir = temp_dir();
    let with_users = dir.path().join("users.conf");
    std::fs::write(&with_users, format!("{config}db_user = backupUser\ndb_passwd = b-pw\nusers_and_roles = 1\n"))
        .unwrap();
    let manifest_path = dir.path().join("manifest.json");
    let dump = stage("mb-dump")
        .arg("--config")
        .arg(&with_users)
        .args(["-q", "-o", "/dev/null", "--manifest"])
        .arg(&manifest_path)
        .env("MB_MONGO_PASSWORD", "")
        .output()
        .unwrap();
    assert_ok(&dump);
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let users = manifest.collections.iter().find(|c| (c.db.as_str(), c.name.as_str()) == ("admin", "system.users"));
    assert_eq!(users.map(|c| c.docs), Some(1), "the database's one user is carried: {:?}", manifest.collections);
    assert_ok(&setup.backup());
    let writer = Writer::start(source.client(), db);
    std::thread::sleep(Duration::from_millis(300));
    writer.stop();
    assert_ok(&setup.backup());
    assert_eq!(setup.state().seq, 1, "a full backup and a slice, as the backup role");
    let at = setup.state().to;

    let uri =
        |user: &str| format!("mongodb://{user}@127.0.0.1:{}/?directConnection=true&authSource=admin", target.port);
    let refused = restore_as(&setup, "o-pw", &["--uri", &uri("restoreOnly"), "--drop"]);
    assert_ne!(refused.status.code(), Some(0), "restore alone cannot replay updates: {}", stderr_of(&refused));
    let stderr = stderr_of(&refused);
    let line = stderr.lines().find(|l| l.contains("may not restore")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("update") && line.contains("remove") && line.contains(db), "names what is missing: {line}");
    let client = target.client();
    let databases = mongod::block_on(async { client.list_database_names().await }).unwrap();
    eprintln!("restore role alone: {line}");
    assert!(!databases.iter().any(|d| d == db), "nothing was written before the check: {databases:?}");

    let restored = restore_as(&setup, "r-pw", &["--uri", &uri("restorer"), "--drop"]);
    assert_ok(&restored);
    let (_, expected) = source.db_hash_at(db, at);
    let (_, got) = target.db_hash(db);
    assert_eq!(got, expected, "restore + update/remove restores the chain");
}
