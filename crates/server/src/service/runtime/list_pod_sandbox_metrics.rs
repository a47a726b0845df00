use crust_store::PodState;
use k8s_cri::v1::{ListPodSandboxMetricsRequest, ListPodSandboxMetricsResponse};
use tonic::Status;

use crate::metric_set;
use crate::service::State;

/// ListPodSandboxMetrics: every ready pod's metrics (its cgroup and network) and its running
/// containers', oldest pod first. Pods that are not ready have no metrics, as in CRI-O.
pub(super) async fn list_pod_sandbox_metrics(
    state: &State,
    _req: ListPodSandboxMetricsRequest,
) -> Result<ListPodSandboxMetricsResponse, Status> {
    let mut records: Vec<_> = state
        .pods
        .all()
        .iter()
        .filter_map(|p| {
            let r = p.record.lock().unwrap_or_else(|e| e.into_inner());
            (r.state == PodState::Ready).then(|| r.clone())
        })
        .collect();
    records.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let pod_metrics = metric_set::collect(&state.pods, &state.containers, records).await?;
    Ok(ListPodSandboxMetricsResponse { pod_metrics })
}
