//! mb: MongoDB backups to Alibaba Cloud OSS, as small Unix filters.
//!
//! Nine binaries (`src/bin/mb-*.rs`) each run one step of a backup or restore
//! and pass tar streams and JSON records over stdin/stdout. This crate is the
//! library they share; `docs/FORMAT.md` specifies what flows between them.

pub mod cli;
pub mod config;
pub mod crc64;
pub mod crypt;
pub mod dump;
pub mod mongo;
pub mod oplog;
pub mod record;
mod restore;
pub mod stream;

/// Parses a byte size such as `8MiB`, `100KiB`, `1G`, `512k` or `4096`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("bad size {text:?}: expected a number like 8MiB"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("bad size unit in {text:?}: use KiB, MiB, GiB or TiB")),
    };
    number.checked_mul(multiplier).ok_or_else(|| format!("size {text:?} is too large"))
}
pub mod apply;
pub mod ns;
pub mod oplog_range;
pub mod oss_get;
pub mod oss_put;
pub mod oss_rm;
pub mod pack;
pub mod prune;
pub mod store;
