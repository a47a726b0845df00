//! Fault injection under churn and load (issue 7, items 4 and 5).
//!
//! `crustd_killed_during_churn_leaks_nothing`: rounds of concurrent pod+container creations and
//! removals; crustd is SIGKILLed at a seeded random instant, started again, kubelet-style
//! reconcilers (same names) bring every pod back to one ready sandbox with one running
//! container, and then the store must agree with the kernel; after removing everything nothing
//! may be left: no netns pin or overlay mount, no veth, no host-local IP, no cgroup, no
//! monitor process, no state directory. A failure prints the seed: `CRUST_CHURN_SEED=<seed>`
//! replays it, `CRUST_CHURN_ROUNDS` runs more rounds.
//!
//! `a_hundred_and_ten_pods_then_a_thousand_concurrent_lists`: kubelet's default pod maximum,
//! each with a container, created concurrently, then 1,000 concurrent List* calls.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crust_fuzzing::{env_number, Rng};
use crust_tests::{
    cgroup_dirs_below, monitors_under, mounts_under, pod_config, CgroupGuard, PodEnv,
};
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::Channel;

const SLEEPER: &[&str] = &[
    "sh",
    "-c",
    "trap 'exit 0' TERM; while true; do sleep 1; done",
];

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn alive(pid: i64) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).exists()
}

fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// What the kernel and the file system hold for one crustd instance and network.
#[derive(Debug, PartialEq, Eq)]
struct Leftovers {
    mounts: Vec<String>,
    monitors: usize,
    veths: usize,
    ips: Vec<String>,
    cgroups: Vec<PathBuf>,
    dirs: Vec<(String, Vec<String>)>,
}

fn leftovers(e: &PodEnv, cgroup_root: &str) -> Leftovers {
    let c = &e.crustd;
    let dirs = [
        ("run/pods", c.runroot.join("pods")),
        ("run/containers", c.runroot.join("containers")),
        ("root/pods", c.root.join("pods")),
        ("root/containers", c.root.join("containers")),
    ]
    .into_iter()
    .map(|(n, d)| (n.to_string(), entries(&d)))
    .collect();
    Leftovers {
        mounts: mounts_under(c.dir.path()),
        monitors: monitors_under(c.dir.path()).len(),
        veths: e.net.bridge_ports(),
        ips: e.net.allocated_ips(),
        cgroups: cgroup_dirs_below(cgroup_root),
        dirs,
    }
}

struct Slot {
    name: String,
    config: PodSandboxConfig,
}

fn slot(e: &PodEnv, cgroup_root: &str, w: usize) -> Slot {
    slot_named(e, cgroup_root, &format!("churn{w}"))
}

/// A pod of its own name, logging to a directory of its own.
fn slot_named(e: &PodEnv, cgroup_root: &str, name: &str) -> Slot {
    let name = name.to_string();
    let logs = e.logs.join(&name);
    std::fs::create_dir_all(&logs).unwrap();
    let mut config = pod_config(&name, &name, &logs);
    config.linux.as_mut().unwrap().cgroup_parent = format!("{cgroup_root}/{name}");
    Slot { name, config }
}

fn container_config(e: &PodEnv) -> ContainerConfig {
    e.config("c", SLEEPER)
}

/// One worker's churn: run the pod, create and start its container, and (but in the last
/// iteration) stop and remove it again. Returns at the first error: crustd died under it.
async fn churn(
    mut rt: RuntimeServiceClient<Channel>,
    handler: &'static str,
    slot: &Slot,
    container: ContainerConfig,
    iterations: u64,
) -> Result<(), tonic::Status> {
    for i in 0..iterations {
        let pod = rt
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(slot.config.clone()),
                runtime_handler: handler.into(),
            })
            .await?
            .into_inner()
            .pod_sandbox_id;
        let id = rt
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(container.clone()),
                sandbox_config: Some(slot.config.clone()),
            })
            .await?
            .into_inner()
            .container_id;
        rt.start_container(StartContainerRequest {
            container_id: id.clone(),
        })
        .await?;
        if i + 1 < iterations {
            rt.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: pod.clone(),
            })
            .await?;
            rt.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: pod,
            })
            .await?;
        }
    }
    Ok(())
}

/// What kubelet's sync loop does for a pod after a runtime restart: dead sandboxes of the pod
/// are stopped and removed, a ready one is kept (there must be at most one), a missing one is
/// run again under the same name; then the container: a running one is kept, others removed
/// and created again. Returns the pod and container IDs.
async fn reconcile(
    mut rt: RuntimeServiceClient<Channel>,
    handler: &'static str,
    slot: &Slot,
    container: ContainerConfig,
) -> Result<(String, String), String> {
    let pods = rt
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .map_err(|e| format!("ListPodSandbox: {e}"))?
        .into_inner()
        .items;
    let mine: Vec<&PodSandbox> = pods
        .iter()
        .filter(|p| p.metadata.as_ref().map(|m| m.name.as_str()) == Some(slot.name.as_str()))
        .collect();
    let ready: Vec<&&PodSandbox> = mine
        .iter()
        .filter(|p| p.state == PodSandboxState::SandboxReady as i32)
        .collect();
    if ready.len() > 1 {
        return Err(format!(
            "{} ready sandboxes named {}",
            ready.len(),
            slot.name
        ));
    }
    for dead in mine
        .iter()
        .filter(|p| p.state != PodSandboxState::SandboxReady as i32)
    {
        stop_and_remove(&mut rt, &dead.id).await?;
    }
    let pod = match ready.first() {
        Some(p) => p.id.clone(),
        None => {
            let mut config = slot.config.clone();
            config.metadata.as_mut().unwrap().attempt += 1;
            rt.run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: handler.into(),
            })
            .await
            .map_err(|e| format!("RunPodSandbox {}: {e}", slot.name))?
            .into_inner()
            .pod_sandbox_id
        }
    };
    let containers = rt
        .list_containers(ListContainersRequest {
            filter: Some(ContainerFilter {
                pod_sandbox_id: pod.clone(),
                ..Default::default()
            }),
        })
        .await
        .map_err(|e| format!("ListContainers: {e}"))?
        .into_inner()
        .containers;
    let running: Vec<&Container> = containers
        .iter()
        .filter(|c| c.state == ContainerState::ContainerRunning as i32)
        .collect();
    if running.len() > 1 {
        return Err(format!("{} running containers in {pod}", running.len()));
    }
    for c in containers
        .iter()
        .filter(|c| c.state != ContainerState::ContainerRunning as i32)
    {
        rt.remove_container(RemoveContainerRequest {
            container_id: c.id.clone(),
        })
        .await
        .map_err(|e| format!("RemoveContainer {}: {e}", c.id))?;
    }
    if let Some(c) = running.first() {
        return Ok((pod, c.id.clone()));
    }
    let id = rt
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(container),
            sandbox_config: Some(slot.config.clone()),
        })
        .await
        .map_err(|e| format!("CreateContainer in {pod}: {e}"))?
        .into_inner()
        .container_id;
    rt.start_container(StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .map_err(|e| format!("StartContainer {id}: {e}"))?;
    Ok((pod, id))
}

/// The store agrees with the kernel: each listed pod is ready with a live monitor, an IP and
/// a veth; each listed container runs as a live process; every monitor process is one of a
/// listed pod (or that monitor's pod init).
async fn check_agreement(
    e: &PodEnv,
    rt: &mut RuntimeServiceClient<Channel>,
    want: &HashMap<String, (String, String)>,
) -> Result<(), String> {
    let pods = rt
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .map_err(|e| e.to_string())?
        .into_inner()
        .items;
    let listed: HashSet<String> = pods.iter().map(|p| p.id.clone()).collect();
    let wanted: HashSet<String> = want.values().map(|(p, _)| p.clone()).collect();
    if listed != wanted {
        return Err(format!("pods listed {listed:?}, reconciled {wanted:?}"));
    }
    let mut monitors = HashSet::new();
    let mut ips = Vec::new();
    for (pod, container) in want.values() {
        let resp = rt
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: pod.clone(),
                verbose: true,
            })
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        let status = resp.status.unwrap_or_default();
        if status.state != PodSandboxState::SandboxReady as i32 {
            return Err(format!("pod {pod} is not ready: {status:?}"));
        }
        let info: serde_json::Value =
            serde_json::from_str(&resp.info["info"]).map_err(|e| e.to_string())?;
        let monitor = info["monitorPid"].as_i64().unwrap_or(0);
        if !alive(monitor) {
            return Err(format!("pod {pod}'s monitor {monitor} is not running"));
        }
        monitors.insert(monitor as u32);
        ips.push(status.network.map(|n| n.ip).unwrap_or_default());
        let resp = rt
            .container_status(ContainerStatusRequest {
                container_id: container.clone(),
                verbose: true,
            })
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        let state = resp.status.map(|s| s.state).unwrap_or(-1);
        if state != ContainerState::ContainerRunning as i32 {
            return Err(format!("container {container} is in state {state}"));
        }
        let info: serde_json::Value =
            serde_json::from_str(&resp.info["info"]).map_err(|e| e.to_string())?;
        let pid = info["pid"].as_i64().unwrap_or(0);
        if !alive(pid) {
            return Err(format!("container {container}'s process {pid} is gone"));
        }
    }
    let containers = rt
        .list_containers(ListContainersRequest::default())
        .await
        .map_err(|e| e.to_string())?
        .into_inner()
        .containers;
    let listed: HashSet<String> = containers.into_iter().map(|c| c.id).collect();
    let wanted: HashSet<String> = want.values().map(|(_, c)| c.clone()).collect();
    if listed != wanted {
        return Err(format!(
            "containers listed {listed:?}, reconciled {wanted:?}"
        ));
    }
    for pid in monitors_under(e.crustd.dir.path()) {
        let ours =
            monitors.contains(&pid) || parent_pid(pid).is_some_and(|p| monitors.contains(&p));
        if !ours {
            return Err(format!("monitor process {pid} belongs to no listed pod"));
        }
    }
    let mut allocated = e.net.allocated_ips();
    ips.sort();
    allocated.sort();
    if ips != allocated {
        return Err(format!(
            "pods have IPs {ips:?}, host-local holds {allocated:?}"
        ));
    }
    if e.net.bridge_ports() != want.len() {
        return Err(format!(
            "{} veths on the bridge for {} pods",
            e.net.bridge_ports(),
            want.len()
        ));
    }
    Ok(())
}

async fn remove_everything(rt: &mut RuntimeServiceClient<Channel>) -> Result<(), String> {
    let pods = rt
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .map_err(|e| e.to_string())?
        .into_inner()
        .items;
    for p in pods {
        stop_and_remove(rt, &p.id).await?;
    }
    Ok(())
}

/// StopPodSandbox, then RemovePodSandbox; the error names the call and the pod.
async fn stop_and_remove(rt: &mut RuntimeServiceClient<Channel>, id: &str) -> Result<(), String> {
    rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: id.into(),
    })
    .await
    .map_err(|e| format!("StopPodSandbox {id}: {e}"))?;
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: id.into(),
    })
    .await
    .map_err(|e| format!("RemovePodSandbox {id}: {e}"))?;
    Ok(())
}

/// Polls `f` until it holds or `secs` pass; returns the last value seen.
async fn settle<T: PartialEq + std::fmt::Debug>(
    secs: u64,
    want: &T,
    mut f: impl FnMut() -> T,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = f();
        if &got == want || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crustd_killed_during_churn_leaks_nothing() {
    let seed = env_number("CRUST_CHURN_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1
    });
    let rounds = env_number("CRUST_CHURN_ROUNDS").unwrap_or(4);
    println!("churn seed {seed} ({rounds} rounds): replay with CRUST_CHURN_SEED={seed}");
    let mut rng = Rng(seed);
    let mut e = PodEnv::builder("runc", 80)
        .runtimes(&["runc"])
        .build()
        .await;
    let cgroup_root = format!("/crust-churn-{}", std::process::id());
    let _cgroups = CgroupGuard(vec![cgroup_root.clone()]);
    const WORKERS: usize = 5;
    let slots: Vec<Slot> = (0..WORKERS).map(|w| slot(&e, &cgroup_root, w)).collect();
    let baseline = leftovers(&e, &cgroup_root);
    assert!(
        baseline.mounts.is_empty() && baseline.monitors == 0,
        "{baseline:?}"
    );
    let slots = std::sync::Arc::new(slots);
    for round in 0..rounds {
        let kill_after = Duration::from_millis(rng.below(2500) as u64);
        let iterations: Vec<u64> = (0..WORKERS).map(|_| 1 + rng.below(3) as u64).collect();
        let ctx = format!(
            "seed {seed}, round {round}: kill after {kill_after:?}, iterations {iterations:?}"
        );
        println!("{ctx}");
        let mut workers = Vec::new();
        for (w, n) in iterations.iter().copied().enumerate() {
            let rt = e.rt.clone();
            let slots = slots.clone();
            let container = container_config(&e);
            workers.push(tokio::spawn(async move {
                churn(rt, "runc", &slots[w], container, n).await
            }));
        }
        tokio::time::sleep(kill_after).await;
        e.crustd.kill();
        for w in workers {
            // Those still at work when crustd died get errors; those done before it got none.
            let _ = w.await.unwrap();
        }
        e.crustd
            .spawn()
            .await
            .unwrap_or_else(|err| panic!("{ctx}: crustd restarts: {err}"));
        e.rt = e.crustd.runtime().await.unwrap();
        // kubelet's retries: every slot converges on one ready pod running one container.
        let mut tasks = Vec::new();
        for w in 0..WORKERS {
            let rt = e.rt.clone();
            let slots = slots.clone();
            let container = container_config(&e);
            tasks.push(tokio::spawn(async move {
                reconcile(rt, "runc", &slots[w], container).await
            }));
        }
        let mut want = HashMap::new();
        for (w, t) in tasks.into_iter().enumerate() {
            let ids = t
                .await
                .unwrap()
                .unwrap_or_else(|err| panic!("{ctx}: reconciling churn{w}: {err}"));
            want.insert(slots[w].name.clone(), ids);
        }
        let mut rt = e.rt.clone();
        if let Err(err) = check_agreement(&e, &mut rt, &want).await {
            panic!(
                "{ctx}: store and kernel disagree: {err}\ncrustd log tail:\n{}",
                tail(&e)
            );
        }
        remove_everything(&mut rt)
            .await
            .unwrap_or_else(|err| panic!("{ctx}: {err}"));
        let left = settle(10, &baseline, || leftovers(&e, &cgroup_root)).await;
        assert_eq!(
            left,
            baseline,
            "{ctx}: leaked after removing everything\ncrustd warnings:\n{}\n{}",
            warnings(&e),
            node_state(&e)
        );
    }
}

/// crustd's WARN and ERROR lines, for a leak's cause.
fn warnings(e: &PodEnv) -> String {
    let logs = e.crustd.logs();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The bridge's ports and the processes of CNI plugins, runtimes and monitors, for a leak.
fn node_state(e: &PodEnv) -> String {
    let run = |args: &[&str]| {
        std::process::Command::new(args[0])
            .args(&args[1..])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let ps: Vec<String> = run(&["ps", "-eo", "pid,ppid,lstart,args"])
        .lines()
        .filter(|l| l.contains("/cni/") || l.contains("runc") || l.contains("crust-monitor"))
        .map(str::to_string)
        .collect();
    format!(
        "bridge ports:\n{}\nnetns ids:\n{}\nprocesses:\n{}",
        run(&["ip", "-d", "link", "show", "master", &e.net.bridge]),
        run(&["ip", "netns", "list-id"]),
        ps.join("\n")
    )
}

fn tail(e: &PodEnv) -> String {
    let logs = e.crustd.logs();
    let lines: Vec<&str> = logs.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn vm_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_and_ten_pods_then_a_thousand_concurrent_lists() {
    const PODS: usize = 110;
    let e = PodEnv::builder("runc", 81)
        .runtimes(&["runc"])
        .build()
        .await;
    let cgroup_root = format!("/crust-load-{}", std::process::id());
    let _cgroups = CgroupGuard(vec![cgroup_root.clone()]);
    let pid = e.crustd.pid().unwrap();
    let idle = vm_rss_kib(pid);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..PODS {
        let rt = e.rt.clone();
        let s = slot_named(&e, &cgroup_root, &format!("load{w}"));
        let container = container_config(&e);
        tasks.push(tokio::spawn(async move {
            churn(rt, "runc", &s, container, 1).await
        }));
    }
    for (w, t) in tasks.into_iter().enumerate() {
        t.await
            .unwrap()
            .unwrap_or_else(|err| panic!("pod load{w}: {err}"));
    }
    let all_running = started.elapsed();
    let loaded = vm_rss_kib(pid);
    // 1,000 concurrent List* calls, a quarter of each kind, over one channel as kubelet does.
    let started = Instant::now();
    let mut calls = Vec::new();
    for i in 0..1000 {
        let mut rt = e.rt.clone();
        calls.push(tokio::spawn(async move {
            let deadline = Duration::from_secs(30);
            let call = async {
                match i % 4 {
                    0 => rt
                        .list_pod_sandbox(ListPodSandboxRequest::default())
                        .await
                        .map(|r| r.into_inner().items.len()),
                    1 => rt
                        .list_containers(ListContainersRequest::default())
                        .await
                        .map(|r| r.into_inner().containers.len()),
                    2 => rt
                        .list_container_stats(ListContainerStatsRequest::default())
                        .await
                        .map(|r| r.into_inner().stats.len()),
                    _ => rt
                        .list_pod_sandbox_stats(ListPodSandboxStatsRequest::default())
                        .await
                        .map(|r| r.into_inner().stats.len()),
                }
            };
            let t = Instant::now();
            let r = tokio::time::timeout(deadline, call).await;
            (i % 4, r, t.elapsed())
        }));
    }
    let mut by_kind = [0usize; 4];
    let mut slowest = [Duration::ZERO; 4];
    for c in calls {
        let (kind, r, took) = c.await.unwrap();
        slowest[kind] = slowest[kind].max(took);
        let n = r
            .unwrap_or_else(|_| panic!("List call of kind {kind} timed out"))
            .unwrap_or_else(|err| panic!("List call of kind {kind} failed: {err}"));
        assert_eq!(n, PODS, "List call of kind {kind} saw {n} of {PODS}");
        by_kind[kind] += 1;
    }
    assert_eq!(by_kind, [250; 4]);
    let lists = started.elapsed();
    let after_lists = vm_rss_kib(pid);
    println!(
        "{PODS} pods running in {all_running:?}; 1000 concurrent lists in {lists:?} (slowest \
         ListPodSandbox {:?}, ListContainers {:?}, ListContainerStats {:?}, \
         ListPodSandboxStats {:?}); crustd RSS idle {idle} KiB, with {PODS} pods {loaded} KiB, \
         after the lists {after_lists} KiB",
        slowest[0], slowest[1], slowest[2], slowest[3]
    );
    // Concurrent stats calls share readings instead of each starting threads of its own
    // (which took crustd to ~1 GB here).
    assert!(
        after_lists < 256 << 10,
        "crustd's RSS after the lists is {after_lists} KiB"
    );
    let mut rt = e.rt.clone();
    remove_everything(&mut rt).await.unwrap();
    let left = leftovers(&e, &cgroup_root);
    assert!(left.mounts.is_empty() && left.ips.is_empty(), "{left:?}");
}
