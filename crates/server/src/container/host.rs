//! Facts about the node that spec generation needs, read once at start.

use std::path::Path;

use crate::sandbox::cgroup::Layout;

#[derive(Debug, Clone)]
pub(super) struct HostFacts {
    pub cgroups: Layout,
    /// Controllers live in cgroup v2 (a unified-only node).
    pub cgroup_v2: bool,
    /// The memory controller accounts swap (memory.memsw.* on v1).
    pub swap_accounting: bool,
    /// crustd's own oom_score_adj: containers never get a lower one (lowering needs
    /// CAP_SYS_RESOURCE, which a node may not grant; runc fails otherwise).
    pub oom_score_adj: i32,
    /// The kernel can make bind mounts recursively read-only (mount_setattr, Linux 5.12).
    pub recursive_read_only: bool,
    /// AppArmor is enabled on the node.
    pub apparmor: bool,
    /// crustd's own bounding set: all a privileged container can be given.
    pub capabilities: Option<Vec<String>>,
    /// The kernel serves x32 syscalls (or crustd could not ask: then assumed).
    pub x32_syscalls: bool,
}

impl HostFacts {
    pub fn detect(cgroups: Layout) -> HostFacts {
        let cgroup_v2 = matches!(cgroups, Layout::V2(_));
        let swap_accounting = match &cgroups {
            Layout::V1(mounts) => mounts
                .get("memory")
                .is_some_and(|m| m.join("memory.memsw.limit_in_bytes").exists()),
            Layout::V2(_) => true,
        };
        let oom_score_adj = std::fs::read_to_string("/proc/self/oom_score_adj")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        HostFacts {
            cgroups,
            cgroup_v2,
            swap_accounting,
            oom_score_adj,
            recursive_read_only: kernel_at_least(&release, 5, 12),
            x32_syscalls: crust_sys::x32_syscalls().unwrap_or(true),
            capabilities: std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    let line = s.lines().find(|l| l.starts_with("CapBnd:"))?;
                    u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()
                })
                .map(crust_specgen::security::names_of_mask),
            apparmor: std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
                .is_ok_and(|s| s.trim() == "Y")
                && Path::new("/sys/kernel/security/apparmor").exists(),
        }
    }
}

/// Whether the kernel release string (`6.1.0-13-amd64`) is at least `major.minor`.
fn kernel_at_least(release: &str, major: u32, minor: u32) -> bool {
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

/// The device node at `path` (following a symlink, as /dev/stdin is one), for CRI devices.
pub(super) fn device(path: &Path) -> std::io::Result<crust_specgen::HostDevice> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path)?;
    let kind = if meta.file_type().is_char_device() {
        crust_specgen::DeviceKind::Char
    } else if meta.file_type().is_block_device() {
        crust_specgen::DeviceKind::Block
    } else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a device node",
        ));
    };
    let rdev = meta.rdev();
    Ok(crust_specgen::HostDevice {
        path: path.to_path_buf(),
        kind,
        major: rustix::fs::major(rdev) as i64,
        minor: rustix::fs::minor(rdev) as i64,
        file_mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

/// Every device node under `dir` (for privileged containers), as runc's HostDevices: skips
/// /dev/pts, /dev/shm, /dev/mqueue, /dev/fd and symlinks.
pub(super) fn devices_under(dir: &Path) -> Vec<crust_specgen::HostDevice> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                let name = entry.file_name();
                if !matches!(name.to_str(), Some("pts" | "shm" | "mqueue" | "fd")) {
                    stack.push(path);
                }
            } else if !ft.is_symlink() {
                if let Ok(dev) = device(&path) {
                    out.push(dev);
                }
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernel_versions() {
        assert!(super::kernel_at_least("6.1.0-13-amd64", 5, 12));
        assert!(super::kernel_at_least("5.12.0", 5, 12));
        assert!(!super::kernel_at_least("5.10.0-26-cloud-amd64", 5, 12));
        assert!(!super::kernel_at_least("", 5, 12));
    }
}
