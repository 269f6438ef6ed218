//! mb-oss-put: store stdin as one object on OSS, verified by CRC-64 (see `mb::stages::oss_put`).
fn main() -> std::process::ExitCode {
    mb::cli::main("mb-oss-put", mb::stages::oss_put::run)
}
