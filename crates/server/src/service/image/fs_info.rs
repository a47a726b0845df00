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
    let (image_usage, container_usage) = tokio::task::spawn_blocking(move || {
        // Absent (no container yet) counts as empty.
        let containers = crust_stats::dir_usage(&containers_dir)
            .map(|u| (u.bytes, u.inodes))
            .unwrap_or((0, 0));
        (images.usage(), containers)
    })
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
