//! The connection settings of `mb-dump`, `mb-apply` and `mb-oplog-range`:
//! `--uri` / `--config` / password flags, environment and config keys,
//! resolved into the driver's client options (`crate::mongo` connects).
//! The reading stages also take the read preference and lag bound
//! ([`ConnectArgs`]); the writing one does not ([`WriteArgs`]).
//!
//! The password never has to be on the command line: it may come from the
//! config file (`db_passwd`), `$MB_MONGO_PASSWORD`, or `--password-file`.
//! Nothing here logs a URI with its credentials.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use mongodb::options::{ClientOptions, Credential, ReadPreference, SelectionCriteria};

use crate::mongo::{Connection, Need};
use crate::settings::config::Config;

/// The flags naming the server, which every stage that connects takes.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct ServerArgs {
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
    /// Seconds to wait for a reachable server before giving up, naming it.
    #[arg(long, alias = "connect-timeout", default_value_t = 10, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub server_timeout: u64,
}

/// The connection flags of the stages that read (`mb-dump`,
/// `mb-oplog-range`): the server, and which member to read from.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct ConnectArgs {
    #[command(flatten)]
    server: ServerArgs,
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

/// The connection flags of the stage that writes (`mb-apply`): the server
/// only, as writes always go to the primary.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct WriteArgs {
    #[command(flatten)]
    server: ServerArgs,
}

impl std::ops::Deref for ConnectArgs {
    type Target = ServerArgs;

    fn deref(&self) -> &ServerArgs {
        &self.server
    }
}

impl std::ops::Deref for WriteArgs {
    type Target = ServerArgs;

    fn deref(&self) -> &ServerArgs {
        &self.server
    }
}

/// Seconds a run waits for a lagging member when neither flag nor config says.
const DEFAULT_MAX_LAG_SECS: u64 = 60;

impl WriteArgs {
    /// Connects to the primary: a restore writes.
    pub(crate) async fn connect_to_write(&self, app: &str, config: Option<&Config>) -> Result<Connection> {
        let options = self.server.client_options(app, config).await?;
        crate::mongo::connect(
            options,
            Need { writable: true, ..Need::default() },
            Duration::from_secs(DEFAULT_MAX_LAG_SECS),
        )
        .await
    }
}

impl ConnectArgs {
    /// Builds client options from the flags, env and config, picks the one
    /// member this run reads from (read preference, and having applied
    /// through `need`), and connects to it directly.
    pub(crate) async fn connect_for(&self, app: &str, need: Need, config: Option<&Config>) -> Result<Connection> {
        let mut options = self.server.client_options(app, config).await?;
        let mode = self.read_preference.as_deref().or_else(|| config.and_then(|c| c.get("read_preference")));
        if let Some(mode) = mode {
            options.selection_criteria = Some(SelectionCriteria::ReadPreference(read_preference(mode)?));
        }
        let max_lag = match (self.max_lag, config.and_then(|c| c.get("max_lag_seconds"))) {
            (Some(secs), _) => secs,
            (None, Some(text)) => {
                text.parse().with_context(|| format!("config key max_lag_seconds: {text:?} is not a number"))?
            }
            (None, None) => DEFAULT_MAX_LAG_SECS,
        };
        crate::mongo::connect(options, need, Duration::from_secs(max_lag)).await
    }
}

impl ServerArgs {
    /// The driver's options for the server the flags, env and config name,
    /// with the credentials and the --server-timeout bound.
    async fn client_options(&self, app: &str, config: Option<&Config>) -> Result<ClientOptions> {
        let (uri, config_user) = match (&self.uri, config) {
            (Some(uri), _) => (uri.clone(), None),
            (None, Some(config)) => (uri_from_config(config)?, config.get("db_user").map(str::to_string)),
            (None, None) => {
                return Err(crate::cli::usage("no server given: pass --uri, set MB_MONGO_URI, or pass --config"))
            }
        };
        let mut options = ClientOptions::parse(&uri).await.context("parsing the MongoDB URI")?;
        options.app_name = Some(app.to_string());
        options.server_selection_timeout = Some(Duration::from_secs(self.server_timeout));
        options.connect_timeout = Some(Duration::from_secs(self.server_timeout.min(10)));

        let password = self.password(config)?;
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
        Ok(options)
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
const MODES: [&str; 5] = crate::settings::config::READ_PREFERENCES;

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
}
