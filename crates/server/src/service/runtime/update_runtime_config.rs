use k8s_cri::v1::{UpdateRuntimeConfigRequest, UpdateRuntimeConfigResponse};
use tonic::Status;

use crate::service::State;
use crate::status::unimplemented;

/// UpdateRuntimeConfig: not built yet (issue 6).
pub(super) async fn update_runtime_config(
    _state: &State,
    _req: UpdateRuntimeConfigRequest,
) -> Result<UpdateRuntimeConfigResponse, Status> {
    Err(unimplemented("UpdateRuntimeConfig"))
}
