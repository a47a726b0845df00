//! Containers run by the real crust-monitor through real runc and crun (run as root).
//!
//! Each test builds an OCI bundle (a rootfs of busybox-static and its applet links, the
//! config.json of `runc spec` with the test's process), starts a monitor for a pod, sends
//! create_container with the runtime command built by hand, runs `<rt> start` itself and
//! checks the CRI log, the exit file and the container_exited event. Guards delete the runtime
//! state and shut the monitor down whatever happens.

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use crust_monitor::{ContainerExit, CreateContainer, Event, Events, MonitorClient, SpawnOptions};

const BINARY: &str = env!("CARGO_BIN_EXE_crust-monitor");
const RUNC: &str = "/usr/sbin/runc";
const CRUN: &str = "/usr/bin/crun";

fn assert_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "these tests run containers: run them as root"
    );
}

/// The pod monitor of a test, shut down (and force-cleaned) on drop.
struct Pod {
    dir: PathBuf,
}

impl Drop for Pod {
    fn drop(&mut self) {
        if let Ok(mut stream) = UnixStream::connect(self.dir.join("monitor.sock")) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = stream.write_all(b"{\"op\":\"shutdown\"}\n");
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest);
        }
        let _ = crust_monitor::force_cleanup(&self.dir);
    }
}

/// A container's runtime state, deleted on drop.
struct Runtime {
    binary: &'static str,
    root: PathBuf,
    id: String,
}

impl Runtime {
    fn run(&self, verb: &str) -> std::process::Output {
        Command::new(self.binary)
            .arg("--root")
            .arg(&self.root)
            .arg(verb)
            .arg(&self.id)
            .output()
            .unwrap()
    }

    fn start(&self) {
        let out = self.run("start");
        assert!(
            out.status.success(),
            "{} start {}: {}",
            self.binary,
            self.id,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = Command::new(self.binary)
            .arg("--root")
            .arg(&self.root)
            .args(["delete", "--force", &self.id])
            .output();
    }
}

/// One test's world: a temporary directory, a pod monitor, a runtime.
struct World {
    // Fields drop in order: the monitor is shut down before its directory goes.
    pod: Pod,
    tmp: tempfile::TempDir,
    runtime: &'static str,
    name: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl World {
    async fn new(runtime: &'static str) -> Self {
        assert_root();
        let status = Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../scripts/node-setup.sh"
            ))
            .status()
            .unwrap();
        assert!(status.success(), "node-setup.sh");
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        std::fs::create_dir(&dir).unwrap();
        let pod = Pod { dir };
        crust_monitor::spawn(&SpawnOptions {
            binary: BINARY.into(),
            pod_id: "ctr-pod".into(),
            dir: pod.dir.clone(),
            ..SpawnOptions::default()
        })
        .await
        .unwrap();
        let short = Path::new(runtime).file_name().unwrap().to_str().unwrap();
        let name = format!(
            "{short}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        World {
            pod,
            tmp,
            runtime,
            name,
        }
    }

    async fn client(&self) -> MonitorClient {
        MonitorClient::connect(&self.pod.dir).await.unwrap()
    }

    async fn watch(&self) -> Events {
        self.client().await.watch().await.unwrap()
    }

    /// A bundle running `script` with sh; returns the container's files and its request.
    fn container(&self, tag: &str, script: &str, terminal: bool) -> (Runtime, CreateContainer) {
        let id = format!("{}-{tag}", self.name);
        let base = self.tmp.path().join(tag);
        let bundle = base.join("bundle");
        make_bundle(&bundle, &id, script, terminal);
        let root = self.tmp.path().join("rt-root");
        let pid_file = base.join("container.pid");
        let mut argv: Vec<String> = vec![
            self.runtime.into(),
            "--root".into(),
            path_str(&root),
            "--log".into(),
            path_str(&base.join("runtime.log")),
            "--log-format".into(),
            "json".into(),
            "create".into(),
            "--bundle".into(),
            path_str(&bundle),
            "--pid-file".into(),
            path_str(&pid_file),
        ];
        let console_socket = terminal.then(|| base.join("console.sock"));
        if let Some(socket) = &console_socket {
            argv.push("--console-socket".into());
            argv.push(path_str(socket));
        }
        argv.push(id.clone());
        let req = CreateContainer {
            id: id.clone(),
            argv,
            pid_file,
            log_path: self.tmp.path().join("logs").join(tag).join("0.log"),
            exit_file: base.join("exit.json"),
            terminal,
            console_socket,
            stdin: false,
            stdin_once: false,
            timeout_ms: 30_000,
        };
        let runtime = Runtime {
            binary: self.runtime,
            root,
            id,
        };
        (runtime, req)
    }
}

fn path_str(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

/// rootfs with /bin/busybox and a link per applet; config.json from `runc spec` with
/// `sh -c script`, mount/pid/ipc/uts namespaces (no network or user one), a cgroup of ours.
fn make_bundle(bundle: &Path, id: &str, script: &str, terminal: bool) {
    let bin = bundle.join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    for dir in ["proc", "dev", "sys", "tmp"] {
        std::fs::create_dir_all(bundle.join("rootfs").join(dir)).unwrap();
    }
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
    }
    let out = Command::new(RUNC)
        .arg("spec")
        .current_dir(bundle)
        .output()
        .unwrap();
    assert!(out.status.success(), "runc spec: {out:?}");
    let path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["process"]["args"] = serde_json::json!(["/bin/sh", "-c", script]);
    config["process"]["terminal"] = serde_json::json!(terminal);
    config["process"]["env"] = serde_json::json!(["PATH=/bin", "TERM=xterm"]);
    let keep = ["mount", "pid", "ipc", "uts"];
    let namespaces: Vec<serde_json::Value> = config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|ns| keep.contains(&ns["type"].as_str().unwrap()))
        .cloned()
        .collect();
    config["linux"]["namespaces"] = serde_json::Value::Array(namespaces);
    config["linux"]["cgroupsPath"] = serde_json::json!(format!("/crust-montest/{id}"));
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
}

/// (stream, tag, content) of each record of a CRI log.
fn records(path: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split_terminator('\n')
        .map(|line| {
            let mut parts = line.splitn(4, ' ');
            let ts = parts.next().unwrap();
            assert!(ts.ends_with('Z') && ts.contains('T'), "timestamp {ts:?}");
            let stream = parts.next().unwrap().to_string();
            let tag = parts.next().unwrap().to_string();
            (stream, tag, parts.next().unwrap_or("").to_string())
        })
        .collect()
}

fn has(records: &[(String, String, String)], stream: &str, tag: &str, content: &str) -> bool {
    records
        .iter()
        .any(|(s, t, c)| s == stream && t == tag && c == content)
}

/// Waits (20 s at most) for the container_exited event of `id`.
async fn exited(events: &mut Events, id: &str) -> (i32, Option<i32>, u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = tokio::time::timeout(left, events.next())
            .await
            .unwrap_or_else(|_| panic!("no container_exited for {id} in time"))
            .unwrap();
        match event {
            Some(Event::ContainerExited {
                id: got,
                exit_code,
                signal,
                finished_at,
            }) if got == id => return (exit_code, signal, finished_at),
            Some(_) => continue,
            None => panic!("the monitor closed the event stream"),
        }
    }
}

fn not_running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => matches!(
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next()),
            Some('Z' | 'X')
        ),
    }
}

fn vm_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap()
}

async fn output_exit_and_state(runtime: &'static str) {
    let world = World::new(runtime).await;
    let mut events = world.watch().await;
    let mut client = world.client().await;

    // stdout and stderr, each an F record.
    let (rt, req) = world.container("hello", "echo hello; echo oops >&2", false);
    let pid = client.create_container(&req).await.unwrap();
    assert!(pid > 0);
    let status = client.status().await.unwrap();
    assert_eq!(status.containers.len(), 1);
    assert_eq!(status.containers[0].id, req.id);
    assert_eq!(status.containers[0].pid, pid);
    // A second create of the same ID is refused while it runs.
    let err = client.create_container(&req).await.unwrap_err();
    assert_eq!(err.container_id(), Some(req.id.as_str()));
    assert!(err.refusal().unwrap().contains("already exists"), "{err}");
    rt.start();
    let (code, signal, finished_at) = exited(&mut events, &req.id).await;
    assert_eq!((code, signal), (0, None));
    let log = records(&req.log_path);
    assert!(has(&log, "stdout", "F", "hello"), "{log:?}");
    assert!(has(&log, "stderr", "F", "oops"), "{log:?}");
    let exit = crust_monitor::read_exit_file(&req.exit_file).unwrap();
    assert_eq!(
        exit,
        Some(ContainerExit {
            exit_code: 0,
            signal: None,
            finished_at
        })
    );
    assert!(not_running(pid));
    // Nothing is kept of it; forget is idempotent.
    assert!(client.status().await.unwrap().containers.is_empty());
    client.forget(&req.id).await.unwrap();
    client.forget(&req.id).await.unwrap();
    let err = client.reopen_log(&req.id).await.unwrap_err();
    assert!(err.refusal().unwrap().contains("is not running"), "{err}");
    drop(rt);

    // A 40 KiB line: P, P, F.
    let (rt, req) = world.container(
        "long",
        "head -c 40960 /dev/zero | tr '\\0' x; echo; echo after",
        false,
    );
    client.create_container(&req).await.unwrap();
    rt.start();
    assert_eq!(exited(&mut events, &req.id).await.0, 0);
    let log = records(&req.log_path);
    let shape: Vec<(&str, &str, usize)> = log
        .iter()
        .map(|(s, t, c)| (s.as_str(), t.as_str(), c.len()))
        .collect();
    assert_eq!(
        shape,
        [
            ("stdout", "P", 16384),
            ("stdout", "P", 16384),
            ("stdout", "F", 8192),
            ("stdout", "F", 5),
        ]
    );
    assert!(log[..3]
        .iter()
        .all(|(_, _, c)| c.bytes().all(|b| b == b'x')));
    drop(rt);

    // The last line before the exit, and one without a newline, are not lost.
    let (rt, req) = world.container("last", "echo last; printf tail >&2; exit 7", false);
    client.create_container(&req).await.unwrap();
    rt.start();
    let (code, signal, _) = exited(&mut events, &req.id).await;
    assert_eq!((code, signal), (7, None));
    let log = records(&req.log_path);
    assert!(has(&log, "stdout", "F", "last"), "{log:?}");
    assert!(has(&log, "stderr", "F", "tail"), "{log:?}");
    assert_eq!(
        crust_monitor::read_exit_file(&req.exit_file)
            .unwrap()
            .unwrap()
            .exit_code,
        7
    );
}

async fn terminal(runtime: &'static str) {
    let world = World::new(runtime).await;
    let mut events = world.watch().await;
    let mut client = world.client().await;
    let (rt, req) = world.container(
        "tty",
        "echo hello-tty; [ -t 1 ] && echo is-a-tty; exit 3",
        true,
    );
    client.create_container(&req).await.unwrap();
    // The console socket is gone once the create answered.
    assert!(!req.console_socket.as_ref().unwrap().exists());
    rt.start();
    let (code, _, _) = exited(&mut events, &req.id).await;
    assert_eq!(code, 3);
    let log = records(&req.log_path);
    assert!(has(&log, "stdout", "F", "hello-tty"), "{log:?}");
    assert!(has(&log, "stdout", "F", "is-a-tty"), "{log:?}");
}

async fn failing_create(runtime: &'static str) {
    let world = World::new(runtime).await;
    let mut client = world.client().await;
    let (_rt, mut req) = world.container("bad", "true", false);
    // A bundle that does not exist.
    let bundle = req.argv.iter().position(|a| a == "--bundle").unwrap() + 1;
    req.argv[bundle] = path_str(&world.tmp.path().join("no-such-bundle"));
    let err = client.create_container(&req).await.unwrap_err();
    assert_eq!(err.container_id(), Some(req.id.as_str()));
    let message = err.refusal().expect("a refusal");
    assert!(
        message.starts_with("runtime create exited with status"),
        "{message}"
    );
    assert!(client.status().await.unwrap().containers.is_empty());
    assert!(!req.exit_file.exists());
    // The same with a terminal: the console socket is removed too.
    let (_rt, mut req) = world.container("badtty", "true", true);
    let bundle = req.argv.iter().position(|a| a == "--bundle").unwrap() + 1;
    req.argv[bundle] = path_str(&world.tmp.path().join("no-such-bundle"));
    let err = client.create_container(&req).await.unwrap_err();
    assert!(err.refusal().is_some(), "{err}");
    assert!(!req.console_socket.as_ref().unwrap().exists());
    assert!(client.status().await.unwrap().containers.is_empty());
}

async fn reopen_log(runtime: &'static str) {
    let world = World::new(runtime).await;
    let mut events = world.watch().await;
    let mut client = world.client().await;
    let (rt, req) = world.container(
        "rotate",
        "i=0; while [ $i -lt 300 ]; do echo line$i; i=$((i+1)); usleep 5000; done",
        false,
    );
    client.create_container(&req).await.unwrap();
    rt.start();
    let deadline = Instant::now() + Duration::from_secs(10);
    while records(&req.log_path).len() < 20 {
        assert!(Instant::now() < deadline, "no output");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rotated = req.log_path.with_extension("log.1");
    std::fs::rename(&req.log_path, &rotated).unwrap();
    client.reopen_log(&req.id).await.unwrap();
    assert_eq!(exited(&mut events, &req.id).await.0, 0);
    let old = records(&rotated);
    let new = records(&req.log_path);
    assert!(!new.is_empty(), "nothing in the reopened log");
    let lines: Vec<String> = old.iter().chain(&new).map(|r| r.2.clone()).collect();
    let expected: Vec<String> = (0..300).map(|i| format!("line{i}")).collect();
    assert_eq!(lines, expected);
}

async fn shutdown_kills(runtime: &'static str) {
    let world = World::new(runtime).await;
    let mut events = world.watch().await;
    let mut client = world.client().await;
    let (rt, req) = world.container("sleeper", "echo started; exec sleep 1000", false);
    let pid = client.create_container(&req).await.unwrap();
    rt.start();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !has(&records(&req.log_path), "stdout", "F", "started") {
        assert!(Instant::now() < deadline, "no output");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let monitor = client.status().await.unwrap().pid;
    eprintln!(
        "{runtime}: crust-monitor VmRSS with one running container: {} kB",
        vm_rss_kib(monitor)
    );
    client.shutdown().await.unwrap();
    let (code, signal, _) = exited(&mut events, &req.id).await;
    assert_eq!((code, signal), (137, Some(9)));
    let exit = crust_monitor::read_exit_file(&req.exit_file)
        .unwrap()
        .unwrap();
    assert_eq!((exit.exit_code, exit.signal), (137, Some(9)));
    assert!(not_running(pid));
    // Its socket closes as it exits; it is gone a moment later.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !not_running(monitor) {
        assert!(Instant::now() < deadline, "the monitor still runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(rt);
}

macro_rules! for_runtimes {
    ($($name:ident),*) => {
        mod runc {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::RUNC).await
            })*
        }
        mod crun {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::CRUN).await
            })*
        }
    };
}

for_runtimes!(
    output_exit_and_state,
    terminal,
    failing_create,
    reopen_log,
    shutdown_kills
);
