use k8s_cri::v1::{UpdateContainerResourcesRequest, UpdateContainerResourcesResponse};
use tonic::Status;

use crate::service::State;

/// UpdateContainerResources: cpu, memory and unified changes through the OCI runtime;
/// invalid values are InvalidArgument and change nothing.
pub(super) async fn update_container_resources(
    state: &State,
    req: UpdateContainerResourcesRequest,
) -> Result<UpdateContainerResourcesResponse, Status> {
    state
        .containers
        .update(&req.container_id, req.linux)
        .await?;
    Ok(UpdateContainerResourcesResponse {})
}
