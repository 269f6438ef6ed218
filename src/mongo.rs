//! Connecting to MongoDB: the `--uri` / `--config` / password flags every
//! stage that talks to a server shares, and small server queries.
//!
//! The password never has to be on the command line: it may come from the
//! config file (`db_passwd`), `$MB_MONGO_PASSWORD`, or `--password-file`.
//! Nothing here logs a URI with its credentials.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use mongodb::bson::{doc, Document};
use mongodb::options::{ClientOptions, Credential};
use mongodb::Client;

use crate::config::Config;

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
}

/// A connected client and a description of the source without credentials.
pub struct Connection {
    /// The driver client.
    pub client: Client,
    /// Host list for records and logs (no user, no password).
    pub hosts: String,
}

impl ConnectArgs {
    /// Builds client options from the flags, env and config, then pings the server.
    pub async fn connect(&self, app: &str) -> Result<Connection> {
        let config = crate::config::load_optional(self.config.as_deref())?;
        let (uri, config_user) = match (&self.uri, &config) {
            (Some(uri), _) => (uri.clone(), None),
            (None, Some(config)) => (uri_from_config(config)?, config.get("db_user").map(str::to_string)),
            (None, None) => {
                return Err(crate::cli::Failure {
                    code: crate::cli::EXIT_USAGE,
                    message: "no server given: pass --uri, set MB_MONGO_URI, or pass --config".into(),
                }
                .into())
            }
        };
        let mut options = ClientOptions::parse(&uri).await.context("parsing the MongoDB URI")?;
        options.app_name = Some(app.to_string());
        options.server_selection_timeout = Some(Duration::from_secs(self.connect_timeout));
        options.connect_timeout = Some(Duration::from_secs(self.connect_timeout.min(10)));

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
        let client = Client::with_options(options).context("creating the MongoDB client")?;
        client
            .database("admin")
            .run_command(doc! {"ping": 1})
            .await
            .with_context(|| format!("connecting to {hosts}"))?;
        Ok(Connection { client, hosts })
    }

    fn password(&self, config: Option<&Config>) -> Result<Option<String>> {
        if let Some(path) = &self.password_file {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading password file {}", path.display()))?;
            return Ok(Some(text.lines().next().unwrap_or("").to_string()));
        }
        if let Ok(password) = std::env::var("MB_MONGO_PASSWORD") {
            return Ok(Some(password));
        }
        Ok(config.and_then(|c| c.get("db_passwd")).map(str::to_string))
    }
}

fn uri_from_config(config: &Config) -> Result<String> {
    let host = config.require("db_host")?;
    let port = config.get("db_port").unwrap_or("27017");
    let hosts = host
        .split(',')
        .map(|h| if h.contains(':') { h.trim().to_string() } else { format!("{}:{port}", h.trim()) })
        .collect::<Vec<_>>()
        .join(",");
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
