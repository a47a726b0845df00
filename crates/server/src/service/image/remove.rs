use k8s_cri::v1::{RemoveImageRequest, RemoveImageResponse};
use tonic::Status;

use crate::service::State;
use crate::status::image_error;

/// RemoveImage: removes the image with all its names, by ID, tag or digest. Removing an image
/// that is not there succeeds (the call is idempotent); layers no other image uses go too.
pub(super) async fn remove_image(
    state: &State,
    req: RemoveImageRequest,
) -> Result<RemoveImageResponse, Status> {
    let name = super::image_name(&req.image).trim();
    if name.is_empty() {
        return Err(Status::invalid_argument("RemoveImage: image is empty"));
    }
    match state
        .images
        .remove(name)
        .await
        .map_err(|e| image_error(&format!("removing image {name:?}"), &e))?
    {
        Some(image) => tracing::info!(image = %image.id, "removed image"),
        None => tracing::debug!("image not present; nothing to remove"),
    }
    Ok(RemoveImageResponse {})
}
