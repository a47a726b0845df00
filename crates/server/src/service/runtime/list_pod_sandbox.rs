use k8s_cri::v1::{ListPodSandboxRequest, ListPodSandboxResponse};
use tonic::Status;

use crate::sandbox::{list_filter_matches, pod_sandbox};
use crate::service::State;

/// ListPodSandbox, filtered by ID prefix, state and labels; oldest first.
pub(super) async fn list_pod_sandbox(
    state: &State,
    req: ListPodSandboxRequest,
) -> Result<ListPodSandboxResponse, Status> {
    let filter = req.filter.unwrap_or_default();
    let mut records: Vec<_> = state
        .pods
        .all()
        .iter()
        .map(|p| p.snapshot())
        .filter(|r| list_filter_matches(r, &filter))
        .collect();
    records.sort_by_key(|r| r.created_at);
    Ok(ListPodSandboxResponse {
        items: records.iter().map(pod_sandbox).collect(),
    })
}
