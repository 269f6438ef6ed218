//! mb-oss-rm: delete objects under a prefix (see `mb::stages::oss_rm`).

fn main() -> std::process::ExitCode {
    mb::cli::main("mb-oss-rm", mb::stages::oss_rm::run)
}
