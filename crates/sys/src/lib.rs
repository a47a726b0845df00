//! The only crate of crust that may make raw system calls: namespaces, mounts, pidfds, fork,
//! signals. Every `unsafe` block carries a `// SAFETY:` comment; safe wrappers from `rustix` are
//! used wherever they exist and raw `libc` only where they do not (fork, signal masks, signalfd,
//! `waitid(P_ALL, WNOWAIT)`, `close_range`). Also the
//! descriptor plumbing of a child's stdio: pipes, non-blocking mode, `SCM_RIGHTS`.
//!
//! All functions return [`Error`], which names the operation and, where there is one, the path.
#![allow(unsafe_code)]

mod abi;
mod error;
mod fd;
pub mod init;
mod mount;
mod ns;
mod pidfd;
mod process;
mod signal;

pub use abi::x32_syscalls;
pub use error::Error;
pub use fd::{is_would_block, pipe, recv_fd, set_nonblocking};
pub use mount::{bind_mount, mount_tmpfs, mount_tmpfs_with_flags, unmount_detach, MountFlags};
pub use ns::{setns, setns_path, unshare, Namespace};
pub use pidfd::{peek_exited_child, reap, reap_any, ExitStatus, PidFd};
pub use process::{
    close_inherited_fds, fork, redirect_stdio_to_null, set_child_subreaper,
    set_parent_death_signal, set_process_name, sethostname, setsid, thread_count, Fork,
};
pub use rustix::process::Signal;
pub use signal::{block_signals, unblock_signals, wait_signal, SignalFd};
