//! Cleaning up a pod's run directory without the monitor's help: for a monitor that died, does
//! not answer, or must go now.

use std::{
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use crust_sys::{PidFd, Signal};

use crate::{
    error::MonitorError,
    protocol::{NS_DIR, PID_FILE, SOCKET_NAME},
};

/// The pid in RUNDIR/monitor.pid, if that process is alive and is the crust-monitor serving
/// `dir` (its command line says so), so a recycled pid is never mistaken for it.
pub fn monitor_pid(dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(dir.join(PID_FILE)).ok()?;
    let pid: i32 = text.trim().parse().ok()?;
    is_monitor_of(pid, dir).then_some(pid)
}

fn is_monitor_of(pid: i32, dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let is_monitor = args
        .first()
        .and_then(|a| Path::new(std::str::from_utf8(a).ok()?).file_name())
        .is_some_and(|name| name == "crust-monitor");
    if !is_monitor {
        return false;
    }
    let wanted = dir.to_string_lossy();
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let absolute = absolute.to_string_lossy();
    let mut args = args.iter().map(|a| String::from_utf8_lossy(a));
    while let Some(arg) = args.next() {
        let value = if arg == "--dir" {
            args.next().map(|v| v.into_owned())
        } else {
            arg.strip_prefix("--dir=").map(str::to_string)
        };
        if let Some(value) = value {
            let value = PathBuf::from(value);
            let trimmed = value.to_string_lossy();
            if trimmed.trim_end_matches('/') == wanted.trim_end_matches('/')
                || trimmed.trim_end_matches('/') == absolute.trim_end_matches('/')
            {
                return true;
            }
        }
    }
    false
}

/// Tears down what a pod monitor holds in `dir`, whether it is alive or not: kills the monitor
/// if it still runs (its pod init dies with it, and with the init the pod's pid namespace),
/// unmounts every namespace pin under RUNDIR/ns, removes them, the socket and the pid file.
///
/// Prefer [`MonitorClient::shutdown`](crate::MonitorClient::shutdown); this is for a monitor
/// that is gone or does not answer. Missing pieces are not errors; the first real failure is
/// returned after trying everything.
pub fn force_cleanup(dir: &Path) -> Result<(), MonitorError> {
    let mut first_error: Option<MonitorError> = None;
    let mut keep = |e: MonitorError| {
        first_error.get_or_insert(e);
    };
    if let Some(pid) = monitor_pid(dir) {
        if let Ok(pidfd) = PidFd::open(pid) {
            // Checked again through the pidfd, which cannot be recycled from here on.
            if is_monitor_of(pid, dir) {
                let _ = pidfd.send_signal(Signal::KILL);
                let _ = pidfd.wait_exit_timeout(Duration::from_secs(5));
            }
        }
    }
    let ns_dir = dir.join(NS_DIR);
    match std::fs::read_dir(&ns_dir) {
        Ok(entries) => {
            for entry in entries.flatten() {
                let path = entry.path();
                if let Err(e) = crust_sys::unmount_detach(&path) {
                    // EINVAL: not (or no longer) a mount point.
                    if e.raw_os_error() != Some(22) && e.kind() != io::ErrorKind::NotFound {
                        keep(MonitorError::Cleanup {
                            path: path.clone(),
                            op: "unmounting the namespace pin",
                            source: e.into_io_error(),
                        });
                        continue;
                    }
                }
                if let Err(e) = std::fs::remove_file(&path) {
                    if e.kind() != io::ErrorKind::NotFound {
                        keep(MonitorError::Cleanup {
                            path,
                            op: "removing the namespace pin",
                            source: e,
                        });
                    }
                }
            }
            let _ = std::fs::remove_dir(&ns_dir);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => keep(MonitorError::Cleanup {
            path: ns_dir,
            op: "listing the namespace pins",
            source: e,
        }),
    }
    for name in [SOCKET_NAME, PID_FILE] {
        let path = dir.join(name);
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != io::ErrorKind::NotFound {
                keep(MonitorError::Cleanup {
                    path,
                    op: "removing",
                    source: e,
                });
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_of_an_empty_or_missing_dir_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        force_cleanup(dir.path()).unwrap();
        force_cleanup(&dir.path().join("missing")).unwrap();
    }

    #[test]
    fn a_pid_file_naming_another_program_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        // Our own pid: alive, but not a crust-monitor.
        std::fs::write(
            dir.path().join(PID_FILE),
            format!("{}\n", std::process::id()),
        )
        .unwrap();
        assert_eq!(monitor_pid(dir.path()), None);
        std::fs::write(dir.path().join(SOCKET_NAME), b"").unwrap();
        force_cleanup(dir.path()).unwrap();
        assert!(!dir.path().join(PID_FILE).exists());
        assert!(!dir.path().join(SOCKET_NAME).exists());
    }
}
