use crust_network::IpRange;
use k8s_cri::v1::{UpdateRuntimeConfigRequest, UpdateRuntimeConfigResponse};
use tonic::Status;

use crate::service::State;

/// UpdateRuntimeConfig: kubelet's pod CIDRs (`network_config.pod_cidr`, comma-separated, one
/// per family when dual-stack). Recorded across restarts and given to pods created from now on
/// as the CNI `ipRanges` capability (host-local allocates from them when the conflist declares
/// `"capabilities": {"ipRanges": true}`). An empty pod_cidr changes nothing, as in containerd.
pub(super) async fn update_runtime_config(
    state: &State,
    req: UpdateRuntimeConfigRequest,
) -> Result<UpdateRuntimeConfigResponse, Status> {
    let text = req
        .runtime_config
        .and_then(|c| c.network_config)
        .map(|n| n.pod_cidr)
        .unwrap_or_default();
    if text.trim().is_empty() {
        return Ok(UpdateRuntimeConfigResponse {});
    }
    let pod_cidrs = parse_pod_cidrs(&text)?;
    let pods = state.pods.clone();
    tokio::task::spawn_blocking(move || pods.set_pod_cidrs(pod_cidrs))
        .await
        .map_err(|e| Status::internal(format!("UpdateRuntimeConfig: {e}")))?
        .map_err(|e| {
            Status::internal(format!("UpdateRuntimeConfig: recording the pod CIDRs: {e}"))
        })?;
    Ok(UpdateRuntimeConfigResponse {})
}

/// `10.1.0.0/24,fd00::/64` → canonical CIDRs; a malformed one (or an empty entry) is
/// InvalidArgument naming it.
fn parse_pod_cidrs(text: &str) -> Result<Vec<String>, Status> {
    text.split(',')
        .map(|c| {
            IpRange::parse(c).map(|r| r.subnet).map_err(|e| {
                Status::invalid_argument(format!(
                    "UpdateRuntimeConfig: runtime_config.network_config.pod_cidr: {e}"
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn pod_cidrs_parse_like_kubelet_sends_them() {
        assert_eq!(parse_pod_cidrs("10.1.2.0/24").unwrap(), ["10.1.2.0/24"]);
        assert_eq!(
            parse_pod_cidrs("10.1.2.0/24, fd00:1::/64").unwrap(),
            ["10.1.2.0/24", "fd00:1::/64"]
        );
        assert_eq!(parse_pod_cidrs("10.1.2.9/24").unwrap(), ["10.1.2.0/24"]);
        for bad in [
            "10.1.2.0/24,",
            "nope",
            "10.1.2.0/24,10.1.3.0/33",
            "10.1.2.0",
        ] {
            let err = parse_pod_cidrs(bad).unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
            assert!(err.message().contains("invalid CIDR"), "{}", err.message());
        }
    }
}
