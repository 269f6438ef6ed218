//! mb-dump: a database or an oplog slice to a tar stream (see `mb::dump`).

fn main() -> std::process::ExitCode {
    mb::cli::main("mb-dump", mb::dump::run)
}
