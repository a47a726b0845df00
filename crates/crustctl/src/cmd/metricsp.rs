//! `crustctl metricsp`: the pods' metrics, the unstructured key/value pairs that replace
//! cAdvisor's `/metrics/cadvisor`, as crictl's `metricsp` (cri-tools 1.29) prints them: one
//! ListPodSandboxMetricsResponse in JSON (the default) or YAML. `--pod` keeps the pods whose
//! ID starts with it (the RPC has no filter: this one is ours). `--watch` repeats until
//! Ctrl-C.

use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use k8s_cri::v1::{ListPodSandboxMetricsRequest, ListPodSandboxMetricsResponse};

use crate::client::Ctx;
use crate::output::{format_parser, print_message, Format};

/// crictl's `--watch` ticker: half a second between one display's end and the next.
const WATCH_PAUSE: Duration = Duration::from_millis(500);

#[derive(Args, Debug)]
pub struct MetricspArgs {
    /// Only the pod whose ID (or a prefix of it) is given
    #[arg(short, long, value_name = "ID")]
    pub pod: Option<String>,
    /// Output format, One of: json|yaml
    #[arg(short, long, default_value = "json",
          value_parser = format_parser(&["json", "yaml"]))]
    pub output: Format,
    /// Watch pod metrics
    #[arg(short, long)]
    pub watch: bool,
}

pub async fn run(ctx: &Ctx, args: MetricspArgs, out: &mut dyn Write) -> Result<()> {
    let mut client = ctx.runtime().await?;
    let mut display = async |out: &mut dyn Write| -> Result<()> {
        let response = ctx
            .call(
                "ListPodSandboxMetrics",
                ListPodSandboxMetricsRequest {},
                |req| client.list_pod_sandbox_metrics(req),
            )
            .await
            .map_err(|e| anyhow!(e))
            .context("list pod sandbox metrics")?;
        let response = select(response, args.pod.as_deref());
        print_message(out, &response, args.output)?;
        Ok(out.flush()?)
    };
    if !args.watch {
        return display(out).await.context("get pod metrics");
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            shown = display(out) => shown.context("get pod metrics")?,
        }
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            () = tokio::time::sleep(WATCH_PAUSE) => {}
        }
    }
}

/// The pods whose ID starts with `pod` (all without one), in the runtime's order.
fn select(
    mut response: ListPodSandboxMetricsResponse,
    pod: Option<&str>,
) -> ListPodSandboxMetricsResponse {
    if let Some(prefix) = pod {
        response
            .pod_metrics
            .retain(|p| p.pod_sandbox_id.starts_with(prefix));
    }
    response
}

#[cfg(test)]
mod tests {
    use k8s_cri::v1::{ContainerMetrics, Metric, MetricType, PodSandboxMetrics, UInt64Value};

    use super::*;

    fn response() -> ListPodSandboxMetricsResponse {
        ListPodSandboxMetricsResponse {
            pod_metrics: vec![
                PodSandboxMetrics {
                    pod_sandbox_id: "abc123".into(),
                    metrics: vec![Metric {
                        name: "container_network_receive_bytes_total".into(),
                        timestamp: 1_700_000_000_000_000_000,
                        metric_type: MetricType::Counter as i32,
                        label_values: vec![
                            "abc123".into(),
                            "k8s_POD_p_ns_u_0".into(),
                            "".into(),
                            "eth0".into(),
                        ],
                        value: Some(UInt64Value { value: 4096 }),
                    }],
                    container_metrics: vec![ContainerMetrics {
                        container_id: "c1".into(),
                        metrics: vec![Metric {
                            name: "container_memory_working_set_bytes".into(),
                            timestamp: 1,
                            metric_type: MetricType::Gauge as i32,
                            label_values: vec![
                                "c1".into(),
                                "k8s_c_p_ns_u_0".into(),
                                "busybox".into(),
                            ],
                            value: Some(UInt64Value { value: 1 << 20 }),
                        }],
                    }],
                },
                PodSandboxMetrics {
                    pod_sandbox_id: "def456".into(),
                    metrics: vec![],
                    container_metrics: vec![],
                },
            ],
        }
    }

    #[test]
    fn json_as_crictl_prints_it() {
        let mut out = Vec::new();
        print_message(&mut out, &select(response(), Some("abc")), Format::Json).unwrap();
        let text = String::from_utf8(out).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let pods = v["podMetrics"].as_array().unwrap();
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0]["podSandboxId"], "abc123");
        let m = &pods[0]["metrics"][0];
        assert_eq!(m["name"], "container_network_receive_bytes_total");
        assert_eq!(m["metricType"], "COUNTER");
        assert_eq!(m["timestamp"], "1700000000000000000");
        assert_eq!(m["value"]["value"], "4096");
        assert_eq!(m["labelValues"][3], "eth0");
        let c = &pods[0]["containerMetrics"][0];
        assert_eq!(c["containerId"], "c1");
        assert_eq!(c["metrics"][0]["metricType"], "GAUGE");
    }

    #[test]
    fn every_pod_without_a_filter_and_yaml() {
        assert_eq!(select(response(), None).pod_metrics.len(), 2);
        assert!(select(response(), Some("x")).pod_metrics.is_empty());
        let mut out = Vec::new();
        print_message(&mut out, &select(response(), Some("def")), Format::Yaml).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("podSandboxId: def456"), "{text}");
        assert!(!text.contains("abc123"), "{text}");
    }
}
