use k8s_cri::v1::{ListContainerStatsRequest, ListContainerStatsResponse};
use tonic::Status;

use crate::service::State;
use crate::status::unimplemented;

/// ListContainerStats: not built yet (issue 6).
pub(super) async fn list_container_stats(
    _state: &State,
    _req: ListContainerStatsRequest,
) -> Result<ListContainerStatsResponse, Status> {
    Err(unimplemented("ListContainerStats"))
}
