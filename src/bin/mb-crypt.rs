//! mb-crypt: encrypt or decrypt a stream in the age format (see `mb::stages::crypt`).

fn main() -> std::process::ExitCode {
    mb::cli::main("mb-crypt", mb::stages::crypt::run)
}
