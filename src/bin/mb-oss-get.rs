//! mb-oss-get: read an object from OSS to stdout, verified by CRC-64 (see `mb::stages::oss_get`).
fn main() -> std::process::ExitCode {
    mb::cli::main("mb-oss-get", mb::stages::oss_get::run)
}
