use k8s_cri::v1::{CreateContainerRequest, CreateContainerResponse};
use tonic::Status;

use crate::service::State;

/// CreateContainer: the rootfs and bundle of a new container in a ready pod; the name is
/// reserved per pod, and a creation that outlived its caller is handed to the retry.
pub(super) async fn create_container(
    state: &State,
    req: CreateContainerRequest,
) -> Result<CreateContainerResponse, Status> {
    let container_id = state
        .containers
        .create(&req.pod_sandbox_id, req.config, req.sandbox_config)
        .await?;
    Ok(CreateContainerResponse { container_id })
}
