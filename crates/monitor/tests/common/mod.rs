//! Helpers of the tests that run containers through the real crust-monitor and real runc and
//! crun (as root): a pod monitor, OCI bundles of busybox, the runtime's state, CRI logs.
//!
//! Each test builds an OCI bundle (a rootfs of busybox-static and its applet links, the
//! config.json of `runc spec` with the test's process), starts a monitor for a pod, sends
//! create_container with the runtime command built by hand and runs `<rt> start` itself.
//! Guards delete the runtime state and shut the monitor down whatever happens.
#![allow(dead_code)] // each test file uses some

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use crust_monitor::{CreateContainer, Event, Events, MonitorClient, SpawnOptions};

pub const BINARY: &str = env!("CARGO_BIN_EXE_crust-monitor");
pub const RUNC: &str = "/usr/sbin/runc";
pub const CRUN: &str = "/usr/bin/crun";

pub fn assert_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "these tests run containers: run them as root"
    );
}

/// The pod monitor of a test, shut down (and force-cleaned) on drop.
pub struct Pod {
    pub dir: PathBuf,
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
pub struct Runtime {
    pub binary: &'static str,
    pub root: PathBuf,
    pub id: String,
}

impl Runtime {
    pub fn run(&self, verb: &str) -> std::process::Output {
        Command::new(self.binary)
            .arg("--root")
            .arg(&self.root)
            .arg(verb)
            .arg(&self.id)
            .output()
            .unwrap()
    }

    pub fn start(&self) {
        let out = self.run("start");
        assert!(
            out.status.success(),
            "{} start {}: {}",
            self.binary,
            self.id,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Sends SIGKILL to the container's init.
    pub fn kill(&self) {
        let out = Command::new(self.binary)
            .arg("--root")
            .arg(&self.root)
            .args(["kill", &self.id, "KILL"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} kill {}: {}",
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
pub struct World {
    // Fields drop in order: the monitor is shut down before its directory goes.
    pub pod: Pod,
    pub tmp: tempfile::TempDir,
    pub runtime: &'static str,
    pub name: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl World {
    pub async fn new(runtime: &'static str) -> Self {
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

    pub async fn client(&self) -> MonitorClient {
        MonitorClient::connect(&self.pod.dir).await.unwrap()
    }

    pub async fn watch(&self) -> Events {
        self.client().await.watch().await.unwrap()
    }

    /// A bundle running `script` with sh; returns the container's files and its request.
    pub fn container(&self, tag: &str, script: &str, terminal: bool) -> (Runtime, CreateContainer) {
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
            hold_output: false,
            console_size: None,
        };
        let runtime = Runtime {
            binary: self.runtime,
            root,
            id,
        };
        (runtime, req)
    }
}

pub fn path_str(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

/// rootfs with /bin/busybox and a link per applet; config.json from `runc spec` with
/// `sh -c script`, mount/pid/ipc/uts namespaces (no network or user one), a cgroup of ours.
pub fn make_bundle(bundle: &Path, id: &str, script: &str, terminal: bool) {
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
pub fn records(path: &Path) -> Vec<(String, String, String)> {
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

pub fn has(records: &[(String, String, String)], stream: &str, tag: &str, content: &str) -> bool {
    records
        .iter()
        .any(|(s, t, c)| s == stream && t == tag && c == content)
}

/// Waits (20 s at most) for the container_exited event of `id`.
pub async fn exited(events: &mut Events, id: &str) -> (i32, Option<i32>, u64) {
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

pub fn not_running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => matches!(
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next()),
            Some('Z' | 'X')
        ),
    }
}

pub fn vm_rss_kib(pid: i32) -> u64 {
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

/// `mod runc` and `mod crun`, each with a `#[tokio::test]` per named `async fn(runtime)`.
#[macro_export]
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
