use k8s_cri::v1::{ListImagesRequest, ListImagesResponse};
use tonic::Status;

use crate::service::State;
use crate::status::image_error;

/// ListImages: every image, or only the one the filter's image spec names.
pub(super) async fn list_images(
    state: &State,
    req: ListImagesRequest,
) -> Result<ListImagesResponse, Status> {
    let wanted = req
        .filter
        .as_ref()
        .map(|f| super::image_name(&f.image).trim())
        .unwrap_or("");
    let images = if wanted.is_empty() {
        state.images.list()
    } else {
        state
            .images
            .resolve(wanted)
            .map(|i| i.into_iter().collect())
    }
    .map_err(|e| image_error("listing images", &e))?;
    Ok(ListImagesResponse {
        images: images.iter().map(super::to_cri).collect(),
    })
}
