use k8s_cri::v1::GetEventsRequest;
use tonic::Status;

use crate::service::State;
use crate::status::unimplemented;

type EventStream = tonic::codegen::BoxStream<k8s_cri::v1::ContainerEventResponse>;

/// GetContainerEvents: not built yet (issue 6).
pub(super) async fn get_container_events(
    _state: &State,
    _req: GetEventsRequest,
) -> Result<EventStream, Status> {
    Err(unimplemented("GetContainerEvents"))
}
