//! mb-oplog-range: decide the next backup range; move the checkpoint (see `mb::stages::oplog_range`).

fn main() -> std::process::ExitCode {
    mb::cli::main("mb-oplog-range", mb::stages::oplog_range::run)
}
