//! mb-oss-rm: delete objects under a prefix (see `mb::oss_rm`).

fn main() -> std::process::ExitCode {
    mb::cli::main("mb-oss-rm", mb::oss_rm::run)
}
