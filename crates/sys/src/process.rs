//! Process-wide settings: fork, sessions, subreaping, hostname, names, stdio.

use std::{ffi::CString, fs::File, io, os::fd::AsFd, path::Path};

use rustix::process::{Pid, Signal};

use crate::error::{os, Error};

/// Which side of a [`fork`] we are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fork {
    /// The original process; `child` is the new process's pid.
    Parent { child: i32 },
    /// The new process.
    Child,
}

/// The number of threads of the calling process, from `/proc/self/task`.
pub fn thread_count() -> Result<usize, Error> {
    let dir = Path::new("/proc/self/task");
    let entries = std::fs::read_dir(dir).map_err(|e| Error::path("listing", dir, e))?;
    Ok(entries.count())
}

/// `fork(2)`, allowed only while the process has a single thread.
///
/// After fork the child has only the thread that called it; any lock another thread held (in
/// the allocator, in stdio, in a runtime) would stay locked forever in the child. So this
/// refuses (with `EBUSY`) when the process has more than one thread: fork before starting any
/// thread or async runtime. With one thread the child is a plain copy and may do anything.
pub fn fork() -> Result<Fork, Error> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(Error::call(
            "forking",
            format!("a process with {threads} threads"),
            io::Error::from_raw_os_error(libc::EBUSY),
        ));
    }
    // SAFETY: the process has exactly one thread (checked just above, and nothing in this call
    // path starts one), so no lock can be held by a thread that will not exist in the child; the
    // child continues as an ordinary copy of this single-threaded process.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(Error::call("forking", "", io::Error::last_os_error())),
        0 => Ok(Fork::Child),
        child => Ok(Fork::Parent { child }),
    }
}

/// `setsid(2)`: a new session and process group led by the caller, with no controlling
/// terminal, so signals sent to the old session or group (a terminal's ^C, a shell's job
/// control) no longer reach it. Fails for a process group leader.
pub fn setsid() -> Result<i32, Error> {
    rustix::process::setsid()
        .map(Pid::as_raw_nonzero)
        .map(|p| p.get())
        .map_err(|e| Error::call("creating a new session", "", os(e)))
}

/// `prctl(PR_SET_CHILD_SUBREAPER, 1)`: orphaned descendants are reparented to the caller
/// instead of to init, so it can reap them and learn their exit status.
pub fn set_child_subreaper() -> Result<(), Error> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .map_err(|e| Error::call("becoming a child subreaper", "", os(e)))
}

/// `prctl(PR_SET_PDEATHSIG, signal)`: the caller gets `signal` when the thread that created
/// it exits. Cleared in children; kept across execve of non-setuid programs.
pub fn set_parent_death_signal(signal: Signal) -> Result<(), Error> {
    rustix::process::set_parent_process_death_signal(Some(signal)).map_err(|e| {
        Error::call(
            "setting the parent death signal",
            signal.as_raw().to_string(),
            os(e),
        )
    })
}

/// `prctl(PR_SET_NAME)`: the name `ps` and `/proc/PID/comm` show (truncated to 15 bytes).
pub fn set_process_name(name: &str) -> Result<(), Error> {
    let c = CString::new(name).map_err(|_| {
        Error::call(
            "setting the process name",
            name,
            io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"),
        )
    })?;
    rustix::thread::set_name(&c).map_err(|e| Error::call("setting the process name", name, os(e)))
}

/// `sethostname(2)` in the caller's uts namespace.
pub fn sethostname(name: &str) -> Result<(), Error> {
    rustix::system::sethostname(name.as_bytes())
        .map_err(|e| Error::call("setting the hostname to", format!("{name:?}"), os(e)))
}

/// Points stdin, stdout and stderr at `/dev/null`.
pub fn redirect_stdio_to_null() -> Result<(), Error> {
    let path = Path::new("/dev/null");
    let null = File::options()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::path("opening", path, e))?;
    let dup =
        |r: rustix::io::Result<()>| r.map_err(|e| Error::path("redirecting stdio to", path, os(e)));
    dup(rustix::stdio::dup2_stdin(null.as_fd()))?;
    dup(rustix::stdio::dup2_stdout(null.as_fd()))?;
    dup(rustix::stdio::dup2_stderr(null.as_fd()))?;
    Ok(())
}

/// Closes every descriptor above stderr that the process inherited (a daemon must not keep its
/// starter's pipes or sockets open: someone may wait for their end).
///
/// Call it first thing in `main`, before anything of the program's own opens a descriptor: it
/// closes whatever is open, and an `OwnedFd` of ours closed under it would be an I/O-safety
/// bug. The Rust runtime holds no descriptor when `main` starts.
pub fn close_inherited_fds() {
    // SAFETY: by this function's contract it runs before the program created any object that
    // owns a descriptor, so every descriptor closed here is an inherited one nothing refers to.
    unsafe { close_fds_from(3) }
}

/// `close_range(first, ~0)`: closes every descriptor from `first` on.
///
/// # Safety
///
/// Closes descriptors that `OwnedFd`s, `File`s and the like may still own; the caller must
/// never use (or drop) any of those again, as [`crate::init::run_pod_init`] does by not
/// returning.
pub(crate) unsafe fn close_fds_from(first: u32) {
    // SAFETY: close_range only closes descriptors; the caller guarantees nothing owning them is
    // used afterwards. Its result is ignored: a kernel without it leaves fds open, no worse.
    unsafe {
        libc::close_range(first, u32::MAX, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_count_sees_threads() {
        assert!(thread_count().unwrap() >= 1);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv().ok());
        // This thread and the one just started, at least.
        assert!(thread_count().unwrap() >= 2);
        drop(tx);
        t.join().unwrap();
    }

    #[test]
    fn fork_refuses_in_a_multithreaded_process() {
        // The test harness runs tests on threads besides main: this process has several.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv().ok());
        let err = fork().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBUSY));
        assert!(err.to_string().contains("threads"), "{err}");
        drop(tx);
        t.join().unwrap();
    }

    #[test]
    fn sethostname_rejects_too_long_names() {
        // 65 bytes is over HOST_NAME_MAX: EINVAL (or EPERM when not root), never a change.
        let name = "a".repeat(65);
        let err = sethostname(&name).unwrap_err();
        assert!(matches!(
            err.raw_os_error(),
            Some(libc::EINVAL) | Some(libc::EPERM)
        ));
    }
}
