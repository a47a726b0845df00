use k8s_cri::v1::{PodSandboxStatsRequest, PodSandboxStatsResponse};
use tonic::Status;

use crate::service::State;
use crate::status::unimplemented;

/// PodSandboxStats: not built yet (issue 6).
pub(super) async fn pod_sandbox_stats(
    _state: &State,
    _req: PodSandboxStatsRequest,
) -> Result<PodSandboxStatsResponse, Status> {
    Err(unimplemented("PodSandboxStats"))
}
