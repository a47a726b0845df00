use k8s_cri::v1::{CheckpointContainerRequest, CheckpointContainerResponse};
use tonic::Status;

use crate::service::State;
use crate::status::unimplemented;

/// CheckpointContainer: not built yet (issue 6).
pub(super) async fn checkpoint_container(
    _state: &State,
    _req: CheckpointContainerRequest,
) -> Result<CheckpointContainerResponse, Status> {
    Err(unimplemented("CheckpointContainer"))
}
