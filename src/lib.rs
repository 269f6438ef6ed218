//! mb: MongoDB backups to Alibaba Cloud OSS, as small Unix filters.
//!
//! Six binaries (`src/bin/mb-*.rs`) each run one step of a backup or restore
//! and pass tar streams and JSON records over stdin/stdout. This crate is the
//! library they share; `docs/FORMAT.md` specifies what flows between them.

pub mod cli;
pub mod crc64;
pub mod record;
pub mod config;
