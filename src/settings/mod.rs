//! Settings: the config file, and the flags that fall back to it.

pub mod config;
pub mod store;
