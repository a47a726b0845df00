use crust_store::PodState;
use k8s_cri::v1::{ListPodSandboxStatsRequest, ListPodSandboxStatsResponse};
use tonic::Status;

use crate::service::State;
use crate::stats::pod_filter_matches;

/// ListPodSandboxStats: the ready pods the filter selects (ID, full or a prefix, and labels),
/// as containerd lists them.
pub(super) async fn list_pod_sandbox_stats(
    state: &State,
    req: ListPodSandboxStatsRequest,
) -> Result<ListPodSandboxStatsResponse, Status> {
    let filter = req.filter.unwrap_or_default();
    let mut records: Vec<_> = state
        .pods
        .all()
        .iter()
        .filter_map(|p| {
            let r = p.record.lock().unwrap_or_else(|e| e.into_inner());
            (r.state == PodState::Ready && pod_filter_matches(&r, &filter)).then(|| r.clone())
        })
        .collect();
    records.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let stats = state
        .stats
        .pods(&state.pods, &state.containers, records)
        .await?;
    Ok(ListPodSandboxStatsResponse { stats })
}
