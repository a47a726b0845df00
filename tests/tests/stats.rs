//! Container and pod stats on a real crustd: real runc and crun, real cgroups, a real CNI
//! bridge. Every figure is caused by the test (a busy loop, memory held by a shell, a file
//! written, bytes sent to the pod) and checked against what it should be. Each test runs once
//! per OCI runtime (`_runc`, `_crun`). These tests need root.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crust_tests::{both_runtimes, kv, pod_config, PodEnv};
use k8s_cri::v1::*;
use tonic::Code;

const MIB: u64 = 1 << 20;

/// Bridge indexes 84, 85 (and 184, 185): away from the other test files'.
async fn env(handler: &'static str, index: u8) -> PodEnv {
    PodEnv::builder(handler, index)
        .exec_timeout(30)
        .pod(move |logs| stats_pod_config(handler, index, logs, false))
        .build()
        .await
}

/// A labelled pod of the test's own.
fn stats_pod_config(handler: &str, index: u8, logs: &Path, host_network: bool) -> PodSandboxConfig {
    let name = format!(
        "stats-{handler}-{index}{}",
        if host_network { "-host" } else { "" }
    );
    let mut config = pod_config(&name, "stats", logs);
    config.labels = kv(&[("suite", "stats"), ("pod", &name)]);
    config.annotations = kv(&[("note", "stats test")]);
    config.linux.as_mut().unwrap().security_context = Some(LinuxSandboxSecurityContext {
        namespace_options: Some(NamespaceOption {
            network: if host_network {
                NamespaceMode::Node as i32
            } else {
                NamespaceMode::Pod as i32
            },
            ..Default::default()
        }),
        ..Default::default()
    });
    config
}

/// The stats RPCs and a labelled container, on the env's crustd.
trait StatsEnv {
    fn labelled(&self, name: &str, cmd: &[&str], labels: &[(&str, &str)]) -> ContainerConfig;
    async fn stats(&mut self, id: &str) -> ContainerStats;
    async fn list(&mut self, filter: ContainerStatsFilter) -> Vec<String>;
    async fn pod_stats(&mut self, id: &str) -> PodSandboxStats;
    async fn list_pods(&mut self, filter: PodSandboxStatsFilter) -> Vec<String>;
}

impl StatsEnv for PodEnv {
    /// A busybox container with `labels` and an annotation naming it.
    fn labelled(&self, name: &str, cmd: &[&str], labels: &[(&str, &str)]) -> ContainerConfig {
        let mut config = self.config(name, cmd);
        config.labels = kv(labels);
        config.annotations = kv(&[("made-by", name)]);
        config
    }

    async fn stats(&mut self, id: &str) -> ContainerStats {
        self.rt
            .container_stats(ContainerStatsRequest {
                container_id: id.into(),
            })
            .await
            .expect("ContainerStats")
            .into_inner()
            .stats
            .expect("stats")
    }

    async fn list(&mut self, filter: ContainerStatsFilter) -> Vec<String> {
        let mut ids: Vec<String> = self
            .rt
            .list_container_stats(ListContainerStatsRequest {
                filter: Some(filter),
            })
            .await
            .expect("ListContainerStats")
            .into_inner()
            .stats
            .into_iter()
            .map(|s| s.attributes.unwrap().id)
            .collect();
        ids.sort();
        ids
    }

    async fn pod_stats(&mut self, id: &str) -> PodSandboxStats {
        self.rt
            .pod_sandbox_stats(PodSandboxStatsRequest {
                pod_sandbox_id: id.into(),
            })
            .await
            .expect("PodSandboxStats")
            .into_inner()
            .stats
            .expect("stats")
    }

    async fn list_pods(&mut self, filter: PodSandboxStatsFilter) -> Vec<String> {
        self.rt
            .list_pod_sandbox_stats(ListPodSandboxStatsRequest {
                filter: Some(filter),
            })
            .await
            .expect("ListPodSandboxStats")
            .into_inner()
            .stats
            .into_iter()
            .map(|s| s.attributes.unwrap().id)
            .collect()
    }
}

fn value(v: Option<UInt64Value>) -> u64 {
    v.expect("a value").value
}

/// The CPU counter and its timestamp.
fn cpu(c: &Option<CpuUsage>) -> (u64, i64, Option<u64>) {
    let c = c.as_ref().expect("cpu stats");
    assert!(c.timestamp > 0);
    (
        value(c.usage_core_nano_seconds),
        c.timestamp,
        c.usage_nano_cores.map(|v| v.value),
    )
}

/// What a busy loop shows at least (ns of CPU per s) in its best one-second window of five:
/// most of a core, not all of one (the CI machine has two cores that other builds share).
const BUSY_RATE: u64 = 400_000_000;

/// The rate over a second of a busy loop's samples, as crustd computed it from its previous
/// sample: it must agree with the counters' own delta.
fn checked_rate(
    before: (u64, i64, Option<u64>),
    after: (u64, i64, Option<u64>),
    what: &str,
) -> u64 {
    let (u1, t1, _) = before;
    let (u2, t2, rate) = after;
    assert!(u2 > u1, "{what}: cumulative usage grows: {u1} -> {u2}");
    assert!(t2 - t1 >= 900_000_000, "{what}: samples a second apart");
    let rate = rate.unwrap_or_else(|| panic!("{what}: a rate from the previous sample"));
    let expected = (u2 - u1) as f64 / (t2 - t1) as f64 * 1e9;
    assert!(
        (rate as f64 - expected).abs() <= expected * 0.02 + 1e6,
        "{what}: usage_nano_cores {rate} is the counters' rate {expected}"
    );
    rate
}

/// The row of container (or pod) `id` in a crustctl table, split in columns.
fn row_of(table: &str, id: &str) -> Option<Vec<String>> {
    table
        .lines()
        .find(|l| l.split_whitespace().any(|cell| cell == &id[..13]))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
}

const BUSY: &[&str] = &["sh", "-c", "while :; do :; done"];

/// One busy loop at a time in this file: the tests run in parallel on a small machine, and a
/// rate is only "most of a core" when the loops do not share it.
static CPU_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

both_runtimes! {
    container_stats(84);
    pod_stats(85);
}

async fn container_stats(handler: &'static str, index: u8) {
    let mut e = env(handler, index).await;
    // ~100 MiB of anonymous memory held by the shell (a variable), not page cache. (A loop:
    // busybox sh would exec a last plain `sleep`, and its memory would go.)
    let hold = "v=$(head -c 104857600 /dev/zero | tr '\\0' x); while :; do sleep 1000; done";
    let mem = e
        .run(e.labelled("mem", &["sh", "-c", hold], &[("app", "mem")]))
        .await;
    let idle = e
        .create(e.labelled("idle", &["true"], &[("app", "idle")]))
        .await
        .expect("CreateContainer");

    // CPU: the counter grows, and the second call has a rate.
    let cpu_turn = CPU_TURN.lock().await;
    let busy = e
        .run(e.labelled("busy", BUSY, &[("app", "busy"), ("role", "cpu")]))
        .await;
    let what = format!("{handler} container");
    let mut before = cpu(&e.stats(&busy).await.cpu);
    let (mut best, mut second) = (0, None);
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = e.stats(&busy).await;
        let after = cpu(&s.cpu);
        best = best.max(checked_rate(before, after, &what));
        (before, second) = (after, Some(s));
        if best > BUSY_RATE {
            break;
        }
    }
    assert!(
        best > BUSY_RATE,
        "{what}: a busy loop's rate, at best {best} ns/s"
    );
    let second = second.unwrap();

    // Attributes as configured.
    let a = second.attributes.clone().unwrap();
    assert_eq!(a.id, busy);
    assert_eq!(a.metadata.unwrap().name, "busy");
    assert_eq!(a.labels, kv(&[("app", "busy"), ("role", "cpu")]));
    assert_eq!(a.annotations, kv(&[("made-by", "busy")]));

    // crustctl: JSON as crictl prints it, and the table with the CPU share.
    let out = e.crustd.crustctl(&["stats", "-o", "json", "--id", &busy]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let stats = json["stats"].as_array().unwrap();
    assert_eq!(stats.len(), 1, "{json}");
    assert_eq!(stats[0]["attributes"]["id"], busy.as_str());
    assert_eq!(stats[0]["attributes"]["metadata"]["name"], "busy");
    let usage: u64 = stats[0]["cpu"]["usageCoreNanoSeconds"]["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // The same counter as the RPC's last sample, read a moment later: never lower (a loaded
    // machine may not have run the loop in between).
    assert!(usage >= before.0 && usage > 0, "{usage} < {}", before.0);
    // The CPU % of the best of three one-second samples, as above.
    let pod = e.pod.clone();
    let mut table = String::new();
    for _ in 0..3 {
        let out = e.crustd.crustctl(&["stats", "-p", &pod]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        table = String::from_utf8_lossy(&out.stdout).into_owned();
        let busy_row = row_of(&table, &busy).unwrap_or_else(|| panic!("busy in {table}"));
        assert_eq!(busy_row[1], "busy");
        if busy_row[2].parse::<f64>().unwrap() > 40.0 {
            break;
        }
    }
    let row = |id: &str| row_of(&table, id);
    assert!(table.starts_with("CONTAINER "), "{table}");
    let percent: f64 = row(&busy).unwrap()[2].parse().unwrap();
    assert!(percent > 40.0, "a busy loop's CPU % in {table}");
    assert!(row(&mem).is_some(), "{table}");
    assert!(
        row(&idle).is_none(),
        "not running, not shown without -a: {table}"
    );
    let out = e.crustd.crustctl(&["stats", "-a", "--label", "app=idle"]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(table.lines().any(|l| l.starts_with(&idle[..13])), "{table}");
    assert_eq!(table.lines().count(), 2, "{table}");
    e.stop(&busy).await;
    drop(cpu_turn);
    // Exited: its cgroup is gone; attributes and writable layer stay.
    let exited = e.stats(&busy).await;
    assert!(exited.cpu.is_none() && exited.memory.is_none());
    assert_eq!(exited.attributes.unwrap().id, busy);
    assert!(exited.writable_layer.is_some());

    // Memory: the working set holds the shell's 100 MiB once it has them.
    let deadline = Instant::now() + Duration::from_secs(60);
    let memory = loop {
        let s = e.stats(&mem).await;
        let m = s.memory.expect("memory stats");
        if value(m.working_set_bytes) >= 95 * MIB || Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let working_set = value(memory.working_set_bytes);
    assert!(memory.timestamp > 0);
    assert!(working_set >= 95 * MIB, "working set {working_set}");
    assert!(working_set < 400 * MIB, "working set {working_set}");
    assert!(value(memory.usage_bytes) >= working_set);
    assert!(
        value(memory.rss_bytes) >= 95 * MIB,
        "the memory is anonymous: rss {}",
        value(memory.rss_bytes)
    );
    assert!(
        value(memory.page_faults) > 20_000,
        "100 MiB take >25k faults"
    );
    assert_eq!(
        memory.available_bytes, None,
        "no limit, nothing available to report"
    );
    let busy_memory = second.memory.unwrap();
    assert!(value(busy_memory.working_set_bytes) < 20 * MIB);

    // The writable layer: a 10 MiB file written inside shows up, with its inode.
    let layer = second.writable_layer.clone().expect("writable layer");
    let mountpoint = layer.fs_id.clone().unwrap().mountpoint;
    assert_eq!(
        mountpoint,
        e.crustd.root.join("containers").display().to_string()
    );
    let layer = e.stats(&mem).await.writable_layer.unwrap();
    let (bytes, inodes) = (value(layer.used_bytes), value(layer.inodes_used));
    e.sh_out(
        &mem,
        "dd if=/dev/zero of=/ten bs=1M count=10 2>/dev/null && sync",
    )
    .await;
    let layer = e.stats(&mem).await.writable_layer.unwrap();
    assert!(
        value(layer.used_bytes) >= bytes + 10 * MIB,
        "{bytes} -> {}",
        value(layer.used_bytes)
    );
    assert!(value(layer.used_bytes) < bytes + 12 * MIB);
    assert_eq!(value(layer.inodes_used), inodes + 1);
    assert!(layer.timestamp > 0);

    // A container that never started: attributes and its (empty) writable layer only.
    let s = e.stats(&idle).await;
    assert_eq!(s.attributes.unwrap().id, idle);
    assert!(s.cpu.is_none() && s.memory.is_none() && s.swap.is_none());
    assert!(s.writable_layer.is_some());

    // ListContainerStats: every filter and their conjunction.
    let mut all = vec![busy.clone(), mem.clone(), idle.clone()];
    all.sort();
    let f = |id: &str, pod: &str, labels: &[(&str, &str)]| ContainerStatsFilter {
        id: id.into(),
        pod_sandbox_id: pod.into(),
        label_selector: kv(labels),
    };
    assert_eq!(e.list(f("", "", &[])).await, all);
    assert_eq!(e.list(f("", &e.pod.clone(), &[])).await, all);
    assert_eq!(e.list(f("", &e.pod[..10], &[])).await, all);
    assert_eq!(
        e.list(f("", "0000nosuchpod", &[])).await,
        Vec::<String>::new()
    );
    assert_eq!(e.list(f(&mem[..12], "", &[])).await, vec![mem.clone()]);
    assert_eq!(
        e.list(f(&mem, &e.pod.clone(), &[])).await,
        vec![mem.clone()]
    );
    assert_eq!(
        e.list(f("", "", &[("app", "busy")])).await,
        vec![busy.clone()]
    );
    assert_eq!(
        e.list(f("", "", &[("app", "busy"), ("role", "cpu")])).await,
        vec![busy.clone()]
    );
    assert!(e
        .list(f("", "", &[("app", "busy"), ("role", "x")]))
        .await
        .is_empty());
    assert!(e.list(f(&mem, "", &[("app", "busy")])).await.is_empty());
    let listed =
        e.rt.list_container_stats(ListContainerStatsRequest { filter: None })
            .await
            .unwrap()
            .into_inner()
            .stats;
    let listed_mem = listed
        .iter()
        .find(|s| s.attributes.as_ref().unwrap().id == mem)
        .unwrap();
    let listed_ws = value(listed_mem.memory.unwrap().working_set_bytes);
    assert!(
        listed_ws >= 95 * MIB,
        "{listed_ws} after {working_set}: {listed_mem:?}"
    );

    // Bad requests.
    let err = |r: Result<tonic::Response<ContainerStatsResponse>, tonic::Status>| r.unwrap_err();
    let empty = err(e
        .rt
        .container_stats(ContainerStatsRequest {
            container_id: String::new(),
        })
        .await);
    assert_eq!(empty.code(), Code::InvalidArgument, "{empty:?}");
    let unknown = err(e
        .rt
        .container_stats(ContainerStatsRequest {
            container_id: "0123456789abcdef".into(),
        })
        .await);
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    assert!(
        unknown.message().contains("0123456789abcdef"),
        "{unknown:?}"
    );

    drop(e);
}

async fn pod_stats(handler: &'static str, index: u8) {
    let mut e = env(handler, index).await;
    // nc's stdin stays open (a pipe from sleep): at EOF on stdin busybox nc would end the
    // connection, racing the bytes the test sends.
    let listen = "while :; do sleep 1000 | nc -l -p 8080 > /dev/null; done";
    let listener = e
        .run(e.labelled("listener", &["sh", "-c", listen], &[]))
        .await;
    let pod = e.pod.clone();

    // CPU, memory, processes from the pod cgroup.
    let cpu_turn = CPU_TURN.lock().await;
    let busy = e.run(e.labelled("busy", BUSY, &[])).await;
    let what = format!("{handler} pod");
    let mut before = cpu(&e.pod_stats(&pod).await.linux.unwrap().cpu);
    let (mut best, mut last) = (0, None);
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = e.pod_stats(&pod).await;
        let after = cpu(&s.linux.as_ref().unwrap().cpu);
        best = best.max(checked_rate(before, after, &what));
        (before, last) = (after, Some(s));
        if best > BUSY_RATE {
            break;
        }
    }
    assert!(
        best > BUSY_RATE,
        "{what}: a busy loop's rate, at best {best} ns/s"
    );
    let s = last.unwrap();
    let a = s.attributes.clone().unwrap();
    assert_eq!(a.id, pod);
    let meta = a.metadata.unwrap();
    assert_eq!(meta, e.pod_config.metadata.clone().unwrap());
    assert_eq!(a.labels, e.pod_config.labels);
    assert_eq!(a.annotations, e.pod_config.annotations);
    assert!(s.windows.is_none());
    let linux = s.linux.clone().unwrap();
    let memory = linux.memory.unwrap();
    assert!(value(memory.working_set_bytes) > 0);
    assert!(value(memory.usage_bytes) >= value(memory.working_set_bytes));
    // The pod init, busy's shell, the listener's shell and its nc.
    let processes = value(linux.process.unwrap().process_count);
    assert!((3..=8).contains(&processes), "{processes} processes");
    // Its containers' stats, each with its own figures.
    let mut names: Vec<String> = linux
        .containers
        .iter()
        .map(|c| c.attributes.clone().unwrap().metadata.unwrap().name)
        .collect();
    names.sort();
    assert_eq!(names, ["busy", "listener"]);
    let busy_stats = linux
        .containers
        .iter()
        .find(|c| c.attributes.as_ref().unwrap().id == busy)
        .unwrap();
    let (busy_cpu, _, _) = cpu(&busy_stats.cpu);
    let (pod_cpu, _, _) = cpu(&linux.cpu);
    assert!(pod_cpu >= busy_cpu, "the pod cgroup holds its containers");
    let listener_stats = linux
        .containers
        .iter()
        .find(|c| c.attributes.as_ref().unwrap().id == listener)
        .unwrap();
    assert!(value(listener_stats.memory.unwrap().working_set_bytes) > 0);

    // crustctl statsp's table, with the CPU share (the best of three one-second samples).
    let (mut table, mut row) = (String::new(), Vec::new());
    for _ in 0..3 {
        let out = e.crustd.crustctl(&["statsp", &pod]);
        table = String::from_utf8_lossy(&out.stdout).into_owned();
        row = row_of(&table, &pod).unwrap_or_else(|| panic!("the pod in {table}"));
        if row[2].parse::<f64>().unwrap() > 40.0 {
            break;
        }
    }
    assert!(table.starts_with("POD "), "{table}");
    assert_eq!(row[0], meta.name, "{table}");
    assert_eq!(row[1], &pod[..13], "{table}");
    assert!(row[2].parse::<f64>().unwrap() > 40.0, "{table}");
    e.stop(&busy).await;
    drop(cpu_turn);

    // Network: eth0 of the pod's namespace counts what the host sends to the pod.
    let network = linux.network.clone().expect("network stats");
    assert!(network.timestamp > 0);
    let eth0 = network.default_interface.clone().unwrap();
    assert_eq!(eth0.name, "eth0");
    assert!(
        network
            .interfaces
            .iter()
            .all(|i| i.name != "eth0" && i.name != "lo"),
        "{network:?}"
    );
    let ip =
        e.rt.pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap()
        .network
        .unwrap()
        .ip;
    let (rx0, tx0) = (value(eth0.rx_bytes), value(eth0.tx_bytes));
    let sent = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let addr = format!("{ip}:8080").parse().unwrap();
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Ok(mut s) => {
                    s.write_all(&vec![b'x'; 2 * MIB as usize]).unwrap();
                    s.shutdown(std::net::Shutdown::Write).unwrap();
                    // Until nc has read it all and closes (or 10 s).
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let _ = std::io::Read::read_to_end(&mut s, &mut Vec::new());
                    return;
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(err) => panic!("connecting to the pod: {err}"),
            }
        }
    });
    sent.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let eth0 = loop {
        let n = e.pod_stats(&pod).await.linux.unwrap().network.unwrap();
        let eth0 = n.default_interface.unwrap();
        if value(eth0.rx_bytes) >= rx0 + 2 * MIB || Instant::now() > deadline {
            break eth0;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (rx1, tx1) = (value(eth0.rx_bytes), value(eth0.tx_bytes));
    assert!(rx1 >= rx0 + 2 * MIB, "rx {rx0} -> {rx1}");
    assert!(rx1 < rx0 + 3 * MIB, "rx {rx0} -> {rx1}");
    assert!(tx1 > tx0, "the pod acknowledged: tx {tx0} -> {tx1}");
    assert_eq!(value(eth0.rx_errors), 0);

    // ListPodSandboxStats and its filters.
    let f = |id: &str, labels: &[(&str, &str)]| PodSandboxStatsFilter {
        id: id.into(),
        label_selector: kv(labels),
    };
    assert_eq!(e.list_pods(f("", &[])).await, vec![pod.clone()]);
    assert_eq!(e.list_pods(f(&pod[..8], &[])).await, vec![pod.clone()]);
    assert_eq!(
        e.list_pods(f("", &[("suite", "stats")])).await,
        vec![pod.clone()]
    );
    assert!(e.list_pods(f("", &[("suite", "other")])).await.is_empty());
    assert!(e.list_pods(f("0000nosuchpod", &[])).await.is_empty());

    // crustctl statsp: JSON with the pod, and the table.
    let out = e.crustd.crustctl(&["statsp", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["stats"][0]["attributes"]["id"], pod.as_str(), "{json}");
    assert_eq!(
        json["stats"][0]["linux"]["network"]["defaultInterface"]["name"],
        "eth0"
    );
    assert_eq!(
        json["stats"][0]["linux"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // A hostNetwork pod: no network of its own to report (as containerd).
    let host_config = stats_pod_config(e.handler, index, &e.logs, true);
    let host_pod = e.run_pod(host_config).await;
    let s = e.pod_stats(&host_pod).await;
    let linux = s.linux.unwrap();
    assert!(linux.network.is_none(), "{:?}", linux.network);
    assert!(linux.containers.is_empty());
    assert!(linux.memory.is_some());
    assert_eq!(e.list_pods(f("", &[("suite", "stats")])).await.len(), 2);

    // Bad requests, and a pod that is not ready.
    let code =
        |r: Result<tonic::Response<PodSandboxStatsResponse>, tonic::Status>| r.unwrap_err().code();
    let req = |id: &str| PodSandboxStatsRequest {
        pod_sandbox_id: id.into(),
    };
    assert_eq!(
        code(e.rt.pod_sandbox_stats(req("")).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(e.rt.pod_sandbox_stats(req("0000nosuchpod")).await),
        Code::NotFound
    );
    e.rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: host_pod.clone(),
    })
    .await
    .unwrap();
    assert_eq!(
        code(e.rt.pod_sandbox_stats(req(&host_pod)).await),
        Code::FailedPrecondition
    );
    assert_eq!(
        e.list_pods(f("", &[])).await,
        vec![pod.clone()],
        "ready pods only"
    );
    e.rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: host_pod,
    })
    .await
    .unwrap();
    drop(e);
}
