use k8s_cri::v1::GetEventsRequest;
use tonic::Status;

use crate::lifecycle::EventStream;
use crate::service::State;

/// GetContainerEvents: every container and pod lifecycle event from now on, each with the
/// pod's status and its containers' statuses (see `lifecycle.rs`). The stream ends with
/// ResourceExhausted when the subscriber falls too far behind, Unavailable when crustd stops.
pub(super) async fn get_container_events(
    state: &State,
    _req: GetEventsRequest,
) -> Result<EventStream, Status> {
    state.events.subscribe()
}
