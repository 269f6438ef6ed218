//! Backups from a replica set's secondaries (issue 10) and clean exits
//! (issue 9 item 12): one member per run, lag waited for or refused, least
//! privilege checked before a restore writes anything.

use mongodb::bson::doc;

use crate::support::data::populate;
use crate::support::mongod::{self, Mongod, Options};
use crate::support::{assert_ok, stage, stderr_of, temp_dir};

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
/// its server sessions open; one that does leaves none.
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
    let after = live_sessions(&server);
    assert_eq!(after, before, "the stages left {} server sessions open: a client was not shut down", after - before);
}
