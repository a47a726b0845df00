//! Mounts: bind a file or directory, mount a tmpfs, detach a mount.

use std::{ffi::CString, io, path::Path};

pub use rustix::mount::MountFlags;
use rustix::mount::UnmountFlags;

use crate::error::{os, Error};

/// Bind-mounts `from` onto `to` (not recursive). `to` must exist and be of the same type as
/// `from`: an empty regular file to pin a `/proc/PID/ns/*` namespace link, a directory for a
/// directory.
pub fn bind_mount(from: &Path, to: &Path) -> Result<(), Error> {
    rustix::mount::mount_bind(from, to).map_err(|e| Error::TwoPaths {
        op: "bind-mounting",
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        source: os(e),
    })
}

/// Detaches the mount at `path` (`umount2(MNT_DETACH)`): it disappears from the mount tree at
/// once and is released when the last user goes. Fails with `EINVAL` when `path` is not a mount
/// point and `ENOENT` when it does not exist, which callers cleaning up may ignore.
pub fn unmount_detach(path: &Path) -> Result<(), Error> {
    rustix::mount::unmount(path, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW)
        .map_err(|e| Error::path("unmounting", path, os(e)))
}

/// Mounts a tmpfs on `target` with `nosuid,nodev,noexec` (as a pod's `/dev/shm` wants) and the
/// tmpfs options in `options` (for example `mode=1777,size=67108864`).
pub fn mount_tmpfs(target: &Path, options: &str) -> Result<(), Error> {
    mount_tmpfs_with_flags(
        target,
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        options,
    )
}

/// Mounts a tmpfs on `target` with exactly the mount flags `flags` and the tmpfs `options`.
pub fn mount_tmpfs_with_flags(
    target: &Path,
    flags: MountFlags,
    options: &str,
) -> Result<(), Error> {
    let data = CString::new(options).map_err(|_| {
        Error::path(
            "mounting tmpfs on",
            target,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "mount options contain a NUL byte",
            ),
        )
    })?;
    rustix::mount::mount("tmpfs", target, "tmpfs", flags, Some(data.as_c_str()))
        .map_err(|e| Error::path("mounting tmpfs on", target, os(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_mount_point(path: &Path) -> bool {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let path = path.to_str().unwrap();
        mountinfo.lines().any(|l| l.split(' ').nth(4) == Some(path))
    }

    fn root() -> bool {
        rustix::process::geteuid().is_root()
    }

    #[test]
    fn tmpfs_bind_and_detach() {
        if !root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let tmpfs = dir.path().join("shm");
        std::fs::create_dir(&tmpfs).unwrap();
        mount_tmpfs(&tmpfs, "mode=1777,size=1048576").unwrap();
        assert!(is_mount_point(&tmpfs));
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let line = mountinfo
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(tmpfs.to_str().unwrap()))
            .unwrap();
        assert!(line.contains("nosuid") && line.contains("nodev") && line.contains("noexec"));
        assert!(line.contains("size=1024k"), "{line}");

        // A file bind-mounted onto an empty file shows its content.
        std::fs::write(tmpfs.join("a"), b"hello").unwrap();
        let target = dir.path().join("b");
        std::fs::write(&target, b"").unwrap();
        bind_mount(&tmpfs.join("a"), &target).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"hello");

        unmount_detach(&target).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"");
        unmount_detach(&tmpfs).unwrap();
        assert!(!is_mount_point(&tmpfs));

        // Not a mount point any more: EINVAL, naming the path.
        let err = unmount_detach(&tmpfs).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        assert!(err.to_string().contains(tmpfs.to_str().unwrap()), "{err}");
    }

    #[test]
    fn bind_mount_error_names_both_paths() {
        let err = bind_mount(Path::new("/nonexistent/a"), Path::new("/nonexistent/b")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("/nonexistent/a") && text.contains("/nonexistent/b"),
            "{text}"
        );
    }

    #[test]
    fn tmpfs_options_with_nul_are_refused() {
        let err = mount_tmpfs(Path::new("/nonexistent"), "size=1\0").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
