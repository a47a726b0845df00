//! `crustctl bench pods`: the latency of pod sandbox creation and teardown.
//!
//! N pods are run one after another (each with its own name and uid), so that the N-th
//! RunPodSandbox sees N-1 pods already there, as on a busy node. Then every pod must be listed
//! READY (a runtime that failed quietly is not timed as a fast one), and each is stopped and
//! removed in turn, oldest first. Every RPC is timed on the client, round trip included; the
//! connection is made once, before the first.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    LinuxPodSandboxConfig, ListPodSandboxRequest, PodSandboxConfig, PodSandboxFilter,
    PodSandboxMetadata, PodSandboxState, PodSandboxStateValue, RemovePodSandboxRequest,
    StopPodSandboxRequest,
};
use tonic::transport::Channel;

use super::stats::Summary;
use super::{wall_seconds, Report};
use crate::client::Ctx;
use crate::cmd::runp::run_pod_sandbox;
use crate::config;
use crate::output::{format_parser, Format};

/// The label every bench pod carries, with the run's ID as value.
pub const RUN_LABEL: &str = "io.crust.bench.run";

const DEFAULT_NAME: &str = "crust-bench";
const DEFAULT_NAMESPACE: &str = "crust-bench";

#[derive(Args, Debug)]
pub struct PodsBenchArgs {
    /// How many pods to run
    #[arg(short = 'c', long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub count: u32,
    /// Pod sandbox config (crictl's JSON/YAML); name and uid are made unique per pod.
    /// Default: a minimal pod in namespace crust-bench
    #[arg(long, value_name = "POD.json")]
    pub config: Option<PathBuf>,
    /// Runtime handler to run the pods with
    #[arg(short, long, default_value = "")]
    pub runtime: String,
    /// How many pods are set up (and torn down) at a time, each by its own task on one
    /// connection; 1 runs them one after another
    #[arg(short = 'p', long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub parallel: u32,
    /// Give every pod one container running `sleep 3600` (needs --image), created and
    /// started right after its pod
    #[arg(long, requires = "image")]
    pub with_container: bool,
    /// The containers' image with --with-container (pulled first when the runtime lacks it)
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Output format
    #[arg(short, long, default_value = "table", value_parser = format_parser(&["json", "table"]))]
    pub output: Format,
}

pub async fn run(ctx: &Ctx, args: PodsBenchArgs, out: &mut dyn Write) -> Result<()> {
    if args.parallel > 1 || args.with_container {
        return super::pods_parallel::run(ctx, args, out).await;
    }
    let base = base_config(&args)?;
    let run_id: String = config::new_uuid()?.chars().take(8).collect();
    let mut client = ctx.runtime().await?;
    let started = Instant::now();

    let mut ids = Vec::with_capacity(args.count as usize);
    let mut run_times = Vec::with_capacity(args.count as usize);
    for i in 0..args.count {
        let config = pod_config(&base, &run_id, i)?;
        let t0 = Instant::now();
        let result = run_pod_sandbox(ctx, &mut client, config, &args.runtime).await;
        let elapsed = t0.elapsed();
        match result {
            Ok(id) => {
                ids.push(id);
                run_times.push(elapsed);
            }
            Err(e) => {
                cleanup(ctx, &mut client, &ids).await;
                return Err(anyhow!(e)).with_context(|| format!("RunPodSandbox of pod {i}"));
            }
        }
    }

    let ready = list_bench_pods(ctx, &mut client, &run_id, true).await;
    match ready {
        Ok(n) if n == ids.len() => {}
        Ok(n) => {
            cleanup(ctx, &mut client, &ids).await;
            bail!(
                "{n} of {} pods are listed READY after RunPodSandbox",
                ids.len()
            );
        }
        Err(e) => {
            cleanup(ctx, &mut client, &ids).await;
            return Err(e);
        }
    }

    let mut stop_times = Vec::with_capacity(ids.len());
    let mut remove_times = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let t0 = Instant::now();
        let stopped = stop(ctx, &mut client, id).await;
        stop_times.push(t0.elapsed());
        let t1 = Instant::now();
        let removed = stopped.and(remove(ctx, &mut client, id).await);
        remove_times.push(t1.elapsed());
        if let Err(e) = removed {
            cleanup(ctx, &mut client, &ids[i..]).await;
            return Err(e).with_context(|| format!("teardown of pod {i} ({id})"));
        }
    }
    let left = list_bench_pods(ctx, &mut client, &run_id, false).await?;
    if left != 0 {
        bail!("{left} pods are still listed after RemovePodSandbox");
    }

    let report = Report {
        endpoint: ctx.runtime_endpoint.clone(),
        runtime_handler: args.runtime.clone(),
        image: None,
        count: args.count,
        parallel: None,
        all_running_seconds: None,
        wall_seconds: wall_seconds(started),
        rpcs: vec![
            Summary::new("RunPodSandbox", &run_times),
            Summary::new("StopPodSandbox", &stop_times),
            Summary::new("RemovePodSandbox", &remove_times),
        ],
    };
    report.print("pods", args.output, out)
}

pub(super) fn base_config(args: &PodsBenchArgs) -> Result<PodSandboxConfig> {
    match &args.config {
        Some(path) => config::load_pod_sandbox_config(path),
        None => Ok(default_config()),
    }
}

pub(super) fn default_config() -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: DEFAULT_NAME.to_owned(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            ..Default::default()
        }),
        linux: Some(LinuxPodSandboxConfig::default()),
        ..Default::default()
    }
}

/// The `i`-th pod of run `run_id`: `base` with name `<name>-<run>-<i>`, a fresh uid and the
/// run label.
pub(super) fn pod_config(
    base: &PodSandboxConfig,
    run_id: &str,
    i: u32,
) -> Result<PodSandboxConfig> {
    let mut config = base.clone();
    let metadata = config.metadata.get_or_insert_with(Default::default);
    if metadata.name.is_empty() {
        metadata.name = DEFAULT_NAME.to_owned();
    }
    if metadata.namespace.is_empty() {
        metadata.namespace = DEFAULT_NAMESPACE.to_owned();
    }
    metadata.name = format!("{}-{run_id}-{i}", metadata.name);
    metadata.uid = config::new_uuid()?;
    metadata.attempt = 0;
    config
        .labels
        .insert(RUN_LABEL.to_owned(), run_id.to_owned());
    Ok(config)
}

/// How many pods of this run are listed (only READY ones with `ready`).
pub(super) async fn list_bench_pods(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    run_id: &str,
    ready: bool,
) -> Result<usize> {
    let filter = PodSandboxFilter {
        label_selector: [(RUN_LABEL.to_owned(), run_id.to_owned())].into(),
        state: ready.then_some(PodSandboxStateValue {
            state: PodSandboxState::SandboxReady as i32,
        }),
        ..Default::default()
    };
    let request = ListPodSandboxRequest {
        filter: Some(filter),
    };
    let r = ctx
        .call("ListPodSandbox", request, |req| {
            client.list_pod_sandbox(req)
        })
        .await
        .map_err(|e| anyhow!(e))
        .context("list the bench pods")?;
    Ok(r.items.len())
}

pub(super) async fn stop(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    id: &str,
) -> Result<()> {
    let request = StopPodSandboxRequest {
        pod_sandbox_id: id.to_owned(),
    };
    ctx.call("StopPodSandbox", request, |req| {
        client.stop_pod_sandbox(req)
    })
    .await
    .map_err(|e| anyhow!(e))
    .context("StopPodSandbox")?;
    Ok(())
}

pub(super) async fn remove(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    id: &str,
) -> Result<()> {
    let request = RemovePodSandboxRequest {
        pod_sandbox_id: id.to_owned(),
    };
    ctx.call("RemovePodSandbox", request, |req| {
        client.remove_pod_sandbox(req)
    })
    .await
    .map_err(|e| anyhow!(e))
    .context("RemovePodSandbox")?;
    Ok(())
}

/// Best effort after a failure: stop and remove the pods this run made.
async fn cleanup(ctx: &Ctx, client: &mut RuntimeServiceClient<Channel>, ids: &[String]) {
    for id in ids {
        let result = match stop(ctx, client, id).await {
            Ok(()) => remove(ctx, client, id).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            eprintln!("crustctl: cleanup of pod {id}: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn pod_configs_are_unique_and_labelled() {
        let base = default_config();
        let a = pod_config(&base, "r1", 0).unwrap();
        let b = pod_config(&base, "r1", 1).unwrap();
        let (ma, mb) = (a.metadata.unwrap(), b.metadata.unwrap());
        assert_eq!(ma.name, "crust-bench-r1-0");
        assert_eq!(mb.name, "crust-bench-r1-1");
        assert_eq!(ma.namespace, "crust-bench");
        assert_ne!(ma.uid, mb.uid);
        assert_eq!(ma.uid.len(), 36);
        assert_eq!(a.labels[RUN_LABEL], "r1");
        assert!(a.linux.is_some());
    }

    #[test]
    fn config_file_is_the_base() {
        let mut base: PodSandboxConfig = config::parse(
            "metadata: {name: web, namespace: prod, uid: fixed, attempt: 3}\n\
             labels: {app: web}\nlog_directory: /tmp/logs\n",
        )
        .unwrap();
        config::validate_pod_sandbox_config(&mut base).unwrap();
        let c = pod_config(&base, "r2", 7).unwrap();
        let m = c.metadata.unwrap();
        assert_eq!(m.name, "web-r2-7");
        assert_eq!(m.namespace, "prod");
        assert_ne!(m.uid, "fixed");
        assert_eq!(m.attempt, 0);
        assert_eq!(c.labels["app"], "web");
        assert_eq!(c.labels[RUN_LABEL], "r2");
        assert_eq!(c.log_directory, "/tmp/logs");
    }

    #[test]
    fn table_and_json() {
        let ms =
            |v: &[u64]| -> Vec<Duration> { v.iter().map(|m| Duration::from_millis(*m)).collect() };
        let report = Report {
            endpoint: "unix:///run/x.sock".into(),
            runtime_handler: String::new(),
            image: None,
            count: 3,
            parallel: None,
            all_running_seconds: None,
            wall_seconds: 1.5,
            rpcs: vec![
                Summary::new("RunPodSandbox", &ms(&[100, 300, 200])),
                Summary::new("StopPodSandbox", &ms(&[10, 10, 40])),
                Summary::new("RemovePodSandbox", &ms(&[5, 6, 7])),
            ],
        };
        assert_eq!(
            report.render("pods"),
            "3 pods on unix:///run/x.sock (runtime handler (default)), 1.500 s in all\n\
             RPC                    N    MEAN ms  MEDIAN ms     P90 ms     P99 ms     MIN ms     MAX ms\n\
             RunPodSandbox          3    200.000    200.000    300.000    300.000    100.000    300.000\n\
             StopPodSandbox         3     20.000     10.000     40.000     40.000     10.000     40.000\n\
             RemovePodSandbox       3      6.000      6.000      7.000      7.000      5.000      7.000\n"
        );
        let json = serde_json::to_string_pretty(&report).unwrap();
        // bench/pods.sh finds the median after the RPC's name, without jq
        let run = json.find("\"rpc\": \"RunPodSandbox\"").unwrap();
        let median = json[run..].find("\"median_ms\": 200.0").unwrap();
        assert!(median < json[run..].find("\"samples_ms\"").unwrap());
    }
}
