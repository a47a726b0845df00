//! GetContainerEvents on a real crustd: real pods and containers (runc, crun), images from a
//! real registry, subscribers on real gRPC connections, and `crustctl events`. Every test
//! observes the events as a client (kubelet's evented PLEG) would. These tests need root.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crust_tests::{binary, both_runtimes, stop_and_remove_pod, Crustd, PodEnv, PodNet};
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

const CREATED: i32 = ContainerEventType::ContainerCreatedEvent as i32;
const STARTED: i32 = ContainerEventType::ContainerStartedEvent as i32;
const STOPPED: i32 = ContainerEventType::ContainerStoppedEvent as i32;
const DELETED: i32 = ContainerEventType::ContainerDeletedEvent as i32;

/// How long one awaited event may take on a busy machine.
const EVENT_WAIT: Duration = Duration::from_secs(60);

/// crustd on a CNI bridge of the test's own, busybox pulled, no pod yet.
/// Bridge indexes 91..95 (and 191..195 for crun): away from the other test files'.
async fn env(handler: &'static str, index: u8) -> PodEnv {
    PodEnv::builder(handler, index).build().await
}

/// A pod of its own name; `logs`: the pod's log directory (none when empty).
fn pod_config(name: &str, host_network: bool, logs: &Path) -> PodSandboxConfig {
    let network = if host_network {
        NamespaceMode::Node
    } else {
        NamespaceMode::Pod
    };
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}-{}", std::process::id()),
            namespace: "crust-test".into(),
            attempt: 0,
        }),
        hostname: "events".into(),
        log_directory: if logs.as_os_str().is_empty() {
            String::new()
        } else {
            logs.join(name).display().to_string()
        },
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: network as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Runs the pod `<name>-<index>`, its logs below the env's.
async fn run_pod(e: &mut PodEnv, name: &str, host_network: bool) -> (String, PodSandboxConfig) {
    let config = pod_config(&format!("{name}-{}", e.index), host_network, &e.logs);
    (e.run_pod(config.clone()).await, config)
}

/// A busybox container running `cmd` in `pod`.
async fn create(
    e: &mut PodEnv,
    pod: &(String, PodSandboxConfig),
    name: &str,
    cmd: &[&str],
) -> String {
    let config = e.config(name, cmd);
    e.create_in(&pod.0, &pod.1, config)
        .await
        .expect("CreateContainer")
}

/// One subscriber, read by a task of its own as fast as events come.
struct Sub {
    rx: mpsc::UnboundedReceiver<Result<ContainerEventResponse, Status>>,
}

async fn subscribe(rt: &mut RuntimeServiceClient<Channel>) -> Sub {
    Sub {
        rx: crust_tests::container_events(rt).await,
    }
}

impl Sub {
    async fn next(&mut self) -> ContainerEventResponse {
        match tokio::time::timeout(EVENT_WAIT, self.rx.recv()).await {
            Ok(Some(Ok(event))) => event,
            Ok(Some(Err(status))) => panic!("the event stream failed: {status:?}"),
            Ok(None) => panic!("the event stream ended"),
            Err(_) => panic!("no event within {EVENT_WAIT:?}"),
        }
    }

    /// Events up to and including the first `last` accepts.
    async fn until(
        &mut self,
        last: impl Fn(&ContainerEventResponse) -> bool,
    ) -> Vec<ContainerEventResponse> {
        let mut got = Vec::new();
        loop {
            let event = self.next().await;
            let done = last(&event);
            got.push(event);
            if done {
                return got;
            }
        }
    }
}

fn kinds(events: &[ContainerEventResponse]) -> Vec<(String, i32)> {
    events
        .iter()
        .map(|e| (e.container_id.clone(), e.container_event_type))
        .collect()
}

fn status_of<'a>(event: &'a ContainerEventResponse, id: &str) -> Option<&'a ContainerStatus> {
    event.containers_statuses.iter().find(|s| s.id == id)
}

fn pod_state(event: &ContainerEventResponse) -> i32 {
    event
        .pod_sandbox_status
        .as_ref()
        .expect("the event carries the pod's status")
        .state
}

both_runtimes! {
    lifecycle_events_in_order(91);
    exits_are_reported_without_polling(92);
}

/// Two subscribers see a pod and a container from RunPodSandbox to RemovePodSandbox: the
/// same events, in order, each with the statuses of that moment.
async fn lifecycle_events_in_order(handler: &'static str, index: u8) {
    let mut e = env(handler, index).await;
    let began = now_nanos();
    let mut a = subscribe(&mut e.rt).await;
    let mut b = subscribe(&mut e.rt.clone()).await;

    let pod = run_pod(&mut e, "life", false).await;
    let id = create(&mut e, &pod, "sleeper", &["sleep", "1000"]).await;
    e.start(&id).await.expect("StartContainer");
    // SIGKILL at once: sleep as pid 1 ignores SIGTERM.
    e.stop(&id).await;
    e.rt.remove_container(RemoveContainerRequest {
        container_id: id.clone(),
    })
    .await
    .expect("RemoveContainer");
    // A second stop changes nothing and is not announced again.
    for _ in 0..2 {
        e.rt.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: pod.0.clone(),
        })
        .await
        .expect("StopPodSandbox");
    }
    e.rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod.0.clone(),
    })
    .await
    .expect("RemovePodSandbox");

    let pod_id = pod.0.clone();
    let is_last = |ev: &ContainerEventResponse| {
        ev.container_id == pod_id && ev.container_event_type == DELETED
    };
    let got = a.until(&is_last).await;
    let expected = vec![
        (pod.0.clone(), CREATED),
        (pod.0.clone(), STARTED),
        (id.clone(), CREATED),
        (id.clone(), STARTED),
        (id.clone(), STOPPED),
        (id.clone(), DELETED),
        (pod.0.clone(), STOPPED),
        (pod.0.clone(), DELETED),
    ];
    assert_eq!(kinds(&got), expected);
    let ended = now_nanos();
    let mut previous = began;
    for ev in &got {
        assert!(
            ev.created_at >= previous && ev.created_at <= ended,
            "created_at {} outside [{previous}, {ended}]",
            ev.created_at
        );
        previous = ev.created_at;
        let pod_status = ev.pod_sandbox_status.as_ref().expect("pod status");
        assert_eq!(pod_status.id, pod.0);
        assert_eq!(
            pod_status.metadata.as_ref().unwrap().name,
            format!("life-{index}")
        );
    }
    let ready = PodSandboxState::SandboxReady as i32;
    let not_ready = PodSandboxState::SandboxNotready as i32;
    // The pod: created and started ready, with no containers yet.
    assert_eq!(pod_state(&got[0]), ready);
    assert!(got[0].containers_statuses.is_empty());
    assert_eq!(pod_state(&got[1]), ready);
    // The container, through its states.
    let created = status_of(&got[2], &id).expect("CREATED carries the container's status");
    assert_eq!(created.state, ContainerState::ContainerCreated as i32);
    assert_eq!(created.metadata.as_ref().unwrap().name, "sleeper");
    let started = status_of(&got[3], &id).expect("STARTED carries the container's status");
    assert_eq!(started.state, ContainerState::ContainerRunning as i32);
    assert!(started.started_at > 0);
    let stopped = status_of(&got[4], &id).expect("STOPPED carries the container's status");
    assert_eq!(stopped.state, ContainerState::ContainerExited as i32);
    assert_eq!(stopped.exit_code, 137, "{stopped:?}");
    assert!(stopped.finished_at >= stopped.started_at);
    assert_eq!(pod_state(&got[4]), ready);
    // Removed: no longer among the pod's containers.
    assert!(status_of(&got[5], &id).is_none(), "{:?}", got[5]);
    assert!(got[5].containers_statuses.is_empty());
    assert_eq!(pod_state(&got[5]), ready);
    // The pod stopped, then removed: its last status, and no containers.
    assert_eq!(pod_state(&got[6]), not_ready);
    assert_eq!(pod_state(&got[7]), not_ready);
    assert!(got[7].containers_statuses.is_empty());

    // The other subscriber got the very same events.
    let other = b.until(&is_last).await;
    assert_eq!(kinds(&other), expected);
    let times =
        |evs: &[ContainerEventResponse]| evs.iter().map(|e| e.created_at).collect::<Vec<_>>();
    assert_eq!(times(&other), times(&got));
    // Nothing else was announced (no second STOPPED for the repeated stop).
    e.rt.list_containers(ListContainersRequest::default())
        .await
        .expect("ListContainers");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        a.rx.try_recv().is_err(),
        "unexpected event after the pod's DELETED"
    );

    // crustd stopping ends the streams (they would hold its graceful exit up for the grace).
    let stopping = Instant::now();
    assert!(e.crustd.terminate().unwrap().success());
    assert!(
        stopping.elapsed() < Duration::from_secs(4),
        "crustd took {:?} to stop with two subscribers",
        stopping.elapsed()
    );
    for sub in [&mut a, &mut b] {
        match tokio::time::timeout(EVENT_WAIT, sub.rx.recv()).await {
            Ok(Some(Err(status))) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert!(status.message().contains("shutting down"), "{status:?}");
            }
            other => panic!("expected the stream to end with Unavailable, got {other:?}"),
        }
    }
}

/// A container that ends by itself is reported STOPPED with its exit code, and a subscriber
/// that then asks sees the same; after a crustd restart, exits are still reported.
async fn exits_are_reported_without_polling(handler: &'static str, index: u8) {
    let mut e = env(handler, index).await;
    let pod = run_pod(&mut e, "exits", false).await;
    let mut sub = subscribe(&mut e.rt).await;
    let id = create(&mut e, &pod, "quick", &["sh", "-c", "exit 3"]).await;
    e.start(&id).await.expect("StartContainer");
    let target = id.clone();
    let got = sub
        .until(|ev| ev.container_id == target && ev.container_event_type == STOPPED)
        .await;
    assert_eq!(
        kinds(&got),
        vec![
            (id.clone(), CREATED),
            (id.clone(), STARTED),
            (id.clone(), STOPPED)
        ]
    );
    let exited = status_of(got.last().unwrap(), &id)
        .expect("status in STOPPED")
        .clone();
    assert_eq!(exited.state, ContainerState::ContainerExited as i32);
    assert_eq!(exited.exit_code, 3);
    assert_eq!(exited.reason, "Error");
    // Announced after it was stored: asking now gives the same answer.
    let asked = e.status(&id).await;
    assert_eq!(
        (asked.state, asked.exit_code, asked.finished_at),
        (exited.state, exited.exit_code, exited.finished_at)
    );

    // A container that waits for a file, across a crustd crash and restart.
    let waiter = create(
        &mut e,
        &pod,
        "waiter",
        &[
            "sh",
            "-c",
            "while [ ! -e /tmp/go ]; do sleep 0.1; done; exit 4",
        ],
    )
    .await;
    e.start(&waiter).await.expect("StartContainer");
    e.crustd.kill();
    e.crustd.spawn().await.expect("crustd restarts");
    e.rt = e.crustd.runtime().await.unwrap();
    let mut sub = subscribe(&mut e.rt).await;
    assert_eq!(
        e.status(&waiter).await.state,
        ContainerState::ContainerRunning as i32
    );
    let r = e.exec(&waiter, &["touch", "/tmp/go"]).await;
    assert_eq!(r.exit_code, 0, "{}", String::from_utf8_lossy(&r.stderr));
    let event = sub.next().await;
    assert_eq!(
        (event.container_id.as_str(), event.container_event_type),
        (waiter.as_str(), STOPPED)
    );
    let s = status_of(&event, &waiter).unwrap();
    assert_eq!(
        (s.state, s.exit_code),
        (ContainerState::ContainerExited as i32, 4)
    );
    // Both containers are in the pod's statuses, the first one still exited with 3.
    assert_eq!(status_of(&event, &id).map(|s| s.exit_code), Some(3));
    stop_and_remove_pod(&mut e.rt, &pod.0).await;
}

/// A connection of its own whose flow-control windows are small, so that a stream nobody
/// reads backs up into crustd quickly.
async fn small_window_client(socket: &Path) -> RuntimeServiceClient<Channel> {
    let path = socket.to_path_buf();
    let channel = Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .initial_stream_window_size(Some(16 * 1024))
        .initial_connection_window_size(Some(16 * 1024))
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(path).await?,
                ))
            }
        }))
        .await
        .unwrap();
    RuntimeServiceClient::new(channel)
}

/// A subscriber that never reads is dropped once it falls more than crustd's queue behind;
/// the subscriber that reads gets every event, and crustd goes on answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_is_dropped_alone() {
    let dir = tempfile::tempdir().unwrap();
    let net = PodNet::new(dir.path(), 93);
    let crustd = Crustd::start_on(&net, &[], "")
        .await
        .expect("crustd starts");
    let mut rt = crustd.runtime().await.unwrap();
    let mut stalled_client = small_window_client(&crustd.socket).await;
    let mut stalled = stalled_client
        .get_container_events(GetEventsRequest {})
        .await
        .expect("GetContainerEvents")
        .into_inner();
    let mut active = subscribe(&mut rt).await;

    // Big events (a 16 KiB annotation in every pod status) fill the connection's buffers
    // after a few; then crustd's queue (1024 events) overflows. hostNetwork pods are cheap.
    const WORKERS: usize = 4;
    const CYCLES: usize = 100;
    let annotation = "x".repeat(16 * 1024);
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let mut rt = rt.clone();
        let annotation = annotation.clone();
        workers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..CYCLES {
                let mut config = pod_config(&format!("flood-{w}-{i}"), true, Path::new(""));
                config.annotations.insert("big".into(), annotation.clone());
                let id = rt
                    .run_pod_sandbox(RunPodSandboxRequest {
                        config: Some(config),
                        runtime_handler: String::new(),
                    })
                    .await
                    .expect("RunPodSandbox")
                    .into_inner()
                    .pod_sandbox_id;
                stop_and_remove_pod(&mut rt, &id).await;
                ids.push(id);
            }
            ids
        }));
    }
    let mut pods = Vec::new();
    for w in workers {
        pods.extend(w.await.unwrap());
    }
    let total = pods.len() * 4;

    // crustd answers while one subscriber is stuck.
    rt.list_containers(ListContainersRequest::default())
        .await
        .expect("ListContainers answers");
    rt.list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .expect("ListPodSandbox answers");

    // The reader got everything, each pod's four events in order.
    let mut per_pod: HashMap<String, Vec<i32>> = HashMap::new();
    for _ in 0..total {
        let ev = active.next().await;
        per_pod
            .entry(ev.container_id.clone())
            .or_default()
            .push(ev.container_event_type);
    }
    assert_eq!(per_pod.len(), pods.len());
    for id in &pods {
        assert_eq!(
            per_pod[id],
            vec![CREATED, STARTED, STOPPED, DELETED],
            "pod {id}"
        );
    }

    // The stalled subscriber: what was in flight, then the error that dropped it.
    let mut delivered = 0;
    let err = loop {
        match tokio::time::timeout(EVENT_WAIT, stalled.message()).await {
            Ok(Ok(Some(_))) => delivered += 1,
            Ok(Ok(None)) => panic!("the stalled stream ended without an error"),
            Ok(Err(status)) => break status,
            Err(_) => panic!("the stalled stream neither delivered nor failed"),
        }
    };
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("fell behind by"),
        "{}",
        err.message()
    );
    assert!(delivered < total, "{delivered} of {total} delivered");
    drop(stalled);

    // Afterwards everything goes on as before for the other subscriber.
    let mut config = pod_config("after-flood", true, Path::new(""));
    config.annotations.insert("small".into(), "yes".into());
    let id = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        })
        .await
        .expect("RunPodSandbox")
        .into_inner()
        .pod_sandbox_id;
    let first = active.next().await;
    assert_eq!(
        (first.container_id.as_str(), first.container_event_type),
        (id.as_str(), CREATED)
    );
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: id.clone(),
    })
    .await
    .expect("RemovePodSandbox");
    let rest: Vec<i32> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(active.next().await.container_event_type);
        }
        v
    };
    assert_eq!(rest, vec![STARTED, STOPPED, DELETED]);
    assert!(crustd
        .logs()
        .contains("dropping an event subscriber that fell behind"));
}

/// Lines of a child's stdout, read by a thread, for the test to wait on.
fn lines_of(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn crustctl_events(crustd: &Crustd, args: &[&str]) -> Child {
    Command::new(binary("crustctl"))
        .arg("--runtime-endpoint")
        .arg(format!("unix://{}", crustd.socket.display()))
        // Shorter than the test: the stream must outlive the per-call timeout.
        .arg("--timeout")
        .arg("1s")
        .arg("events")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning crustctl events")
}

fn joined(crustd: &Crustd) -> usize {
    crustd.logs().matches("event subscriber joined").count()
}

fn left(crustd: &Crustd) -> usize {
    crustd.logs().matches("event subscriber left").count()
}

/// `crustctl events -o json` prints crictl's protojson of every event, the default one line
/// each; both follow the stream well past `--timeout`, until interrupted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crustctl_events_follows_the_stream() {
    let mut e = env("runc", 94).await;
    let before = joined(&e.crustd);
    let gone = left(&e.crustd);
    let mut json = crustctl_events(&e.crustd, &["-o", "json"]);
    let mut table = crustctl_events(&e.crustd, &[]);
    let deadline = Instant::now() + EVENT_WAIT;
    while joined(&e.crustd) < before + 2 {
        assert!(
            Instant::now() < deadline,
            "crustctl events did not subscribe"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Past crustctl's --timeout before anything happens.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pod = run_pod(&mut e, "ctl", false).await;
    let id = create(&mut e, &pod, "job", &["sh", "-c", "exit 7"]).await;
    e.start(&id).await.expect("StartContainer");
    let deadline = Instant::now() + EVENT_WAIT;
    while e.status(&id).await.state != ContainerState::ContainerExited as i32 {
        assert!(Instant::now() < deadline, "the container did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_and_remove_pod(&mut e.rt, &pod.0).await;

    // JSON: pretty protojson documents, one after another.
    let json_lines = lines_of(&mut json);
    let mut text = String::new();
    let mut events: Vec<serde_json::Value> = Vec::new();
    let deadline = Instant::now() + EVENT_WAIT;
    while events.len() < 8 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = json_lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("crustctl -o json printed only {events:?}"));
        text.push_str(&line);
        text.push('\n');
        if line == "}" {
            events.push(serde_json::from_str(&text).expect("one JSON document per event"));
            text.clear();
        }
    }
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|v| {
            (
                v["containerId"].as_str().unwrap().to_string(),
                v["containerEventType"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let pair = |id: &str, kind: &str| (id.to_string(), kind.to_string());
    assert_eq!(
        seen,
        vec![
            pair(&pod.0, "CONTAINER_CREATED_EVENT"),
            pair(&pod.0, "CONTAINER_STARTED_EVENT"),
            pair(&id, "CONTAINER_CREATED_EVENT"),
            pair(&id, "CONTAINER_STARTED_EVENT"),
            pair(&id, "CONTAINER_STOPPED_EVENT"),
            // StopPodSandbox stops the pod; RemovePodSandbox removes its containers first.
            pair(&pod.0, "CONTAINER_STOPPED_EVENT"),
            pair(&id, "CONTAINER_DELETED_EVENT"),
            pair(&pod.0, "CONTAINER_DELETED_EVENT"),
        ]
    );
    let stopped = &events[4];
    assert_eq!(stopped["podSandboxStatus"]["id"], pod.0.as_str());
    assert_eq!(stopped["containersStatuses"][0]["id"], id.as_str());
    assert_eq!(
        stopped["containersStatuses"][0]["state"],
        "CONTAINER_EXITED"
    );
    assert_eq!(stopped["containersStatuses"][0]["exitCode"], 7);
    assert!(
        stopped["createdAt"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 0
    );

    // The default: one line per event.
    let table_lines = lines_of(&mut table);
    let mut lines = Vec::new();
    while lines.len() < 8 {
        lines.push(
            table_lines
                .recv_timeout(EVENT_WAIT)
                .unwrap_or_else(|_| panic!("crustctl events printed only {lines:?}")),
        );
    }
    let words = |l: &str| l.split(' ').skip(1).take(3).collect::<Vec<_>>().join(" ");
    assert_eq!(words(&lines[0]), format!("pod created {}", pod.0));
    assert_eq!(words(&lines[3]), format!("container started {id}"));
    assert_eq!(words(&lines[4]), format!("container stopped {id}"));
    assert!(
        lines[4].contains(" name=job ") && lines[4].contains(" exit_code=7"),
        "{}",
        lines[4]
    );
    assert_eq!(words(&lines[7]), format!("pod deleted {}", pod.0));

    // Both still follow the stream; SIGINT ends one cleanly.
    assert!(
        json.try_wait().unwrap().is_none(),
        "crustctl -o json exited"
    );
    assert!(
        table.try_wait().unwrap().is_none(),
        "crustctl events exited"
    );
    let status = Command::new("kill")
        .arg("-INT")
        .arg(table.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(code) = table.try_wait().unwrap() {
            break code;
        }
        assert!(Instant::now() < deadline, "crustctl events ignored SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(code.success(), "{code:?}");
    json.kill().unwrap();
    json.wait().unwrap();
    // crustd lets go of both subscribers once their connections close.
    let deadline = Instant::now() + EVENT_WAIT;
    while left(&e.crustd) < gone + 2 {
        assert!(
            Instant::now() < deadline,
            "crustd kept the subscribers of closed connections"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}
