//! The stages: one module per binary in `src/bin/`. Each reads as its usage
//! text, its `Args` and a short `run`; the work is done in the rooms below.

pub mod apply;
pub mod config;
pub mod crypt;
pub mod dump;
pub mod oplog_range;
pub mod oss_get;
pub mod oss_put;
pub mod oss_rm;
pub mod pack;
