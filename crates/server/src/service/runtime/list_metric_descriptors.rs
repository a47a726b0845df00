use k8s_cri::v1::{ListMetricDescriptorsRequest, ListMetricDescriptorsResponse};
use tonic::Status;

use crate::service::State;
use crate::status::unimplemented;

/// ListMetricDescriptors: not built yet (issue 6).
pub(super) async fn list_metric_descriptors(
    _state: &State,
    _req: ListMetricDescriptorsRequest,
) -> Result<ListMetricDescriptorsResponse, Status> {
    Err(unimplemented("ListMetricDescriptors"))
}
