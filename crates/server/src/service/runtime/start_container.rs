use k8s_cri::v1::{StartContainerRequest, StartContainerResponse};
use tonic::Status;

use crate::service::State;

/// StartContainer: a created container's process, with stdio held by the pod's monitor.
pub(super) async fn start_container(
    state: &State,
    req: StartContainerRequest,
) -> Result<StartContainerResponse, Status> {
    state.containers.start(&req.container_id).await?;
    Ok(StartContainerResponse {})
}
