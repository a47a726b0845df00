//! Signal masks, signalfd and sigwait: signals taken synchronously, never in a handler.

use std::{
    io,
    mem::MaybeUninit,
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd},
};

use rustix::process::Signal;

use crate::error::{os, Error};

fn names(signals: &[Signal]) -> String {
    let numbers: Vec<String> = signals.iter().map(|s| s.as_raw().to_string()).collect();
    numbers.join(",")
}

/// A `sigset_t` holding exactly `signals`.
fn sigset(signals: &[Signal]) -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initializes the whole set it is given a valid pointer to; it cannot
    // fail for a valid pointer.
    let mut set = unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        set.assume_init()
    };
    for signal in signals {
        // SAFETY: `set` is an initialized sigset_t; `Signal` only holds valid signal numbers, so
        // sigaddset cannot fail.
        unsafe {
            libc::sigaddset(&mut set, signal.as_raw());
        }
    }
    set
}

fn sigmask(how: libc::c_int, signals: &[Signal], op: &'static str) -> Result<(), Error> {
    let set = sigset(signals);
    // SAFETY: `set` is a valid sigset_t for the duration of the call; the old mask is not asked
    // for (null).
    let r = unsafe { libc::pthread_sigmask(how, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(Error::call(
            op,
            names(signals),
            io::Error::from_raw_os_error(r),
        ));
    }
    Ok(())
}

/// Blocks `signals` for the calling thread (and so for the whole process while it has one
/// thread, and for children forked afterwards, which inherit the mask). A blocked signal stays
/// pending until taken by a [`SignalFd`] or [`wait_signal`].
pub fn block_signals(signals: &[Signal]) -> Result<(), Error> {
    sigmask(libc::SIG_BLOCK, signals, "blocking signals")
}

/// Unblocks `signals` for the calling thread.
pub fn unblock_signals(signals: &[Signal]) -> Result<(), Error> {
    sigmask(libc::SIG_UNBLOCK, signals, "unblocking signals")
}

/// Waits for one of `signals`, which must be blocked, and returns its number
/// (`sigwaitinfo(2)`, retried on `EINTR`).
pub fn wait_signal(signals: &[Signal]) -> Result<i32, Error> {
    let set = sigset(signals);
    loop {
        // SAFETY: `set` is a valid sigset_t; a null siginfo pointer is allowed and means the
        // caller does not want the details.
        let r = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
        if r >= 0 {
            return Ok(r);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(Error::call("waiting for signals", names(signals), e));
        }
    }
}

/// A non-blocking, close-on-exec signalfd: the given (blocked) signals become readable data,
/// so a poll(2) loop can take them along with its other descriptors.
#[derive(Debug)]
pub struct SignalFd {
    fd: OwnedFd,
}

/// The size of `struct signalfd_siginfo`, the unit a signalfd is read in.
const SIGINFO_SIZE: usize = 128;

impl SignalFd {
    /// Creates a signalfd for `signals`. Block them first ([`block_signals`]), or they are
    /// delivered the ordinary way and never show up here.
    pub fn new(signals: &[Signal]) -> Result<Self, Error> {
        let set = sigset(signals);
        // SAFETY: `set` is a valid sigset_t; -1 asks for a new descriptor, which we own from
        // here on.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(Error::call(
                "creating a signalfd for signals",
                names(signals),
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: signalfd returned a new, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(SignalFd { fd })
    }

    /// Takes one pending signal: its number, or `None` when none is pending.
    pub fn read(&self) -> Result<Option<i32>, Error> {
        let mut buf = [0u8; SIGINFO_SIZE];
        loop {
            match rustix::io::read(&self.fd, &mut buf) {
                Ok(n) if n >= 4 => {
                    // ssi_signo is the first field, a native-endian u32.
                    let signo = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
                    return Ok(Some(signo as i32));
                }
                Ok(_) => return Ok(None),
                Err(rustix::io::Errno::AGAIN) => return Ok(None),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::call("reading the signalfd", "", os(e))),
            }
        }
    }

    /// Takes every pending signal; returns how many there were.
    pub fn drain(&self) -> Result<usize, Error> {
        let mut n = 0;
        while self.read()?.is_some() {
            n += 1;
        }
        Ok(n)
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for SignalFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signalfd_takes_a_blocked_signal() {
        // The mask is per thread: block, raise and read on one fresh thread so the test
        // harness's other threads are not affected (and cannot take the signal).
        std::thread::spawn(|| {
            block_signals(&[Signal::USR2]).unwrap();
            let sfd = SignalFd::new(&[Signal::USR2]).unwrap();
            assert_eq!(sfd.read().unwrap(), None);
            let tid = rustix::thread::gettid();
            // SAFETY: tgkill to our own thread with a signal that is blocked here.
            unsafe {
                libc::syscall(
                    libc::SYS_tgkill,
                    libc::getpid(),
                    tid.as_raw_nonzero().get(),
                    libc::SIGUSR2,
                );
            }
            assert_eq!(sfd.read().unwrap(), Some(libc::SIGUSR2));
            assert_eq!(sfd.drain().unwrap(), 0);
            unblock_signals(&[Signal::USR2]).unwrap();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn wait_signal_returns_the_signal() {
        std::thread::spawn(|| {
            block_signals(&[Signal::USR1]).unwrap();
            let tid = rustix::thread::gettid();
            // SAFETY: tgkill to our own thread with a signal that is blocked here.
            unsafe {
                libc::syscall(
                    libc::SYS_tgkill,
                    libc::getpid(),
                    tid.as_raw_nonzero().get(),
                    libc::SIGUSR1,
                );
            }
            assert_eq!(wait_signal(&[Signal::USR1]).unwrap(), libc::SIGUSR1);
        })
        .join()
        .unwrap();
    }
}
