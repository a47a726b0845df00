//! Disk usage of a directory tree, as `du -x` and containerd's `fs.DiskUsage` count it.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{is_gone, Error};

/// Allocated bytes and inodes of a tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirUsage {
    /// Allocated blocks × 512 (st_blocks), so sparse files count what they use.
    pub bytes: u64,
    /// Inodes, the root's included; a hard-linked file counts once.
    pub inodes: u64,
}

/// Walks `root` without following symlinks and without crossing into other filesystems
/// (mounts below `root` are not counted). Entries that vanish during the walk are skipped;
/// `root` itself missing is an error ([`Error::is_not_found`]).
pub fn dir_usage(root: &Path) -> Result<DirUsage, Error> {
    let meta = std::fs::symlink_metadata(root).map_err(|e| Error::io(root, e))?;
    let device = meta.dev();
    let mut usage = DirUsage {
        bytes: meta.blocks() * 512,
        inodes: 1,
    };
    if !meta.is_dir() {
        return Ok(usage);
    }
    // Only inodes with several links can be met twice.
    let mut linked = HashSet::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if is_gone(&e) => continue,
            Err(e) => return Err(Error::io(&dir, e)),
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) if is_gone(&e) => continue,
                Err(e) => return Err(Error::io(&dir, e)),
            };
            // DirEntry::metadata does not follow symlinks.
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(e) if is_gone(&e) => continue,
                Err(e) => return Err(Error::io(&entry.path(), e)),
            };
            if meta.dev() != device {
                continue;
            }
            if meta.is_dir() {
                dirs.push(entry.path());
            } else if meta.nlink() > 1 && !linked.insert(meta.ino()) {
                continue;
            }
            usage.bytes += meta.blocks() * 512;
            usage.inodes += 1;
        }
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn counts_blocks_and_inodes_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("upper");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        let empty = dir_usage(&root).unwrap();
        assert_eq!(empty.inodes, 3);

        let mut f = std::fs::File::create(root.join("a/b/data")).unwrap();
        f.write_all(&vec![7u8; 1 << 20]).unwrap();
        f.sync_all().unwrap();
        std::fs::hard_link(root.join("a/b/data"), root.join("a/link")).unwrap();
        std::os::unix::fs::symlink("/", root.join("to-root")).unwrap();
        // A sparse file: a large size, few blocks.
        let sparse = std::fs::File::create(root.join("sparse")).unwrap();
        sparse.set_len(1 << 30).unwrap();

        let u = dir_usage(&root).unwrap();
        // data (once, despite the hard link), the symlink (not followed), the sparse file.
        assert_eq!(u.inodes, 3 + 3);
        assert!(u.bytes >= empty.bytes + (1 << 20), "{u:?}");
        assert!(u.bytes < empty.bytes + (1 << 20) + (1 << 20), "{u:?}");
    }

    #[test]
    fn a_missing_root_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let e = dir_usage(&dir.path().join("gone")).unwrap_err();
        assert!(e.is_not_found(), "{e}");
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(dir_usage(&file).unwrap().inodes, 1);
    }

    #[test]
    fn does_not_cross_into_other_filesystems() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("upper");
        let mount = root.join("mnt");
        std::fs::create_dir_all(&mount).unwrap();
        let root_only = DirUsage {
            bytes: std::fs::symlink_metadata(&root).unwrap().blocks() * 512,
            inodes: 1,
        };
        // Mounting needs root; elsewhere there is nothing to show.
        if crust_sys::mount_tmpfs(&mount, "size=4m").is_err() {
            return;
        }
        std::fs::write(mount.join("inside"), vec![1u8; 1 << 20]).unwrap();
        let u = dir_usage(&root);
        crust_sys::unmount_detach(&mount).unwrap();
        // The mount point shows the tmpfs' root: neither it nor what is inside counts.
        assert_eq!(u.unwrap(), root_only);
    }
}
