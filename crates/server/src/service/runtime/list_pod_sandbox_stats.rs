use k8s_cri::v1::{ListPodSandboxStatsRequest, ListPodSandboxStatsResponse};
use tonic::Status;

use crate::service::State;
use crate::status::unimplemented;

/// ListPodSandboxStats: not built yet (issue 6).
pub(super) async fn list_pod_sandbox_stats(
    _state: &State,
    _req: ListPodSandboxStatsRequest,
) -> Result<ListPodSandboxStatsResponse, Status> {
    Err(unimplemented("ListPodSandboxStats"))
}
