//! The monitor process itself (the `crust-monitor` binary's body).
//!
//! ```text
//! crustd ──spawn──> P1 ──fork──> P2 (setsid, subreaper) ──fork──> pod init (pid 1 of the pod)
//!                   │            │ unshare net/ipc/uts, hostname, pin ns, sysctls,
//!                   │            │ socket, pid file, readiness line on stdout
//!                   └ exits 0 once P2 reported (sync pipe); 1 if P2 died first
//! ```
//!
//! P1 forks before anything else, while it has one thread. P2 starts a new session so crustd
//! (its terminal, its process group, its death) cannot reach it, becomes child subreaper so
//! orphans of the pod's host-namespace processes come back to it, and then serves a poll(2)
//! loop on one thread: no async runtime, to stay small (see `serve.rs`). Containers are
//! created through the OCI runtime with stdio the monitor owns; their output goes to CRI log
//! files and their exits to exit files and events (`container.rs`, `log.rs`); attach sessions
//! take a copy of their output and give them stdin (`attach.rs`).

mod attach;
mod container;
pub mod log;
mod serve;
mod setup;
pub mod sysctl;

use std::{io::Write, os::fd::OwnedFd};

use crust_sys::{Fork, PidFd};
use rustix::pipe::PipeFlags;

use crate::{
    options::{Args, Command, USAGE},
    protocol,
};

/// Runs the monitor with the process's arguments; returns the exit code for P1 (P2 never
/// returns here: it exits on shutdown).
pub fn main() -> i32 {
    let args = match Args::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => {
            print!("{USAGE}");
            return 0;
        }
        Ok(Command::Version) => {
            println!("crust-monitor {}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        Err(e) => {
            report(&protocol::error_line(&e));
            return 2;
        }
    };
    let (sync_r, sync_w) = match rustix::pipe::pipe_with(PipeFlags::CLOEXEC) {
        Ok(pipe) => pipe,
        Err(e) => {
            report(&protocol::error_line(&format!("creating a pipe: {e}")));
            return 1;
        }
    };
    match crust_sys::fork() {
        Err(e) => {
            report(&protocol::error_line(&e.to_string()));
            1
        }
        Ok(Fork::Parent { child }) => {
            drop(sync_w);
            wait_for_report(sync_r, child)
        }
        Ok(Fork::Child) => {
            drop(sync_r);
            std::process::exit(setup::run(args, sync_w))
        }
    }
}

/// P1: waits for P2's one byte on the sync pipe (it reported readiness); if the pipe closes
/// without it, P2 failed (it reported the error and exited): reap it and fail.
fn wait_for_report(sync_r: OwnedFd, child: i32) -> i32 {
    let pidfd = PidFd::open(child);
    let mut byte = [0u8; 1];
    loop {
        match rustix::io::read(&sync_r, &mut byte) {
            Ok(1) => return 0,
            Err(rustix::io::Errno::INTR) => continue,
            _ => break,
        }
    }
    if let Ok(pidfd) = pidfd {
        let _ = pidfd.wait();
    }
    1
}

/// Writes a line on stdout (the readiness pipe), flushing it.
fn report(line: &[u8]) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(line).and_then(|()| out.flush()).is_ok()
}
