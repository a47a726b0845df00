//! `crust-monitor`: one per pod. See [`crust_monitor::server`].
//!
//! The binary uses only the library's `server`, `options` and `protocol` modules, none of which
//! touches tokio: the `client` feature's code is not linked in (no tokio symbol ends up in the
//! binary), and the process stays single-threaded, which `fork` requires.

fn main() {
    // A daemon keeps none of its starter's descriptors (stdio aside, which it replaces later).
    crust_sys::close_inherited_fds();
    std::process::exit(crust_monitor::server::main());
}
