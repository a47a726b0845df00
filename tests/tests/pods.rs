//! Pod sandboxes on a real crustd: real namespaces held by crust-monitor, a real CNI bridge
//! (each test its own bridge and subnet in 10.88.0.0/16, ipMasq off), real cgroups.
//! These tests need root.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crust_tests::{monitors_under, mounts_under, stop_and_remove_pod, Crustd, PodNet};
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::Channel;
use tonic::Code;

async fn crustd_on(net: &PodNet, bin_dirs: &[&Path]) -> Crustd {
    Crustd::start_on(net, bin_dirs, "")
        .await
        .expect("crustd starts")
}

fn pod_config(name: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}-{}", std::process::id()),
            namespace: "crust-test".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        labels: [("app".to_string(), name.to_string())].into(),
        linux: Some(LinuxPodSandboxConfig::default()),
        ..Default::default()
    }
}

fn with_namespaces(mut c: PodSandboxConfig, ns: NamespaceOption) -> PodSandboxConfig {
    let linux = c.linux.get_or_insert_with(Default::default);
    linux
        .security_context
        .get_or_insert_with(Default::default)
        .namespace_options = Some(ns);
    c
}

async fn run(rt: &mut RuntimeServiceClient<Channel>, config: PodSandboxConfig) -> String {
    rt.run_pod_sandbox(RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: String::new(),
    })
    .await
    .expect("RunPodSandbox")
    .into_inner()
    .pod_sandbox_id
}

async fn status(
    rt: &mut RuntimeServiceClient<Channel>,
    id: &str,
) -> (PodSandboxStatus, serde_json::Value) {
    let resp = rt
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: true,
        })
        .await
        .expect("PodSandboxStatus")
        .into_inner();
    let info = serde_json::from_str(&resp.info["info"]).expect("info is JSON");
    (resp.status.unwrap(), info)
}

fn ping(netns: Option<&str>, ip: &str) -> bool {
    let mut cmd = Command::new("nsenter");
    if let Some(ns) = netns {
        cmd.arg(format!("--net={ns}"));
    }
    cmd.args(["busybox", "ping", "-c", "1", "-W", "3", ip])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn same_file(a: &Path, b: &Path) -> bool {
    let (a, b) = (std::fs::metadata(a).unwrap(), std::fs::metadata(b).unwrap());
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[tokio::test]
async fn pods_get_ips_reach_each_other_and_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let net = PodNet::new(dir.path(), 11);
    let crustd = crustd_on(&net, &[]).await;
    let mut rt = crustd.runtime().await.unwrap();

    let a = run(&mut rt, pod_config("alpha")).await;
    let b = run(&mut rt, pod_config("beta")).await;
    let (sa, ia) = status(&mut rt, &a).await;
    let (sb, ib) = status(&mut rt, &b).await;
    assert_eq!(sa.state, PodSandboxState::SandboxReady as i32);
    let ip_a = sa.network.clone().unwrap().ip;
    let ip_b = sb.network.clone().unwrap().ip;
    assert!(ip_a.starts_with(&net.subnet_prefix), "{ip_a}");
    assert!(ip_b.starts_with(&net.subnet_prefix), "{ip_b}");
    assert_ne!(ip_a, ip_b);
    assert_eq!(net.allocated_ips().len(), 2);
    assert_eq!(net.bridge_ports(), 2);

    // Verbose info: monitor pid, netns path, CNI result.
    let netns_a = ia["netNamespacePath"].as_str().unwrap().to_string();
    let netns_b = ib["netNamespacePath"].as_str().unwrap().to_string();
    assert!(
        Path::new(&netns_a).starts_with(&crustd.runroot),
        "{netns_a}"
    );
    assert!(ia["monitorPid"].as_i64().unwrap() > 1);
    assert!(
        ia["cniResult"].to_string().contains(&ip_a),
        "{}",
        ia["cniResult"]
    );
    // The pod's network namespace is its own, pinned, and holds eth0 with the pod IP.
    assert!(!same_file(
        Path::new(&netns_a),
        Path::new("/proc/self/ns/net")
    ));
    let addrs = Command::new("nsenter")
        .args([
            &format!("--net={netns_a}"),
            "ip",
            "-o",
            "addr",
            "show",
            "eth0",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&addrs.stdout).contains(&ip_a));
    // The UTS namespace holds the pod's hostname.
    let uts = &ia["namespaces"]["uts"];
    let hostname = Command::new("nsenter")
        .args([&format!("--uts={}", uts.as_str().unwrap()), "hostname"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&hostname.stdout).trim(), "alpha");

    assert!(ping(None, &ip_a), "the host reaches pod alpha at {ip_a}");
    assert!(ping(Some(&netns_a), &ip_b), "alpha reaches beta");
    assert!(ping(Some(&netns_b), &ip_a), "beta reaches alpha");

    // Listing with filters.
    let all = crust_tests::all_pods(&mut rt).await;
    assert_eq!(all.len(), 2);
    let by_label = rt
        .list_pod_sandbox(ListPodSandboxRequest {
            filter: Some(PodSandboxFilter {
                label_selector: [("app".to_string(), "beta".to_string())].into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(by_label.len(), 1);
    assert_eq!(by_label[0].id, b);
    let by_prefix = rt
        .list_pod_sandbox(ListPodSandboxRequest {
            filter: Some(PodSandboxFilter {
                id: a[..12].to_string(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(by_prefix.len(), 1);

    // Stop: the network goes (IP freed, veth gone), the pod is listed NotReady.
    rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: a.clone(),
    })
    .await
    .unwrap();
    let (sa, _) = status(&mut rt, &a).await;
    assert_eq!(sa.state, PodSandboxState::SandboxNotready as i32);
    assert_eq!(sa.network.unwrap().ip, "");
    assert_eq!(net.allocated_ips().len(), 1);
    let not_ready = rt
        .list_pod_sandbox(ListPodSandboxRequest {
            filter: Some(PodSandboxFilter {
                state: Some(PodSandboxStateValue {
                    state: PodSandboxState::SandboxNotready as i32,
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(not_ready.len(), 1);
    assert_eq!(not_ready[0].id, a);
    // Stop and remove are idempotent, for known and unknown pods alike.
    for _ in 0..2 {
        stop_and_remove_pod(&mut rt, &a).await;
    }
    stop_and_remove_pod(&mut rt, "0123456789abcdef").await;
    let err = rt
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: a.clone(),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    stop_and_remove_pod(&mut rt, &b).await;
    assert!(net.allocated_ips().is_empty());
    assert_eq!(net.bridge_ports(), 0);
    assert!(mounts_under(crustd.dir.path()).is_empty());
    assert!(monitors_under(crustd.dir.path()).is_empty());
}

#[tokio::test]
async fn host_port_reaches_the_pod() {
    let dir = tempfile::tempdir().unwrap();
    let net = PodNet::new(dir.path(), 12);
    let crustd = crustd_on(&net, &[]).await;
    let mut rt = crustd.runtime().await.unwrap();
    let mut config = pod_config("web");
    config.port_mappings = vec![PortMapping {
        protocol: Protocol::Tcp as i32,
        container_port: 8080,
        host_port: 38412,
        host_ip: String::new(),
    }];
    let id = run(&mut rt, config).await;
    let (_, info) = status(&mut rt, &id).await;
    let netns = info["netNamespacePath"].as_str().unwrap().to_string();
    // A server inside the pod's network namespace.
    let mut server = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo hello-from-pod | exec nsenter --net={netns} busybox nc -l -p 8080"
        ))
        .spawn()
        .unwrap();
    // Through the host port on the node's address on the bridge (DNAT by portmap).
    let mut got = String::new();
    for _ in 0..50 {
        if let Ok(mut s) = std::net::TcpStream::connect((net.gateway.as_str(), 38412)) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.read_to_string(&mut got);
            if !got.is_empty() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(got.trim(), "hello-from-pod");
    stop_and_remove_pod(&mut rt, &id).await;
    // portmap's DNAT for the pod is gone with it.
    let rules = Command::new("iptables-save").output().unwrap();
    assert!(!String::from_utf8_lossy(&rules.stdout).contains(&id[..12]));
}

#[tokio::test]
async fn host_network_pod_uses_the_node_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let net = PodNet::new(dir.path(), 13);
    let crustd = crustd_on(&net, &[]).await;
    let mut rt = crustd.runtime().await.unwrap();
    let config = with_namespaces(
        pod_config("hostnet"),
        NamespaceOption {
            network: NamespaceMode::Node as i32,
            ipc: NamespaceMode::Node as i32,
            pid: NamespaceMode::Node as i32,
            ..Default::default()
        },
    );
    let id = run(&mut rt, config).await;
    let (s, info) = status(&mut rt, &id).await;
    assert_eq!(s.network.unwrap().ip, "", "hostNetwork pods have no pod IP");
    assert!(info["namespaces"].get("net").is_none(), "{info}");
    assert_eq!(net.allocated_ips().len(), 0, "CNI is skipped");
    let monitor = info["monitorPid"].as_i64().unwrap();
    // The pod sees the node's interfaces: its monitor sits in the node's network namespace.
    assert!(same_file(
        Path::new(&format!("/proc/{monitor}/ns/net")),
        Path::new("/proc/self/ns/net")
    ));
    assert_eq!(info["shmPath"], "/dev/shm");
    let resolv =
        std::fs::read_to_string(Path::new(info["stateDir"].as_str().unwrap()).join("resolv.conf"))
            .unwrap();
    assert_eq!(
        resolv,
        std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
    );
    stop_and_remove_pod(&mut rt, &id).await;
}

#[tokio::test]
async fn shared_pid_pod_has_one_process_tree_with_a_reaping_init() {
    let dir = tempfile::tempdir().unwrap();
    let net = PodNet::new(dir.path(), 14);
    let crustd = crustd_on(&net, &[]).await;
    let mut rt = crustd.runtime().await.unwrap();
    let mut config = with_namespaces(
        pod_config("sharedpid"),
        NamespaceOption {
            pid: NamespaceMode::Pod as i32,
            ..Default::default()
        },
    );
    config.dns_config = Some(DnsConfig {
        servers: vec!["10.96.0.10".into()],
        searches: vec!["crust-test.svc.cluster.local".into()],
        options: vec!["ndots:5".into()],
    });
    let id = run(&mut rt, config).await;
    let (_, info) = status(&mut rt, &id).await;
    let pidns = info["namespaces"]["pid"].as_str().unwrap().to_string();
    // Two processes entered into the pod's pid namespace see the same tree: pid 1 is the pod
    // init and each sees the other.
    let mut first = Command::new("nsenter")
        .args([&format!("--pid={pidns}"), "sleep", "30"])
        .spawn()
        .unwrap();
    let mut sleeper = None;
    for _ in 0..100 {
        sleeper = find_child(first.id()).filter(|p| nspid(*p).len() == 2);
        if sleeper.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let sleeper = sleeper.expect("the forked sleep");
    let sleeper_ids = nspid(sleeper);
    assert_eq!(sleeper_ids.len(), 2, "sleep runs in a nested pid namespace");
    let inner = sleeper_ids[1];
    let out = Command::new("nsenter")
        .args([
            &format!("--pid={pidns}"),
            "sh",
            "-c",
            &format!("kill -0 {inner} && echo $$"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = Command::new("kill")
        .args(["-KILL", &sleeper.to_string()])
        .status();
    let _ = first.wait();
    // An orphan inside is reaped by the pod init (no zombie stays).
    let out = Command::new("nsenter")
        .args([
            &format!("--pid={pidns}"),
            "sh",
            "-c",
            "sh -c 'sleep 0.2 &' ; echo done",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    // The orphan sleeps 0.2 s; give a loaded machine time, then insist nothing is left but
    // the init (a zombie would stay in the namespace forever).
    let mut left = Vec::new();
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(50));
        left = processes_in_pidns(Path::new(&pidns))
            .into_iter()
            .filter(|p| nspid(*p).last() != Some(&1))
            .collect();
        if left.is_empty() {
            break;
        }
    }
    assert!(left.is_empty(), "processes left in the pod: {left:?}");
    // The pod init is pid 1 inside.
    let init: Vec<u32> = processes_in_pidns(Path::new(&pidns))
        .into_iter()
        .filter(|p| nspid(*p).last() == Some(&1))
        .collect();
    assert_eq!(init.len(), 1, "exactly one pod init");
    // resolv.conf from DNSConfig.
    let resolv =
        std::fs::read_to_string(Path::new(info["stateDir"].as_str().unwrap()).join("resolv.conf"))
            .unwrap();
    assert!(resolv.contains("nameserver 10.96.0.10\n"), "{resolv}");
    assert!(resolv.contains("search crust-test.svc.cluster.local\n"));
    assert!(resolv.contains("options ndots:5\n"));
    stop_and_remove_pod(&mut rt, &id).await;
    assert!(!alive(init[0]), "the pod init ended with the pod");
}

fn find_child(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_string_lossy().parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        // pid (comm) state ppid ...: the comm may hold spaces, so split after its ')'.
        let ppid: u32 = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        (ppid == parent).then_some(pid)
    })
}

fn nspid(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|v| {
            v.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn processes_in_pidns(ns: &Path) -> Vec<u32> {
    let target = std::fs::metadata(ns).unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/pid"))
                .map(|m| m.ino() == target.ino() && m.dev() == target.dev())
                .unwrap_or(false)
        })
        .collect()
}

#[tokio::test]
async fn names_are_reserved_and_bad_requests_are_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let net = PodNet::new(dir.path(), 15);
    let crustd = crustd_on(&net, &[]).await;
    let mut rt = crustd.runtime().await.unwrap();
    let config = pod_config("dup");
    let id = run(&mut rt, config.clone()).await;
    let err = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert!(err.message().contains("reserved") && err.message().contains(&id));
    // Another attempt is another pod.
    let mut next = config.clone();
    next.metadata.as_mut().unwrap().attempt = 1;
    let id2 = run(&mut rt, next).await;
    assert_ne!(id, id2);

    let bad = |c: PodSandboxConfig, handler: &str| RunPodSandboxRequest {
        config: Some(c),
        runtime_handler: handler.into(),
    };
    let err = rt
        .run_pod_sandbox(bad(pod_config("h"), "no-such-runtime"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("no-such-runtime") && err.message().contains("runc"));
    let mut sys = pod_config("sys");
    sys.linux.as_mut().unwrap().sysctls = [("kernel.hostname".to_string(), "x".to_string())].into();
    let err = rt.run_pod_sandbox(bad(sys, "")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("kernel.hostname"),
        "{}",
        err.message()
    );
    let mut inject = pod_config("inject");
    inject.linux.as_mut().unwrap().sysctls = [(
        "net.ipv4.ip_forward".to_string(),
        "1\nkernel.hostname=x".to_string(),
    )]
    .into();
    let err = rt.run_pod_sandbox(bad(inject, "")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut no_meta = pod_config("m");
    no_meta.metadata = None;
    let err = rt.run_pod_sandbox(bad(no_meta, "")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // A namespaced sysctl is applied inside the pod only.
    let mut good = pod_config("goodsys");
    good.linux.as_mut().unwrap().sysctls = [(
        "net.ipv4.ip_unprivileged_port_start".to_string(),
        "80".to_string(),
    )]
    .into();
    let id3 = run(&mut rt, good).await;
    let (_, info) = status(&mut rt, &id3).await;
    let out = Command::new("nsenter")
        .args([
            &format!("--net={}", info["netNamespacePath"].as_str().unwrap()),
            "cat",
            "/proc/sys/net/ipv4/ip_unprivileged_port_start",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "80");

    let listed = rt
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(listed.len(), 3, "refused requests left nothing");
    for id in [id, id2, id3] {
        stop_and_remove_pod(&mut rt, &id).await;
    }
}

#[tokio::test]
async fn cni_failures_name_the_plugin_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let net = PodNet::new(dir.path(), 16);
    // A plugin whose ADD fails the way CNI plugins do: an error document and exit status 1
    // (its DEL succeeds, as the CNI spec asks of plugins, so the rollback can free the IP).
    let bin = write_plugin(
        dir.path(),
        "crust-failing",
        "cat >/dev/null\n[ \"$CNI_COMMAND\" = ADD ] || exit 0\necho 'something on stderr' >&2\n\
         echo '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"deliberate failure\",\"details\":\"for the test\"}'\nexit 1\n",
    );
    let crustd = crustd_on(&net, &[&bin]).await;
    let mut rt = crustd.runtime().await.unwrap();
    let before_mounts = mounts_under(crustd.dir.path());

    for (plugin, expect) in [
        ("crust-no-such-plugin", "crust-no-such-plugin"),
        ("crust-failing", "deliberate failure"),
    ] {
        net.write_conflist(&[serde_json::json!({"type": plugin})]);
        let err = rt
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(pod_config("failing")),
                runtime_handler: String::new(),
            })
            .await
            .unwrap_err();
        assert!(err.message().contains(plugin), "{}", err.message());
        assert!(err.message().contains(expect), "{}", err.message());
        let listed = rt
            .list_pod_sandbox(ListPodSandboxRequest::default())
            .await
            .unwrap()
            .into_inner()
            .items;
        assert!(listed.is_empty());
        assert!(net.allocated_ips().is_empty(), "the IP went back");
        assert_eq!(net.bridge_ports(), 0, "the veth went");
        assert_eq!(mounts_under(crustd.dir.path()), before_mounts);
        assert!(monitors_under(crustd.dir.path()).is_empty());
        assert_eq!(count_entries(&crustd.runroot.join("pods")), 0);
        assert_eq!(count_entries(&crustd.root.join("pods")), 0);
    }
    // The same name works once the network does.
    net.write_conflist(&[]);
    let id = run(&mut rt, pod_config("failing")).await;
    stop_and_remove_pod(&mut rt, &id).await;
}

/// Writes a shell-script CNI plugin `name` into `<dir>/bin` and returns that directory.
fn write_plugin(dir: &Path, name: &str, body: &str) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = bin.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    bin
}

fn count_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|rd| rd.count()).unwrap_or(0)
}

#[tokio::test]
async fn a_hundred_pod_cycles_leak_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let net = PodNet::new(dir.path(), 17);
    let crustd = crustd_on(&net, &[]).await;
    let mut rt = crustd.runtime().await.unwrap();
    let cgroup_root = format!("/crust-it-{}", std::process::id());
    let _cgroups = crust_tests::CgroupGuard(vec![cgroup_root.clone()]);
    let count = |crustd: &Crustd| -> HashMap<&'static str, usize> {
        [
            ("mounts", mounts_under(crustd.dir.path()).len()),
            ("monitors", monitors_under(crustd.dir.path()).len()),
            ("veths", net.bridge_ports()),
            ("ips", net.allocated_ips().len()),
            ("cgroups", crust_tests::cgroup_dirs_of(&cgroup_root).len()),
            ("run dirs", count_entries(&crustd.runroot.join("pods"))),
            ("state dirs", count_entries(&crustd.root.join("pods"))),
        ]
        .into()
    };
    let before = count(&crustd);
    for i in 0..100 {
        let mut config = with_namespaces(
            pod_config(&format!("cycle{i}")),
            NamespaceOption {
                pid: if i % 2 == 0 {
                    NamespaceMode::Pod as i32
                } else {
                    NamespaceMode::Container as i32
                },
                ..Default::default()
            },
        );
        let linux = config.linux.as_mut().unwrap();
        linux.cgroup_parent = format!("{cgroup_root}/pod{i}");
        linux.resources = Some(LinuxContainerResources {
            memory_limit_in_bytes: 64 << 20,
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 512,
            ..Default::default()
        });
        let id = run(&mut rt, config).await;
        if i == 0 {
            // The pod cgroup exists with the pod's limits while the pod runs.
            let mem = Path::new("/sys/fs/cgroup/memory")
                .join(cgroup_root.trim_start_matches('/'))
                .join("pod0/memory.limit_in_bytes");
            assert_eq!(
                std::fs::read_to_string(&mem).unwrap().trim(),
                (64u64 << 20).to_string()
            );
            let during = count(&crustd);
            assert_eq!(during["ips"], 1);
            assert_eq!(during["monitors"], 2, "the monitor and the pod init");
            assert!(during["mounts"] >= 4, "{during:?}");
        }
        stop_and_remove_pod(&mut rt, &id).await;
    }
    assert_eq!(count(&crustd), before);
}

#[tokio::test]
async fn pods_survive_a_crustd_restart() {
    let dir = tempfile::tempdir().unwrap();
    let net = PodNet::new(dir.path(), 18);
    let mut crustd = crustd_on(&net, &[]).await;
    let mut rt = crustd.runtime().await.unwrap();
    let id = run(&mut rt, pod_config("survivor")).await;
    let (before, info) = status(&mut rt, &id).await;
    let monitor = info["monitorPid"].as_i64().unwrap();
    crustd.kill();
    assert!(alive(monitor as u32), "the monitor outlives crustd");
    crustd.spawn().await.unwrap();
    let mut rt = crustd.runtime().await.unwrap();
    let (after, info) = status(&mut rt, &id).await;
    assert_eq!(after.state, PodSandboxState::SandboxReady as i32);
    assert_eq!(after.network, before.network);
    assert_eq!(info["monitorPid"].as_i64().unwrap(), monitor);
    let ip = after.network.unwrap().ip;
    assert!(ping(None, &ip));
    // The name is still reserved after the restart.
    let err = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod_config("survivor")),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    stop_and_remove_pod(&mut rt, &id).await;
    assert!(net.allocated_ips().is_empty());
    assert!(!alive(monitor as u32), "the monitor is gone");
}

/// A process that exists and is not a zombie (this VM's pid 1 reaps lazily).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| !s.contains("State:\tZ"))
        .unwrap_or(false)
}

#[tokio::test]
async fn a_run_the_caller_gave_up_on_is_returned_to_its_retry_not_duplicated() {
    let dir = tempfile::tempdir().unwrap();
    let net = PodNet::new(dir.path(), 20);
    // A chained plugin whose ADD takes 2 s, longer than the caller waits.
    let bin = write_plugin(
        dir.path(),
        "crust-slow",
        "input=$(cat)\n[ \"$CNI_COMMAND\" = ADD ] || exit 0\nsleep 2\n\
         printf '%s' \"$input\" | jq -c .prevResult\n",
    );
    net.write_conflist(&[serde_json::json!({"type": "crust-slow"})]);
    let crustd = crustd_on(&net, &[&bin]).await;
    let mut rt = crustd.runtime().await.unwrap();
    let config = pod_config("retried");
    let mut first = tonic::Request::new(RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: String::new(),
    });
    first.set_timeout(Duration::from_millis(500));
    let err = rt.run_pod_sandbox(first).await.unwrap_err();
    assert!(
        matches!(err.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{err:?}"
    );
    // kubelet retries with the same metadata: it gets the pod the first call made.
    let id = run(&mut rt, config.clone()).await;
    let listed = rt
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(listed.len(), 1, "one pod, not two");
    assert_eq!(listed[0].id, id);
    assert_eq!(net.allocated_ips().len(), 1);
    // Once handed out, the name is reserved.
    let err = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    stop_and_remove_pod(&mut rt, &id).await;
    assert!(net.allocated_ips().is_empty());
}

/// crustd dies while a CNI ADD runs: the plugin goes on without it. The next start kills it
/// before undoing the pod (else an ADD finishing after the undo's DEL would leave its veth or
/// address), and the node is left as it was.
#[tokio::test]
async fn plugins_a_crash_left_running_are_killed_before_the_pod_is_undone() {
    let dir = tempfile::tempdir().unwrap();
    let net = PodNet::new(dir.path(), 95);
    let pid_file = dir.path().join("plugin.pid");
    // Chained after bridge (the veth and the address exist by then); its ADD hangs.
    let bin = write_plugin(
        dir.path(),
        "crust-hang",
        &format!(
            "input=$(cat)\n[ \"$CNI_COMMAND\" = ADD ] || exit 0\necho $$ > {pid_file:?}\n\
             sleep 60\nprintf '%s' \"$input\" | jq -c .prevResult\n"
        ),
    );
    net.write_conflist(&[serde_json::json!({"type": "crust-hang"})]);
    let mut crustd = crustd_on(&net, &[&bin]).await;
    let mut rt = crustd.runtime().await.unwrap();
    let run = tokio::spawn(async move {
        rt.run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod_config("hung")),
            runtime_handler: String::new(),
        })
        .await
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let plugin: u32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break pid;
        }
        assert!(std::time::Instant::now() < deadline, "the plugin never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(net.allocated_ips().len(), 1);
    assert_eq!(net.bridge_ports(), 1);
    crustd.kill();
    assert!(run.await.unwrap().is_err());
    assert!(alive(plugin), "the plugin outlives crustd");
    crustd.spawn().await.unwrap();
    assert!(!alive(plugin), "the plugin is killed at start-up");
    let logs = crustd.logs();
    assert!(
        logs.contains("killed CNI plugins still running from before the restart"),
        "{logs}"
    );
    assert_eq!(net.allocated_ips(), Vec::<String>::new());
    assert_eq!(net.bridge_ports(), 0);
    assert_eq!(mounts_under(crustd.dir.path()), Vec::<String>::new());
    assert_eq!(monitors_under(crustd.dir.path()), Vec::<u32>::new());
    let mut rt = crustd.runtime().await.unwrap();
    let pods = crust_tests::all_pods(&mut rt).await;
    assert!(pods.is_empty(), "{pods:?}");
}
