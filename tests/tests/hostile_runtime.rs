//! Hostile input against the runtime side of crust: what a container can see of crustd and
//! its monitors (file descriptors, sockets), absurd images (configs, layers that fill the
//! disk), and who may read crustd's state and logs. Real crustd, registry, runc/crun and CNI.
//! These tests need root.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crust_testenv::{push_raw_config_image, push_zeros_image, Registry};
use crust_tests::{both_runtimes, monitors_under, pod_config, Crustd, PodEnv};
use k8s_cri::v1::*;
use tonic::Code;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `ls -l` lines of `/proc/<x>/fd` as fd number → link target ("" when ls could not read
/// it: its own directory fd, closed by the time it reads the links).
fn parse_fd_listing(listing: &str) -> BTreeMap<u32, String> {
    listing
        .lines()
        .filter(|l| l.starts_with('l'))
        .filter_map(|l| {
            let (left, target) = l.split_once(" -> ").unwrap_or((l, ""));
            let fd = left.split_whitespace().last()?.parse().ok()?;
            Some((fd, target.trim().to_string()))
        })
        .collect()
}

/// Checks the fds of a process in the container: exactly 0, 1 and 2 (pipes, /dev/null or
/// a terminal), plus `extra` fds whose targets satisfy `extra_ok` (ls's own directory fd).
fn assert_only_stdio(
    what: &str,
    fds: &BTreeMap<u32, String>,
    host_dir: &Path,
    extra_ok: impl Fn(&str) -> bool,
) {
    let host = host_dir.display().to_string();
    for n in 0..3 {
        assert!(fds.contains_key(&n), "{what}: fd {n} missing: {fds:?}");
    }
    for (fd, target) in fds {
        assert!(
            !target.contains(&host) && !target.starts_with("socket:"),
            "{what}: fd {fd} -> {target} reaches the host: {fds:?}"
        );
        assert!(
            fds.len() <= 4,
            "{what}: more fds than stdio and the listing's: {fds:?}"
        );
        let stdio = target.starts_with("pipe:[")
            || target == "/dev/null"
            || target.starts_with("/dev/pts/")
            || target == "/dev/console";
        if *fd <= 2 {
            assert!(stdio, "{what}: fd {fd} -> {target}: {fds:?}");
        } else {
            assert!(
                extra_ok(target),
                "{what}: fd {fd} -> {target} leaked into the container: {fds:?}"
            );
        }
    }
}

/// CVE-2024-21626 (runc "Leaky Vessels"): runc leaked a host directory fd into the
/// container, and a working directory of `/proc/self/fd/<n>` put the process' cwd on the
/// host. No fd of crustd, the monitor or the runtime reaches a container's process, an
/// ExecSync, a streaming exec or a terminal exec (the monitor's path): each has 0, 1 and 2
/// only (plus ls's own listing fd), none a socket or a host path; the cwd is the working
/// directory inside the container; a `/proc/self/fd/7` working directory never runs
/// outside the container's root.
async fn no_fd_or_cwd_leaks_into_containers(handler: &'static str, index: u8) {
    let mut env = PodEnv::builder(handler, index)
        .pod(move |logs| pod_config(&format!("fds-{handler}"), "fds", logs))
        .build()
        .await;
    let host_dir = env.crustd.dir.path().to_path_buf();
    let mut config = env.config("fds", &["sleep", "1000"]);
    config.working_dir = "/tmp".into();
    let id = env.run(config).await;
    // ls's own fd of the directory it lists, gone by the time ls reads the links (busybox)
    // or naming /proc/<pid>/fd.
    let self_dir = |t: &str| t.is_empty() || (t.starts_with("/proc/") && t.ends_with("/fd"));

    // The container's own process, seen from the node (inside, its fds are not readable
    // by other processes): the pid and rootfs from ContainerStatus' verbose info.
    let status = env
        .rt
        .container_status(ContainerStatusRequest {
            container_id: id.clone(),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner();
    let info: serde_json::Value = serde_json::from_str(&status.info["info"]).unwrap();
    let pid = info["pid"].as_u64().unwrap();
    let rootfs = PathBuf::from(info["rootfs"].as_str().unwrap());
    // StartContainer returns once the runtime told its init to exec the process; until the
    // exec has happened the pid is still `runc init` (or crun's), with descriptors of its own
    // that close on exec. Read once it is `sleep`.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .starts_with(b"sleep\0")
    {
        assert!(
            Instant::now() < deadline,
            "the container never exec'd sleep"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let init: BTreeMap<u32, String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .map(|e| {
            let fd = e.file_name().to_string_lossy().parse().unwrap();
            let target = std::fs::read_link(e.path()).unwrap();
            // The container's /dev/null is the node's, under its rootfs or not.
            let target = target
                .to_string_lossy()
                .replace(&rootfs.display().to_string(), "");
            (fd, target)
        })
        .collect();
    assert_eq!(
        init.keys().copied().collect::<Vec<_>>(),
        [0, 1, 2],
        "{init:?}"
    );
    assert_only_stdio("container process", &init, &host_dir, |_| false);
    // The cwd is below the container's own root mount (which the node does not see).
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        Path::new("/tmp")
    );

    // ExecSync (runtime exec from crustd).
    let r = env.exec(&id, &["ls", "-l", "/proc/self/fd"]).await;
    assert_eq!(r.exit_code, 0, "{}", text(&r.stderr));
    assert_only_stdio(
        "ExecSync",
        &parse_fd_listing(&text(&r.stdout)),
        &host_dir,
        self_dir,
    );
    let r = env.exec(&id, &["readlink", "/proc/self/cwd"]).await;
    assert_eq!(text(&r.stdout), "/tmp\n");

    // Streaming exec without a terminal (crustd runs the runtime) and with one (the monitor
    // runs it with the pty).
    for tty in [false, true] {
        let inner = format!(
            "{} --runtime-endpoint unix://{} --timeout 60s exec {} {id} ls -l /proc/self/fd",
            crust_tests::binary("crustctl").display(),
            env.crustd.socket.display(),
            if tty { "-it" } else { "" },
        );
        // script's stdin stays open until crustctl is done: at EOF on its stdin script
        // types the terminal's EOF character, which crustctl, if it reads it only after
        // going raw, gets as a NUL and sends to the container's terminal (echoed `^@`).
        let mut child = Command::new("script")
            .args(["-qec", &inner, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script runs");
        let held_stdin = child.stdin.take();
        let out = child.wait_with_output().expect("script's output");
        drop(held_stdin);
        let listing = text(&out.stdout).replace('\r', "");
        assert!(out.status.success(), "tty {tty}: {out:?}");
        let fds = parse_fd_listing(&listing);
        assert_only_stdio(
            &format!("exec (tty {tty}), listing {listing:?}"),
            &fds,
            &host_dir,
            self_dir,
        );
        if tty {
            assert!(fds[&0].starts_with("/dev/pts/"), "{fds:?}");
        }
    }

    // runc's exploit: a working directory through a leaked fd (fd 7 was runc's host cgroup
    // directory). With no fd to go through, the runtime's chdir fails: the container never
    // runs, StartError naming the path.
    let mut config = env.config("cwd-fd", &["sleep", "1000"]);
    config.working_dir = "/proc/self/fd/7".into();
    let cid = env.create(config).await.expect("CreateContainer");
    let err = env.start(&cid).await.unwrap_err();
    assert!(err.message().contains("/proc/self/fd/7"), "{err:?}");
    let s = env.status(&cid).await;
    assert_eq!(s.state, ContainerState::ContainerExited as i32, "{s:?}");
    assert_eq!(
        (s.exit_code, s.reason.as_str()),
        (128, "StartError"),
        "{s:?}"
    );
    assert_eq!(s.started_at, 0, "{s:?}");
}

/// Socket inodes among a process' fds.
fn socket_inodes(pid: u32) -> BTreeSet<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|t| {
            let t = t.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// `/proc/net/unix` as inode → (flags, path); the path is "" for unnamed sockets.
fn unix_sockets(table: &str) -> BTreeMap<u64, (u32, String)> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
            let inode = f.get(6)?.parse().ok()?;
            Some((inode, (flags, f.get(7).copied().unwrap_or("").to_string())))
        })
        .collect()
}

/// CVE-2020-15257 (containerd-shim's abstract unix socket, reachable from any hostNetwork
/// container): every socket crustd and the monitors listen on is a filesystem path, none is
/// abstract (`@…`) in any network namespace they are in; from inside a hostNetwork
/// container, none of our sockets is listed as abstract in the node's `/proc/net/unix`, and
/// the CRI socket and the pod's monitor.sock do not exist in its mount namespace.
async fn no_abstract_sockets_reachable_from_host_network(handler: &'static str, index: u8) {
    let mut env = PodEnv::builder(handler, index).build().await;
    let mut pod = pod_config("abstract", "abstract", &env.logs);
    pod.linux
        .as_mut()
        .unwrap()
        .security_context
        .get_or_insert_with(Default::default)
        .namespace_options = Some(NamespaceOption {
        network: NamespaceMode::Node as i32,
        ..Default::default()
    });
    let pod_id = env.make_pod(pod).await;
    let id = env.run(env.config("hostnet", &["sleep", "1000"])).await;

    let crustd_pid = env.crustd.pid().unwrap();
    let monitors = monitors_under(env.crustd.dir.path());
    assert!(!monitors.is_empty(), "no monitor found");
    let mut ours = BTreeSet::new();
    let mut listening = Vec::new();
    for pid in std::iter::once(crustd_pid).chain(monitors.iter().copied()) {
        let inodes = socket_inodes(pid);
        let table =
            unix_sockets(&std::fs::read_to_string(format!("/proc/{pid}/net/unix")).unwrap());
        for inode in &inodes {
            if let Some((flags, path)) = table.get(inode) {
                assert!(
                    !path.starts_with('@'),
                    "pid {pid} holds abstract socket {path} (inode {inode})"
                );
                if flags & 0x10000 != 0 {
                    assert!(path.starts_with('/'), "pid {pid} listens on {path:?}");
                    listening.push(path.clone());
                }
            }
        }
        ours.extend(inodes);
    }
    let crust_sock = env.crustd.socket.display().to_string();
    let monitor_sock = env
        .crustd
        .runroot
        .join("pods")
        .join(&pod_id)
        .join("monitor.sock")
        .display()
        .to_string();
    // The monitor binds a temporary name in the pod's directory and renames it.
    let pod_dir = env.crustd.runroot.join("pods").join(&pod_id);
    assert!(listening.contains(&crust_sock), "{listening:?}");
    assert!(
        listening
            .iter()
            .any(|p| Path::new(p).parent() == Some(pod_dir.as_path())),
        "{listening:?}"
    );

    // Inside: the node's network namespace, so the node's unix socket table.
    let table = unix_sockets(&env.sh_out(&id, "cat /proc/net/unix").await);
    for (inode, (_, path)) in &table {
        assert!(
            !(path.starts_with('@') && ours.contains(inode)),
            "our abstract socket {path} is visible in the hostNetwork container"
        );
    }
    assert!(
        table.values().any(|(_, p)| p == &crust_sock),
        "the container does not share the node's network namespace"
    );
    for path in [&crust_sock, &monitor_sock] {
        let r = env.exec(&id, &["test", "-e", path]).await;
        assert_ne!(r.exit_code, 0, "{path} exists in the container");
    }
    let found = env
        .sh_out(
            &id,
            "find / -xdev \\( -name crust.sock -o -name monitor.sock \\) 2>/dev/null; true",
        )
        .await;
    assert_eq!(found, "", "our sockets are in the container's filesystem");
}

/// `VmHWM` (peak resident set) of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

async fn pull(crustd: &Crustd, image: &str) -> Result<String, tonic::Status> {
    crustd
        .images()
        .await
        .unwrap()
        .pull_image(PullImageRequest {
            image: Some(ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().image_ref)
}

async fn listed_images(crustd: &Crustd) -> Vec<Image> {
    crustd
        .images()
        .await
        .unwrap()
        .list_images(ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .images
}

/// Files below the layers directory that a pull left half-made.
fn layer_leftovers(crustd: &Crustd) -> Vec<String> {
    std::fs::read_dir(crustd.layers_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect()
}

/// A config JSON with no layers whose container config is `container` (raw JSON text).
fn raw_config(container: &str) -> Vec<u8> {
    format!(
        r#"{{"architecture":"amd64","os":"linux","config":{container},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
    )
    .into_bytes()
}

/// Absurd image configs (as a hostile registry would serve them): a config descriptor
/// declaring 1 GiB (refused before anything is downloaded), a real 9 MiB config (a huge
/// label) declared as such and declared as 1000 bytes (refused while reading, at the 8 MiB
/// cap), and a config of a million environment variables within the size cap (refused: no
/// container could exec with it). Each is FailedPrecondition naming the limit, nothing is
/// stored, crustd's peak RSS grows by less than 64 MiB over all of them, and a good image
/// still pulls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_image_configs_are_refused_with_bounded_memory() {
    let reg = Registry::start().await.unwrap();
    let crustd = Crustd::start_local("").await.unwrap();
    let small = raw_config(r#"{"Cmd":["sh"]}"#);
    let huge_label = raw_config(&format!(
        r#"{{"Labels":{{"big":"{}"}}}}"#,
        "x".repeat(9 << 20)
    ));
    let mut env = String::with_capacity(7 << 20);
    for i in 0..1_000_000 {
        if i > 0 {
            env.push(',');
        }
        env.push_str(&format!("\"E{}=1\"", i % 10));
    }
    let million_env = raw_config(&format!(r#"{{"Env":[{env}]}}"#));
    assert!(million_env.len() < 8 << 20, "{}", million_env.len());
    let cases: Vec<(&str, Vec<u8>, Option<u64>, &str)> = vec![
        (
            "declared-1g",
            small,
            Some(1 << 30),
            "image config of 1073741824 bytes exceeds the 8388608 byte limit",
        ),
        (
            "label-9m",
            huge_label.clone(),
            None,
            "exceeds the 8388608 byte limit",
        ),
        (
            "label-9m-lying",
            huge_label,
            Some(1000),
            "larger than the 8388608 byte limit",
        ),
        (
            "million-env",
            million_env,
            None,
            "image config sets 1000000 environment variables, more than the limit of 65536",
        ),
    ];
    let before = peak_rss(crustd.pid().unwrap());
    for (name, config, declared, want) in cases {
        let pushed = push_raw_config_image(&reg, &format!("crust/{name}:latest"), config, declared)
            .await
            .unwrap();
        let err = pull(&crustd, &pushed.reference).await.unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{name}: {err:?}");
        assert!(err.message().contains(want), "{name}: {}", err.message());
        assert!(
            err.message().contains(&format!("crust/{name}")),
            "{name}: {}",
            err.message()
        );
        let blob = crustd
            .root
            .join("images/content/sha256")
            .join(pushed.config_digest.trim_start_matches("sha256:"));
        assert!(
            !blob.exists(),
            "{name}: config stored at {}",
            blob.display()
        );
        if declared == Some(1 << 30) {
            // Refused from the descriptor alone: the config blob was never requested.
            let fetched = reg
                .logs()
                .lines()
                .any(|l| l.contains("GET") && l.contains(&pushed.config_digest));
            assert!(!fetched, "{name}: the config was downloaded");
        }
    }
    assert!(listed_images(&crustd).await.is_empty());
    assert!(layer_leftovers(&crustd).is_empty());
    let growth = peak_rss(crustd.pid().unwrap()).saturating_sub(before);
    assert!(
        growth < 64 << 20,
        "crustd's peak RSS grew by {} MiB",
        growth >> 20
    );

    let images = crust_testenv::push_standard_images(&reg, None)
        .await
        .unwrap();
    pull(&crustd, &images.busybox.reference).await.unwrap();
}

/// Bytes used on the filesystem holding `path`.
fn used_bytes(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=used", "-B1"])
        .arg(path)
        .output()
        .unwrap();
    text(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A layer that expands past the free space of crustd's root (a 64 MiB zero file, 64 KiB
/// compressed, on a 20 MiB tmpfs): PullImage fails with ResourceExhausted naming the full
/// disk, lists nothing, leaves no unpack directory and gives the space back; crustd then
/// pulls a small image fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_larger_than_the_disk_fails_cleanly() {
    let reg = Registry::start().await.unwrap();
    let images = crust_testenv::push_standard_images(&reg, None)
        .await
        .unwrap();
    let bomb = push_zeros_image(&reg, "crust/zeros:latest", 64 << 20)
        .await
        .unwrap();
    let mut mounted: Option<PathBuf> = None;
    let mut crustd = Crustd::start_with(|dir| {
        let root = dir.join("root");
        std::fs::create_dir_all(&root).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=20m,mode=0700",
                "crust-test-small",
            ])
            .arg(&root)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs on {}", root.display());
        mounted = Some(root);
        crust_tests::config_with_hosts(&dir.join("certs.d"), "")
    })
    .await
    .unwrap();
    let root = mounted.clone().unwrap();
    let baseline = used_bytes(&root);

    let err = pull(&crustd, &bomb.reference).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("No space left on device")
            && err.message().contains(&bomb.diff_ids[0]),
        "{}",
        err.message()
    );
    assert!(listed_images(&crustd).await.is_empty());
    assert!(
        layer_leftovers(&crustd).is_empty(),
        "{:?}",
        layer_leftovers(&crustd)
    );
    assert!(!crustd.layer_dir(&bomb.diff_ids[0]).exists());
    // The space comes back (GC of a failed pull runs soon after it).
    let deadline = Instant::now() + Duration::from_secs(10);
    while used_bytes(&root) > baseline + (2 << 20) {
        assert!(
            Instant::now() < deadline,
            "{} bytes still used",
            used_bytes(&root)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    pull(&crustd, &images.busybox.reference).await.unwrap();
    let listed = listed_images(&crustd).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, images.busybox.config_digest);

    crustd.terminate().unwrap();
    let ok = Command::new("umount")
        .arg(&root)
        .status()
        .unwrap()
        .success();
    assert!(ok, "unmounting {}", root.display());
}

/// Every path below `dir` on its own filesystem (no mount point entered), not below a
/// directory named in `skip`, with its mode.
fn walk_modes(dir: &Path, skip: &[&str]) -> Vec<(PathBuf, u32, bool)> {
    let dev = std::fs::metadata(dir).unwrap().dev();
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
            let path = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            out.push((
                path.clone(),
                meta.permissions().mode() & 0o7777,
                meta.is_dir(),
            ));
            if meta.is_dir() && meta.dev() == dev && !skip.contains(&name.as_str()) {
                stack.push(path);
            }
        }
    }
    out
}

/// Item 8, permissions. The CRI socket is 0660 (daemon.rs `socket_mode_…` checks that too)
/// and root's; crustd's root and runroot are private (0700, root's: no other user may list
/// or open anything crustd keeps there: the store, container specs with their environment,
/// exit files, CNI results); below them, state files (the store, every `*.json`) and the
/// monitor's socket give "other" no access at all. The pod files bind-mounted into
/// containers (hostname, hosts, resolv.conf) and image content are left as they are. The
/// streaming URLs of Exec, Attach and PortForward (one-time tokens: whoever holds one runs a
/// command in the container) never appear in crustd's log, even at trace level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_is_private_and_tokens_are_not_logged() {
    // Declared first: dropped last, after the env's pod is removed through it.
    let traced: TracedCrustd;
    let mut env = PodEnv::builder("runc", 78)
        .pod(|logs| pod_config("private", "private", logs))
        .build()
        .await;
    // Again at the most verbose level.
    env.crustd.terminate().unwrap();
    traced = TracedCrustd::spawn(&env.crustd).await;
    env.rt = env.crustd.runtime().await.unwrap();
    let log_path = traced.log.clone();

    let id = env.run(env.config("private", &["sleep", "1000"])).await;
    let r = env.exec(&id, &["true"]).await;
    assert_eq!(r.exit_code, 0);
    // One that exited too (its exit file).
    let (done, _) = env.run_to_end(env.config("done", &["true"])).await;
    assert_eq!(done.exit_code, 0);

    let socket = std::fs::metadata(&env.crustd.socket).unwrap();
    assert_eq!(socket.permissions().mode() & 0o777, 0o660);
    assert_eq!((socket.uid(), socket.gid()), (0, 0));
    for dir in [&env.crustd.root, &env.crustd.runroot] {
        let meta = std::fs::metadata(dir).unwrap();
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o700,
            "{} is not private",
            dir.display()
        );
        assert_eq!(meta.uid(), 0);
    }
    let skip = [
        "layers",
        "upper",
        "work",
        "rootfs",
        "image-mounts",
        "shm",
        "ns",
    ];
    let mounted_into_containers = ["hostname", "hosts", "resolv.conf"];
    let mut checked = 0;
    let mut open = Vec::new();
    for dir in [&env.crustd.root, &env.crustd.runroot] {
        for (path, mode, is_dir) in walk_modes(dir, &skip) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if is_dir || mounted_into_containers.contains(&name.as_str()) {
                continue;
            }
            let state = name.ends_with(".json") || name == "crust.db" || name.ends_with(".sock");
            if state {
                checked += 1;
                if mode & 0o007 != 0 {
                    open.push(format!("{} {mode:o}", path.display()));
                }
            }
        }
    }
    assert!(open.is_empty(), "state files others may read: {open:#?}");
    assert!(checked >= 3, "found only {checked} state files");
    let monitor_sock = env
        .crustd
        .runroot
        .join("pods")
        .join(&env.pod)
        .join("monitor.sock");
    let mode = std::fs::metadata(&monitor_sock)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode & 0o007, 0, "monitor.sock is mode {mode:o}");

    // Tokens: the URLs of each kind, used (badly) once each, then a real exec.
    let mut tokens = Vec::new();
    let url = env
        .rt
        .exec(ExecRequest {
            container_id: id.clone(),
            cmd: vec!["true".into()],
            stdout: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    tokens.push(url);
    let url = env
        .rt
        .attach(AttachRequest {
            container_id: id.clone(),
            stdout: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    tokens.push(url);
    let url = env
        .rt
        .port_forward(PortForwardRequest {
            pod_sandbox_id: env.pod.clone(),
            port: vec![80],
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    tokens.push(url);
    let http = reqwest::Client::new();
    for url in &tokens {
        let _ = http.get(url).send().await;
    }
    let out = env
        .crustd
        .crustctl(&["exec", &id, "sh", "-c", "echo through-the-stream"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "through-the-stream\n");

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "the log is not verbose"
    );
    for url in &tokens {
        let token = url.rsplit('/').next().unwrap();
        assert!(token.len() >= 16, "{url}");
        assert!(!log.contains(token), "token of {url} is in crustd's log");
    }
    for kind in ["/exec/", "/attach/", "/portforward/"] {
        assert!(
            !log.contains(kind),
            "a streaming URL ({kind}) is in crustd's log"
        );
    }

    // The env's drop removes the pod through the traced crustd; it stops after that.
    drop(env);
    drop(traced);
}

/// crustd started again on an instance's socket and directories, logging at trace level to
/// a file of its own; dropping it stops it.
struct TracedCrustd {
    child: std::process::Child,
    log: PathBuf,
}

impl TracedCrustd {
    async fn spawn(crustd: &Crustd) -> TracedCrustd {
        let log = crustd.dir.path().join("crustd-trace.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(crust_tests::binary("crustd"))
            .arg("--listen")
            .arg(&crustd.socket)
            .arg("--root")
            .arg(&crustd.root)
            .arg("--runroot")
            .arg(&crustd.runroot)
            .arg("--config")
            .arg(&crustd.config)
            .arg("--log-level")
            .arg("trace")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut c) = crustd.runtime().await {
                if c.version(VersionRequest::default()).await.is_ok() {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "traced crustd did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        TracedCrustd { child, log }
    }
}

impl Drop for TracedCrustd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

both_runtimes! {
    no_fd_or_cwd_leaks_into_containers(68);
    no_abstract_sockets_reachable_from_host_network(69);
}
