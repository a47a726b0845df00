use k8s_cri::v1::{ListContainersRequest, ListContainersResponse};
use tonic::Status;

use crate::container::{list_filter_matches, to_cri_container};
use crate::service::State;

/// ListContainers, filtered by ID prefix, state, pod and labels; oldest first.
pub(super) async fn list_containers(
    state: &State,
    req: ListContainersRequest,
) -> Result<ListContainersResponse, Status> {
    let filter = req.filter.unwrap_or_default();
    let mut records: Vec<_> = state
        .containers
        .all()
        .iter()
        .map(|c| c.snapshot())
        .filter(|r| list_filter_matches(r, &filter))
        .collect();
    records.sort_by_key(|r| r.created_at);
    Ok(ListContainersResponse {
        containers: records.iter().map(to_cri_container).collect(),
    })
}
