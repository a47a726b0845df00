//! `crustctl bench pods --parallel P [--with-container]`: N pods set up P at a time, as
//! kubelet starts a node's pods ("110 pods from empty to all running").
//!
//! The pods' indices go into one channel; P tokio tasks take them from it, each with its own
//! handle on the one connection, and set up one pod after another: RunPodSandbox, then (with
//! --with-container) CreateContainer and StartContainer of one `sleep 3600` container. Every
//! RPC is timed on the client; `all_running_seconds` is the wall time from the first
//! RunPodSandbox being sent to the last pod's last RPC returning. Then every pod must be listed
//! READY and every container RUNNING (a runtime that fails quietly is not timed as a fast one),
//! and the pods are stopped and removed the same way, P at a time (RemovePodSandbox removes the
//! containers too). After a failure every pod made is torn down before the error is returned.

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerFilter, ContainerState, ContainerStateValue, CreateContainerRequest, ImageSpec,
    ListContainersRequest, PodSandboxConfig,
};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;
use tonic::transport::Channel;

use super::containers::container_config;
use super::pods::{self, PodsBenchArgs, RUN_LABEL};
use super::stats::Summary;
use super::{wall_seconds, Report};
use crate::client::Ctx;
use crate::cmd::containers::PullFlags;
use crate::cmd::runp::run_pod_sandbox;
use crate::cmd::start::start_container;
use crate::config;

/// One pod's set-up: its timings, and the instants its first RPC was sent and its last one
/// returned.
#[derive(Debug, Clone, Copy)]
struct Setup {
    run: Duration,
    create: Option<Duration>,
    start: Option<Duration>,
    sent: Instant,
    done: Instant,
}

/// One pod's teardown timings.
#[derive(Debug, Clone, Copy)]
struct Teardown {
    stop: Duration,
    remove: Duration,
}

/// The options' combinations that make no sense, as a message.
fn validate(args: &PodsBenchArgs) -> Result<()> {
    match (&args.image, args.with_container) {
        (Some(image), true) if image.is_empty() => bail!("--image must name an image"),
        (None, true) => bail!("--with-container needs --image"),
        (Some(_), false) => bail!("--image is only used with --with-container"),
        _ => Ok(()),
    }
}

pub async fn run(ctx: &Ctx, args: PodsBenchArgs, out: &mut dyn Write) -> Result<()> {
    validate(&args)?;
    let base = pods::base_config(&args)?;
    let run_id: String = config::new_uuid()?.chars().take(8).collect();
    let image = match (&args.image, args.with_container) {
        (Some(image), true) => Some(ImageSpec {
            image: image.clone(),
            user_specified_image: image.clone(),
            ..Default::default()
        }),
        _ => None,
    };
    if let Some(image) = &image {
        let pod = pods::pod_config(&base, &run_id, 0)?;
        PullFlags::default()
            .ensure_image(ctx, image, &pod)
            .await
            .with_context(|| format!("pulling {}", image.image))?;
    }
    let client = ctx.runtime().await?;
    let started = Instant::now();

    let configs = (0..args.count)
        .map(|i| pods::pod_config(&base, &run_id, i).map(|c| (i, c)))
        .collect::<Result<Vec<_>>>()?;
    let job = {
        let (ctx, client, run_id) = (ctx.clone(), client.clone(), run_id.clone());
        let (handler, image) = (args.runtime.clone(), image.clone());
        move |(i, pod): (u32, PodSandboxConfig)| {
            let (ctx, mut client, run_id) = (ctx.clone(), client.clone(), run_id.clone());
            let (handler, image) = (handler.clone(), image.clone());
            async move {
                let mut id = None;
                let r = set_up(&ctx, &mut client, pod, &handler, image, &run_id, i, &mut id).await;
                (i, id, r)
            }
        }
    };
    let mut results = pool(args.parallel, configs, job).await?;
    results.sort_by_key(|(i, _, _)| *i);
    let ids: Vec<String> = results.iter().filter_map(|(_, id, _)| id.clone()).collect();
    let mut setups = Vec::with_capacity(results.len());
    let mut failure = None;
    for (i, _, r) in results {
        match r {
            Ok(s) => setups.push(s),
            Err(e) => {
                failure.get_or_insert(e.context(format!("set-up of pod {i}")));
            }
        }
    }
    if failure.is_none() {
        failure = check_running(
            ctx,
            &mut client.clone(),
            &run_id,
            ids.len(),
            image.is_some(),
        )
        .await
        .err();
    }
    if let Some(e) = failure {
        let _ = tear_down(ctx, &client, args.parallel, ids).await;
        return Err(e);
    }
    let all_running = all_running(&setups);

    let teardowns = tear_down(ctx, &client, args.parallel, ids).await?;
    let left = pods::list_bench_pods(ctx, &mut client.clone(), &run_id, false).await?;
    if left != 0 {
        bail!("{left} pods are still listed after RemovePodSandbox");
    }

    let report = Report {
        endpoint: ctx.runtime_endpoint.clone(),
        runtime_handler: args.runtime.clone(),
        image: image.map(|i| i.image),
        count: args.count,
        parallel: Some(args.parallel),
        all_running_seconds: Some(seconds(all_running)),
        wall_seconds: wall_seconds(started),
        rpcs: summaries(&setups, &teardowns),
    };
    let what = if args.with_container {
        "pods with a container each"
    } else {
        "pods"
    };
    report.print(what, args.output, out)
}

/// Runs `work` on every item, `parallel` tokio tasks taking the items from one channel; the
/// results in the order they were done.
async fn pool<I, T, F, Fut>(parallel: u32, items: Vec<I>, work: F) -> Result<Vec<T>>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send,
{
    let tasks_wanted = (parallel as usize).clamp(1, items.len().max(1));
    let (tx, rx) = mpsc::unbounded_channel();
    for item in items {
        tx.send(item)
            .map_err(|_| anyhow!("bench work queue closed"))?;
    }
    drop(tx);
    let rx = Arc::new(Mutex::new(rx));
    let work = Arc::new(work);
    let mut tasks = JoinSet::new();
    for _ in 0..tasks_wanted {
        let (rx, work) = (rx.clone(), work.clone());
        tasks.spawn(async move {
            let mut done = Vec::new();
            loop {
                // the lock is held only while taking the next item
                let item = rx.lock().await.recv().await;
                match item {
                    Some(item) => done.push(work(item).await),
                    None => break done,
                }
            }
        });
    }
    let mut results = Vec::new();
    while let Some(done) = tasks.join_next().await {
        results.extend(done.context("bench task")?);
    }
    Ok(results)
}

/// Pod `i` and, with an image, its container; `id` gets the pod's ID as soon as it has one.
#[allow(clippy::too_many_arguments)]
async fn set_up(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    pod: PodSandboxConfig,
    handler: &str,
    image: Option<ImageSpec>,
    run_id: &str,
    i: u32,
    id: &mut Option<String>,
) -> Result<Setup> {
    let sent = Instant::now();
    let pod_id = run_pod_sandbox(ctx, client, pod.clone(), handler)
        .await
        .map_err(|e| anyhow!(e))
        .context("RunPodSandbox")?;
    let run = sent.elapsed();
    *id = Some(pod_id.clone());
    let Some(image) = image else {
        return Ok(Setup {
            run,
            create: None,
            start: None,
            sent,
            done: Instant::now(),
        });
    };
    let request = CreateContainerRequest {
        pod_sandbox_id: pod_id,
        config: Some(container_config(&image, run_id, i, "unconfined")),
        sandbox_config: Some(pod),
    };
    let (container_id, create) = super::containers::create_timed(ctx, client, request).await?;
    let t0 = Instant::now();
    start_container(ctx, client, &container_id)
        .await
        .context("StartContainer")?;
    let done = Instant::now();
    Ok(Setup {
        run,
        create: Some(create),
        start: Some(done - t0),
        sent,
        done,
    })
}

/// Fails unless all `want` pods of the run are listed READY and, with containers, as many
/// containers RUNNING.
async fn check_running(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    run_id: &str,
    want: usize,
    containers: bool,
) -> Result<()> {
    let ready = pods::list_bench_pods(ctx, client, run_id, true).await?;
    if ready != want {
        bail!("{ready} of {want} pods are listed READY after RunPodSandbox");
    }
    if !containers {
        return Ok(());
    }
    let request = ListContainersRequest {
        filter: Some(ContainerFilter {
            label_selector: [(RUN_LABEL.to_owned(), run_id.to_owned())].into(),
            state: Some(ContainerStateValue {
                state: ContainerState::ContainerRunning as i32,
            }),
            ..Default::default()
        }),
    };
    let running = ctx
        .call("ListContainers", request, |req| client.list_containers(req))
        .await
        .map_err(|e| anyhow!(e))
        .context("list the bench containers")?
        .containers
        .len();
    if running != want {
        bail!("{running} of {want} containers are listed RUNNING after StartContainer");
    }
    Ok(())
}

/// Stops and removes the pods `parallel` at a time; every pod is tried, the first failure
/// is returned after.
async fn tear_down(
    ctx: &Ctx,
    client: &RuntimeServiceClient<Channel>,
    parallel: u32,
    ids: Vec<String>,
) -> Result<Vec<Teardown>> {
    let job = {
        let (ctx, client) = (ctx.clone(), client.clone());
        move |id: String| {
            let (ctx, mut client) = (ctx.clone(), client.clone());
            async move {
                let t0 = Instant::now();
                let stopped = pods::stop(&ctx, &mut client, &id).await;
                let stop = t0.elapsed();
                let t1 = Instant::now();
                let removed = match stopped {
                    Ok(()) => pods::remove(&ctx, &mut client, &id).await,
                    Err(e) => Err(e),
                };
                let remove = t1.elapsed();
                removed
                    .map(|()| Teardown { stop, remove })
                    .with_context(|| format!("teardown of pod {id}"))
            }
        }
    };
    let mut teardowns = Vec::new();
    let mut first_error = None;
    for r in pool(parallel, ids, job).await? {
        match r {
            Ok(t) => teardowns.push(t),
            Err(e) => {
                eprintln!("crustctl: {e:#}");
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(teardowns), Err)
}

/// From the first RunPodSandbox sent to the last set-up RPC returned.
fn all_running(setups: &[Setup]) -> Duration {
    let first = setups.iter().map(|s| s.sent).min();
    let last = setups.iter().map(|s| s.done).max();
    match (first, last) {
        (Some(first), Some(last)) => last.saturating_duration_since(first),
        _ => Duration::ZERO,
    }
}

/// Seconds, to the millisecond.
fn seconds(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e3).round() / 1e3
}

/// Per RPC: RunPodSandbox, CreateContainer and StartContainer (when there were containers),
/// StopPodSandbox, RemovePodSandbox.
fn summaries(setups: &[Setup], teardowns: &[Teardown]) -> Vec<Summary> {
    let mut rpcs = vec![Summary::new(
        "RunPodSandbox",
        &setups.iter().map(|s| s.run).collect::<Vec<_>>(),
    )];
    let creates: Vec<Duration> = setups.iter().filter_map(|s| s.create).collect();
    if !creates.is_empty() {
        let starts: Vec<Duration> = setups.iter().filter_map(|s| s.start).collect();
        rpcs.push(Summary::new("CreateContainer", &creates));
        rpcs.push(Summary::new("StartContainer", &starts));
    }
    let pick = |f: fn(&Teardown) -> Duration| teardowns.iter().map(f).collect::<Vec<_>>();
    rpcs.push(Summary::new("StopPodSandbox", &pick(|t| t.stop)));
    rpcs.push(Summary::new("RemovePodSandbox", &pick(|t| t.remove)));
    rpcs
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: PodsBenchArgs,
    }

    fn parse(argv: &[&str]) -> Result<PodsBenchArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn arguments() {
        let a = parse(&[]).unwrap();
        assert_eq!((a.parallel, a.with_container, a.image), (1, false, None));
        let a = parse(&["--parallel", "10", "--with-container", "--image", "busybox"]).unwrap();
        assert_eq!(a.parallel, 10);
        validate(&a).unwrap();
        assert!(parse(&["--parallel", "0"]).is_err());
        // clap: --with-container requires --image
        assert!(parse(&["--with-container"]).is_err());
        let a = parse(&["--image", "busybox"]).unwrap();
        assert_eq!(
            validate(&a).unwrap_err().to_string(),
            "--image is only used with --with-container"
        );
        let a = parse(&["--with-container", "--image", ""]).unwrap();
        assert_eq!(
            validate(&a).unwrap_err().to_string(),
            "--image must name an image"
        );
    }

    #[test]
    fn all_running_spans_first_sent_to_last_done() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let setup = |sent: u64, done: u64| Setup {
            run: ms(1),
            create: Some(ms(2)),
            start: Some(ms(3)),
            sent: t + ms(sent),
            done: t + ms(done),
        };
        let setups = [setup(5, 40), setup(0, 30), setup(10, 90), setup(20, 60)];
        assert_eq!(all_running(&setups), ms(90));
        assert_eq!(all_running(&[]), Duration::ZERO);
        assert_eq!(seconds(ms(1234)), 1.234);

        let teardowns = [Teardown {
            stop: ms(7),
            remove: ms(8),
        }];
        let s = summaries(&setups, &teardowns);
        let names: Vec<&str> = s.iter().map(|s| s.rpc.as_str()).collect();
        assert_eq!(
            names,
            [
                "RunPodSandbox",
                "CreateContainer",
                "StartContainer",
                "StopPodSandbox",
                "RemovePodSandbox"
            ]
        );
        assert_eq!(s[2].samples_ms, [3.0; 4]);
        // without containers there is no container RPC
        let bare = Setup {
            create: None,
            start: None,
            ..setups[0]
        };
        let s = summaries(&[bare], &teardowns);
        assert_eq!(s.len(), 3);
        assert_eq!(s[2].median_ms, 8.0);
    }

    #[test]
    fn report_shows_parallelism_and_all_running() {
        let report = Report {
            endpoint: "unix:///x.sock".into(),
            runtime_handler: String::new(),
            image: Some("busybox".into()),
            count: 110,
            parallel: Some(10),
            all_running_seconds: Some(12.5),
            wall_seconds: 20.0,
            rpcs: vec![],
        };
        let text = report.render("pods with a container each");
        assert!(text.starts_with(
            "110 pods with a container each on unix:///x.sock (runtime handler (default), \
             image busybox, 10 at a time), 20.000 s in all\nall running after 12.500 s\n"
        ));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["all_running_seconds"], 12.5);
        assert_eq!(json["parallel"], 10);
    }

    #[tokio::test]
    async fn pool_runs_everything_at_most_parallel_at_once() {
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (n, p) = (now.clone(), peak.clone());
        let mut done = pool(3, (0..20).collect::<Vec<u32>>(), move |i| {
            let (n, p) = (n.clone(), p.clone());
            async move {
                let running = n.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(running, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                n.fetch_sub(1, Ordering::SeqCst);
                i * 2
            }
        })
        .await
        .unwrap();
        done.sort_unstable();
        assert_eq!(done, (0..20).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        assert!(pool(4, Vec::<u32>::new(), |i| async move { i })
            .await
            .unwrap()
            .is_empty());
    }
}
