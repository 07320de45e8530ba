//! The `outpost` binary: everything lives in the library's [`outpost::cli`].

fn main() {
    std::process::exit(outpost::cli::main());
}
