use k8s_cri::v1::{PortForwardRequest, PortForwardResponse};
use tonic::Status;

use crate::sandbox::Lookup;
use crate::service::State;

/// PortForward: checks the pod and the ports and returns a one-time URL of the streaming
/// server, where each forwarded connection reaches the port inside the pod's network.
pub(super) async fn port_forward(
    state: &State,
    req: PortForwardRequest,
) -> Result<PortForwardResponse, Status> {
    let id = &req.pod_sandbox_id;
    let pod = match state.pods.lookup(id) {
        Lookup::Found(pod) => pod.snapshot(),
        Lookup::NotFound => {
            return Err(Status::not_found(format!(
                "PortForward: pod sandbox {id:?} not found"
            )))
        }
        Lookup::Ambiguous(ids) => {
            return Err(Status::invalid_argument(format!(
                "PortForward: pod sandbox ID prefix {id:?} matches {} pods",
                ids.len()
            )))
        }
    };
    if pod.state != crust_store::PodState::Ready {
        return Err(Status::failed_precondition(format!(
            "PortForward: pod sandbox {} is not ready",
            pod.id
        )));
    }
    if let Some(bad) = req.port.iter().find(|p| !(1..=65535).contains(*p)) {
        return Err(Status::invalid_argument(format!(
            "PortForward: port {bad} is out of range"
        )));
    }
    let req = PortForwardRequest {
        pod_sandbox_id: pod.id,
        port: req.port,
    };
    let url = state
        .streaming
        .get_port_forward(req)
        .map_err(super::token_error)?;
    Ok(PortForwardResponse { url })
}
