use k8s_cri::v1::{StopPodSandboxRequest, StopPodSandboxResponse};
use tonic::Status;

use crate::service::State;

/// StopPodSandbox: idempotent; an unknown pod succeeds.
pub(super) async fn stop_pod_sandbox(
    state: &State,
    req: StopPodSandboxRequest,
) -> Result<StopPodSandboxResponse, Status> {
    state.pods.stop(&req.pod_sandbox_id).await?;
    Ok(StopPodSandboxResponse {})
}
