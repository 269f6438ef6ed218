//! Alibaba Cloud OSS: V1 signing, the HTTP client, retries, part sizes.
//!
//! [`client::Client`] speaks the OSS API; [`crate::store::oss::OssStore`]
//! wraps it as a [`crate::store::Store`]. Credentials come from flags, env or
//! the config file (see [`crate::store::StoreArgs`]); the secret is never
//! taken from a flag and never printed.

pub mod client;
pub mod error;
pub mod parts;
pub mod retry;
pub mod sign;

pub use client::{Client, Endpoint};
pub use error::OssError;
pub use parts::PartSchedule;
pub use retry::RetryPolicy;
pub use sign::Credentials;
