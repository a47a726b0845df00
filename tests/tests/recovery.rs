//! Recovery on a real crustd: a crash of crustd (SIGKILL) with pods and containers live, the
//! death of a pod's crust-monitor, and a simulated host reboot (every pod process killed, the
//! run root's mounts and files gone, the root kept). Each test checks what the CRI reports
//! afterwards and that Stop/Remove leave nothing behind. These tests need root.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crust_tests::{
    both_runtimes, cgroup_dirs_of, monitors_under, mounts_under, pod_config, CgroupGuard, PodEnv,
};
use k8s_cri::v1::*;
use tokio::sync::mpsc;

both_runtimes! {
    a_crash_of_crustd_loses_nothing(61);
    a_dead_monitor_is_reported_and_cleaned_up(62);
}

/// A container in a pid namespace of its own: it is not below the pod init, so nothing kills
/// it when the pod's monitor (and with it the pod init) dies.
fn own_pid_namespace(config: &mut ContainerConfig) {
    PodEnv::security(config).namespace_options = Some(NamespaceOption {
        pid: NamespaceMode::Container as i32,
        ..Default::default()
    });
}

async fn env(handler: &'static str, index: u8) -> PodEnv {
    PodEnv::builder(handler, index).build().await
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

async fn a_crash_of_crustd_loses_nothing(handler: &'static str, index: u8) {
    let mut e = env(handler, index).await;
    let name = format!("restore-{handler}");
    let config = pod_config(&name, "restore", &e.logs);
    let cgroup_parent = config.linux.as_ref().unwrap().cgroup_parent.clone();
    let _cgroups = CgroupGuard(vec![cgroup_parent.clone()]);
    let pod = e.make_pod(config).await;
    let mut ticker = e.config(
        "ticker",
        &[
            "sh",
            "-c",
            "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done",
        ],
    );
    own_pid_namespace(&mut ticker);
    let ticker = e.run(ticker).await;
    let quitter = e
        .run(e.config(
            "quitter",
            &[
                "sh",
                "-c",
                "touch /tmp/ready; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo leaving; exit 7",
            ],
        ))
        .await;
    e.wait_for_file(&quitter, "/tmp/ready").await;
    let ticker_pid = container_pid(&mut e, &ticker).await;

    // crustd crashes. While it is away the quitter exits (told to through its rootfs) and the
    // ticker goes on logging.
    e.crustd.kill();
    let down_from = now_nanos();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bundle = e.crustd.runroot.join("containers").join(&quitter);
    std::fs::write(bundle.join("rootfs/tmp/go"), b"").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !bundle.join("exit.json").exists() {
        assert!(Instant::now() < deadline, "the quitter did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let down_until = now_nanos();
    e.crustd.spawn().await.unwrap();
    e.rt = e.crustd.runtime().await.unwrap();
    let mut events = subscribe(&mut e.rt).await;

    // The lists tell the truth, not only the status calls.
    let pods = crust_tests::all_pods(&mut e.rt).await;
    assert_eq!(pods.len(), 1, "{pods:?}");
    assert_eq!(pods[0].id, pod);
    assert_eq!(pods[0].state, PodSandboxState::SandboxReady as i32);
    let listed: HashMap<String, i32> = crust_tests::all_containers(&mut e.rt)
        .await
        .into_iter()
        .map(|c| (c.id, c.state))
        .collect();
    assert_eq!(
        listed,
        HashMap::from([
            (ticker.clone(), ContainerState::ContainerRunning as i32),
            (quitter.clone(), ContainerState::ContainerExited as i32),
        ])
    );
    // The exit that happened while crustd was down: its code, and a time inside the window.
    let s = e.status(&quitter).await;
    assert_eq!((s.exit_code, s.reason.as_str()), (7, "Error"), "{s:?}");
    assert!(
        s.finished_at > down_from && s.finished_at < down_until,
        "finished_at {} not in [{down_from}, {down_until}]",
        s.finished_at
    );
    let log = std::fs::read_to_string(&s.log_path).unwrap();
    assert!(log.contains("stdout F leaving"), "{log}");

    // The ticker ran and logged all along: its lines go on without a gap, and some of them
    // were written while crustd was down.
    let s = e.status(&ticker).await;
    assert_eq!(s.state, ContainerState::ContainerRunning as i32, "{s:?}");
    assert_eq!(container_pid(&mut e, &ticker).await, ticker_pid);
    let lines = ticks(&std::fs::read_to_string(&s.log_path).unwrap());
    let numbers: Vec<u64> = lines.iter().map(|(_, n)| *n).collect();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "a gap in the ticks: {numbers:?}"
    );
    let margin = 100_000_000;
    let in_window = lines
        .iter()
        .filter(|(t, _)| *t > down_from + margin && *t < down_until - margin)
        .count();
    assert!(
        in_window >= 3,
        "{in_window} ticks logged while crustd was down ({down_from}..{down_until}): {lines:?}"
    );

    // The recovered container still does everything: ExecSync, streaming exec, attach.
    assert_eq!(e.sh_out(&ticker, "echo alive").await, "alive\n");
    let out = e
        .crustd
        .crustctl(&["exec", &ticker, "sh", "-c", "echo streamed; exit 5"]);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "streamed\n");
    let mut attach = e
        .crustd
        .crustctl_command(&["attach", &ticker])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = attach.stdout.take().unwrap();
    let seen = read_until(&mut stdout, "tick ", Duration::from_secs(20));
    let _ = attach.kill();
    let _ = attach.wait();
    assert!(seen.contains("tick "), "{seen}");

    // Stop works, and its event reaches a subscriber that came after the restart.
    e.stop(&ticker).await;
    let s = e.status(&ticker).await;
    assert_eq!(s.state, ContainerState::ContainerExited as i32, "{s:?}");
    assert_eq!(s.exit_code, 137, "{s:?}");
    events
        .wait_for(&ticker, ContainerEventType::ContainerStoppedEvent)
        .await;
    assert!(!alive(ticker_pid), "the ticker's process is gone");

    let leaks = Leaks::new(&cgroup_parent);
    remove_env_pod(&mut e).await;
    leaks.assert_none(&e);
}

async fn a_dead_monitor_is_reported_and_cleaned_up(handler: &'static str, index: u8) {
    let mut e = env(handler, index).await;
    let name = format!("orphan-{handler}");
    let config = pod_config(&name, "orphan", &e.logs);
    let cgroup_parent = config.linux.as_ref().unwrap().cgroup_parent.clone();
    let _cgroups = CgroupGuard(vec![cgroup_parent.clone()]);
    let pod = e.make_pod(config).await;
    let mut own = e.config("own", &["sleep", "1000"]);
    own_pid_namespace(&mut own);
    let own = e.run(own).await;
    let shared = e.run(e.config("shared", &["sleep", "1000"])).await;
    let mut stubborn = e.config(
        "stubborn",
        &["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"],
    );
    own_pid_namespace(&mut stubborn);
    let stubborn = e.run(stubborn).await;
    let pids = [
        container_pid(&mut e, &own).await,
        container_pid(&mut e, &shared).await,
        container_pid(&mut e, &stubborn).await,
    ];
    let monitor = pod_info(&mut e, &pod).await["monitorPid"].as_i64().unwrap() as u32;
    let mut events = subscribe(&mut e.rt).await;
    // A StopContainer with a long grace is waiting (the container ignores SIGTERM) when the
    // monitor dies: no exit will ever be reported, so it must not wait out its grace.
    let mut rt = e.rt.clone();
    let stopping = stubborn.clone();
    let stop = tokio::spawn(async move {
        let started = Instant::now();
        rt.stop_container(StopContainerRequest {
            container_id: stopping,
            timeout: 60,
        })
        .await
        .map(|_| started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    kill(monitor);
    let took = stop.await.unwrap().expect("StopContainer");
    assert!(
        took < Duration::from_secs(10),
        "StopContainer took {took:?}"
    );
    // Promptly, and with every call answering quickly: the containers are exited (killed
    // with their monitor, as containerd kills a container whose shim died), not Running.
    let deadline = Instant::now() + Duration::from_secs(8);
    for id in [&own, &shared, &stubborn] {
        loop {
            let mut req = tonic::Request::new(ContainerStatusRequest {
                container_id: id.to_string(),
                verbose: false,
            });
            req.set_timeout(Duration::from_secs(3));
            let s = e.rt.container_status(req).await.expect("ContainerStatus");
            let s = s.into_inner().status.unwrap();
            if s.state == ContainerState::ContainerExited as i32 {
                assert_eq!(s.exit_code, 137, "{s:?}");
                assert!(!s.reason.is_empty() && !s.message.is_empty(), "{s:?}");
                assert!(s.finished_at > s.started_at, "{s:?}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{id} still reported {s:?} after its monitor died"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        events
            .wait_for(id, ContainerEventType::ContainerStoppedEvent)
            .await;
    }
    for pid in pids {
        wait_gone(pid, "a container process whose monitor died");
    }
    let listed = crust_tests::all_pods(&mut e.rt).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, PodSandboxState::SandboxNotready as i32);
    // Stop of an exited container is a no-op that succeeds.
    e.stop(&own).await;

    let leaks = Leaks::new(&cgroup_parent);
    remove_env_pod(&mut e).await;
    leaks.assert_none(&e);

    // A monitor that dies while crustd is down: its container (in a pid namespace of its
    // own, so still running) is killed when crustd comes back, not reported Running.
    let config = pod_config(&format!("orphan2-{handler}"), "orphan", &e.logs);
    let cgroup_parent = config.linux.as_ref().unwrap().cgroup_parent.clone();
    let _cgroups2 = CgroupGuard(vec![cgroup_parent.clone()]);
    let pod = e.make_pod(config).await;
    let mut own = e.config("own", &["sleep", "1000"]);
    own_pid_namespace(&mut own);
    let own = e.run(own).await;
    let pid = container_pid(&mut e, &own).await;
    let monitor = pod_info(&mut e, &pod).await["monitorPid"].as_i64().unwrap() as u32;
    e.crustd.kill();
    kill(monitor);
    wait_gone(monitor, "the killed monitor");
    assert!(alive(pid), "the container outlives its monitor");
    e.crustd.spawn().await.unwrap();
    e.rt = e.crustd.runtime().await.unwrap();
    let s = e.status(&own).await;
    assert_eq!(s.state, ContainerState::ContainerExited as i32, "{s:?}");
    assert_eq!(s.exit_code, 137, "{s:?}");
    wait_gone(pid, "a container whose monitor died while crustd was down");
    let leaks = Leaks::new(&cgroup_parent);
    remove_env_pod(&mut e).await;
    leaks.assert_none(&e);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_reboot_pods_are_not_ready_and_clean_up_fully() {
    let mut e = env("runc", 63).await;
    let mut pods = Vec::new();
    let mut parents = Vec::new();
    let mut running = Vec::new();
    let mut configs = Vec::new();
    for name in ["reboot-a", "reboot-b"] {
        let config = pod_config(name, name, &e.logs);
        parents.push(config.linux.as_ref().unwrap().cgroup_parent.clone());
        let pod = e.run_pod(config.clone()).await;
        let mut c = e.config(&format!("{name}-sleeper"), &["sleep", "1000"]);
        own_pid_namespace(&mut c);
        let id = e.create_in(&pod, &config, c).await.unwrap();
        e.start(&id).await.unwrap();
        running.push(id);
        pods.push(pod);
        configs.push(config);
    }
    let done = e
        .create_in(
            &pods[0],
            &configs[0],
            e.config("done", &["sh", "-c", "exit 3"]),
        )
        .await
        .unwrap();
    e.start(&done).await.unwrap();
    let s = e.wait_exited(&done).await;
    assert_eq!((s.exit_code, s.reason.as_str()), (3, "Error"));
    let _cgroups = CgroupGuard(parents.clone());
    let ips = e.net.allocated_ips();
    assert_eq!(ips.len(), 2);

    // The reboot: crustd and every process of the pods die, the run root (a tmpfs) is gone
    // with all its mounts; the root (/var/lib) stays.
    e.crustd.kill();
    for pid in monitors_under(e.crustd.dir.path()) {
        kill(pid);
    }
    for parent in &parents {
        kill_cgroup_processes(parent);
    }
    let mut mounts = mounts_under(&e.crustd.runroot);
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let ok = Command::new("umount").arg("-l").arg(&m).status().unwrap();
        assert!(ok.success(), "umount {m}");
    }
    std::fs::remove_dir_all(&e.crustd.runroot).unwrap();
    let before_start = now_nanos();
    e.crustd.spawn().await.unwrap();
    e.rt = e.crustd.runtime().await.unwrap();

    let listed = crust_tests::all_pods(&mut e.rt).await;
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .all(|p| p.state == PodSandboxState::SandboxNotready as i32),
        "{listed:?}"
    );
    let listed = crust_tests::all_containers(&mut e.rt).await;
    assert_eq!(listed.len(), 3);
    assert!(
        listed
            .iter()
            .all(|c| c.state == ContainerState::ContainerExited as i32),
        "{listed:?}"
    );
    for id in &running {
        let s = e.status(id).await;
        assert_eq!(s.exit_code, 255, "{s:?}");
        assert_eq!(s.reason, "Unknown", "{s:?}");
        assert!(!s.message.is_empty(), "{s:?}");
        assert!(s.finished_at >= before_start, "{s:?}");
    }
    let s = e.status(&done).await;
    assert_eq!((s.exit_code, s.reason.as_str()), (3, "Error"), "{s:?}");

    for pod in &pods {
        crust_tests::stop_and_remove_pod(&mut e.rt, pod).await;
    }
    assert_eq!(
        e.net.allocated_ips(),
        Vec::<String>::new(),
        "CNI DEL freed {ips:?}"
    );
    for parent in &parents {
        assert!(
            cgroup_dirs_of(parent).is_empty(),
            "{:?}",
            cgroup_dirs_of(parent)
        );
    }
    for dir in [
        e.crustd.runroot.join("pods"),
        e.crustd.root.join("pods"),
        e.crustd.runroot.join("containers"),
        e.crustd.root.join("containers"),
    ] {
        assert_eq!(entries(&dir), Vec::<String>::new(), "{}", dir.display());
    }
    assert!(mounts_under(e.crustd.dir.path()).is_empty());
    assert!(monitors_under(e.crustd.dir.path()).is_empty());

    // The same pods (names and uids) run again.
    for config in &configs {
        let pod = e.run_pod(config.clone()).await;
        let name = &config.metadata.as_ref().unwrap().name;
        let id = e
            .create_in(
                &pod,
                config,
                e.config(&format!("{name}-sleeper"), &["sleep", "1000"]),
            )
            .await
            .expect("the container name is free again");
        e.start(&id).await.unwrap();
        assert_eq!(
            e.status(&id).await.state,
            ContainerState::ContainerRunning as i32
        );
        crust_tests::stop_and_remove_pod(&mut e.rt, &pod).await;
    }
    assert!(e.net.allocated_ips().is_empty());
    for parent in &parents {
        assert!(
            cgroup_dirs_of(parent).is_empty(),
            "{:?}",
            cgroup_dirs_of(parent)
        );
    }
}

/// What a pod holds on the node, counted before its removal and checked after it.
struct Leaks {
    cgroup_parent: String,
    pids: Vec<u32>,
}

impl Leaks {
    fn new(cgroup_parent: &str) -> Leaks {
        Leaks {
            cgroup_parent: cgroup_parent.to_string(),
            pids: cgroup_processes(cgroup_parent),
        }
    }

    fn assert_none(&self, e: &PodEnv) {
        let d = &e.crustd;
        assert_eq!(mounts_under(d.dir.path()), Vec::<String>::new(), "mounts");
        assert_eq!(monitors_under(d.dir.path()), Vec::<u32>::new(), "monitors");
        assert_eq!(
            e.net.allocated_ips(),
            Vec::<String>::new(),
            "host-local IPs"
        );
        assert_eq!(e.net.bridge_ports(), 0, "veths");
        assert!(
            cgroup_dirs_of(&self.cgroup_parent).is_empty(),
            "cgroups {:?}",
            cgroup_dirs_of(&self.cgroup_parent)
        );
        for dir in [
            d.runroot.join("pods"),
            d.root.join("pods"),
            d.runroot.join("containers"),
            d.root.join("containers"),
        ] {
            assert_eq!(entries(&dir), Vec::<String>::new(), "{}", dir.display());
        }
        for pid in &self.pids {
            wait_gone(*pid, "a process of the removed pod");
        }
    }
}

/// A RunPodSandbox that crustd's death cut short inside the pod cgroup's creation: crustd had
/// recorded the directories it was about to make (`cgroups-created.json` in the pod's run
/// directory) and made some of them. The next start removes them all with the directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_start_cut_short_while_making_its_cgroups_leaves_none() {
    let mut e = env("runc", 94).await;
    let parent = format!("/crust-cut-short-{}", std::process::id());
    let _cgroups = CgroupGuard(vec![parent.clone()]);
    let leaf = format!("{parent}/pod");
    e.crustd.kill();
    let hierarchies: Vec<std::path::PathBuf> = crust_tests::CGROUP_HIERARCHIES
        .iter()
        .map(|h| Path::new("/sys/fs/cgroup").join(h))
        .filter(|h| h.join("cgroup.procs").exists())
        .collect();
    let mut recorded = Vec::new();
    for (n, h) in hierarchies.iter().enumerate() {
        let top = h.join(parent.trim_start_matches('/'));
        let pod = h.join(leaf.trim_start_matches('/'));
        recorded.push(top.display().to_string());
        recorded.push(pod.display().to_string());
        // The crash came after the first half of the hierarchies.
        if n < hierarchies.len() / 2 {
            match std::fs::create_dir_all(&pod) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(err) => panic!("{}: {err}", pod.display()),
            }
        }
    }
    assert!(!cgroup_dirs_of(&leaf).is_empty());
    let run_dir = e.crustd.runroot.join("pods").join("f".repeat(64));
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::write(
        run_dir.join("cgroups-created.json"),
        serde_json::to_string(&recorded).unwrap(),
    )
    .unwrap();
    e.crustd.spawn().await.unwrap();
    e.rt = e.crustd.runtime().await.unwrap();
    assert_eq!(cgroup_dirs_of(&leaf), Vec::<std::path::PathBuf>::new());
    assert_eq!(cgroup_dirs_of(&parent), Vec::<std::path::PathBuf>::new());
    assert!(!run_dir.exists(), "{}", run_dir.display());
    let logs = e.crustd.logs();
    assert!(
        logs.contains("undoing a pod sandbox whose creation was interrupted"),
        "{logs}"
    );
}

/// RemovePodSandbox (after Stop) of the env's pod, which the env then no longer holds.
async fn remove_env_pod(e: &mut PodEnv) {
    let pod = std::mem::take(&mut e.pod);
    crust_tests::stop_and_remove_pod(&mut e.rt, &pod).await;
}

async fn container_pid(e: &mut PodEnv, id: &str) -> u32 {
    let resp =
        e.rt.container_status(ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner();
    let info: serde_json::Value = serde_json::from_str(&resp.info["info"]).unwrap();
    let pid = info["pid"].as_u64().unwrap_or(0) as u32;
    assert!(pid > 1, "{info}");
    pid
}

async fn pod_info(e: &mut PodEnv, id: &str) -> serde_json::Value {
    let resp =
        e.rt.pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner();
    serde_json::from_str(&resp.info["info"]).unwrap()
}

/// GetContainerEvents, read in the background.
struct Events {
    rx: mpsc::UnboundedReceiver<Result<ContainerEventResponse, tonic::Status>>,
    seen: Vec<(String, i32)>,
}

async fn subscribe(
    rt: &mut k8s_cri::v1::runtime_service_client::RuntimeServiceClient<tonic::transport::Channel>,
) -> Events {
    Events {
        rx: crust_tests::container_events(rt).await,
        seen: Vec::new(),
    }
}

impl Events {
    /// Waits (10 s at most) for an event of `kind` for container `id`, received now or before.
    async fn wait_for(&mut self, id: &str, kind: ContainerEventType) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let wanted = (id.to_string(), kind as i32);
        while !self.seen.contains(&wanted) {
            let event = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no {kind:?} event for {id}: {:?}", self.seen))
                .expect("the event stream ended")
                .expect("the event stream failed");
            self.seen
                .push((event.container_id, event.container_event_type));
        }
    }
}

/// The `tick N` lines of a CRI log: (timestamp in unix nanoseconds, N).
fn ticks(log: &str) -> Vec<(i64, u64)> {
    log.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(4, ' ');
            let (time, _stream, _tag, msg) =
                (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            let n = msg.strip_prefix("tick ")?.parse().ok()?;
            Some((parse_rfc3339(time)?, n))
        })
        .collect()
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` to unix nanoseconds.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000_000) + nanos)
}

/// Reads until `want` appears (or panics after `limit`).
fn read_until(out: &mut impl Read, want: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(want) {
        assert!(Instant::now() < deadline, "no {want:?} in {seen:?}");
        match out.read(&mut buf) {
            Ok(0) => panic!("EOF before {want:?}: {:?}", String::from_utf8_lossy(&seen)),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read: {e}"),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

fn kill(pid: u32) {
    let _ = Command::new("kill")
        .arg("-KILL")
        .arg(pid.to_string())
        .status();
}

/// A process that exists and is not a zombie (this VM's pid 1 reaps lazily).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| !s.contains("State:\tZ"))
        .unwrap_or(false)
}

fn wait_gone(pid: u32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "{what} (pid {pid}) is still running"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pids in `parent`'s cgroup tree (every hierarchy).
fn cgroup_processes(parent: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let mut stack = cgroup_dirs_of(parent);
    while let Some(dir) = stack.pop() {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            out.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(entry.path());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// SIGKILLs every process of `parent`'s cgroup tree until none is left (alive).
fn kill_cgroup_processes(parent: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<u32> = cgroup_processes(parent)
            .into_iter()
            .filter(|p| alive(*p))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{left:?} do not die");
        for pid in left {
            kill(pid);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}
