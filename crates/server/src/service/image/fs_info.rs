use std::path::Path;

use k8s_cri::v1::{
    FilesystemIdentifier, FilesystemUsage, ImageFsInfoRequest, ImageFsInfoResponse, UInt64Value,
};
use tonic::Status;

use crate::service::{now_nanos, State};
use crate::status::image_error;

/// ImageFsInfo: what the image store holds (bytes and inodes of unpacked layers, manifests
/// and configs) and what containers' writable layers hold.
pub(super) async fn image_fs_info(
    state: &State,
    _req: ImageFsInfoRequest,
) -> Result<ImageFsInfoResponse, Status> {
    let images = state.images.clone();
    let containers_dir = state.root.join("containers");
    let (image_usage, container_usage) =
        tokio::task::spawn_blocking(move || (images.usage(), dir_usage(&containers_dir)))
            .await
            .map_err(|e| Status::internal(format!("ImageFsInfo: {e}")))?;
    let image_usage = image_usage.map_err(|e| image_error("measuring the image store", &e))?;
    let timestamp = now_nanos();
    let usage = |mountpoint: &Path, bytes: u64, inodes: u64| FilesystemUsage {
        timestamp,
        fs_id: Some(FilesystemIdentifier {
            mountpoint: mountpoint.display().to_string(),
        }),
        used_bytes: Some(UInt64Value { value: bytes }),
        inodes_used: Some(UInt64Value { value: inodes }),
    };
    Ok(ImageFsInfoResponse {
        image_filesystems: vec![usage(
            state.images.root(),
            image_usage.bytes,
            image_usage.inodes,
        )],
        container_filesystems: vec![usage(
            &state.root.join("containers"),
            container_usage.0,
            container_usage.1,
        )],
    })
}

/// Bytes (allocated blocks) and inodes below `dir`, each inode counted once; 0 when absent.
pub(crate) fn dir_usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    let (mut bytes, mut inodes) = (0u64, 0u64);
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        bytes += meta.blocks() * 512;
        inodes += 1;
        if meta.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&path) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    (bytes, inodes)
}
