//! The real crust-monitor binary with real namespaces (run as root).
//!
//! Every test holds a [`Pod`] guard: when the test ends, passing or not, it asks the monitor to
//! shut down and then force-cleans the run directory (kills a monitor that is still there,
//! unmounts any pin), so nothing outlives the test.

use std::{
    io::{BufRead, BufReader, Read, Write},
    os::unix::{fs::FileTypeExt, fs::MetadataExt, fs::PermissionsExt, net::UnixStream},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crust_monitor::{Event, InitExit, MonitorClient, MonitorError, Ready, SpawnOptions};

const BINARY: &str = env!("CARGO_BIN_EXE_crust-monitor");

fn assert_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "these tests create namespaces and mounts: run them as root"
    );
}

/// A pod monitor started for a test, torn down on drop.
struct Pod {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Pod {
    fn new() -> Self {
        assert_root();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        std::fs::create_dir(&dir).unwrap();
        Pod { _tmp: tmp, dir }
    }

    fn options(&self) -> SpawnOptions {
        SpawnOptions {
            binary: BINARY.into(),
            pod_id: "test-pod".into(),
            dir: self.dir.clone(),
            ..SpawnOptions::default()
        }
    }

    fn pin(&self, ns: &str) -> PathBuf {
        self.dir.join("ns").join(ns)
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let socket = self.dir.join("monitor.sock");
        if let Ok(mut stream) = UnixStream::connect(&socket) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = stream.write_all(b"{\"op\":\"shutdown\"}\n");
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest);
        }
        if let Err(e) = crust_monitor::force_cleanup(&self.dir) {
            eprintln!("cleanup of {}: {e}", self.dir.display());
        }
    }
}

/// (device, inode) of the namespace a link or pin refers to.
fn ns_id(path: &Path) -> (u64, u64) {
    let meta = std::fs::metadata(path).unwrap();
    (meta.dev(), meta.ino())
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Mount points at or under `dir`, from our mountinfo.
fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(dir))
        .map(str::to_string)
        .collect()
}

/// The State: letter of a process, or None when it is gone (reaped).
fn state(pid: i32) -> Option<char> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .and_then(|s| s.trim().chars().next())
}

fn status_field(pid: i32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

/// Waits until `f` holds, up to 10 s.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Not running any more: reaped, or a zombie waiting for whatever reaper it was handed to.
fn not_running(pid: i32) -> bool {
    matches!(state(pid), None | Some('Z') | Some('X'))
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            if String::from_utf8_lossy(&cmdline).contains(needle) && !not_running(pid) {
                pids.push(pid);
            }
        }
    }
    pids
}

fn vm_rss_kib(pid: i32) -> u64 {
    status_field(pid, "VmRSS")
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn pod_namespaces_hostname_sysctls_and_shutdown() {
    let pod = Pod::new();
    let host_port_start =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
    let host_shmmni = std::fs::read_to_string("/proc/sys/kernel/shmmni").unwrap();
    let ready = crust_monitor::spawn(&SpawnOptions {
        net: true,
        ipc: true,
        uts: true,
        pid: true,
        hostname: Some("pod-a".into()),
        sysctls: vec![
            ("net.ipv4.ip_unprivileged_port_start".into(), "1025".into()),
            ("kernel.shmmni".into(), "1234".into()),
        ],
        ..pod.options()
    })
    .await
    .unwrap();

    // The readiness report names every pin.
    let names: Vec<&str> = ready.namespaces.keys().map(String::as_str).collect();
    assert_eq!(names, ["ipc", "net", "pid", "uts"]);
    for (name, pin) in &ready.namespaces {
        assert_eq!(pin, &pod.pin(name));
    }
    let init_pid = ready.init_pid.expect("a pod init");
    assert!(ready.pid > 0 && init_pid > 0 && ready.pid != init_pid);

    // Each pin is a namespace other than ours: the monitor's (the init's for pid).
    for ns in ["net", "ipc", "uts", "pid"] {
        let pin = ns_id(&pod.pin(ns));
        assert_ne!(pin, ns_id(&Path::new("/proc/self/ns").join(ns)), "{ns}");
        let holder = if ns == "pid" { init_pid } else { ready.pid };
        assert_eq!(
            pin,
            ns_id(&PathBuf::from(format!("/proc/{holder}/ns/{ns}"))),
            "{ns}"
        );
    }
    assert_eq!(mounts_under(&pod.dir).len(), 4);

    let net = format!("--net={}", pod.pin("net").display());
    let uts = format!("--uts={}", pod.pin("uts").display());
    let ipc = format!("--ipc={}", pod.pin("ipc").display());
    // A fresh network namespace: only lo.
    let links = run("nsenter", &[&net, "ip", "-o", "link"]);
    let names: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(str::trim)
        .collect();
    assert_eq!(names, ["lo"], "{links}");
    assert_eq!(run("nsenter", &[&uts, "hostname"]).trim(), "pod-a");
    // The sysctls hold inside, and the host's are untouched.
    assert_eq!(
        run(
            "nsenter",
            &[&net, "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"]
        )
        .trim(),
        "1025"
    );
    assert_eq!(
        run("nsenter", &[&ipc, "cat", "/proc/sys/kernel/shmmni"]).trim(),
        "1234"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap(),
        host_port_start
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmni").unwrap(),
        host_shmmni
    );

    // Status over the socket agrees with the readiness report.
    let mut client = MonitorClient::connect(&pod.dir).await.unwrap();
    let status = client.status().await.unwrap();
    assert_eq!(status.pod_id, "test-pod");
    assert_eq!(status.pid, ready.pid);
    assert_eq!(status.init_pid, Some(init_pid));
    assert_eq!(status.init_exited, None);
    assert_eq!(status.namespaces, ready.namespaces);

    // Shutdown: returns once the monitor is gone, with its pod init, pins, socket, pid file.
    client.shutdown().await.unwrap();
    assert_eq!(mounts_under(&pod.dir), Vec::<String>::new());
    assert!(!pod.dir.join("monitor.sock").exists());
    assert!(!pod.dir.join("monitor.pid").exists());
    assert!(!pod.dir.join("ns").exists());
    eventually("the monitor and the pod init are gone", || {
        not_running(ready.pid) && not_running(init_pid)
    });
    assert!(!crust_monitor::is_alive(&pod.dir).await);
}

#[tokio::test]
async fn pod_init_reaps_orphans() {
    let pod = Pod::new();
    let ready = crust_monitor::spawn(&SpawnOptions {
        pid: true,
        ..pod.options()
    })
    .await
    .unwrap();
    let init = ready.init_pid.unwrap();
    assert_eq!(
        status_field(init, "NSpid").split_whitespace().last(),
        Some("1")
    );
    // The init names itself once it runs.
    eventually("the pod init is named", || {
        std::fs::read_to_string(format!("/proc/{init}/comm"))
            .unwrap_or_default()
            .trim()
            == "crust-pod-init"
    });

    // sh starts a sleep in the pod's pid namespace and exits: the sleep is orphaned.
    let pidns = format!("--pid={}", pod.pin("pid").display());
    let inner = run(
        "nsenter",
        &[
            &pidns,
            "sh",
            "-c",
            "sleep 100 </dev/null >/dev/null 2>&1 & echo $!",
        ],
    );
    let inner: i32 = inner.trim().parse().unwrap();
    assert!(inner > 1);
    // It is handed to the pod init (pid 1 in there), not to us or the monitor.
    let children_file = format!("/proc/{init}/task/{init}/children");
    let mut orphan = 0;
    eventually("the orphan is the pod init's child", || {
        let children = std::fs::read_to_string(&children_file).unwrap();
        let pids: Vec<i32> = children
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        if let [pid] = pids[..] {
            orphan = pid;
            true
        } else {
            false
        }
    });
    let nspid = status_field(orphan, "NSpid");
    assert_eq!(
        nspid.split_whitespace().last(),
        Some(inner.to_string().as_str())
    );
    assert_eq!(status_field(orphan, "PPid"), init.to_string());

    // When it dies the pod init reaps it: no zombie stays behind.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(orphan).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    eventually("the orphan is reaped", || state(orphan).is_none());
    assert_eq!(std::fs::read_to_string(&children_file).unwrap().trim(), "");
    // The init is unaffected.
    assert_eq!(state(init), Some('S'));
}

#[tokio::test]
async fn monitor_is_detached_and_survives_its_clients() {
    let pod = Pod::new();
    let ready = crust_monitor::spawn(&SpawnOptions {
        net: true,
        ..pod.options()
    })
    .await
    .unwrap();
    assert_eq!(ready.init_pid, None);
    assert_eq!(ready.namespaces.keys().collect::<Vec<_>>(), ["net"]);

    // Detached: its own session, not our child, stdio on /dev/null.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", ready.pid)).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    assert_ne!(fields[1], std::process::id().to_string(), "ppid");
    assert_eq!(fields[3], ready.pid.to_string(), "session id");
    for fd in 0..3 {
        assert_eq!(
            std::fs::read_link(format!("/proc/{}/fd/{fd}", ready.pid)).unwrap(),
            Path::new("/dev/null")
        );
    }

    // The socket is a 0600 socket; the pid file names the monitor.
    let meta = std::fs::symlink_metadata(pod.dir.join("monitor.sock")).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::read_to_string(pod.dir.join("monitor.pid"))
            .unwrap()
            .trim(),
        ready.pid.to_string()
    );
    assert_eq!(crust_monitor::monitor_pid(&pod.dir), Some(ready.pid));

    // Clients come and go (one drops mid-request); the monitor stays.
    let mut client = MonitorClient::connect(&pod.dir).await.unwrap();
    assert_eq!(client.status().await.unwrap().pid, ready.pid);
    drop(client);
    let mut raw = UnixStream::connect(pod.dir.join("monitor.sock")).unwrap();
    raw.write_all(b"{\"op\":\"sta").unwrap();
    drop(raw);
    let status = crust_monitor::probe(&pod.dir).await.unwrap();
    assert_eq!(status.pid, ready.pid);
    assert!(crust_monitor::is_alive(&pod.dir).await);
    // By socket path as well as by directory.
    let mut client = MonitorClient::connect(pod.dir.join("monitor.sock"))
        .await
        .unwrap();
    assert_eq!(client.status().await.unwrap().namespaces, ready.namespaces);

    // Idle, it stays small.
    let rss = vm_rss_kib(ready.pid);
    eprintln!("crust-monitor idle VmRSS: {rss} kB");
    assert!(rss < 2048, "monitor VmRSS {rss} kB, over 2 MiB");
}

#[tokio::test]
async fn watch_delivers_the_init_exit() {
    let pod = Pod::new();
    let ready = crust_monitor::spawn(&SpawnOptions {
        pid: true,
        ipc: true,
        ..pod.options()
    })
    .await
    .unwrap();
    let init = ready.init_pid.unwrap();
    let init_rss = vm_rss_kib(init);
    eprintln!("crust-pod-init VmRSS: {init_rss} kB");

    let mut first = MonitorClient::connect(&pod.dir)
        .await
        .unwrap()
        .watch()
        .await
        .unwrap();
    let mut second = MonitorClient::connect(&pod.dir)
        .await
        .unwrap()
        .watch()
        .await
        .unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(init).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let expected = Event::InitExited {
        exit_code: 137,
        signal: Some(9),
    };
    for events in [&mut first, &mut second] {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event in time")
            .unwrap();
        assert_eq!(event, Some(expected.clone()));
    }
    // Reaped by the monitor, not left a zombie.
    eventually("the init is reaped", || state(init).is_none());

    // Status records it; a watcher that comes later still learns of it.
    let status = crust_monitor::probe(&pod.dir).await.unwrap();
    assert_eq!(
        status.init_exited,
        Some(InitExit {
            exit_code: 137,
            signal: Some(9)
        })
    );
    let mut late = MonitorClient::connect(&pod.dir)
        .await
        .unwrap()
        .watch()
        .await
        .unwrap();
    assert_eq!(late.next_event().await, Some(expected));

    // The monitor outlives its pod init; shutdown still works, and watchers see the end.
    MonitorClient::connect(&pod.dir)
        .await
        .unwrap()
        .shutdown()
        .await
        .unwrap();
    assert_eq!(first.next().await.unwrap(), None);
    assert_eq!(mounts_under(&pod.dir), Vec::<String>::new());
}

#[tokio::test]
async fn bad_requests_get_errors_and_the_connection_stays_usable() {
    let pod = Pod::new();
    crust_monitor::spawn(&pod.options()).await.unwrap();
    let stream = UnixStream::connect(pod.dir.join("monitor.sock")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut ask = |line: &str| -> serde_json::Value {
        writer.write_all(line.as_bytes()).unwrap();
        writer.write_all(b"\n").unwrap();
        let mut reply = String::new();
        reader.read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).unwrap()
    };
    for bad in ["not json", "{\"op\":\"nope\"}", "{\"no_op\":1}", "[1,2]"] {
        let reply = ask(bad);
        assert_eq!(reply["ok"], false, "{bad}: {reply}");
        assert!(
            reply["error"]
                .as_str()
                .unwrap()
                .starts_with("invalid request"),
            "{reply}"
        );
    }
    let reply = ask("{\"op\":\"status\"}");
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["init_pid"], serde_json::Value::Null);
    assert_eq!(reply["namespaces"], serde_json::json!({}));
    // Two requests in one write get two answers, in order.
    let reply = ask("{\"op\":\"status\"}\n{\"op\":\"nope\"}");
    assert_eq!(reply["ok"], true);
    let mut second = String::new();
    reader.read_line(&mut second).unwrap();
    let second: serde_json::Value = serde_json::from_str(&second).unwrap();
    assert_eq!(second["ok"], false, "{second}");
}

#[tokio::test]
async fn a_failing_sysctl_is_reported_and_leaves_nothing_behind() {
    let pod = Pod::new();
    let err = crust_monitor::spawn(&SpawnOptions {
        net: true,
        ipc: true,
        uts: true,
        pid: true,
        hostname: Some("pod-b".into()),
        sysctls: vec![("net.ipv4.no_such_setting".into(), "1".into())],
        ..pod.options()
    })
    .await
    .unwrap_err();
    match &err {
        MonitorError::Failed { pod_id, message } => {
            assert_eq!(pod_id, "test-pod");
            assert!(message.contains("net.ipv4.no_such_setting"), "{message}");
            assert!(message.contains("No such file"), "{message}");
        }
        other => panic!("unexpected error {other}"),
    }
    // By the time spawn returns, everything is undone: no pin, no socket, no process.
    assert_eq!(mounts_under(&pod.dir), Vec::<String>::new());
    assert!(!pod.dir.join("ns").exists());
    assert!(!pod.dir.join("monitor.sock").exists());
    assert!(!pod.dir.join("monitor.pid").exists());
    let dir = pod.dir.to_str().unwrap().to_string();
    eventually("no monitor runs for the pod", || {
        processes_mentioning(&dir).is_empty()
    });
    assert!(processes_mentioning("crust-pod-init").iter().all(|&pid| {
        // Other tests' inits may run; none of them is a child of a monitor for this dir.
        let ppid: i32 = status_field(pid, "PPid").parse().unwrap();
        !String::from_utf8_lossy(
            &std::fs::read(format!("/proc/{ppid}/cmdline")).unwrap_or_default(),
        )
        .contains(&dir)
    }));

    // Sysctls that would touch the host, or smuggle a second setting, are refused up front.
    for (key, value, why) in [
        ("kernel.panic", "1", "not namespaced"),
        ("net.ipv4.ip_forward", "1", "shares with the host"),
        ("kernel.shmmni", "1\nkernel.panic=1", "single line"),
    ] {
        let err = crust_monitor::spawn(&SpawnOptions {
            ipc: true,
            sysctls: vec![(key.into(), value.into())],
            ..pod.options()
        })
        .await
        .unwrap_err();
        assert!(
            matches!(&err, MonitorError::Failed { message, .. } if message.contains(why)),
            "{key}: {err}"
        );
    }
    assert_eq!(mounts_under(&pod.dir), Vec::<String>::new());
}

#[tokio::test]
async fn force_cleanup_ends_a_live_monitor_and_its_pod() {
    let pod = Pod::new();
    let ready: Ready = crust_monitor::spawn(&SpawnOptions {
        net: true,
        pid: true,
        ..pod.options()
    })
    .await
    .unwrap();
    let init = ready.init_pid.unwrap();
    crust_monitor::force_cleanup(&pod.dir).unwrap();
    eventually("the monitor is gone", || not_running(ready.pid));
    // The init asked to die with its parent; with it goes the pod's pid namespace.
    eventually("the pod init is gone", || not_running(init));
    assert_eq!(mounts_under(&pod.dir), Vec::<String>::new());
    assert!(!pod.dir.join("monitor.sock").exists());
    assert!(!crust_monitor::is_alive(&pod.dir).await);
}

#[tokio::test]
async fn spawn_errors_name_the_pod() {
    let pod = Pod::new();
    let err = crust_monitor::spawn(&SpawnOptions {
        binary: "/nonexistent/crust-monitor".into(),
        ..pod.options()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, MonitorError::Spawn { .. }), "{err}");
    assert!(err.to_string().contains("test-pod"), "{err}");

    // A hostname without a uts namespace would rename the host: refused.
    let err = crust_monitor::spawn(&SpawnOptions {
        hostname: Some("x".into()),
        ..pod.options()
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("needs --uts"), "{err}");

    let err = MonitorClient::connect(&pod.dir).await.unwrap_err();
    assert!(matches!(err, MonitorError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("monitor.sock"), "{err}");
}

#[tokio::test]
async fn a_run_dir_deeper_than_sun_path_still_works() {
    assert_root();
    let tmp = tempfile::tempdir().unwrap();
    // A deep run root plus a 64-hex pod ID: the socket path is far over 108 bytes.
    let dir = tmp
        .path()
        .join("a".repeat(60))
        .join("pods")
        .join("f".repeat(64));
    std::fs::create_dir_all(&dir).unwrap();
    assert!(dir.join("monitor.sock").as_os_str().len() > 108);
    let pod = Pod { _tmp: tmp, dir };
    let ready = crust_monitor::spawn(&SpawnOptions {
        net: true,
        ..pod.options()
    })
    .await
    .unwrap();
    let mut client = MonitorClient::connect(&pod.dir).await.unwrap();
    assert_eq!(client.status().await.unwrap().pid, ready.pid);
    client.shutdown().await.unwrap();
    assert!(!pod.dir.join("monitor.sock").exists());
}
