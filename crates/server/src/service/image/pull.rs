use k8s_cri::v1::{AuthConfig, PullImageRequest, PullImageResponse};
use tonic::Status;

use crate::service::State;
use crate::status::image_error;

/// PullImage: fetch the image (coalesced with identical pulls) and answer with its ID, as
/// containerd does. Counted in the pull metrics (result, image size, duration).
pub(super) async fn pull_image(
    state: &State,
    req: PullImageRequest,
) -> Result<PullImageResponse, Status> {
    let name = super::image_name(&req.image).trim().to_string();
    if name.is_empty() {
        return Err(Status::invalid_argument(
            "PullImage: image reference is empty",
        ));
    }
    let creds = req.auth.map(credentials);
    let started = std::time::Instant::now();
    let result = state.images.pull(&name, creds).await;
    state.metrics.image_pull(
        result.as_ref().map(|image| image.size).map_err(drop),
        started.elapsed(),
    );
    let image = result.map_err(|e| image_error(&format!("pulling image {name:?}"), &e))?;
    Ok(PullImageResponse {
        image_ref: image.id,
    })
}

fn credentials(auth: AuthConfig) -> crust_image::Credentials {
    crust_image::Credentials {
        username: auth.username,
        password: auth.password,
        auth: auth.auth,
        server_address: auth.server_address,
        identity_token: auth.identity_token,
        registry_token: auth.registry_token,
    }
}
