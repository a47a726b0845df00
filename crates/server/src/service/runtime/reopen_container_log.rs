use k8s_cri::v1::{ReopenContainerLogRequest, ReopenContainerLogResponse};
use tonic::Status;

use crate::service::State;

/// ReopenContainerLog: the monitor reopens the log file (kubelet rotated it); the container
/// must be running.
pub(super) async fn reopen_container_log(
    state: &State,
    req: ReopenContainerLogRequest,
) -> Result<ReopenContainerLogResponse, Status> {
    state.containers.reopen_log(&req.container_id).await?;
    Ok(ReopenContainerLogResponse {})
}
