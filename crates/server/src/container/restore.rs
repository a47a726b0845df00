//! Restoring a checkpoint (checkpoint.rs writes them), the way CRI-O does it: a
//! CreateContainer whose image is the path of a checkpoint archive creates the container from
//! the image the checkpoint names, with the checkpointed rootfs changes in its writable layer;
//! its StartContainer has the OCI runtime `restore` the checkpointed processes instead of
//! starting new ones.
//!
//! The archive is extracted with the layer unpacker (nothing lands outside the directory it
//! is extracted into, whatever it holds); deleted files become overlay whiteouts.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use tonic::Status;

use super::checkpoint::{archive, ConfigDump};

/// Where a restored container keeps the extracted archive (under its state directory).
pub(super) const RESTORE_DIR: &str = "restore";

/// An extracted checkpoint archive not yet moved into its container's state directory;
/// removed when dropped (the creation failed, or lost its name to another).
pub(super) struct Extracted(pub PathBuf);

impl Drop for Extracted {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The checkpoint archive a container image names, if it names one: an absolute path of an
/// existing file (image references are never absolute paths).
pub(super) fn archive_path(image: &str) -> Option<PathBuf> {
    let path = Path::new(image);
    (path.is_absolute() && path.is_file()).then(|| path.to_path_buf())
}

fn refused(archive: &Path, why: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!(
        "CreateContainer: {} is not a usable checkpoint archive: {why}",
        archive.display()
    ))
}

/// Extracts `archive` into `dest` (created here; must not exist) and reads its metadata.
pub(super) fn import(archive_file: &Path, dest: &Path) -> Result<ConfigDump, Status> {
    std::fs::create_dir_all(dest).map_err(|e| {
        Status::internal(format!("CreateContainer: creating {}: {e}", dest.display()))
    })?;
    let file = std::fs::File::open(archive_file).map_err(|e| refused(archive_file, e))?;
    crust_image::unpack::unpack_layer(io::BufReader::new(file), dest)
        .map_err(|e| refused(archive_file, e))?;
    if !dest.join(archive::CHECKPOINT_DIR).is_dir() {
        return Err(refused(
            archive_file,
            format!("it has no {}/ directory", archive::CHECKPOINT_DIR),
        ));
    }
    let config = std::fs::read(dest.join(archive::CONFIG_DUMP))
        .map_err(|e| refused(archive_file, format!("{}: {e}", archive::CONFIG_DUMP)))?;
    let config: ConfigDump = serde_json::from_slice(&config)
        .map_err(|e| refused(archive_file, format!("{}: {e}", archive::CONFIG_DUMP)))?;
    if config.rootfs_image_name.is_empty() && config.rootfs_image_ref.is_empty() {
        return Err(refused(
            archive_file,
            format!("{} names no image", archive::CONFIG_DUMP),
        ));
    }
    Ok(config)
}

/// The image a checkpoint was taken of: its name as created, else its ID.
pub(super) fn image_of(config: &ConfigDump) -> &str {
    if config.rootfs_image_name.is_empty() {
        &config.rootfs_image_ref
    } else {
        &config.rootfs_image_name
    }
}

/// Puts the checkpoint's rootfs changes into `upper` (an empty writable layer, not mounted
/// yet): its files from rootfs-diff.tar, its deletions as overlay whiteouts.
pub(super) fn apply_rootfs_diff(imported: &Path, upper: &Path) -> io::Result<()> {
    std::fs::create_dir_all(upper)?;
    let diff = imported.join(archive::ROOTFS_DIFF);
    if diff.is_file() {
        let file = std::fs::File::open(&diff)?;
        crust_image::unpack::unpack_layer(io::BufReader::new(file), upper)
            .map_err(|e| io::Error::other(format!("{}: {e}", diff.display())))?;
    }
    let deleted = imported.join(archive::DELETED_FILES);
    if !deleted.is_file() {
        return Ok(());
    }
    let list: Vec<String> = serde_json::from_slice(&std::fs::read(&deleted)?)
        .map_err(|e| io::Error::other(format!("{}: {e}", deleted.display())))?;
    let root: OwnedFd = rustix::fs::open(
        upper,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for path in list {
        whiteout(&root, &path)
            .map_err(|e| io::Error::new(e.kind(), format!("deleted file {path:?}: {e}")))?;
    }
    Ok(())
}

/// An overlay whiteout (a 0:0 character device) at `path` inside the layer `root`, its
/// parents created as needed; every component resolved inside the layer.
fn whiteout(root: &OwnedFd, path: &str) -> io::Result<()> {
    let rel = Path::new(path.trim_start_matches('/'));
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_owned()),
            Component::CurDir => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a relative path inside the rootfs",
                ))
            }
        }
    }
    let Some(name) = parts.pop() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty path"));
    };
    // One component at a time from the layer's root, none of them a symlink: a link in the
    // archive's diff cannot lead a whiteout (or a directory made for one) out of the layer.
    let mut parent = rustix::io::dup(root)?;
    for part in &parts {
        match rustix::fs::mkdirat(&parent, part.as_os_str(), Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        parent = rustix::fs::openat2(
            &parent,
            part.as_os_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_SYMLINKS,
        )?;
    }
    match rustix::fs::mknodat(
        &parent,
        name.as_os_str(),
        FileType::CharacterDevice,
        Mode::empty(),
        0,
    ) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    use super::*;

    /// A checkpoint archive as checkpoint.rs writes one, from an upper dir of `files`.
    fn archive_with(dir: &Path, config: &ConfigDump, upper: &Path) -> PathBuf {
        let path = dir.join("ck.tar");
        let mut tar = tar::Builder::new(std::fs::File::create(&path).unwrap());
        let mut add = |name: &str, data: &[u8]| {
            super::super::checkpoint::append_bytes(&mut tar, name, data).unwrap();
        };
        add(archive::CONFIG_DUMP, &serde_json::to_vec(config).unwrap());
        add(archive::SPEC_DUMP, b"{}");
        add("checkpoint/inventory.img", b"criu");
        let (diff, deleted) = super::super::checkpoint::rootfs_diff(upper).unwrap();
        add(archive::ROOTFS_DIFF, &diff);
        add(
            archive::DELETED_FILES,
            &serde_json::to_vec(&deleted).unwrap(),
        );
        tar.into_inner().unwrap();
        path
    }

    #[test]
    fn an_archive_round_trips_into_a_new_writable_layer() {
        let dir = tempfile::tempdir().unwrap();
        let old_upper = dir.path().join("old-upper");
        std::fs::create_dir_all(old_upper.join("data")).unwrap();
        std::fs::write(old_upper.join("data/count"), "41\n").unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            old_upper.join("data/removed"),
            FileType::CharacterDevice,
            Mode::empty(),
            0,
        )
        .unwrap();
        let config = ConfigDump {
            id: "abc".into(),
            name: "counter".into(),
            rootfs_image_name: "registry.local/busybox:1".into(),
            ..ConfigDump::default()
        };
        let archive_file = archive_with(dir.path(), &config, &old_upper);
        assert_eq!(
            archive_path(archive_file.to_str().unwrap()),
            Some(archive_file.clone())
        );
        assert_eq!(archive_path("busybox:latest"), None);

        let imported = dir.path().join("imported");
        let got = import(&archive_file, &imported).unwrap();
        assert_eq!(got, config);
        assert_eq!(image_of(&got), "registry.local/busybox:1");
        assert!(imported.join("checkpoint/inventory.img").is_file());

        let upper = dir.path().join("new-upper");
        apply_rootfs_diff(&imported, &upper).unwrap();
        assert_eq!(
            std::fs::read_to_string(upper.join("data/count")).unwrap(),
            "41\n"
        );
        let wh = std::fs::symlink_metadata(upper.join("data/removed")).unwrap();
        assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    }

    #[test]
    fn archives_without_a_checkpoint_or_image_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain.tar");
        let mut tar = tar::Builder::new(std::fs::File::create(&path).unwrap());
        super::super::checkpoint::append_bytes(&mut tar, "hello", b"hi").unwrap();
        tar.into_inner().unwrap();
        let err = import(&path, &dir.path().join("x")).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(
            err.message().contains("no checkpoint/"),
            "{}",
            err.message()
        );

        std::fs::write(dir.path().join("junk.tar"), b"not a tar at all").unwrap();
        let err = import(&dir.path().join("junk.tar"), &dir.path().join("y")).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn whiteouts_stay_inside_the_layer() {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path().join("layer");
        std::fs::create_dir_all(&layer).unwrap();
        std::os::unix::fs::symlink(dir.path(), layer.join("escape")).unwrap();
        let root: OwnedFd = rustix::fs::open(
            &layer,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        assert!(whiteout(&root, "../x").is_err());
        assert!(whiteout(&root, "escape/x").is_err());
        assert!(whiteout(&root, "escape/sub/x").is_err());
        assert!(!dir.path().join("sub").exists());
        assert!(!dir.path().join("x").exists());
        whiteout(&root, "/a/b/c").unwrap();
        assert!(std::fs::symlink_metadata(layer.join("a/b/c"))
            .unwrap()
            .file_type()
            .is_char_device());
    }
}
