//! ListMetricDescriptors and ListPodSandboxMetrics on a real crustd: a real pod (runc, a CNI
//! bridge of the test's own, a pod cgroup), busybox from a real registry, traffic from the
//! host, and `crustctl metricsp`. The figures are checked against what the workload does.
//! These tests need root.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use crust_tests::{pod_config, PodEnv};
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::Channel;

/// Bridge index 90: away from the other test files' (events.rs has 91..95).
const NET_INDEX: u8 = 90;

async fn metrics(rt: &mut RuntimeServiceClient<Channel>) -> Vec<PodSandboxMetrics> {
    rt.list_pod_sandbox_metrics(ListPodSandboxMetricsRequest {})
        .await
        .expect("ListPodSandboxMetrics")
        .into_inner()
        .pod_metrics
}

fn pod_of<'a>(all: &'a [PodSandboxMetrics], id: &str) -> &'a PodSandboxMetrics {
    all.iter()
        .find(|p| p.pod_sandbox_id == id)
        .unwrap_or_else(|| panic!("pod {id} not in {all:#?}"))
}

fn container_of<'a>(pod: &'a PodSandboxMetrics, id: &str) -> &'a [Metric] {
    &pod.container_metrics
        .iter()
        .find(|c| c.container_id == id)
        .unwrap_or_else(|| panic!("container {id} not in {pod:#?}"))
        .metrics
}

/// The value of `name` whose labels after id, name and image are `extra`.
fn value(metrics: &[Metric], name: &str, extra: &[&str]) -> u64 {
    metrics
        .iter()
        .find(|m| m.name == name && m.label_values.get(3..).is_some_and(|l| l == extra))
        .unwrap_or_else(|| panic!("no {name} {extra:?} in {metrics:#?}"))
        .value
        .expect("a value")
        .value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_and_container_metrics() {
    let mut e = PodEnv::builder("runc", NET_INDEX)
        .runtimes(&["runc"])
        .build()
        .await;
    let busybox = e.images.busybox.reference.clone();

    // The descriptors: fixed, unique, with the base labels first.
    let descriptors: HashMap<String, MetricDescriptor> =
        e.rt.list_metric_descriptors(ListMetricDescriptorsRequest {})
            .await
            .expect("ListMetricDescriptors")
            .into_inner()
            .descriptors
            .into_iter()
            .map(|d| (d.name.clone(), d))
            .collect();
    for d in descriptors.values() {
        assert_eq!(d.label_keys[..3], ["id", "name", "image"], "{d:?}");
    }
    assert!(descriptors.contains_key("container_cpu_usage_seconds_total"));
    // No pod yet: no metrics.
    assert!(metrics(&mut e.rt).await.is_empty());

    let pod = e.make_pod(pod_config("metrics", "metrics", &e.logs)).await;
    let pod_ip =
        e.rt.pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: false,
        })
        .await
        .expect("PodSandboxStatus")
        .into_inner()
        .status
        .and_then(|s| s.network)
        .map(|n| n.ip)
        .expect("the pod has an IP");
    assert!(pod_ip.starts_with(&e.net.subnet_prefix), "{pod_ip}");

    // A CPU burner holding a few MiB of its own, and one that ends at once.
    let script = "head -c 4194304 /dev/zero > /tmp/fill; while :; do :; done";
    let burner = e.run(e.config("burner", &["sh", "-c", script])).await;
    let done = e.run(e.config("done", &["sh", "-c", "true"])).await;
    e.wait_exited(&done).await;

    // The CPU counter grows while the burner runs (whole seconds: wait for one more).
    let first = metrics(&mut e.rt).await;
    let cpu = |all: &[PodSandboxMetrics]| {
        value(
            container_of(pod_of(all, &pod), &burner),
            "container_cpu_usage_seconds_total",
            &["total"],
        )
    };
    let cpu_before = cpu(&first);
    let deadline = Instant::now() + Duration::from_secs(30);
    let second = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = metrics(&mut e.rt).await;
        if cpu(&now) > cpu_before {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "container_cpu_usage_seconds_total stayed at {cpu_before}"
        );
    };

    let p = pod_of(&second, &pod);
    // Only the running container: the one that ended has no metrics.
    let ids: Vec<&str> = p
        .container_metrics
        .iter()
        .map(|c| c.container_id.as_str())
        .collect();
    assert_eq!(ids, [burner.as_str()]);
    let c = container_of(p, &burner);
    let working_set = value(c, "container_memory_working_set_bytes", &[]);
    assert!(working_set > 0, "working set {working_set}");
    assert!(value(c, "container_memory_usage_bytes", &[]) >= working_set);
    assert!(value(c, "container_threads", &[]) >= 1);
    assert_eq!(
        value(c, "container_spec_memory_limit_bytes", &[]),
        0,
        "no limit"
    );
    // The writable layer holds the 4 MiB file.
    assert!(value(c, "container_fs_usage_bytes", &[]) >= 4 << 20);
    // Every metric carries the container's ID, its k8s_ name and its image.
    for m in c {
        assert_eq!(m.label_values[0], burner, "{m:?}");
        assert_eq!(
            m.label_values[1],
            format!(
                "k8s_burner_metrics_crust-test_uid-metrics-{}_0",
                std::process::id()
            ),
            "{m:?}"
        );
        assert_eq!(m.label_values[2], busybox, "{m:?}");
        assert!(m.timestamp > 0, "{m:?}");
    }
    // The pod cgroup holds the container's: its counters are at least the container's.
    assert!(
        value(&p.metrics, "container_cpu_usage_seconds_total", &["total"]) >= cpu(&second),
        "{:#?}",
        p.metrics
    );
    assert!(value(&p.metrics, "container_memory_working_set_bytes", &[]) >= working_set);
    assert!(p.metrics.iter().all(|m| m.label_values[0] == pod));

    // Every metric has a descriptor, with as many labels as it has keys, and no series twice.
    let mut series = std::collections::HashSet::new();
    for m in p
        .metrics
        .iter()
        .chain(p.container_metrics.iter().flat_map(|c| &c.metrics))
    {
        let d = descriptors
            .get(&m.name)
            .unwrap_or_else(|| panic!("{} is not described", m.name));
        assert_eq!(m.label_values.len(), d.label_keys.len(), "{m:?} {d:?}");
        assert!(
            series.insert((m.name.clone(), m.label_values.clone())),
            "{m:?} twice"
        );
    }

    // Traffic to the pod IP from the host: 5 pings of 1000 bytes arrive on eth0, 5 replies
    // leave it.
    let rx = |all: &[PodSandboxMetrics]| {
        let p = pod_of(all, &pod);
        (
            value(
                &p.metrics,
                "container_network_receive_bytes_total",
                &["eth0"],
            ),
            value(
                &p.metrics,
                "container_network_transmit_bytes_total",
                &["eth0"],
            ),
            value(
                &p.metrics,
                "container_network_receive_packets_total",
                &["eth0"],
            ),
        )
    };
    let (rx_before, tx_before, packets_before) = rx(&metrics(&mut e.rt).await);
    let ping = Command::new("busybox")
        .args([
            "ping", "-c", "5", "-i", "0.2", "-s", "1000", "-W", "5", &pod_ip,
        ])
        .output()
        .expect("busybox ping");
    assert!(
        ping.status.success(),
        "ping {pod_ip}: {}{}",
        String::from_utf8_lossy(&ping.stdout),
        String::from_utf8_lossy(&ping.stderr)
    );
    let (rx_after, tx_after, packets_after) = rx(&metrics(&mut e.rt).await);
    assert!(
        rx_after >= rx_before + 5 * 1000,
        "received {rx_before} -> {rx_after}"
    );
    assert!(
        tx_after >= tx_before + 5 * 1000,
        "transmitted {tx_before} -> {tx_after}"
    );
    assert!(packets_after >= packets_before + 5);
    assert!(
        !pod_of(&metrics(&mut e.rt).await, &pod)
            .metrics
            .iter()
            .any(|m| m.label_values.get(3).map(String::as_str) == Some("lo")),
        "loopback is left out"
    );

    // crustctl metricsp prints the same response as protojson.
    for args in [
        vec!["metricsp", "-o", "json"],
        vec!["metricsp", "--pod", &pod[..12]],
    ] {
        let out = e.crustd.crustctl(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let pods = v["podMetrics"].as_array().expect("podMetrics");
        assert_eq!(pods.len(), 1, "{v}");
        assert_eq!(pods[0]["podSandboxId"], pod.as_str());
        assert_eq!(
            pods[0]["containerMetrics"][0]["containerId"],
            burner.as_str()
        );
        let names: Vec<&str> = pods[0]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"container_network_receive_bytes_total"),
            "{names:?}"
        );
        let cpu = pods[0]["containerMetrics"][0]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "container_cpu_usage_seconds_total")
            .expect("cpu in crustctl's output");
        assert_eq!(cpu["metricType"], "COUNTER");
        assert!(
            cpu["value"]["value"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > cpu_before
        );
    }
    let none = e.crustd.crustctl(&["metricsp", "--pod", "nosuchpod"]);
    assert!(none.status.success());
    let v: serde_json::Value = serde_json::from_slice(&none.stdout).unwrap();
    assert_eq!(v["podMetrics"], serde_json::json!([]));

    // A pod that is not ready has no metrics.
    e.rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .expect("StopPodSandbox");
    assert!(metrics(&mut e.rt).await.is_empty());
    e.rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .expect("RemovePodSandbox");
}
