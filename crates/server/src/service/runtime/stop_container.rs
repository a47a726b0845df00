use k8s_cri::v1::{StopContainerRequest, StopContainerResponse};
use tonic::Status;

use crate::service::State;

/// StopContainer: the image's stop signal, SIGKILL after `timeout` seconds (at once for 0).
/// Idempotent; an unknown container succeeds.
pub(super) async fn stop_container(
    state: &State,
    req: StopContainerRequest,
) -> Result<StopContainerResponse, Status> {
    state
        .containers
        .stop(&req.container_id, req.timeout)
        .await?;
    Ok(StopContainerResponse {})
}
