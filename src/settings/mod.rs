//! Settings: each stage's flags, environment and config file resolved once.
//!
//! A stage reads its config file once ([`config::load_optional`]) and hands
//! it to the resolvers here: [`mongo::ConnectArgs`] (the server),
//! [`store::StoreArgs`] (the bucket), [`databases`] (db_name). Precedence is
//! always flag, then environment, then config key, then default.

pub(crate) mod config;
pub(crate) mod mongo;
pub(crate) mod restore_target;
pub(crate) mod store;

/// The databases a run covers: `--db` values (repeated or comma-separated),
/// else the config's `db_name`; empty means every database. One rule for
/// every stage: names are trimmed and empty entries dropped.
pub(crate) fn databases(flags: &[String], config: Option<&config::Config>) -> Vec<String> {
    let databases = config::split_databases(&flags.join(","));
    if databases.is_empty() {
        return config.map(config::Config::databases).unwrap_or_default();
    }
    databases
}
