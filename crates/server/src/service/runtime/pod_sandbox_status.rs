use std::collections::HashMap;

use k8s_cri::v1::{PodSandboxStatusRequest, PodSandboxStatusResponse};
use tonic::Status;

use crate::sandbox::{pod_info, pod_status, Lookup};
use crate::service::{now_nanos, State};

/// PodSandboxStatus; with verbose, `info` holds the monitor pid, netns path and CNI result.
pub(super) async fn pod_sandbox_status(
    state: &State,
    req: PodSandboxStatusRequest,
) -> Result<PodSandboxStatusResponse, Status> {
    let id = &req.pod_sandbox_id;
    let pod = match state.pods.lookup(id) {
        Lookup::Found(pod) => pod,
        Lookup::NotFound => {
            return Err(Status::not_found(format!(
                "PodSandboxStatus: pod sandbox {id:?} not found"
            )))
        }
        Lookup::Ambiguous(ids) => {
            return Err(Status::invalid_argument(format!(
                "PodSandboxStatus: pod sandbox ID prefix {id:?} matches {} pods",
                ids.len()
            )))
        }
    };
    let record = pod.snapshot();
    let mut info = HashMap::new();
    if req.verbose {
        info.insert("info".to_string(), pod_info(&record));
    }
    Ok(PodSandboxStatusResponse {
        status: Some(pod_status(&record)),
        info,
        // For evented PLEG: the pod's containers as ContainerStatus reports them.
        containers_statuses: state
            .containers
            .of_pod(&record.id)
            .iter()
            .map(|c| crate::container::container_status(&c.snapshot()))
            .collect(),
        timestamp: now_nanos(),
    })
}
