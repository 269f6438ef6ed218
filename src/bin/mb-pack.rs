//! mb-pack: gzip-compress stdin to stdout on all cores, or decompress with -d (see `mb::stages::pack`).
fn main() -> std::process::ExitCode {
    mb::cli::main("mb-pack", mb::stages::pack::run)
}
