use k8s_cri::v1::{ListContainerStatsRequest, ListContainerStatsResponse};
use tonic::Status;

use crate::service::State;
use crate::stats::container_filter_matches;

/// ListContainerStats: every container the filter selects (ID or pod ID, each full or a
/// prefix, and labels), in every state, as containerd lists them; only running ones have
/// CPU and memory figures.
pub(super) async fn list_container_stats(
    state: &State,
    req: ListContainerStatsRequest,
) -> Result<ListContainerStatsResponse, Status> {
    let filter = req.filter.unwrap_or_default();
    let mut records: Vec<_> = state
        .containers
        .all()
        .iter()
        .filter_map(|c| {
            let r = c.record.lock().unwrap_or_else(|e| e.into_inner());
            container_filter_matches(&r, &filter).then(|| r.clone())
        })
        .collect();
    records.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let stats = state.stats.containers(&state.containers, records).await?;
    Ok(ListContainerStatsResponse { stats })
}
