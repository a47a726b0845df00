use std::collections::HashMap;

use k8s_cri::v1::{ImageStatusRequest, ImageStatusResponse};
use tonic::Status;

use crate::service::State;
use crate::status::image_error;

/// ImageStatus: an unknown image is an empty answer, not an error (the CRI comments require
/// it). Verbose info carries the image config under "info", as containerd's does.
pub(super) async fn image_status(
    state: &State,
    req: ImageStatusRequest,
) -> Result<ImageStatusResponse, Status> {
    let name = super::image_name(&req.image).trim();
    if name.is_empty() {
        return Err(Status::invalid_argument("ImageStatus: image is empty"));
    }
    let Some(image) = state
        .images
        .resolve(name)
        .map_err(|e| image_error(&format!("looking up image {name:?}"), &e))?
    else {
        return Ok(ImageStatusResponse::default());
    };
    let mut info = HashMap::new();
    if req.verbose {
        let doc = serde_json::json!({
            "imageSpec": state.images.config_json(&image),
            "manifestDigest": image.manifest_digest,
            "layers": image.layers,
            "layerDirs": state.images.layer_dirs(&image),
            "pulledAt": image.pulled_at,
        });
        info.insert("info".to_string(), doc.to_string());
    }
    Ok(ImageStatusResponse {
        image: Some(super::to_cri(&image)),
        info,
    })
}
