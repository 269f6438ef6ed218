//! mb-apply: a tar stream into a MongoDB (see `mb::apply`).

fn main() -> std::process::ExitCode {
    mb::cli::main("mb-apply", mb::apply::run)
}
