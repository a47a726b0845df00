//! `crustctl bench containers`: the latency of a container's life cycle in a running pod.
//!
//! One pod is run (untimed), then N containers one after another in it, each through the
//! whole cycle before the next: CreateContainer and StartContainer (timed each and together,
//! as "create+start"), one ExecSync of `true`, StopContainer with timeout 0 (SIGKILL at once),
//! RemoveContainer. The container runs `sleep 3600`, set explicitly so that the image's own
//! command does not matter. Between the timed calls (and untimed) the container must be
//! RUNNING after the start and EXITED after the stop, and the exec must exit 0: a runtime
//! that fails quietly is not timed as a fast one. At the end no container of the run may be
//! listed, and the pod is stopped and removed. The image is pulled first when the runtime
//! lacks it. Every RPC is timed on the client, round trip included, on one connection.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    security_profile::ProfileType, ContainerConfig, ContainerFilter, ContainerMetadata,
    ContainerState, CreateContainerRequest, ImageSpec, LinuxContainerConfig,
    LinuxContainerSecurityContext, ListContainersRequest, PodSandboxConfig, SecurityProfile,
};
use tonic::transport::Channel;

use super::pods::{self, RUN_LABEL};
use super::stats::Summary;
use super::{wall_seconds, Report};
use crate::client::Ctx;
use crate::cmd::containers::{container_status, PullFlags};
use crate::cmd::exec::exec_sync;
use crate::cmd::rm::remove_container;
use crate::cmd::runp::run_pod_sandbox;
use crate::cmd::start::start_container;
use crate::cmd::stop::stop_container;
use crate::config;
use crate::output::{format_parser, Format};

/// The containers' names: `<prefix>-<run>-<i>`.
const NAME_PREFIX: &str = "bench";
/// What each container runs.
const COMMAND: [&str; 2] = ["sleep", "3600"];
/// What each ExecSync runs.
const EXEC: [&str; 1] = ["true"];
/// ExecSync's own timeout (seconds) for `true`.
const EXEC_TIMEOUT: i64 = 30;

/// The timed operations, in the order of the report.
pub const OPERATIONS: [&str; 6] = [
    "create+start",
    "CreateContainer",
    "StartContainer",
    "ExecSync",
    "StopContainer",
    "RemoveContainer",
];

#[derive(Args, Debug)]
pub struct ContainersBenchArgs {
    /// How many containers to run, one after another
    #[arg(short = 'c', long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub count: u32,
    /// The containers' image (pulled first when the runtime lacks it)
    #[arg(long, value_name = "REF")]
    pub image: String,
    /// Runtime handler of the pod (RunPodSandbox's runtime_handler)
    #[arg(long, default_value = "")]
    pub runtime_handler: String,
    /// The containers' seccomp profile type, sent explicitly as kubelet does: unconfined is
    /// what kubelet sends for a pod that names none (without --seccomp-default),
    /// runtime-default what it sends with it
    #[arg(long, default_value = "unconfined", value_parser = ["unconfined", "runtime-default"])]
    pub seccomp: String,
    /// Output format
    #[arg(short, long, default_value = "table", value_parser = format_parser(&["json", "table"]))]
    pub output: Format,
}

/// One container's timings.
#[derive(Debug, Clone, Copy, Default)]
struct Cycle {
    create: Duration,
    start: Duration,
    exec: Duration,
    stop: Duration,
    remove: Duration,
}

pub async fn run(ctx: &Ctx, args: ContainersBenchArgs, out: &mut dyn Write) -> Result<()> {
    if args.image.is_empty() {
        bail!("--image must name an image");
    }
    let run_id: String = config::new_uuid()?.chars().take(8).collect();
    let pod = pods::pod_config(&pods::default_config(), &run_id, 0)?;
    let image = ImageSpec {
        image: args.image.clone(),
        user_specified_image: args.image.clone(),
        ..Default::default()
    };
    PullFlags::default()
        .ensure_image(ctx, &image, &pod)
        .await
        .with_context(|| format!("pulling {}", args.image))?;

    let mut client = ctx.runtime().await?;
    let started = Instant::now();
    let pod_id = run_pod_sandbox(ctx, &mut client, pod.clone(), &args.runtime_handler)
        .await
        .map_err(|e| anyhow!(e))
        .context("RunPodSandbox of the bench pod")?;

    let mut cycles = Vec::with_capacity(args.count as usize);
    for i in 0..args.count {
        let config = container_config(&image, &run_id, i, &args.seccomp);
        let mut created = None;
        match cycle(ctx, &mut client, &pod_id, &pod, config, &mut created).await {
            Ok(c) => cycles.push(c),
            Err(e) => {
                if let Some(id) = created {
                    remove_quietly(ctx, &mut client, &id).await;
                }
                remove_pod_quietly(ctx, &mut client, &pod_id).await;
                return Err(e).with_context(|| format!("container {i}"));
            }
        }
    }
    let left = list_run_containers(ctx, &mut client, &run_id).await;
    remove_pod(ctx, &mut client, &pod_id).await?;
    match left? {
        0 => {}
        n => bail!("{n} containers are still listed after RemoveContainer"),
    }

    let report = Report {
        endpoint: ctx.runtime_endpoint.clone(),
        runtime_handler: args.runtime_handler.clone(),
        image: Some(args.image.clone()),
        count: args.count,
        parallel: None,
        all_running_seconds: None,
        wall_seconds: wall_seconds(started),
        rpcs: summaries(&cycles),
    };
    report.print("containers", args.output, out)
}

/// The `i`-th container of run `run_id`: `sleep 3600` in `image`, with a unique name and
/// the run label.
pub(super) fn container_config(
    image: &ImageSpec,
    run_id: &str,
    i: u32,
    seccomp: &str,
) -> ContainerConfig {
    let profile_type = match seccomp {
        "runtime-default" => ProfileType::RuntimeDefault,
        _ => ProfileType::Unconfined,
    };
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: format!("{NAME_PREFIX}-{run_id}-{i}"),
            attempt: 0,
        }),
        image: Some(image.clone()),
        command: COMMAND.iter().map(|s| s.to_string()).collect(),
        labels: [(RUN_LABEL.to_owned(), run_id.to_owned())].into(),
        linux: Some(LinuxContainerConfig {
            security_context: Some(LinuxContainerSecurityContext {
                seccomp: Some(SecurityProfile {
                    profile_type: profile_type as i32,
                    localhost_ref: String::new(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The per-operation summaries of `cycles`, in the order of [`OPERATIONS`].
fn summaries(cycles: &[Cycle]) -> Vec<Summary> {
    let pick = |f: fn(&Cycle) -> Duration| cycles.iter().map(f).collect::<Vec<_>>();
    let series = [
        pick(|c| c.create + c.start),
        pick(|c| c.create),
        pick(|c| c.start),
        pick(|c| c.exec),
        pick(|c| c.stop),
        pick(|c| c.remove),
    ];
    OPERATIONS
        .iter()
        .zip(series)
        .map(|(name, samples)| Summary::new(name, &samples))
        .collect()
}

/// One container through its life cycle; `created` holds its ID from CreateContainer on,
/// until it is removed, for the cleanup after a failure.
async fn cycle(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    pod_id: &str,
    pod: &PodSandboxConfig,
    config: ContainerConfig,
    created: &mut Option<String>,
) -> Result<Cycle> {
    let request = CreateContainerRequest {
        pod_sandbox_id: pod_id.to_owned(),
        config: Some(config),
        sandbox_config: Some(pod.clone()),
    };
    let (id, create) = create_timed(ctx, client, request).await?;
    *created = Some(id.clone());

    let t0 = Instant::now();
    start_container(ctx, client, &id)
        .await
        .context("StartContainer")?;
    let start = t0.elapsed();
    expect_state(ctx, client, &id, ContainerState::ContainerRunning, "start").await?;

    let cmd: Vec<String> = EXEC.iter().map(|s| s.to_string()).collect();
    let t0 = Instant::now();
    let r = exec_sync(ctx, client, &id, &cmd, EXEC_TIMEOUT)
        .await
        .context("ExecSync")?;
    let exec = t0.elapsed();
    if r.exit_code != 0 {
        bail!(
            "ExecSync {cmd:?} in {id} exited {} (stdout {:?}, stderr {:?})",
            r.exit_code,
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        );
    }

    let t0 = Instant::now();
    stop_container(ctx, client, &id, 0)
        .await
        .context("StopContainer")?;
    let stop = t0.elapsed();
    expect_state(ctx, client, &id, ContainerState::ContainerExited, "stop").await?;

    let t0 = Instant::now();
    remove_container(ctx, client, &id)
        .await
        .context("RemoveContainer")?;
    let remove = t0.elapsed();
    *created = None;
    Ok(Cycle {
        create,
        start,
        exec,
        stop,
        remove,
    })
}

/// Fails unless ContainerStatus reports `want` (untimed).
/// CreateContainer, timed: the new container's ID and how long the call took.
pub(super) async fn create_timed(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    request: CreateContainerRequest,
) -> Result<(String, Duration)> {
    let t0 = Instant::now();
    let id = ctx
        .call("CreateContainer", request, |req| {
            client.create_container(req)
        })
        .await
        .map_err(|e| anyhow!(e))
        .context("CreateContainer")?
        .container_id;
    Ok((id, t0.elapsed()))
}

async fn expect_state(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    id: &str,
    want: ContainerState,
    after: &str,
) -> Result<()> {
    let status = container_status(ctx, client, id, false)
        .await
        .with_context(|| format!("ContainerStatus of {id} after {after}"))?
        .status
        .ok_or_else(|| anyhow!("ContainerStatus of {id} after {after}: no status"))?;
    check_state(status.state, want).with_context(|| format!("container {id} after {after}"))
}

fn check_state(state: i32, want: ContainerState) -> Result<()> {
    if state == want as i32 {
        return Ok(());
    }
    let name = ContainerState::try_from(state)
        .map(|s| s.as_str_name().to_owned())
        .unwrap_or_else(|_| format!("state {state}"));
    bail!("is {name}, expected {}", want.as_str_name())
}

/// How many containers of this run are listed, in any state.
async fn list_run_containers(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    run_id: &str,
) -> Result<usize> {
    let request = ListContainersRequest {
        filter: Some(ContainerFilter {
            label_selector: [(RUN_LABEL.to_owned(), run_id.to_owned())].into(),
            ..Default::default()
        }),
    };
    let r = ctx
        .call("ListContainers", request, |req| client.list_containers(req))
        .await
        .map_err(|e| anyhow!(e))
        .context("list the bench containers")?;
    Ok(r.containers.len())
}

async fn remove_pod(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    pod_id: &str,
) -> Result<()> {
    pods::stop(ctx, client, pod_id).await?;
    pods::remove(ctx, client, pod_id).await
}

/// Best effort after a failure: stop and remove the container.
async fn remove_quietly(ctx: &Ctx, client: &mut RuntimeServiceClient<Channel>, id: &str) {
    let result = match stop_container(ctx, client, id, 0).await {
        Ok(()) => remove_container(ctx, client, id).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        eprintln!("crustctl: cleanup of container {id}: {e:#}");
    }
}

/// Best effort after a failure: stop and remove the pod.
async fn remove_pod_quietly(ctx: &Ctx, client: &mut RuntimeServiceClient<Channel>, id: &str) {
    if let Err(e) = remove_pod(ctx, client, id).await {
        eprintln!("crustctl: cleanup of pod {id}: {e:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageSpec {
        ImageSpec {
            image: "127.0.0.1:5000/crust/busybox:latest".into(),
            ..Default::default()
        }
    }

    #[test]
    fn container_configs_are_unique_and_run_sleep() {
        let a = container_config(&image(), "r1", 0, "unconfined");
        let b = container_config(&image(), "r1", 1, "runtime-default");
        assert_eq!(a.metadata.as_ref().unwrap().name, "bench-r1-0");
        assert_eq!(b.metadata.as_ref().unwrap().name, "bench-r1-1");
        assert_eq!(a.command, ["sleep", "3600"]);
        assert!(a.args.is_empty());
        assert_eq!(a.labels[RUN_LABEL], "r1");
        assert_eq!(
            a.image.as_ref().unwrap().image,
            "127.0.0.1:5000/crust/busybox:latest"
        );
        let seccomp = |c: &ContainerConfig| {
            c.linux
                .as_ref()
                .unwrap()
                .security_context
                .as_ref()
                .unwrap()
                .seccomp
                .as_ref()
                .unwrap()
                .profile_type
        };
        assert_eq!(seccomp(&a), ProfileType::Unconfined as i32);
        assert_eq!(seccomp(&b), ProfileType::RuntimeDefault as i32);
    }

    #[test]
    fn summaries_per_operation() {
        let ms = Duration::from_millis;
        let cycles = [
            Cycle {
                create: ms(10),
                start: ms(20),
                exec: ms(5),
                stop: ms(7),
                remove: ms(3),
            },
            Cycle {
                create: ms(30),
                start: ms(40),
                exec: ms(6),
                stop: ms(8),
                remove: ms(4),
            },
        ];
        let s = summaries(&cycles);
        let names: Vec<&str> = s.iter().map(|s| s.rpc.as_str()).collect();
        assert_eq!(names, OPERATIONS);
        assert_eq!(s[0].samples_ms, [30.0, 70.0], "create+start is the sum");
        assert_eq!(s[0].median_ms, 50.0);
        assert_eq!(s[1].samples_ms, [10.0, 30.0]);
        assert_eq!(s[2].max_ms, 40.0);
        assert_eq!(s[3].samples_ms, [5.0, 6.0]);
        assert_eq!(s[4].p99_ms, 8.0);
        assert_eq!(s[5].min_ms, 3.0);
    }

    #[test]
    fn states_are_checked() {
        check_state(
            ContainerState::ContainerRunning as i32,
            ContainerState::ContainerRunning,
        )
        .unwrap();
        let e = check_state(
            ContainerState::ContainerExited as i32,
            ContainerState::ContainerRunning,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "is CONTAINER_EXITED, expected CONTAINER_RUNNING"
        );
        let e = check_state(9, ContainerState::ContainerExited).unwrap_err();
        assert_eq!(e.to_string(), "is state 9, expected CONTAINER_EXITED");
    }

    #[test]
    fn json_report_names_the_operations() {
        let report = Report {
            endpoint: "unix:///run/x.sock".into(),
            runtime_handler: "runc".into(),
            image: Some("busybox".into()),
            count: 1,
            parallel: None,
            all_running_seconds: None,
            wall_seconds: 0.1,
            rpcs: summaries(&[Cycle::default()]),
        };
        let json = serde_json::to_string_pretty(&report).unwrap();
        // bench/containers.sh finds each summary by the operation's name, without jq
        assert!(json.contains("\"rpc\": \"create+start\""));
        assert!(json.contains("\"image\": \"busybox\""));
        assert!(report.render("containers").starts_with(
            "1 containers on unix:///run/x.sock (runtime handler runc, image busybox)"
        ));
    }
}
