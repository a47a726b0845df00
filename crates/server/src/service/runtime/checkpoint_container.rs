use k8s_cri::v1::{CheckpointContainerRequest, CheckpointContainerResponse};
use tonic::Status;

use crate::service::State;

/// CheckpointContainer: CRIU dumps the running container into an archive at `location`; the
/// container keeps running (container/checkpoint.rs).
pub(super) async fn checkpoint_container(
    state: &State,
    req: CheckpointContainerRequest,
) -> Result<CheckpointContainerResponse, Status> {
    state
        .containers
        .checkpoint(&req.container_id, &req.location, req.timeout)
        .await?;
    Ok(CheckpointContainerResponse {})
}
