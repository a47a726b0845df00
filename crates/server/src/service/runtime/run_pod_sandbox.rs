use k8s_cri::v1::{RunPodSandboxRequest, RunPodSandboxResponse};
use tonic::Status;

use crate::service::State;

/// RunPodSandbox: the pod's namespaces (held by its monitor), files, cgroup and network.
pub(super) async fn run_pod_sandbox(
    state: &State,
    req: RunPodSandboxRequest,
) -> Result<RunPodSandboxResponse, Status> {
    let pod_sandbox_id = state.pods.run(req.config, &req.runtime_handler).await?;
    Ok(RunPodSandboxResponse { pod_sandbox_id })
}
