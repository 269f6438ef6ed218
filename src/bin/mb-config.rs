//! mb-config: config values and record fields for the scripts (see `mb::stages::config`).

fn main() -> std::process::ExitCode {
    mb::cli::main("mb-config", mb::stages::config::run)
}
