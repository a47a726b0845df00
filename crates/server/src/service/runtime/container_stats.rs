use k8s_cri::v1::{ContainerStatsRequest, ContainerStatsResponse};
use tonic::Status;

use crate::service::State;

/// ContainerStats: one container's, whatever its state (a container that does not run has
/// its attributes and writable layer only).
pub(super) async fn container_stats(
    state: &State,
    req: ContainerStatsRequest,
) -> Result<ContainerStatsResponse, Status> {
    if req.container_id.is_empty() {
        return Err(Status::invalid_argument(
            "ContainerStats: container ID is empty",
        ));
    }
    let container = state.containers.get("ContainerStats", &req.container_id)?;
    let mut stats = state
        .stats
        .containers(&state.containers, vec![container])
        .await?;
    Ok(ContainerStatsResponse { stats: stats.pop() })
}
