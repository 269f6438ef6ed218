//! mb-dump: a database or an oplog slice to a tar stream (see `mb::stages::dump`).

fn main() -> std::process::ExitCode {
    mb::cli::malloc::tune_for_large_buffers();
    mb::cli::main("mb-dump", mb::stages::dump::run)
}
