//! The server side: connecting to the one member a run reads from (`member`,
//! `choice`; the flags that say how are in `crate::settings::mongo`), the
//! restore privileges check (`privileges`), namespaces (`ns`), the oplog
//! (`oplog`: reading and replay), dumping (`dump`), restoring (`restore`,
//! `apply`), the mongodump directory writer (`dump_dir`), and small server queries.
//!
//! Every `Connection` must end with `Connection::shutdown` before its
//! tokio runtime goes: a driver client dropped without it spawns its
//! `endSessions` into a runtime being torn down, and the driver's pool
//! worker then panics (`connection_requester.rs`) on some runs.

pub(crate) mod apply;
mod choice;
pub(crate) mod dump;
pub(crate) mod dump_dir;
pub(crate) mod member;
pub(crate) mod ns;
pub mod oplog;
pub(crate) mod privileges;
pub(crate) mod restore;

use std::time::Duration;

use anyhow::{Context, Result};
use mongodb::bson::{doc, Document};
use mongodb::options::ClientOptions;
use mongodb::Client;

use crate::format::records::Ts;

pub(crate) use choice::Need;

/// A connected client and a description of the source without credentials.
pub(crate) struct Connection {
    /// The driver client; on a replica set, directly connected to one member.
    pub client: Client,
    /// Host list for records and logs (no user, no password).
    pub hosts: String,
    /// The replica set member every read of this run goes to (`host:port`);
    /// None for a standalone or a mongos.
    pub member: Option<String>,
    /// How long [`Connection::wait_applied`] waits.
    max_lag: Duration,
}

impl Connection {
    /// Ends the client's sessions and stops its background tasks. Call it
    /// once the run's work is done (also after a failure), before the
    /// runtime is dropped.
    pub(crate) async fn shutdown(self) {
        self.client.shutdown().await;
    }

    /// Waits until the member has applied the oplog through `point` (named
    /// `what` in messages), up to the lag bound; then fails naming the member
    /// and how far behind it is. A standalone or mongos has nothing to wait for.
    pub(crate) async fn wait_applied(&self, point: Ts, what: &str) -> Result<()> {
        match &self.member {
            Some(host) => member::wait_applied(&self.client, host, point, what, self.max_lag).await,
            None => Ok(()),
        }
    }

    /// Runs `work` with this connection, then shuts it down whatever the outcome.
    pub(crate) async fn run<T>(self, work: impl AsyncFnOnce(&Connection) -> Result<T>) -> Result<T> {
        let result = work(&self).await;
        self.shutdown().await;
        result
    }
}

/// Connects with `options` to the one member this run reads from (its read
/// preference, and having applied through `need`); `max_lag` bounds the waits.
pub(crate) async fn connect(options: ClientOptions, need: Need, max_lag: Duration) -> Result<Connection> {
    let hosts = options.hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(",");
    let timeout = options.server_selection_timeout.unwrap_or(Duration::from_secs(30));
    let (client, member) =
        member::pin(options, need, max_lag).await.map_err(|err| explain_connect_error(err, &hosts, timeout))?;
    Ok(Connection { client, hosts, member, max_lag })
}

/// Adds what the driver's message does not say to connection failures, and
/// puts a server selection timeout on one short line.
fn explain_connect_error(err: anyhow::Error, hosts: &str, timeout: Duration) -> anyhow::Error {
    let text = format!("{err:#}");
    if text.contains("close_notify") || text.contains("CertificateRequired") || text.contains("certificate required") {
        // rustls reports a server that wants a client certificate as a closed connection.
        return err.context(format!(
            "connecting to {hosts}: the server closed the TLS connection; if it requires a client certificate, \
             add tlsCertificateKeyFile=PATH to the URI"
        ));
    }
    if let Some(topology) = err.chain().find_map(server_selection_message) {
        // The driver's message dumps its whole topology description, which a
        // log line would cut off: keep what each server answered.
        let errors = server_errors(&topology);
        let why = if errors.is_empty() { "no suitable server".to_string() } else { errors.join("; ") };
        let context: Vec<String> = err
            .chain()
            .take_while(|cause| cause.downcast_ref::<mongodb::error::Error>().is_none())
            .map(ToString::to_string)
            .collect();
        let context = if context.is_empty() { format!("connecting to {hosts}") } else { context.join(": ") };
        return anyhow::anyhow!("{context}: no answer within {} s ({why})", timeout.as_secs());
    }
    err
}

/// The driver's message when no server could be selected.
fn server_selection_message(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
    let err = cause.downcast_ref::<mongodb::error::Error>()?;
    match err.kind.as_ref() {
        mongodb::error::ErrorKind::ServerSelection { message, .. } => Some(message.clone()),
        _ => None,
    }
}

/// What each server answered, from the driver's topology description
/// (`... Servers: [ { Address: h:p, Type: Unknown, Error: Kind: I/O error:
/// Connection refused (os error 111), labels: {} } ] }`), without repeats.
fn server_errors(topology: &str) -> Vec<String> {
    let mut errors: Vec<String> = Vec::new();
    for part in topology.split("Error: ").skip(1) {
        let end = part.find(", labels:").or_else(|| part.find(" }")).unwrap_or(part.len());
        let text = part[..end].trim_start_matches("Kind: ").trim().to_string();
        if !text.is_empty() && !errors.contains(&text) {
            errors.push(text);
        }
    }
    errors
}

/// What kind of server we talk to.
#[derive(Debug, Clone)]
pub(crate) struct ServerInfo {
    /// The replica set name, if it is one.
    pub set_name: Option<String>,
    /// Record ids name documents on this one server and a collection scan
    /// resumes after one (`$_resumeAfter`): a `mongod` of 4.4 or later.
    pub resumable_scans: bool,
}

/// Asks the server whether it is a replica set member, and what it can do.
pub(crate) async fn server_info(client: &Client) -> Result<ServerInfo> {
    let hello = client.database("admin").run_command(doc! {"hello": 1}).await.context("asking the server `hello`")?;
    Ok(ServerInfo {
        set_name: hello.get_str("setName").ok().map(str::to_string),
        // Wire version 9 is 4.4.
        resumable_scans: hello.get_str("msg") != Ok("isdbgrid")
            && hello.get_i32("maxWireVersion").is_ok_and(|v| v >= 9),
    })
}

/// Databases other than `local` and `config` (and `admin` unless asked).
pub(crate) async fn user_databases(client: &Client, with_admin: bool) -> Result<Vec<String>> {
    let names = client.list_database_names().await.context("listing databases")?;
    Ok(names.into_iter().filter(|n| n != "local" && n != "config" && (with_admin || n != "admin")).collect())
}

/// Runs a cursor-returning command and collects all batches (small results only).
pub(crate) async fn cursor_command(db: &mongodb::Database, command: Document) -> Result<Vec<Document>> {
    use futures_util::TryStreamExt;
    let cursor = db.run_cursor_command(command).await?;
    Ok(cursor.try_collect().await?)
}

/// A point in time for humans: `t,i (2026-11-24T03:15:00Z)`.
pub(crate) fn describe_ts(ts: Ts) -> String {
    let time = crate::format::time::format_rfc3339(i64::from(ts.t));
    if ts.i == u32::MAX {
        return format!("{time} (the end of that second)");
    }
    format!("{ts} ({time})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_close_without_notify_gets_a_client_certificate_hint() {
        let err = anyhow::anyhow!("peer closed connection without sending TLS close_notify");
        let ten = Duration::from_secs(10);
        let text = format!("{:#}", explain_connect_error(err, "db:27017", ten));
        assert!(text.contains("tlsCertificateKeyFile"), "{text}");
        let other = format!("{:#}", explain_connect_error(anyhow::anyhow!("connection refused"), "db:27017", ten));
        assert_eq!(other, "connection refused");
    }

    #[test]
    fn each_server_says_what_it_answered_once() {
        let topology = "Server selection timeout: No available servers. Topology: { Type: ReplicaSetNoPrimary, \
            Servers: [ { Address: a:1, Type: Unknown, Error: Kind: I/O error: Connection refused (os error 111), \
            labels: {} }, { Address: b:2, Type: Unknown, Error: Kind: I/O error: Connection refused (os error 111), \
            labels: {} } ] }";
        assert_eq!(server_errors(topology), ["I/O error: Connection refused (os error 111)"]);
        assert!(server_errors("Server selection timeout: None of the available servers suitable").is_empty());
    }

    #[test]
    fn points_show_as_utc_too() {
        assert_eq!(describe_ts(Ts::new(1_795_000_000, 7)), "1795000000,7 (2026-11-18T11:06:40Z)");
    }
}
