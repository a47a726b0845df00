use k8s_cri::v1::{
    CgroupDriver, LinuxRuntimeConfiguration, RuntimeConfigRequest, RuntimeConfigResponse,
};
use tonic::Status;

use crate::config;
use crate::service::State;

/// RuntimeConfig: the cgroup driver kubelet must match.
pub(super) async fn runtime_config(
    state: &State,
    _req: RuntimeConfigRequest,
) -> Result<RuntimeConfigResponse, Status> {
    let driver = match state.config.runtime.cgroup_driver {
        config::CgroupDriver::Cgroupfs => CgroupDriver::Cgroupfs,
        config::CgroupDriver::Systemd => CgroupDriver::Systemd,
    };
    Ok(RuntimeConfigResponse {
        linux: Some(LinuxRuntimeConfiguration {
            cgroup_driver: driver as i32,
        }),
    })
}
