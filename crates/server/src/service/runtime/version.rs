use k8s_cri::v1::{VersionRequest, VersionResponse};
use tonic::Status;

pub const RUNTIME_NAME: &str = "crust";
/// The CRI API version this runtime serves.
pub const RUNTIME_API_VERSION: &str = "v1";
/// Version of the kubelet runtime API, as containerd and CRI-O report it.
const KUBE_RUNTIME_API_VERSION: &str = "0.1.0";

pub(super) async fn version(_req: VersionRequest) -> Result<VersionResponse, Status> {
    Ok(VersionResponse {
        version: KUBE_RUNTIME_API_VERSION.into(),
        runtime_name: RUNTIME_NAME.into(),
        runtime_version: env!("CARGO_PKG_VERSION").into(),
        runtime_api_version: RUNTIME_API_VERSION.into(),
    })
}
