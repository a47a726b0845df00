use crust_store::PodState;
use k8s_cri::v1::{PodSandboxStatsRequest, PodSandboxStatsResponse};
use tonic::Status;

use crate::sandbox::Lookup;
use crate::service::State;

/// PodSandboxStats: the pod cgroup's CPU, memory and process count, its network namespace's
/// interfaces, and its containers' stats. Only a ready pod has them (as in containerd).
pub(super) async fn pod_sandbox_stats(
    state: &State,
    req: PodSandboxStatsRequest,
) -> Result<PodSandboxStatsResponse, Status> {
    let id = &req.pod_sandbox_id;
    if id.is_empty() {
        return Err(Status::invalid_argument(
            "PodSandboxStats: pod sandbox ID is empty",
        ));
    }
    let record = match state.pods.lookup(id) {
        Lookup::Found(pod) => pod,
        Lookup::NotFound => {
            return Err(Status::not_found(format!(
                "PodSandboxStats: pod sandbox {id:?} not found"
            )))
        }
        Lookup::Ambiguous(ids) => {
            return Err(Status::invalid_argument(format!(
                "PodSandboxStats: pod sandbox ID prefix {id:?} matches {} pods",
                ids.len()
            )))
        }
    };
    let (ready, pod_id) = {
        let r = record.record.lock().unwrap_or_else(|e| e.into_inner());
        (r.state == PodState::Ready, r.id.clone())
    };
    if !ready {
        return Err(Status::failed_precondition(format!(
            "PodSandboxStats: pod sandbox {pod_id} is not ready"
        )));
    }
    let mut stats = state
        .stats
        .pods(&state.pods, &state.containers, vec![record])
        .await?;
    Ok(PodSandboxStatsResponse { stats: stats.pop() })
}
