//! UpdateRuntimeConfig on a real crustd with real bridge and host-local CNI plugins: the pod
//! CIDR kubelet sends reaches host-local as the `ipRanges` capability, survives a restart, and
//! is released with the pod. These tests need root.

use std::net::IpAddr;

use crust_tests::{stop_and_remove_pod, Crustd, PodNet};
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::Channel;
use tonic::Code;

fn pod_config(name: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}-{}", std::process::id()),
            namespace: "crust-test".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        linux: Some(LinuxPodSandboxConfig::default()),
        ..Default::default()
    }
}

async fn update(
    rt: &mut RuntimeServiceClient<Channel>,
    pod_cidr: &str,
) -> Result<UpdateRuntimeConfigResponse, tonic::Status> {
    rt.update_runtime_config(UpdateRuntimeConfigRequest {
        runtime_config: Some(RuntimeConfig {
            network_config: Some(NetworkConfig {
                pod_cidr: pod_cidr.into(),
            }),
        }),
    })
    .await
    .map(|r| r.into_inner())
}

async fn run(rt: &mut RuntimeServiceClient<Channel>, name: &str) -> Result<String, tonic::Status> {
    rt.run_pod_sandbox(RunPodSandboxRequest {
        config: Some(pod_config(name)),
        runtime_handler: String::new(),
    })
    .await
    .map(|r| r.into_inner().pod_sandbox_id)
}

/// The pod's IPs: the primary, then the additional ones.
async fn pod_ips(rt: &mut RuntimeServiceClient<Channel>, id: &str) -> Vec<IpAddr> {
    let status = rt
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: false,
        })
        .await
        .expect("PodSandboxStatus")
        .into_inner()
        .status
        .unwrap();
    let net = status.network.expect("pod network status");
    std::iter::once(net.ip)
        .chain(net.additional_ips.into_iter().map(|i| i.ip))
        .map(|ip| ip.parse().expect("an IP address"))
        .collect()
}

/// The pod CIDRs Status reports (verbose info `podCIDRs`).
async fn recorded_cidrs(rt: &mut RuntimeServiceClient<Channel>) -> Vec<String> {
    let resp = rt
        .status(StatusRequest { verbose: true })
        .await
        .expect("Status")
        .into_inner();
    serde_json::from_str(&resp.info["podCIDRs"]).expect("podCIDRs is a JSON list")
}

fn in_cidr(ip: IpAddr, cidr: &str) -> bool {
    let (net, prefix) = cidr.split_once('/').unwrap();
    let prefix: u32 = prefix.parse().unwrap();
    match (ip, net.parse::<IpAddr>().unwrap()) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[tokio::test]
async fn pod_cidr_reaches_host_local_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let net = PodNet::new(dir.path(), 231);
    // host-local has no range of its own: every address below comes from ipRanges.
    net.write_ip_ranges_conflist();
    let mut crustd = Crustd::start_on(&net, &[], "")
        .await
        .expect("crustd starts");
    let mut rt = crustd.runtime().await.unwrap();
    assert!(recorded_cidrs(&mut rt).await.is_empty());

    // Before any pod CIDR, this network cannot give an address.
    let err = run(&mut rt, "early").await.unwrap_err();
    assert!(err.message().contains("no IP ranges"), "{err:?}");
    assert!(net.allocated_ips().is_empty());
    // That ADD made the bridge and lost its only port: the bridge plugin (1.1) then fails to
    // set the bridge's MAC on the next ADD. Start from no bridge, as a fresh node would.
    let _ = std::process::Command::new("ip")
        .args(["link", "del", &net.bridge])
        .status();

    // Bad CIDRs are refused and change nothing; an empty one is a no-op.
    for bad in [
        "10.89.231.0/33",
        "10.89.231.0",
        "not-a-cidr",
        "10.89.231.0/24,",
    ] {
        let err = update(&mut rt, bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}: {err:?}");
        assert!(err.message().contains("pod_cidr"), "{err:?}");
    }
    update(&mut rt, "")
        .await
        .expect("an empty pod CIDR is a no-op");
    rt.update_runtime_config(UpdateRuntimeConfigRequest::default())
        .await
        .expect("no runtime config is a no-op");
    assert!(recorded_cidrs(&mut rt).await.is_empty());

    // kubelet's update: the next pod's address lies in it. Host bits are dropped, as Go's
    // ParseCIDR does.
    update(&mut rt, "10.89.231.77/24").await.unwrap();
    assert_eq!(recorded_cidrs(&mut rt).await, ["10.89.231.0/24"]);
    let a = run(&mut rt, "a")
        .await
        .expect("RunPodSandbox after the update");
    let a_ips = pod_ips(&mut rt, &a).await;
    assert_eq!(a_ips.len(), 1, "{a_ips:?}");
    assert!(in_cidr(a_ips[0], "10.89.231.0/24"), "{a_ips:?}");
    assert_eq!(net.allocated_ips(), [a_ips[0].to_string()]);

    // After a restart the recorded CIDR still serves new pods.
    crustd.terminate().unwrap();
    crustd.spawn().await.unwrap();
    let mut rt = crustd.runtime().await.unwrap();
    assert_eq!(recorded_cidrs(&mut rt).await, ["10.89.231.0/24"]);
    let b = run(&mut rt, "b")
        .await
        .expect("RunPodSandbox after a restart");
    let b_ips = pod_ips(&mut rt, &b).await;
    assert!(in_cidr(b_ips[0], "10.89.231.0/24"), "{b_ips:?}");
    assert_ne!(a_ips, b_ips);

    // Stopping releases the address: DEL gets the ranges ADD had (host-local needs one).
    rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: a.clone(),
    })
    .await
    .expect("StopPodSandbox");
    assert_eq!(net.allocated_ips(), [b_ips[0].to_string()]);

    // A new CIDR serves pods created from then on; b keeps its address and is still
    // released with the range it was given.
    update(&mut rt, "10.89.232.0/24").await.unwrap();
    assert_eq!(recorded_cidrs(&mut rt).await, ["10.89.232.0/24"]);
    let c = run(&mut rt, "c").await.unwrap();
    let c_ips = pod_ips(&mut rt, &c).await;
    assert!(in_cidr(c_ips[0], "10.89.232.0/24"), "{c_ips:?}");
    assert_eq!(pod_ips(&mut rt, &b).await, b_ips);
    for id in [&a, &b, &c] {
        stop_and_remove_pod(&mut rt, id).await;
    }
    assert!(net.allocated_ips().is_empty(), "{:?}", net.allocated_ips());
}

#[tokio::test]
async fn dual_stack_pod_cidrs_give_one_address_per_family() {
    let dir = tempfile::tempdir().unwrap();
    let net = PodNet::new(dir.path(), 233);
    net.write_ip_ranges_conflist();
    let crustd = Crustd::start_on(&net, &[], "")
        .await
        .expect("crustd starts");
    let mut rt = crustd.runtime().await.unwrap();
    update(&mut rt, "10.89.233.0/24,fd00:89:233::/64")
        .await
        .unwrap();
    assert_eq!(
        recorded_cidrs(&mut rt).await,
        ["10.89.233.0/24", "fd00:89:233::/64"]
    );
    let id = run(&mut rt, "dual").await.unwrap();
    let ips = pod_ips(&mut rt, &id).await;
    assert_eq!(ips.len(), 2, "{ips:?}");
    assert!(in_cidr(ips[0], "10.89.233.0/24"), "{ips:?}");
    assert!(in_cidr(ips[1], "fd00:89:233::/64"), "{ips:?}");
    stop_and_remove_pod(&mut rt, &id).await;
    assert!(net.allocated_ips().is_empty(), "{:?}", net.allocated_ips());
}
