//! The chain: how a prefix of the store holds cycles of backups, and what
//! they can restore. One room owns all of it:
//!
//! - [`layout`]: the object keys (build and parse), markers, head records;
//! - [`marker`]: the commit marker and head records' contents;
//! - [`checkpoint`]: the checkpoint file (read, and the state after a commit);
//! - [`catalog`]: the committed objects of each cycle, in order, with their
//!   windows and holes, from a listing and the markers alone;
//! - [`plan`]: which cycle and objects restore a point, and the checks that
//!   refuse a restore before anything is written;
//! - [`report`]: the catalog as text lines and `mb-cycle/1` JSON records;
//! - [`retention`]: what a prune deletes.
//!
//! It uses the store, the formats and the age codec; the stages and scripts
//! reach it through `mb-config chain ...`, `mb-oplog-range` and `mb-oss-rm`.

pub mod catalog;
pub mod checkpoint;
pub mod layout;
pub mod marker;
pub mod plan;
pub mod report;
pub mod retention;
