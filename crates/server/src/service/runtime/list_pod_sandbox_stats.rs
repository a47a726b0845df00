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
    let mut selected: Vec<_> = state
        .pods
        .all()
        .into_iter()
        .filter_map(|p| {
            let r = p.record.lock().unwrap_or_else(|e| e.into_inner());
            let key = (r.created_at, r.id.clone());
            let matches = r.state == PodState::Ready && pod_filter_matches(&r, &filter);
            drop(r);
            matches.then_some((key, p))
        })
        .collect();
    selected.sort_by(|a, b| a.0.cmp(&b.0));
    let selected = selected.into_iter().map(|(_, p)| p).collect();
    let stats = state
        .stats
        .pods(&state.pods, &state.containers, selected)
        .await?;
    Ok(ListPodSandboxStatsResponse { stats })
}
