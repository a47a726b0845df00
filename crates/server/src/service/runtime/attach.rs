use k8s_cri::v1::{AttachRequest, AttachResponse};
use tonic::Status;

use crate::service::State;

/// Attach: checks the request and returns a one-time URL of the streaming server, where the
/// client is attached to the container's own stdio.
pub(super) async fn attach(state: &State, req: AttachRequest) -> Result<AttachResponse, Status> {
    if !(req.stdin || req.stdout || req.stderr) {
        return Err(Status::invalid_argument(
            "Attach: one of stdin, stdout and stderr is required",
        ));
    }
    let (id, config) = state.containers.running("Attach", &req.container_id)?;
    if req.stdin && !config.stdin {
        return Err(Status::invalid_argument(format!(
            "Attach: container {} was not created with stdin",
            req.container_id
        )));
    }
    let req = AttachRequest {
        container_id: id,
        ..req
    };
    let url = state
        .streaming
        .get_attach(req)
        .map_err(super::token_error)?;
    Ok(AttachResponse { url })
}
