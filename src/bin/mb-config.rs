//! mb-config: config values and record fields for the scripts (see `mb::config::stage`).

fn main() -> std::process::ExitCode {
    mb::cli::main("mb-config", mb::config::stage::run)
}
