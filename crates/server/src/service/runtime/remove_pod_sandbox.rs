use k8s_cri::v1::{RemovePodSandboxRequest, RemovePodSandboxResponse};
use tonic::Status;

use crate::service::State;

/// RemovePodSandbox: removes the pod's containers, stops the pod if needed, then releases everything it holds. Idempotent.
pub(super) async fn remove_pod_sandbox(
    state: &State,
    req: RemovePodSandboxRequest,
) -> Result<RemovePodSandboxResponse, Status> {
    if let crate::sandbox::Lookup::Found(pod) = state.pods.lookup(&req.pod_sandbox_id) {
        state.containers.remove_pod(&pod.snapshot().id).await?;
    }
    state.pods.remove(&req.pod_sandbox_id).await?;
    Ok(RemovePodSandboxResponse {})
}
