use k8s_cri::v1::{RemoveContainerRequest, RemoveContainerResponse};
use tonic::Status;

use crate::service::State;

/// RemoveContainer: kills it if it runs, removes its runtime state, rootfs and directories;
/// the log file stays. Idempotent; an unknown container succeeds.
pub(super) async fn remove_container(
    state: &State,
    req: RemoveContainerRequest,
) -> Result<RemoveContainerResponse, Status> {
    state.containers.remove(&req.container_id).await?;
    Ok(RemoveContainerResponse {})
}
