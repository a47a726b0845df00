use k8s_cri::v1::{ListPodSandboxMetricsRequest, ListPodSandboxMetricsResponse};
use tonic::Status;

use crate::service::State;
use crate::status::unimplemented;

/// ListPodSandboxMetrics: not built yet (issue 6).
pub(super) async fn list_pod_sandbox_metrics(
    _state: &State,
    _req: ListPodSandboxMetricsRequest,
) -> Result<ListPodSandboxMetricsResponse, Status> {
    Err(unimplemented("ListPodSandboxMetrics"))
}
