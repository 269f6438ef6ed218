//! mb-apply: a tar stream into a MongoDB (see `mb::stages::apply`).

fn main() -> std::process::ExitCode {
    mb::cli::main("mb-apply", mb::stages::apply::run)
}
