//! What every benchmark program needs around its own options and figures.

use std::ffi::OsString;

/// The process's arguments, program name first, without the `--bench` flag
/// that `cargo bench` passes to harness-less benches; for clap's
/// `Parser::parse_from`, so a bench's options need not declare it.
pub fn args() -> impl Iterator<Item = OsString> {
    std::env::args_os().filter(|arg| arg != "--bench")
}

/// Cores this process may run on (0 if unknown): every bench prints it, as
/// its figures depend on it.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}
