//! Which syscall ABIs the kernel serves.

/// Whether the kernel serves x32 syscalls (x86_64 only; `CONFIG_X86_X32_ABI` and the
/// `syscall.x32` boot switch): a getpid with the x32 bit set answers, or fails with ENOSYS.
/// `None` when it cannot be asked safely: on another architecture, or when crustd itself runs
/// under a seccomp filter (which could kill it for the probe).
pub fn x32_syscalls() -> Option<bool> {
    if !cfg!(target_arch = "x86_64") {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let seccomp = status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))?
        .trim();
    if seccomp != "0" {
        return None;
    }
    probe()
}

#[cfg(target_arch = "x86_64")]
fn probe() -> Option<bool> {
    const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;
    // SAFETY: getpid takes no arguments, touches no memory and cannot fail; with the x32 bit
    // set the kernel either runs the same getpid or returns ENOSYS.
    let r = unsafe { libc::syscall(X32_SYSCALL_BIT | libc::SYS_getpid) };
    if r > 0 {
        return Some(true);
    }
    (std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS)).then_some(false)
}

#[cfg(not(target_arch = "x86_64"))]
fn probe() -> Option<bool> {
    None
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    #[test]
    fn the_answer_holds_for_another_x32_syscall() {
        let got = super::x32_syscalls();
        // SAFETY: getppid takes no arguments and touches no memory; with the x32 bit set the
        // kernel runs the same getppid or returns ENOSYS.
        let r = unsafe { libc::syscall(0x4000_0000 | libc::SYS_getppid) };
        let errno = std::io::Error::last_os_error().raw_os_error();
        match got {
            Some(true) => assert_eq!(r, libc::c_long::from(std::os::unix::process::parent_id())),
            Some(false) => assert_eq!((r, errno), (-1, Some(libc::ENOSYS))),
            // Only under a seccomp filter (a test run inside a container).
            None => assert!(std::fs::read_to_string("/proc/self/status")
                .unwrap()
                .lines()
                .any(|l| l.starts_with("Seccomp:") && l.trim() != "Seccomp:\t0")),
        }
    }
}
