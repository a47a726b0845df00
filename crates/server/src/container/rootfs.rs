//! A container's root filesystem: an overlay of the image's layer directories (read-only,
//! shared by every container of the image) and a private upper directory under the root;
//! image volumes mounted read-only; files read from inside a rootfs without following its
//! symlinks out of it.

use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::mount::{MountFlags, MountPropagationFlags};

/// The longest file read from an image's rootfs (/etc/passwd, /etc/group).
const MAX_ETC_FILE: u64 = 4 * 1024 * 1024;

fn io_at(what: &str, path: &Path, e: impl Into<io::Error>) -> io::Error {
    let e = e.into();
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Mounts `layers` (lowest first) at `target`: with `upper` as a writable overlay, else
/// read-only (a single layer is then bound read-only: overlay needs two lower layers
/// without an upper).
pub(super) fn mount_layers(
    layers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> io::Result<()> {
    if layers.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the image has no layers",
        ));
    }
    std::fs::create_dir_all(target).map_err(|e| io_at("creating", target, e))?;
    if upper.is_none() && layers.len() == 1 {
        rustix::mount::mount_bind(&layers[0], target)
            .map_err(|e| io_at("bind-mounting onto", target, e))?;
        let remount = rustix::mount::mount_remount(
            target,
            MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV,
            "",
        );
        if let Err(e) = remount {
            let _ = crust_sys::unmount_detach(target);
            return Err(io_at("making read-only", target, e));
        }
        return Ok(());
    }
    // overlay lists the top layer first.
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|p| escape_overlay_path(&p.display().to_string()))
        .collect();
    let mut options = format!("lowerdir={}", lower.join(":"));
    let mut flags = MountFlags::empty();
    match upper {
        Some((upper, work)) => {
            for d in [upper, work] {
                std::fs::create_dir_all(d).map_err(|e| io_at("creating", d, e))?;
            }
            options.push_str(&format!(
                ",upperdir={},workdir={}",
                escape_overlay_path(&upper.display().to_string()),
                escape_overlay_path(&work.display().to_string())
            ));
        }
        None => flags |= MountFlags::RDONLY,
    }
    // One page is all the kernel reads of mount options.
    if options.len() >= 4096 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "overlay options for {} layers are {} bytes, past the kernel's 4095",
                layers.len(),
                options.len()
            ),
        ));
    }
    let data = CString::new(options)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a layer path holds a NUL"))?;
    rustix::mount::mount("overlay", target, "overlay", flags, Some(data.as_c_str()))
        .map_err(|e| io_at("mounting the overlay on", target, e))?;
    // Private, so the mount never propagates into (or out of) peers of the run root.
    let _ = rustix::mount::mount_change(target, MountPropagationFlags::PRIVATE);
    Ok(())
}

/// overlayfs separates lower directories with `:` and options with `,`: escape both.
fn escape_overlay_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, ':' | ',' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Unmounts `path` if it is mounted (lazily, so a process still inside does not block it).
pub(super) fn unmount(path: &Path) -> io::Result<()> {
    match crust_sys::unmount_detach(path) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(22) | Some(2)) => Ok(()),
        Err(e) => Err(io::Error::other(e.to_string())),
    }
}

/// Reads `path` (absolute inside the rootfs) with every component resolved inside `rootfs`:
/// a symlink in the image pointing at `/etc/shadow` reads the image's, never the host's.
/// A missing file is `Ok(None)`.
pub(super) fn read_in_root(rootfs: &Path, path: &str) -> io::Result<Option<String>> {
    let root: OwnedFd = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_at("opening", rootfs, e))?;
    let fd = loop {
        match rustix::fs::openat2(
            &root,
            path.trim_start_matches('/'),
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => break fd,
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => return Ok(None),
            Err(e) => return Err(io_at("opening", &rootfs.join(path), e)),
        }
    };
    let file = std::fs::File::from(fd);
    if !file.metadata()?.is_file() {
        return Ok(None);
    }
    let mut text = String::new();
    file.take(MAX_ETC_FILE)
        .read_to_string(&mut text)
        .map_err(|e| io_at("reading", &rootfs.join(path), e))?;
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_paths_are_escaped() {
        assert_eq!(escape_overlay_path("/a:b,c\\d"), "/a\\:b\\,c\\\\d");
        assert_eq!(escape_overlay_path("/plain/path"), "/plain/path");
    }

    #[test]
    fn reads_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let outside = dir.path().join("secret");
        std::fs::write(&outside, "host secret").unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
        // An absolute symlink resolves against the rootfs, not the host.
        std::os::unix::fs::symlink(&outside, root.join("etc/passwd")).unwrap();
        assert_eq!(
            read_in_root(&root, "/etc/group").unwrap().as_deref(),
            Some("root:x:0:\n")
        );
        assert_eq!(read_in_root(&root, "/etc/passwd").unwrap(), None);
        std::os::unix::fs::symlink("../../../../secret", root.join("etc/shadow")).unwrap();
        assert_eq!(read_in_root(&root, "/etc/shadow").unwrap(), None);
        assert_eq!(read_in_root(&root, "/etc/missing").unwrap(), None);
    }
}
