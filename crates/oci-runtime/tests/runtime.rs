//! The driver against the real runc and crun, as root: a busybox container through its whole
//! life. Skips (with a note) when a binary is absent or not root. On a hybrid cgroup host crun
//! 1.8 needs the hugetlb v1 hierarchy, which `scripts/node-setup.sh` mounts; the test runs that
//! script when it exists.
#![cfg(feature = "async")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crust_oci_runtime::{
    last_error, CreateOptions, ExecOptions, Runtime, RuntimeError, State, Status,
};
use oci_spec::runtime::{LinuxMemoryBuilder, LinuxResourcesBuilder, Process};

const MIB: usize = 1024 * 1024;

fn find(binary: &str) -> Option<PathBuf> {
    [
        "/usr/sbin",
        "/usr/bin",
        "/usr/local/bin",
        "/usr/local/sbin",
        "/sbin",
        "/bin",
    ]
    .iter()
    .map(|dir| Path::new(dir).join(binary))
    .find(|path| path.exists())
}

fn node_setup() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/node-setup.sh");
    if script.exists() {
        let status = Command::new("bash").arg(&script).status().unwrap();
        assert!(status.success(), "{} failed", script.display());
    }
}

/// A bundle: busybox rootfs, config.json from `<binary> spec` running `sleep 1000`.
fn bundle(binary: &Path, dir: &Path, id: &str) {
    let bin = dir.join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    for applet in ["sh", "sleep", "echo", "cat", "id", "yes", "head"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    let status = Command::new(binary)
        .arg("spec")
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success());
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["process"]["args"] = serde_json::json!(["/bin/sleep", "1000"]);
    config["process"]["terminal"] = false.into();
    config["linux"]["cgroupsPath"] = format!("/crust-test/{id}").into();
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
}

/// Deletes the container whatever the test did; remove the shared cgroup parent when empty.
struct Cleanup {
    runtime: Runtime,
    id: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new(&self.runtime.binary)
            .arg("--root")
            .arg(&self.runtime.root)
            .args(["delete", "--force", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
            for hierarchy in hierarchies.flatten() {
                let _ = std::fs::remove_dir(hierarchy.path().join("crust-test"));
            }
        }
    }
}

fn process(args: &[&str]) -> Process {
    let mut process = Process::default();
    process.set_args(Some(args.iter().map(|a| a.to_string()).collect()));
    process
}

/// Whether a `sleep 100` runs in the container's cgroup (the runc and crun tests run at once).
fn sleep_100_running(id: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        let is_sleep = std::fs::read(entry.path().join("cmdline")).is_ok_and(|cmdline| {
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args[..] == [&b"sleep"[..], b"100", b""]
        });
        is_sleep
            && std::fs::read_to_string(entry.path().join("cgroup")).is_ok_and(|c| c.contains(id))
    })
}

async fn wait_for(runtime: &Runtime, id: &str, want: Status) -> State {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = runtime.state(id).await.unwrap();
        if state.status == want || Instant::now() > deadline {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn lifecycle(name: &str) {
    let Some(binary) = find(name) else {
        eprintln!("note: {name} not installed, skipping");
        return;
    };
    if !rustix::process::geteuid().is_root() {
        eprintln!("note: not root, skipping the {name} test");
        return;
    }
    node_setup();
    let dir = tempfile::tempdir().unwrap();
    let id = format!("crust-oci-test-{name}-{}", std::process::id());
    let bundle_dir = dir.path().join("bundle");
    bundle(&binary, &bundle_dir, &id);
    let runtime = Runtime::new(&binary, dir.path().join("state"));
    let _cleanup = Cleanup {
        runtime: runtime.clone(),
        id: id.clone(),
    };

    // create, the way crust-monitor runs it.
    let opts = CreateOptions {
        bundle: bundle_dir.clone(),
        pid_file: dir.path().join("init.pid"),
        console_socket: None,
        log: dir.path().join("create.log"),
    };
    let argv = runtime.create_argv(&id, &opts);
    let status = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "create: {:?}", last_error(&opts.log));
    assert_eq!(runtime.state(&id).await.unwrap().status, Status::Created);

    runtime.start(&id).await.unwrap();
    let state = runtime.state(&id).await.unwrap();
    assert_eq!(state.status, Status::Running);
    assert!(state.pid > 0);
    assert_eq!(state.id, id);
    assert_eq!(state.bundle, bundle_dir);

    let mut n = 0;
    let mut work_dir = || {
        n += 1;
        let work = dir.path().join(format!("exec-{n}"));
        std::fs::create_dir(&work).unwrap();
        work
    };
    let opts = |work_dir, timeout| ExecOptions {
        timeout,
        max_output: 16 * MIB,
        work_dir,
    };

    let out = runtime
        .exec(&id, &process(&["echo", "hi"]), &opts(work_dir(), None))
        .await
        .unwrap();
    assert_eq!((out.exit_code, out.stdout.as_slice()), (0, &b"hi\n"[..]));
    assert!(!out.timed_out && !out.stdout_truncated);

    let out = runtime
        .exec(
            &id,
            &process(&["sh", "-c", "echo oops >&2; exit 3"]),
            &opts(work_dir(), None),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 3);
    assert_eq!(out.stderr, b"oops\n");

    let err = runtime
        .exec(
            &id,
            &process(&["/bin/no-such-binary"]),
            &opts(work_dir(), None),
        )
        .await
        .unwrap_err();
    match &err {
        RuntimeError::Failed {
            verb: "exec",
            message,
            ..
        } => {
            assert!(message.contains("no-such-binary"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    eprintln!("{name}: missing binary: {err}");

    let started = Instant::now();
    let (sleep, sleep_opts) = (
        process(&["sleep", "100"]),
        opts(work_dir(), Some(Duration::from_secs(1))),
    );
    let exec = runtime.exec(&id, &sleep, &sleep_opts);
    let probe = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        sleep_100_running(&id)
    };
    let (out, seen) = tokio::join!(exec, probe);
    let out = out.unwrap();
    assert!(seen, "sleep 100 was never seen running");
    assert!(out.timed_out);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!sleep_100_running(&id), "sleep 100 survived the timeout");

    // A dropped exec future (kubelet gave up) leaves no process behind either.
    let (sleep, sleep_opts) = (process(&["sleep", "100"]), opts(work_dir(), None));
    let exec = runtime.exec(&id, &sleep, &sleep_opts);
    assert!(tokio::time::timeout(Duration::from_millis(700), exec)
        .await
        .is_err());
    let deadline = Instant::now() + Duration::from_secs(5);
    while sleep_100_running(&id) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!sleep_100_running(&id), "sleep 100 survived a dropped exec");

    let out = runtime
        .exec(
            &id,
            &process(&["sh", "-c", "yes | head -c 20000000"]),
            &opts(work_dir(), Some(Duration::from_secs(60))),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0);
    assert_eq!(out.stdout.len(), 16 * MIB);
    assert!(out.stdout_truncated && !out.stderr_truncated);

    let limit: i64 = 64 * MIB as i64;
    let resources = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(limit).build().unwrap())
        .build()
        .unwrap();
    runtime.update(&id, &resources).await.unwrap();
    let cgroup = format!("/sys/fs/cgroup/memory/crust-test/{id}/memory.limit_in_bytes");
    if Path::new("/sys/fs/cgroup/memory").exists() {
        let read = std::fs::read_to_string(&cgroup).unwrap();
        assert_eq!(read.trim(), limit.to_string());
    } else {
        eprintln!("note: no cgroup v1 memory hierarchy, not reading back the limit");
    }

    runtime.kill(&id, 9, false).await.unwrap();
    assert_eq!(
        wait_for(&runtime, &id, Status::Stopped).await.status,
        Status::Stopped
    );
    runtime.delete(&id, false).await.unwrap();
    runtime.delete(&id, false).await.unwrap();
    runtime.delete(&id, true).await.unwrap();
    let err = runtime.state(&id).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(runtime
        .kill(&id, 9, false)
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn runc_lifecycle() {
    lifecycle("runc").await;
}

#[tokio::test]
async fn crun_lifecycle() {
    lifecycle("crun").await;
}
