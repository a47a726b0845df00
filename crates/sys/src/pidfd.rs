//! Process file descriptors and reaping.
//!
//! A pidfd refers to one process for its whole life, so signalling or waiting through it can
//! never hit a recycled pid. It becomes readable (`POLLIN`) when the process exits, which makes
//! it a poll(2) source; `waitid(P_PIDFD)` reaps it when it is our child.
//!
//! A reaper that also collects unknown children (orphans reparented to a subreaper) must not
//! steal the status of a child it watches through a pidfd. [`peek_exited_child`] looks at the
//! next exited child without reaping it (`WNOWAIT`), so the caller can route it: [`PidFd::try_wait`]
//! for a watched one, [`reap`] for the others.

use std::{
    fmt, io,
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd},
    time::Duration,
};

use rustix::{
    event::{PollFd, PollFlags},
    process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions, WaitIdStatus, WaitOptions},
};

use crate::error::{os, Error};

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called `exit` with this code.
    Exited(i32),
    /// A signal killed it.
    Signaled(i32),
}

impl ExitStatus {
    /// The code a shell reports: the exit code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled(sig) => 128 + sig,
        }
    }

    /// The signal that killed the process, if one did.
    pub fn signal(self) -> Option<i32> {
        match self {
            ExitStatus::Exited(_) => None,
            ExitStatus::Signaled(sig) => Some(sig),
        }
    }

    fn from_waitid(status: &WaitIdStatus) -> Option<Self> {
        if let Some(code) = status.exit_status() {
            Some(ExitStatus::Exited(code))
        } else {
            status.terminating_signal().map(ExitStatus::Signaled)
        }
    }

    fn from_wait(status: rustix::process::WaitStatus) -> Option<Self> {
        if let Some(code) = status.exit_status() {
            Some(ExitStatus::Exited(code))
        } else {
            status.terminating_signal().map(ExitStatus::Signaled)
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exit code {code}"),
            ExitStatus::Signaled(sig) => write!(f, "killed by signal {sig}"),
        }
    }
}

fn pid_of(pid: i32) -> Result<Pid, Error> {
    Pid::from_raw(pid).ok_or_else(|| {
        Error::call(
            "using pid",
            pid.to_string(),
            io::Error::from_raw_os_error(libc::EINVAL),
        )
    })
}

/// A pidfd: a file descriptor referring to one process.
#[derive(Debug)]
pub struct PidFd {
    fd: OwnedFd,
    pid: i32,
}

impl PidFd {
    /// `pidfd_open(pid)`. To be sure the pidfd refers to the intended process, open it while
    /// the pid cannot be recycled: for our own child, before it can have been reaped.
    pub fn open(pid: i32) -> Result<Self, Error> {
        let fd = rustix::process::pidfd_open(pid_of(pid)?, PidfdFlags::empty())
            .map_err(|e| Error::call("opening a pidfd for pid", pid.to_string(), os(e)))?;
        Ok(PidFd { fd, pid })
    }

    /// The pid it was opened for (in the caller's pid namespace).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether the process has exited (it may not be reaped yet); never blocks.
    pub fn has_exited(&self) -> Result<bool, Error> {
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        loop {
            match rustix::event::poll(&mut fds, Some(&rustix::event::Timespec::default())) {
                Ok(n) => return Ok(n > 0 && !fds[0].revents().is_empty()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::call("polling the pidfd of", self.who(), os(e))),
            }
        }
    }

    /// Waits up to `timeout` for the process to exit; true if it did.
    pub fn wait_exit_timeout(&self, timeout: Duration) -> Result<bool, Error> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let ts = rustix::event::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: left.subsec_nanos() as i64,
            };
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(n) if n > 0 => return Ok(true),
                Ok(_) => return Ok(false),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::call("polling the pidfd of", self.who(), os(e))),
            }
        }
    }

    /// Reaps the process if it has exited (`waitid(P_PIDFD, WEXITED | WNOHANG)`); `None` while
    /// it runs. Only for our own children (`ECHILD` otherwise).
    pub fn try_wait(&self) -> Result<Option<ExitStatus>, Error> {
        self.waitid(WaitIdOptions::EXITED | WaitIdOptions::NOHANG)
    }

    /// Whether the process is a child of the caller (one `waitid` could reap), without
    /// reaping it (`waitid(P_PIDFD, WEXITED | WNOHANG | WNOWAIT)`).
    pub fn is_child(&self) -> Result<bool, Error> {
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        loop {
            match rustix::process::waitid(WaitId::PidFd(self.fd.as_fd()), options) {
                Ok(_) => return Ok(true),
                Err(rustix::io::Errno::CHILD) => return Ok(false),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::call("waiting for", self.who(), os(e))),
            }
        }
    }

    /// Blocks until the process exits and reaps it. Only for our own children.
    pub fn wait(&self) -> Result<ExitStatus, Error> {
        loop {
            if let Some(status) = self.waitid(WaitIdOptions::EXITED)? {
                return Ok(status);
            }
        }
    }

    fn waitid(&self, options: WaitIdOptions) -> Result<Option<ExitStatus>, Error> {
        loop {
            match rustix::process::waitid(WaitId::PidFd(self.fd.as_fd()), options) {
                Ok(Some(status)) => return Ok(ExitStatus::from_waitid(&status)),
                Ok(None) => return Ok(None),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::call("waiting for", self.who(), os(e))),
            }
        }
    }

    /// Sends `signal` to the process; succeeds quietly when it has already exited but is not
    /// reaped yet (`ESRCH` is reported as an error only by the kernel for reaped processes).
    pub fn send_signal(&self, signal: Signal) -> Result<(), Error> {
        rustix::process::pidfd_send_signal(&self.fd, signal)
            .map_err(|e| Error::call("signalling", self.who(), os(e)))
    }

    fn who(&self) -> String {
        format!("pid {}", self.pid)
    }
}

impl AsFd for PidFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for PidFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// The pid of an exited child of ours that is not reaped yet, without reaping it
/// (`waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT)`); `None` when there is none (or no child at
/// all). Calling it again before reaping that child returns the same pid.
pub fn peek_exited_child() -> Result<Option<i32>, Error> {
    loop {
        // SAFETY: siginfo_t is plain old data; all zeroes is a valid value and the one waitid(2)
        // asks for to tell "no child changed state" (si_pid stays 0) under WNOHANG.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable siginfo_t that outlives the call; P_ALL ignores
        // the id argument.
        let r = unsafe {
            libc::waitid(
                libc::P_ALL,
                0,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if r == -1 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => return Ok(None),
                _ => return Err(Error::call("looking for exited children", "", e)),
            }
        }
        // SAFETY: waitid succeeded, so the kernel filled `info` as a SIGCHLD siginfo (or left
        // it zeroed under WNOHANG), for which si_pid is the valid union member.
        let pid = unsafe { info.si_pid() };
        return Ok((pid != 0).then_some(pid));
    }
}

/// Reaps our child `pid` if it has exited (`waitpid(pid, WNOHANG)`); `None` while it runs.
pub fn reap(pid: i32) -> Result<Option<ExitStatus>, Error> {
    let p = pid_of(pid)?;
    loop {
        match rustix::process::waitpid(Some(p), WaitOptions::NOHANG) {
            Ok(Some((_, status))) => return Ok(ExitStatus::from_wait(status)),
            Ok(None) => return Ok(None),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::call("reaping", format!("pid {pid}"), os(e))),
        }
    }
}

/// Reaps any one exited child (`waitpid(-1, WNOHANG)`): its pid and status, or `None` when no
/// child has exited or there is no child. Do not use where some children are watched through
/// pidfds; see [`peek_exited_child`].
pub fn reap_any() -> Result<Option<(i32, Option<ExitStatus>)>, Error> {
    loop {
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some((pid, status))) => {
                return Ok(Some((
                    pid.as_raw_nonzero().get(),
                    ExitStatus::from_wait(status),
                )))
            }
            Ok(None) => return Ok(None),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::CHILD) => return Ok(None),
            Err(e) => return Err(Error::call("reaping children", "", os(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    #[allow(clippy::zombie_processes)] // reaped through the pidfd
    fn pidfd_sees_exit_and_reaps_with_status() {
        let child = Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
        let pidfd = PidFd::open(child.id() as i32).unwrap();
        assert!(pidfd.wait_exit_timeout(Duration::from_secs(10)).unwrap());
        assert!(pidfd.has_exited().unwrap());
        assert_eq!(pidfd.try_wait().unwrap(), Some(ExitStatus::Exited(7)));
        // Reaped: waiting again is ECHILD.
        assert_eq!(
            pidfd.try_wait().unwrap_err().raw_os_error(),
            Some(libc::ECHILD)
        );
        drop(child);
    }

    #[test]
    #[allow(clippy::zombie_processes)] // reaped through the pidfd
    fn pidfd_signal_and_running_state() {
        let child = Command::new("sleep").arg("100").spawn().unwrap();
        let pidfd = PidFd::open(child.id() as i32).unwrap();
        assert!(pidfd.is_child().unwrap());
        assert!(!pidfd.has_exited().unwrap());
        assert_eq!(pidfd.try_wait().unwrap(), None);
        pidfd.send_signal(Signal::KILL).unwrap();
        let status = pidfd.wait().unwrap();
        assert_eq!(status, ExitStatus::Signaled(9));
        assert_eq!(status.code(), 137);
        assert_eq!(status.signal(), Some(9));
        assert_eq!(status.to_string(), "killed by signal 9");
    }

    #[test]
    fn exit_status_codes() {
        assert_eq!(ExitStatus::Exited(3).code(), 3);
        assert_eq!(ExitStatus::Exited(3).signal(), None);
        assert_eq!(ExitStatus::Exited(3).to_string(), "exit code 3");
    }

    #[test]
    fn a_process_not_ours_is_not_a_child() {
        let parent =
            PidFd::open(rustix::process::getppid().unwrap().as_raw_nonzero().get()).unwrap();
        assert!(!parent.is_child().unwrap());
    }

    #[test]
    fn pidfd_open_of_nonexistent_pid_fails() {
        // pid_max is at most 2^22: this pid cannot exist.
        let err = PidFd::open(i32::MAX).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH), "{err}");
        assert!(PidFd::open(0).is_err());
    }
}
