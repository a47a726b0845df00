use k8s_cri::v1::{StopPodSandboxRequest, StopPodSandboxResponse};
use tonic::Status;

use crate::service::State;

/// StopPodSandbox: kills the pod's containers, tears its network down. Idempotent; an
/// unknown pod succeeds.
pub(super) async fn stop_pod_sandbox(
    state: &State,
    req: StopPodSandboxRequest,
) -> Result<StopPodSandboxResponse, Status> {
    if let crate::sandbox::Lookup::Found(pod) = state.pods.lookup(&req.pod_sandbox_id) {
        state.containers.stop_pod(&pod.snapshot().id).await?;
    }
    state.pods.stop(&req.pod_sandbox_id).await?;
    Ok(StopPodSandboxResponse {})
}
