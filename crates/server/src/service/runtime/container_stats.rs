use k8s_cri::v1::{ContainerStatsRequest, ContainerStatsResponse};
use tonic::Status;

use crate::service::State;
use crate::status::unimplemented;

/// ContainerStats: not built yet (issue 6).
pub(super) async fn container_stats(
    _state: &State,
    _req: ContainerStatsRequest,
) -> Result<ContainerStatsResponse, Status> {
    Err(unimplemented("ContainerStats"))
}
