//! What flows between the stages, as `docs/FORMAT.md` specifies it: the JSON
//! records, the tar stream, and the times they carry.

pub mod block_index;
pub(crate) mod check;
pub mod records;
pub(crate) mod tar;
pub mod time;
