use k8s_cri::v1::{RemovePodSandboxRequest, RemovePodSandboxResponse};
use tonic::Status;

use crate::service::State;

/// RemovePodSandbox: stops the pod if needed, then releases everything it holds. Idempotent.
pub(super) async fn remove_pod_sandbox(
    state: &State,
    req: RemovePodSandboxRequest,
) -> Result<RemovePodSandboxResponse, Status> {
    state.pods.remove(&req.pod_sandbox_id).await?;
    Ok(RemovePodSandboxResponse {})
}
