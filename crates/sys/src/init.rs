//! The pod init: pid 1 of a pod's pid namespace.
//!
//! Orphans in a pid namespace are reparented to its pid 1, which must reap them or they stay
//! zombies. The pod init does only that: it blocks `SIGCHLD`, waits for it, and reaps every
//! exited child. It never execs, so it costs almost nothing beyond the pages it shares
//! copy-on-write with the process that forked it.

use rustix::process::Signal;

use crate::{
    pidfd::{reap_any, PidFd},
    process::{close_fds_from, redirect_stdio_to_null, set_parent_death_signal, set_process_name},
    signal::{block_signals, wait_signal},
};

/// The process name `ps` shows for a pod init.
pub const POD_INIT_NAME: &str = "crust-pod-init";

/// Runs the pod init loop in a freshly forked child; never returns.
///
/// `parent` is a pidfd of the process that forked us, opened before the fork. The init asks for
/// `SIGKILL` when its parent dies (so a pod whose monitor is gone does not linger; killing pid 1
/// of a pid namespace kills everything in it), and checks the pidfd once to close the race of a
/// parent that died before the request took effect. Then it points stdio at `/dev/null`, closes
/// every other inherited descriptor and loops: wait for `SIGCHLD`, reap all exited children.
///
/// Only call this in the child of a fork of a single-threaded process: it closes descriptors
/// that objects of the caller's own (never resumed) code own.
pub fn run_pod_init(parent: Option<PidFd>) -> ! {
    let _ = set_process_name(POD_INIT_NAME);
    let _ = set_parent_death_signal(Signal::KILL);
    if let Some(parent) = &parent {
        if parent.has_exited().unwrap_or(false) {
            std::process::exit(0);
        }
    }
    drop(parent);
    let _ = redirect_stdio_to_null();
    // SAFETY: this function never returns, so no object of the caller that owns one of these
    // descriptors is ever used or dropped again; the loop below owns no descriptor.
    unsafe { close_fds_from(3) };
    let _ = block_signals(&[Signal::CHILD]);
    loop {
        if wait_signal(&[Signal::CHILD]).is_err() {
            // Cannot happen with a valid mask; do not spin if it does.
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        while let Ok(Some(_)) = reap_any() {}
    }
}
