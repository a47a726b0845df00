use k8s_cri::v1::{ListMetricDescriptorsRequest, ListMetricDescriptorsResponse};
use tonic::Status;

use crate::metric_set;
use crate::service::State;

/// ListMetricDescriptors: the cAdvisor metric families ListPodSandboxMetrics reports, with
/// their label keys (`metric_set.rs`). The same list for the life of the process.
pub(super) async fn list_metric_descriptors(
    _state: &State,
    _req: ListMetricDescriptorsRequest,
) -> Result<ListMetricDescriptorsResponse, Status> {
    Ok(ListMetricDescriptorsResponse {
        descriptors: metric_set::descriptors(),
    })
}
