//! `crustctl bench stats`: the latency of ListPodSandboxStats and ListContainerStats on a
//! node with N pods, as kubelet calls them every few seconds.
//!
//! N pods are run (untimed), each with one container running `sleep 3600` when `--image` is
//! given, all carrying the run's label. Then, after one untimed call of each (so both the
//! runtime's caches and its CPU samples are warm), the two RPCs are called `--calls` times in
//! turn, filtered by the run's label, each timed on the client, round trip included, on one
//! connection; each reply must hold N entries (a runtime that answers quickly with nothing is
//! not timed as a fast one). An RPC the runtime answers with Unimplemented is reported as
//! unsupported and not called again. At the end the pods are stopped and removed.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerStatsFilter, CreateContainerRequest, ImageSpec,
    LinuxContainerConfig, LinuxContainerSecurityContext, ListContainerStatsRequest,
    ListPodSandboxStatsRequest, PodSandboxConfig, PodSandboxStatsFilter,
};
use serde::Serialize;
use tonic::transport::Channel;

use super::pods::{self, RUN_LABEL};
use super::stats::{self, Summary};
use super::wall_seconds;
use crate::client::Ctx;
use crate::cmd::containers::PullFlags;
use crate::cmd::runp::run_pod_sandbox;
use crate::cmd::start::start_container;
use crate::config;
use crate::output::{format_parser, Format};

/// The timed RPCs, in the order of the report.
pub const RPCS: [&str; 2] = ["ListPodSandboxStats", "ListContainerStats"];

#[derive(Args, Debug)]
pub struct StatsBenchArgs {
    /// How many pods to run
    #[arg(short = 'c', long, default_value_t = 110, value_parser = clap::value_parser!(u32).range(1..))]
    pub count: u32,
    /// One container per pod in this image, running `sleep 3600` (pulled first when the
    /// runtime lacks it); without it the pods have no containers
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Give pod i the cgroup parent `<DIR>/pod-<run>-<i>` (cgroupfs form), as kubelet gives
    /// every pod one: containerd reads a pod's stats from it and fails for a pod without
    #[arg(long, value_name = "DIR")]
    pub cgroup_parent: Option<String>,
    /// How many times each RPC is called and timed
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub calls: u32,
    /// Runtime handler of the pods (RunPodSandbox's runtime_handler)
    #[arg(long, default_value = "")]
    pub runtime_handler: String,
    /// Output format
    #[arg(short, long, default_value = "table", value_parser = format_parser(&["json", "table"]))]
    pub output: Format,
}

/// What `-o json` prints.
#[derive(Debug, Serialize)]
pub struct StatsReport {
    pub endpoint: String,
    pub runtime_handler: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Pods (each with one container when there is an image).
    pub count: u32,
    /// Wall time of the whole run, set-up and teardown included.
    pub wall_seconds: f64,
    /// Seconds the set-up took (pods and containers).
    pub setup_seconds: f64,
    pub rpcs: Vec<Summary>,
    /// RPCs the runtime answered with Unimplemented.
    pub unsupported: Vec<String>,
}

impl StatsReport {
    fn render(&self) -> String {
        let handler = if self.runtime_handler.is_empty() {
            "(default)"
        } else {
            &self.runtime_handler
        };
        let what = match &self.image {
            Some(image) => format!("pods with a container each (image {image})"),
            None => "pods without containers".to_string(),
        };
        let mut text = format!(
            "{} {what} on {} (runtime handler {handler}), set up in {:.3} s, {:.3} s in all\n",
            self.count, self.endpoint, self.setup_seconds, self.wall_seconds
        );
        text.push_str(&stats::table(&self.rpcs));
        for rpc in &self.unsupported {
            text.push_str(&format!(
                "{rpc}: unsupported by the runtime (Unimplemented)\n"
            ));
        }
        text
    }
}

pub async fn run(ctx: &Ctx, args: StatsBenchArgs, out: &mut dyn Write) -> Result<()> {
    let run_id: String = config::new_uuid()?.chars().take(8).collect();
    let base = pods::default_config();
    let image = args.image.as_ref().map(|image| ImageSpec {
        image: image.clone(),
        user_specified_image: image.clone(),
        ..Default::default()
    });
    if let Some(image) = &image {
        let pod = pods::pod_config(&base, &run_id, 0)?;
        PullFlags::default()
            .ensure_image(ctx, image, &pod)
            .await
            .with_context(|| format!("pulling {}", image.image))?;
    }
    let mut client = ctx.runtime().await?;
    let started = Instant::now();
    let mut pod_ids = Vec::with_capacity(args.count as usize);
    let setup = set_up(
        ctx,
        &mut client,
        &args,
        &base,
        &run_id,
        image.as_ref(),
        &mut pod_ids,
    )
    .await;
    let setup_seconds = wall_seconds(started);
    let measured = match setup {
        Ok(()) => measure(ctx, &mut client, &args, &run_id).await,
        Err(e) => Err(e),
    };
    let teardown = tear_down(ctx, &mut client, &pod_ids).await;
    let (rpcs, unsupported) = measured?;
    teardown?;
    let report = StatsReport {
        endpoint: ctx.runtime_endpoint.clone(),
        runtime_handler: args.runtime_handler.clone(),
        image: args.image.clone(),
        count: args.count,
        wall_seconds: wall_seconds(started),
        setup_seconds,
        rpcs,
        unsupported,
    };
    match args.output {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
        _ => out.write_all(report.render().as_bytes())?,
    }
    Ok(())
}

/// Runs the pods (and their containers); `pod_ids` gets each pod as it is made, for the
/// teardown whatever happens.
async fn set_up(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    args: &StatsBenchArgs,
    base: &PodSandboxConfig,
    run_id: &str,
    image: Option<&ImageSpec>,
    pod_ids: &mut Vec<String>,
) -> Result<()> {
    for i in 0..args.count {
        let mut pod = pods::pod_config(base, run_id, i)?;
        if let Some(dir) = &args.cgroup_parent {
            pod.linux.get_or_insert_with(Default::default).cgroup_parent =
                cgroup_parent(dir, run_id, i);
        }
        let pod_id = run_pod_sandbox(ctx, client, pod.clone(), &args.runtime_handler)
            .await
            .map_err(|e| anyhow!(e))
            .with_context(|| format!("RunPodSandbox of pod {i}"))?;
        pod_ids.push(pod_id.clone());
        let Some(image) = image else {
            continue;
        };
        let request = CreateContainerRequest {
            pod_sandbox_id: pod_id,
            config: Some(container_config(image, run_id, i)),
            sandbox_config: Some(pod),
        };
        let id = ctx
            .call("CreateContainer", request, |req| {
                client.create_container(req)
            })
            .await
            .map_err(|e| anyhow!(e))
            .with_context(|| format!("CreateContainer in pod {i}"))?
            .container_id;
        start_container(ctx, client, &id)
            .await
            .with_context(|| format!("StartContainer in pod {i}"))?;
    }
    Ok(())
}

/// Pod `i`'s cgroup parent below `dir`.
fn cgroup_parent(dir: &str, run_id: &str, i: u32) -> String {
    format!("{}/pod-{run_id}-{i}", dir.trim_end_matches('/'))
}

/// The `i`-th container: `sleep 3600` with the run's label.
fn container_config(image: &ImageSpec, run_id: &str, i: u32) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: format!("stats-{run_id}-{i}"),
            attempt: 0,
        }),
        image: Some(image.clone()),
        command: vec!["sleep".into(), "3600".into()],
        labels: [(RUN_LABEL.to_owned(), run_id.to_owned())].into(),
        linux: Some(LinuxContainerConfig {
            security_context: Some(LinuxContainerSecurityContext::default()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One call of each RPC untimed, then `calls` timed rounds; the summaries and the RPCs the
/// runtime does not implement.
async fn measure(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    args: &StatsBenchArgs,
    run_id: &str,
) -> Result<(Vec<Summary>, Vec<String>)> {
    let label = || [(RUN_LABEL.to_owned(), run_id.to_owned())].into();
    let want_pods = args.count as usize;
    let want_containers = if args.image.is_some() { want_pods } else { 0 };
    let mut supported = [true, true];
    let mut samples: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for round in 0..=args.calls {
        for (k, rpc) in RPCS.iter().enumerate() {
            if !supported[k] {
                continue;
            }
            let t0 = Instant::now();
            let result = match k {
                0 => {
                    let request = ListPodSandboxStatsRequest {
                        filter: Some(PodSandboxStatsFilter {
                            label_selector: label(),
                            ..Default::default()
                        }),
                    };
                    ctx.call(rpc, request, |req| client.list_pod_sandbox_stats(req))
                        .await
                        .map(|r| (r.stats.len(), want_pods))
                }
                _ => {
                    let request = ListContainerStatsRequest {
                        filter: Some(ContainerStatsFilter {
                            label_selector: label(),
                            ..Default::default()
                        }),
                    };
                    ctx.call(rpc, request, |req| client.list_container_stats(req))
                        .await
                        .map(|r| (r.stats.len(), want_containers))
                }
            };
            let elapsed = t0.elapsed();
            match result {
                Ok((got, want)) if got == want => {
                    if round > 0 {
                        samples[k].push(elapsed);
                    }
                }
                Ok((got, want)) => bail!("{rpc} returned {got} entries, not {want}"),
                Err(e) if e.code() == tonic::Code::Unimplemented => supported[k] = false,
                Err(e) => return Err(anyhow!(e)).context(*rpc),
            }
        }
    }
    let mut summaries = Vec::new();
    let mut unsupported = Vec::new();
    for (k, rpc) in RPCS.iter().enumerate() {
        if supported[k] {
            summaries.push(Summary::new(rpc, &samples[k]));
        } else {
            unsupported.push(rpc.to_string());
        }
    }
    Ok((summaries, unsupported))
}

/// Stops and removes every pod of the run (their containers go with them); the first
/// failure is returned after all were tried.
async fn tear_down(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    pod_ids: &[String],
) -> Result<()> {
    let mut first_error = None;
    for id in pod_ids {
        let result = match pods::stop(ctx, client, id).await {
            Ok(()) => pods::remove(ctx, client, id).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            eprintln!("crustctl: teardown of pod {id}: {e:#}");
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_sleep_with_the_run_label() {
        let image = ImageSpec {
            image: "busybox".into(),
            ..Default::default()
        };
        let c = container_config(&image, "run1", 7);
        assert_eq!(c.metadata.unwrap().name, "stats-run1-7");
        assert_eq!(c.command, ["sleep", "3600"]);
        assert_eq!(c.labels[RUN_LABEL], "run1");
        assert_eq!(cgroup_parent("/bench/", "run1", 7), "/bench/pod-run1-7");
    }

    #[test]
    fn the_report_names_what_is_unsupported() {
        let report = StatsReport {
            endpoint: "unix:///x.sock".into(),
            runtime_handler: String::new(),
            image: None,
            count: 3,
            wall_seconds: 1.5,
            setup_seconds: 1.0,
            rpcs: vec![Summary::new(
                "ListContainerStats",
                &[Duration::from_millis(2), Duration::from_millis(4)],
            )],
            unsupported: vec!["ListPodSandboxStats".into()],
        };
        let text = report.render();
        assert!(
            text.starts_with("3 pods without containers on unix:///x.sock"),
            "{text}"
        );
        assert!(text.contains("ListContainerStats"), "{text}");
        assert!(text.ends_with("ListPodSandboxStats: unsupported by the runtime (Unimplemented)\n"));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["rpcs"][0]["rpc"], "ListContainerStats");
        assert_eq!(json["rpcs"][0]["median_ms"], 3.0);
        assert_eq!(json["unsupported"][0], "ListPodSandboxStats");
    }
}
