use k8s_cri::v1::{ExecRequest, ExecResponse};
use tonic::Status;

use crate::service::State;

/// Exec: checks the request and returns a one-time URL of the streaming server, where the
/// client's SPDY or WebSocket connection runs the command.
pub(super) async fn exec(state: &State, req: ExecRequest) -> Result<ExecResponse, Status> {
    if req.cmd.is_empty() {
        return Err(Status::invalid_argument("Exec: cmd is required"));
    }
    if !(req.stdin || req.stdout || req.stderr) {
        return Err(Status::invalid_argument(
            "Exec: one of stdin, stdout and stderr is required",
        ));
    }
    if req.tty && req.stderr {
        return Err(Status::invalid_argument(
            "Exec: tty and stderr cannot both be true (a terminal has one output)",
        ));
    }
    let (id, _) = state.containers.running("Exec", &req.container_id)?;
    let req = ExecRequest {
        container_id: id,
        ..req
    };
    let url = state.streaming.get_exec(req).map_err(super::token_error)?;
    Ok(ExecResponse { url })
}
