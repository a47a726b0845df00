//! ReopenContainerLog: the pod's monitor writes the CRI log; it reopens the file after kubelet
//! renamed it, losing no line.

use std::path::Path;

use crust_store::ContainerState;
use tonic::Status;

use super::Containers;

impl Containers {
    pub async fn reopen_log(&self, id: &str) -> Result<(), Status> {
        let c = self.get("ReopenContainerLog", id)?;
        let record = c.snapshot();
        if record.state != ContainerState::Running {
            return Err(Status::failed_precondition(format!(
                "ReopenContainerLog: container {} is not running",
                record.id
            )));
        }
        let pod = match self.pods.lookup(&record.pod_id) {
            crate::sandbox::Lookup::Found(pod) => pod.snapshot(),
            _ => {
                return Err(Status::not_found(format!(
                    "ReopenContainerLog: pod sandbox {} not found",
                    record.pod_id
                )))
            }
        };
        let mut monitor = crust_monitor::MonitorClient::connect(Path::new(&pod.run_dir))
            .await
            .map_err(|e| Status::unavailable(format!("ReopenContainerLog: {e}")))?;
        monitor
            .reopen_log(&record.id)
            .await
            .map_err(|e| Status::failed_precondition(format!("ReopenContainerLog: {e}")))
    }
}
