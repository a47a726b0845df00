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
    let mut selected: Vec<_> = state
        .containers
        .all()
        .into_iter()
        .filter_map(|c| {
            let r = c.record.lock().unwrap_or_else(|e| e.into_inner());
            let key = (r.created_at, r.id.clone());
            let matches = container_filter_matches(&r, &filter);
            drop(r);
            matches.then_some((key, c))
        })
        .collect();
    selected.sort_by(|a, b| a.0.cmp(&b.0));
    let selected = selected.into_iter().map(|(_, c)| c).collect();
    let stats = state.stats.containers(&state.containers, selected).await?;
    Ok(ListContainerStatsResponse { stats })
}
