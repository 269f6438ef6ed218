//! mb: MongoDB backups to Alibaba Cloud OSS, as small Unix filters.
//!
//! Nine binaries (`src/bin/mb-*.rs`) each run one step of a backup or restore
//! and pass tar streams and JSON records over stdin/stdout. This crate is the
//! library they share; `docs/FORMAT.md` specifies what flows between them.
//!
//! The rooms, and the one way imports run between them:
//!
//! ```text
//! stages/    one file per binary: its usage text, its Args, a short run()
//!   |
//! settings/  flags + environment + config file, resolved once per stage
//!   |
//! chain/     the store's layout of cycles: keys, markers, checkpoint,
//!   |        catalog and windows, restore plans, retention
//! mongo/     the server side: connect, read, restore, replay the oplog
//! store/     objects: the Store trait; OSS, a local directory, memory
//! pack/      the codecs: zstd, gzip, age
//!   |
//! format/    what flows between stages: records, the tar stream, times
//!   |
//! cli/       the runner, exit codes, errors, logging, stdin/stdout
//! crc64.rs   CRC-64/XZ
//! ```

pub mod chain;
pub mod cli;
pub mod crc64;
pub mod format;
pub mod mongo;
pub mod pack;
pub(crate) mod settings;
pub mod stages;
pub mod store;
