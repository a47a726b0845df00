//! CheckpointContainer: CRIU, through the OCI runtime's `checkpoint --leave-running`, dumps
//! the running container's processes; crustd packs the dump, the container's rootfs changes
//! and its spec into one tar at the requested location, in the layout CRI-O and Podman use
//! (and checkpointctl reads):
//!
//! ```text
//! checkpoint/       CRIU's image files
//! config.dump       who the container was: id, name, image, runtime, times (JSON)
//! spec.dump         the OCI runtime spec it ran with (config.json)
//! rootfs-diff.tar   the files its writable layer added or changed
//! deleted.files     the image files it deleted (JSON list), when there are any
//! dump.log          CRIU's log of the dump
//! ```
//!
//! The container keeps running. The archive appears at `location` whole or not at all (it is
//! written beside it and renamed). A CreateContainer whose image is such an archive restores
//! it (restore.rs).

use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crust_store::{ContainerRecord, ContainerState};
use serde::{Deserialize, Serialize};
use tonic::Status;

use super::{files, Containers};

/// Names inside a checkpoint archive (checkpointctl's `lib/metadata.go`).
pub(crate) mod archive {
    pub const CHECKPOINT_DIR: &str = "checkpoint";
    pub const CONFIG_DUMP: &str = "config.dump";
    pub const SPEC_DUMP: &str = "spec.dump";
    pub const ROOTFS_DIFF: &str = "rootfs-diff.tar";
    pub const DELETED_FILES: &str = "deleted.files";
    pub const DUMP_LOG: &str = "dump.log";
}

/// How long a checkpoint may take when the request sets no timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long `criu check` may take.
const CRIU_CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// `config.dump`: Podman's and CRI-O's container metadata, as far as crustd has it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ConfigDump {
    pub id: String,
    pub name: String,
    /// The image as the container was created from (its reference or ID).
    #[serde(rename = "rootfsImage", default)]
    pub rootfs_image: String,
    /// The image ID.
    #[serde(rename = "rootfsImageRef", default)]
    pub rootfs_image_ref: String,
    /// The image as the request named it.
    #[serde(rename = "rootfsImageName", default)]
    pub rootfs_image_name: String,
    /// The OCI runtime (runc, crun).
    #[serde(rename = "runtime", default)]
    pub runtime: String,
    #[serde(rename = "createdTime", default)]
    pub created_time: String,
    #[serde(rename = "checkpointedTime", default)]
    pub checkpointed_time: String,
}

fn invalid(msg: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("CheckpointContainer: {msg}"))
}

impl Containers {
    /// CheckpointContainer of a running container into the archive `location`.
    pub async fn checkpoint(
        &self,
        id: &str,
        location: &str,
        timeout_secs: i64,
    ) -> Result<(), Status> {
        if id.is_empty() {
            return Err(invalid("container_id is required"));
        }
        let location = checked_location(location)?;
        let c = self.get("CheckpointContainer", id)?;
        let _op = c.op.lock().await;
        let record = c.snapshot();
        if record.state != ContainerState::Running {
            return Err(Status::failed_precondition(format!(
                "CheckpointContainer: container {} is not running",
                record.id
            )));
        }
        let runtime = self.runtime(&record.runtime_handler)?.clone();
        criu_ready(&runtime.binary)
            .await
            .map_err(|why| Status::failed_precondition(format!("CheckpointContainer: {why}")))?;

        let timeout = match timeout_secs {
            s if s > 0 => Duration::from_secs(s as u64),
            _ => DEFAULT_TIMEOUT,
        };
        // CRIU's images and log go to a scratch directory in the bundle, gone afterwards.
        let scratch = Self::bundle_file(&record, "checkpoint.tmp");
        let _ = std::fs::remove_dir_all(&scratch);
        let images = scratch.join(archive::CHECKPOINT_DIR);
        let work = scratch.join("work");
        for dir in [&images, &work] {
            std::fs::create_dir_all(dir).map_err(|e| {
                Status::internal(format!(
                    "CheckpointContainer: creating {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let result = async {
            let dumped = tokio::time::timeout(
                timeout,
                runtime.checkpoint(&record.id, &images, &work, true),
            )
            .await;
            match dumped {
                Err(_) => {
                    return Err(Status::deadline_exceeded(format!(
                        "CheckpointContainer: checkpoint of {} took longer than {timeout:?}",
                        record.id
                    )))
                }
                Ok(Err(e)) => {
                    let criu = last_criu_error(&work.join(archive::DUMP_LOG))
                        .map(|l| format!(" (criu: {l})"))
                        .unwrap_or_default();
                    return Err(Status::internal(format!("CheckpointContainer: {e}{criu}")));
                }
                Ok(Ok(())) => {}
            }
            let (record2, scratch2, location2) =
                (record.clone(), scratch.clone(), location.clone());
            let binary = runtime.binary.clone();
            tokio::task::spawn_blocking(move || {
                write_archive(&record2, &binary, &scratch2, &location2)
            })
            .await
            .map_err(|e| Status::internal(format!("CheckpointContainer: archive task: {e}")))?
            .map_err(|e| {
                Status::internal(format!(
                    "CheckpointContainer: writing the archive {}: {e}",
                    location.display()
                ))
            })
        }
        .await;
        let _ = std::fs::remove_dir_all(&scratch);
        if result.is_ok() {
            tracing::info!(container = %record.id, location = %location.display(), "container checkpointed");
        }
        result
    }
}

/// The archive's path: absolute, in an existing directory, not already there (an existing
/// file is never overwritten).
fn checked_location(location: &str) -> Result<PathBuf, Status> {
    if location.is_empty() {
        return Err(invalid("location is required"));
    }
    let path = PathBuf::from(location);
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return Err(invalid(format!(
            "location {location:?} is not an absolute path without '..'"
        )));
    }
    match path.parent() {
        Some(dir) if dir.is_dir() => {}
        _ => {
            return Err(invalid(format!(
                "the directory of location {location:?} does not exist"
            )))
        }
    }
    if path.symlink_metadata().is_ok() {
        return Err(Status::already_exists(format!(
            "CheckpointContainer: {location:?} already exists"
        )));
    }
    Ok(path)
}

/// CRIU is installed, `criu check` passes on this kernel and the runtime can use it; else
/// FailedPrecondition saying why (checkpoints need CRIU, an old CRIU may not know a new
/// kernel, and crun must be built with CRIU support: its `--version` lists `+CRIU`).
pub(super) async fn criu_ready(runtime: &Path) -> Result<(), String> {
    if runtime.file_name().is_some_and(|n| n == "crun") {
        let version = tokio::process::Command::new(runtime)
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if !version.contains("+CRIU") {
            return Err(format!(
                "{} was built without CRIU support (its --version does not list +CRIU)",
                runtime.display()
            ));
        }
    }
    let Some(criu) = find_in_path("criu") else {
        return Err("checkpoints need criu, which is not installed (no criu in PATH)".to_string());
    };
    let out = tokio::time::timeout(
        CRIU_CHECK_TIMEOUT,
        tokio::process::Command::new(&criu)
            .arg("check")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await;
    let out = match out {
        Err(_) => {
            return Err(format!(
                "{} check took longer than {CRIU_CHECK_TIMEOUT:?}",
                criu.display()
            ))
        }
        Ok(Err(e)) => return Err(format!("running {} check: {e}", criu.display())),
        Ok(Ok(out)) => out,
    };
    if out.status.success() {
        return Ok(());
    }
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let why = criu_errors(&text);
    Err(format!(
        "criu cannot checkpoint or restore on this node ({} check failed: {why})",
        criu.display()
    ))
}

/// The first file called `name` in PATH.
fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// CRIU's `Error (file:line): message` lines, joined; else the text's last line.
fn criu_errors(text: &str) -> String {
    let errors: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once("Error (").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_once("): ").map(|(_, msg)| msg.trim()))
        .collect();
    if errors.is_empty() {
        return text
            .lines()
            .last()
            .unwrap_or("no output")
            .trim()
            .to_string();
    }
    errors.join("; ")
}

/// The last error CRIU logged in a dump or restore log.
pub(super) fn last_criu_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let errors = criu_errors(&text);
    text.contains("Error (").then_some(errors)
}

/// Packs the scratch directory's CRIU images and log, the container's metadata, spec and
/// rootfs changes into `location` (written beside it, synced, renamed).
fn write_archive(
    record: &ContainerRecord,
    runtime_binary: &Path,
    scratch: &Path,
    location: &Path,
) -> io::Result<()> {
    let name = location
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = location.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut tar = tar::Builder::new(BufWriter::new(file));
        tar.follow_symlinks(false);
        let metadata = ConfigDump {
            id: record.id.clone(),
            name: record.name.clone(),
            rootfs_image: record.image_ref.clone(),
            rootfs_image_ref: record.image_id.clone(),
            rootfs_image_name: record.image.clone(),
            runtime: runtime_binary
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            created_time: rfc3339(record.created_at),
            checkpointed_time: humantime::format_rfc3339_nanos(std::time::SystemTime::now())
                .to_string(),
        };
        append_bytes(
            &mut tar,
            archive::CONFIG_DUMP,
            &serde_json::to_vec_pretty(&metadata).expect("ConfigDump serializes"),
        )?;
        let spec = std::fs::read(Path::new(&record.bundle_dir).join(files::CONFIG))?;
        append_bytes(&mut tar, archive::SPEC_DUMP, &spec)?;
        tar.append_dir_all(
            archive::CHECKPOINT_DIR,
            scratch.join(archive::CHECKPOINT_DIR),
        )?;
        let dump_log = scratch.join("work").join(archive::DUMP_LOG);
        if dump_log.is_file() {
            tar.append_path_with_name(&dump_log, archive::DUMP_LOG)?;
        }
        let upper = Path::new(&record.state_dir).join("upper");
        let (diff, deleted) = rootfs_diff(&upper)?;
        append_bytes(&mut tar, archive::ROOTFS_DIFF, &diff)?;
        if !deleted.is_empty() {
            append_bytes(
                &mut tar,
                archive::DELETED_FILES,
                &serde_json::to_vec(&deleted).expect("strings serialize"),
            )?;
        }
        let file = tar.into_inner()?.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, location)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn rfc3339(unix_nanos: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_nanos(unix_nanos.max(0) as u64);
    humantime::format_rfc3339_nanos(t).to_string()
}

/// Appends a regular file (root's, mode 0600) holding `data`.
pub(super) fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(data.len() as u64);
    header.set_mode(0o600);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    header.set_cksum();
    tar.append_data(&mut header, name, data)
}

/// The writable layer as a tar of what it adds or changes, and the image paths it deletes
/// (overlay whiteouts: character devices 0:0), relative to the rootfs.
pub(super) fn rootfs_diff(upper: &Path) -> io::Result<(Vec<u8>, Vec<String>)> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    let mut deleted = Vec::new();
    if upper.is_dir() {
        walk(upper, Path::new(""), &mut tar, &mut deleted)?;
    }
    Ok((tar.into_inner()?, deleted))
}

fn walk(
    dir: &Path,
    rel: &Path,
    tar: &mut tar::Builder<Vec<u8>>,
    deleted: &mut Vec<String>,
) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = rel.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.file_type().is_char_device() && meta.rdev() == 0 {
            deleted.push(name.display().to_string());
            continue;
        }
        tar.append_path_with_name(&path, &name)?;
        if meta.is_dir() {
            walk(&path, &name, tar, deleted)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criu_errors_are_picked_from_its_output() {
        let text = "Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds\n\
                    Error (criu/crtools.c:260): Could not initialize kernel features detection.\n";
        assert_eq!(
            criu_errors(text),
            "vdso: Unexpected rt vDSO area bounds; Could not initialize kernel features detection."
        );
        assert_eq!(criu_errors("bad\nthings happened\n"), "things happened");
    }

    #[test]
    fn locations_are_checked() {
        assert_eq!(
            checked_location("").unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            checked_location("rel/x.tar").unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            checked_location("/tmp/../x.tar").unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            checked_location("/no/such/dir/x.tar").unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        let dir = tempfile::tempdir().unwrap();
        let taken = dir.path().join("x.tar");
        std::fs::write(&taken, "").unwrap();
        assert_eq!(
            checked_location(taken.to_str().unwrap())
                .unwrap_err()
                .code(),
            tonic::Code::AlreadyExists
        );
        let free = dir.path().join("y.tar");
        assert_eq!(checked_location(free.to_str().unwrap()).unwrap(), free);
    }

    #[test]
    fn the_rootfs_diff_holds_changes_and_lists_whiteouts() {
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path();
        std::fs::create_dir_all(upper.join("etc/app")).unwrap();
        std::fs::write(upper.join("etc/app/conf"), "x=1\n").unwrap();
        std::os::unix::fs::symlink("conf", upper.join("etc/app/link")).unwrap();
        // A whiteout: what overlayfs leaves for a deleted lower file.
        rustix::fs::mknodat(
            rustix::fs::CWD,
            upper.join("etc/gone"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0),
            0,
        )
        .unwrap();
        let (tar, deleted) = rootfs_diff(upper).unwrap();
        assert_eq!(deleted, ["etc/gone"]);
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut names: Vec<(String, tar::EntryType)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().entry_type(),
                )
            })
            .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            names,
            [
                ("etc".to_string(), tar::EntryType::Directory),
                ("etc/app".to_string(), tar::EntryType::Directory),
                ("etc/app/conf".to_string(), tar::EntryType::Regular),
                ("etc/app/link".to_string(), tar::EntryType::Symlink),
            ]
        );
    }
}
