//! mb-pack: gzip-compress stdin to stdout on all cores, or decompress with -d (see `mb::pack`).
fn main() -> std::process::ExitCode {
    mb::cli::main("mb-pack", mb::pack::run)
}
