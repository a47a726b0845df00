use std::collections::HashMap;
use std::path::Path;

use k8s_cri::v1::{ContainerStatusRequest, ContainerStatusResponse};
use tonic::Status;

use crate::container::{container_info, container_status as status_of};
use crate::service::State;

/// ContainerStatus; with verbose, `info` holds the pid, bundle and runtime spec.
pub(super) async fn container_status(
    state: &State,
    req: ContainerStatusRequest,
) -> Result<ContainerStatusResponse, Status> {
    let c = state.containers.get("ContainerStatus", &req.container_id)?;
    let record = c.snapshot();
    let mut info = HashMap::new();
    if req.verbose {
        let spec = std::fs::read(Path::new(&record.bundle_dir).join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        info.insert("info".to_string(), container_info(&record, spec));
    }
    Ok(ContainerStatusResponse {
        status: Some(status_of(&record)),
        info,
    })
}
