use k8s_cri::v1::{ExecSyncRequest, ExecSyncResponse};
use tonic::Status;

use crate::service::State;

/// ExecSync: the command in the container, its output (16 MiB per stream at most) and exit
/// code; DeadlineExceeded when `timeout` seconds pass first.
pub(super) async fn exec_sync(
    state: &State,
    req: ExecSyncRequest,
) -> Result<ExecSyncResponse, Status> {
    let out = state
        .containers
        .exec_sync(&req.container_id, req.cmd, req.timeout)
        .await?;
    Ok(ExecSyncResponse {
        stdout: out.stdout,
        stderr: out.stderr,
        exit_code: out.exit_code,
    })
}
