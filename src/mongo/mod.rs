//! Connecting to MongoDB: the `--uri` / `--config` / password flags every
//! stage that talks to a server shares, the one member a run reads from
//! (`member`, `choice`), the restore privileges check ([`privileges`]), and small
//! server queries.
//!
//! The password never has to be on the command line: it may come from the
//! config file (`db_passwd`), `$MB_MONGO_PASSWORD`, or `--password-file`.
//! Nothing here logs a URI with its credentials.
//!
//! Every [`Connection`] must end with [`Connection::shutdown`] before its
//! tokio runtime goes: a driver client dropped without it spawns its
//! `endSessions` into a runtime being torn down, and the driver's pool
//! worker then panics (`connection_requester.rs`) on some runs.

pub(crate) mod apply;
mod choice;
pub(crate) mod dump;
pub(crate) mod dump_dir;
pub(crate) mod member;
pub mod ns;
pub mod oplog;
pub mod privileges;
pub(crate) mod restore;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use mongodb::bson::{doc, Document};
use mongodb::options::{ClientOptions, Credential, ReadPreference, SelectionCriteria};
use mongodb::Client;

use crate::format::records::Ts;
use crate::settings::config::Config;

pub use choice::Need;

/// The connection flags of `mb-dump`, `mb-apply` and `mb-oplog-range`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConnectArgs {
    /// MongoDB connection string (mongodb:// or mongodb+srv://). Put the
    /// password in $MB_MONGO_PASSWORD or --password-file, not here.
    #[arg(long, env = "MB_MONGO_URI", hide_env_values = true, value_name = "URI")]
    pub uri: Option<String>,
    /// Config file with db_host, db_port, db_user, db_passwd (used when --uri is not given).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Read the password from the first line of FILE.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Seconds to wait for a reachable server before giving up.
    #[arg(long, default_value_t = 20, value_name = "SECS")]
    pub connect_timeout: u64,
    /// Which replica set member a run reads from: primary, primaryPreferred,
    /// secondary, secondaryPreferred or nearest (config: read_preference;
    /// default: the URI's, else primary).
    #[arg(long, value_name = "MODE", value_parser = parse_mode)]
    pub read_preference: Option<String>,
    /// Seconds to wait for a member that has not yet applied the oplog
    /// through the point a run needs (config: max_lag_seconds; default 60).
    #[arg(long, value_name = "SECS")]
    pub max_lag: Option<u64>,
}

/// Seconds a run waits for a lagging member when neither flag nor config says.
const DEFAULT_MAX_LAG_SECS: u64 = 60;

/// A connected client and a description of the source without credentials.
pub struct Connection {
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
    pub async fn shutdown(self) {
        self.client.shutdown().await;
    }

    /// Waits until the member has applied the oplog through `point` (named
    /// `what` in messages), up to the lag bound; then fails naming the member
    /// and how far behind it is. A standalone or mongos has nothing to wait for.
    pub async fn wait_applied(&self, point: Ts, what: &str) -> Result<()> {
        match &self.member {
            Some(host) => member::wait_applied(&self.client, host, point, what, self.max_lag).await,
            None => Ok(()),
        }
    }

    /// Runs `work` with this connection, then shuts it down whatever the outcome.
    pub async fn run<T>(self, work: impl AsyncFnOnce(&Connection) -> Result<T>) -> Result<T> {
        let result = work(&self).await;
        self.shutdown().await;
        result
    }
}

impl ConnectArgs {
    /// Connects to the primary, whatever the read preference: a restore writes.
    pub async fn connect_to_write(&self, app: &str) -> Result<Connection> {
        self.connect_for(app, Need { writable: true, ..Need::default() }).await
    }

    /// Builds client options from the flags, env and config, picks the one
    /// member this run reads from (read preference, and having applied
    /// through `need`), and connects to it directly.
    pub async fn connect_for(&self, app: &str, need: Need) -> Result<Connection> {
        let config = crate::settings::config::load_optional(self.config.as_deref())?;
        let (uri, config_user) = match (&self.uri, &config) {
            (Some(uri), _) => (uri.clone(), None),
            (None, Some(config)) => (uri_from_config(config)?, config.get("db_user").map(str::to_string)),
            (None, None) => {
                return Err(crate::cli::usage("no server given: pass --uri, set MB_MONGO_URI, or pass --config"))
            }
        };
        let mut options = ClientOptions::parse(&uri).await.context("parsing the MongoDB URI")?;
        options.app_name = Some(app.to_string());
        options.server_selection_timeout = Some(Duration::from_secs(self.connect_timeout));
        options.connect_timeout = Some(Duration::from_secs(self.connect_timeout.min(10)));
        let mode = self.read_preference.as_deref().or_else(|| config.as_ref().and_then(|c| c.get("read_preference")));
        if let Some(mode) = mode {
            options.selection_criteria = Some(SelectionCriteria::ReadPreference(read_preference(mode)?));
        }
        let max_lag = match (self.max_lag, config.as_ref().and_then(|c| c.get("max_lag_seconds"))) {
            (Some(secs), _) => secs,
            (None, Some(text)) => {
                text.parse().with_context(|| format!("config key max_lag_seconds: {text:?} is not a number"))?
            }
            (None, None) => DEFAULT_MAX_LAG_SECS,
        };

        let password = self.password(config.as_ref())?;
        let user = config_user.or_else(|| options.credential.as_ref().and_then(|c| c.username.clone()));
        if let Some(user) = user {
            let mut credential = options.credential.take().unwrap_or_default();
            credential.username = Some(user);
            if password.is_some() {
                credential.password = password;
            }
            if credential.source.is_none() {
                credential.source = Some("admin".into());
            }
            options.credential = Some(credential);
        } else if password.is_some() {
            bail!("a password was given but no user: put the user in the URI or db_user");
        }
        if let Some(Credential { username: Some(_), password: None, mechanism: None, .. }) = &options.credential {
            bail!("a user was given but no password: set MB_MONGO_PASSWORD, --password-file or db_passwd");
        }

        let hosts = options.hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(",");
        let max_lag = Duration::from_secs(max_lag);
        let (client, member) =
            member::pin(options, need, max_lag).await.map_err(|err| explain_connect_error(err, &hosts))?;
        Ok(Connection { client, hosts, member, max_lag })
    }

    fn password(&self, config: Option<&Config>) -> Result<Option<String>> {
        if let Some(path) = &self.password_file {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading password file {}", path.display()))?;
            return Ok(Some(text.lines().next().unwrap_or("").to_string()));
        }
        // An empty variable (`MB_MONGO_PASSWORD=` in a cron line) is unset, not an empty password.
        if let Some(password) = std::env::var("MB_MONGO_PASSWORD").ok().filter(|p| !p.is_empty()) {
            return Ok(Some(password));
        }
        Ok(config.and_then(|c| c.get("db_passwd")).map(str::to_string))
    }
}

/// The read preference modes a user may name (as in a URI's `readPreference`).
const MODES: [&str; 5] = ["primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest"];

fn parse_mode(text: &str) -> Result<String, String> {
    read_preference(text).map(|_| text.to_string()).map_err(|e| e.to_string())
}

/// A read preference from its mode's name (case-insensitive).
fn read_preference(mode: &str) -> Result<ReadPreference> {
    let options = None;
    Ok(match MODES.iter().find(|m| m.eq_ignore_ascii_case(mode.trim())).copied() {
        Some("primary") => ReadPreference::Primary,
        Some("primaryPreferred") => ReadPreference::PrimaryPreferred { options },
        Some("secondary") => ReadPreference::Secondary { options },
        Some("secondaryPreferred") => ReadPreference::SecondaryPreferred { options },
        Some("nearest") => ReadPreference::Nearest { options },
        _ => bail!("bad read preference {mode:?}: use one of {}", MODES.join(", ")),
    })
}

/// Adds what the driver's message does not say to connection failures.
fn explain_connect_error(err: anyhow::Error, hosts: &str) -> anyhow::Error {
    let text = format!("{err:#}");
    if text.contains("close_notify") || text.contains("CertificateRequired") || text.contains("certificate required") {
        // rustls reports a server that wants a client certificate as a closed connection.
        return err.context(format!(
            "connecting to {hosts}: the server closed the TLS connection; if it requires a client certificate, \
             add tlsCertificateKeyFile=PATH to the URI"
        ));
    }
    err
}

fn uri_from_config(config: &Config) -> Result<String> {
    let host = config.require("db_host")?;
    let port = config.get("db_port").unwrap_or("27017");
    let hosts = host
        .split(',')
        .map(|h| if h.contains(':') { h.trim().to_string() } else { format!("{}:{port}", h.trim()) })
        .collect::<Vec<_>>()
        .join(",");
    // One host and no read preference: that server itself, as `mongodump
    // --host` reads it (the seed's advice, "use a secondary's address").
    if !hosts.contains(',') && config.get("read_preference").is_none() {
        return Ok(format!("mongodb://{hosts}/?directConnection=true"));
    }
    Ok(format!("mongodb://{hosts}/"))
}

/// What kind of server we talk to.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// The replica set name, if it is one.
    pub set_name: Option<String>,
}

/// Asks the server whether it is a replica set member.
pub async fn server_info(client: &Client) -> Result<ServerInfo> {
    let hello = client.database("admin").run_command(doc! {"hello": 1}).await.context("asking the server `hello`")?;
    Ok(ServerInfo { set_name: hello.get_str("setName").ok().map(str::to_string) })
}

/// Databases other than `local` and `config` (and `admin` unless asked).
pub async fn user_databases(client: &Client, with_admin: bool) -> Result<Vec<String>> {
    let names = client.list_database_names().await.context("listing databases")?;
    Ok(names.into_iter().filter(|n| n != "local" && n != "config" && (with_admin || n != "admin")).collect())
}

/// Runs a cursor-returning command and collects all batches (small results only).
pub async fn cursor_command(db: &mongodb::Database, command: Document) -> Result<Vec<Document>> {
    use futures_util::TryStreamExt;
    let cursor = db.run_cursor_command(command).await?;
    Ok(cursor.try_collect().await?)
}

/// A point in time for humans: `t,i (2026-11-24T03:15:00Z)`.
pub fn describe_ts(ts: Ts) -> String {
    format!("{ts} ({})", crate::format::records::format_rfc3339(i64::from(ts.t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_preference_modes_are_named_as_in_uris() {
        assert_eq!(read_preference("secondary").unwrap(), ReadPreference::Secondary { options: None });
        assert_eq!(
            read_preference("SecondaryPreferred").unwrap(),
            ReadPreference::SecondaryPreferred { options: None }
        );
        assert_eq!(read_preference("primary").unwrap(), ReadPreference::Primary);
        let err = read_preference("secondaries").unwrap_err().to_string();
        assert!(err.contains("nearest"), "{err}");
    }

    #[test]
    fn a_tls_close_without_notify_gets_a_client_certificate_hint() {
        let err = anyhow::anyhow!("peer closed connection without sending TLS close_notify");
        let text = format!("{:#}", explain_connect_error(err, "db:27017"));
        assert!(text.contains("tlsCertificateKeyFile"), "{text}");
        let other = format!("{:#}", explain_connect_error(anyhow::anyhow!("connection refused"), "db:27017"));
        assert_eq!(other, "connection refused");
    }

    #[test]
    fn points_show_as_utc_too() {
        assert_eq!(describe_ts(Ts::new(1_795_000_000, 7)), "1795000000,7 (2026-11-18T11:06:40Z)");
    }
}
