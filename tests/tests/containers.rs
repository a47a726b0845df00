//! Containers on a real crustd: images from a real registry, real runc and crun, real pods
//! (namespaces held by crust-monitor, a CNI bridge of the test's own). Every test observes the
//! effect from inside the container. Each test runs once per OCI runtime (`_runc`, `_crun`).
//! These tests need root.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crust_tests::{both_runtimes, kv, mounts_under, pod_config, PodEnv};
use k8s_cri::v1::*;
use tonic::Code;

/// Bridge indexes: each test its own (10.88.<index>.0/24), away from pods.rs' 11..40.
async fn env(handler: &'static str, index: u8) -> PodEnv {
    env_with(handler, index, false).await
}

/// With `privileged`, the pod allows privileged containers.
async fn env_with(handler: &'static str, index: u8, privileged: bool) -> PodEnv {
    PodEnv::builder(handler, index)
        .pull_nonroot()
        .pod(move |logs| {
            let mut c = pod_config(&format!("ctr-{handler}-{index}"), "ctr", logs);
            c.linux.as_mut().unwrap().security_context = Some(LinuxSandboxSecurityContext {
                privileged,
                ..Default::default()
            });
            c
        })
        .build()
        .await
}

/// The messages of a CRI log: (stream, tag, message) per record.
fn records(log: &str) -> Vec<(String, String, String)> {
    log.lines()
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let ts = parts.next().unwrap();
            assert!(
                ts.contains('T') && ts.ends_with('Z'),
                "timestamp {ts:?} in {l:?}"
            );
            (
                parts.next().unwrap().to_string(),
                parts.next().unwrap().to_string(),
                parts.next().unwrap_or("").to_string(),
            )
        })
        .collect()
}

const SLEEPER: &[&str] = &["sleep", "1000"];

both_runtimes! {
    logs_exit_codes_and_reasons(41);
    user_and_groups(42);
    capabilities_and_privileged(43);
    seccomp_profiles(44);
    readonly_rootfs_and_mounts(45);
    memory_limit_oom_kills(46);
    stop_signal_and_timeout(47);
    exec_sync(48);
    update_resources(49);
    reopen_log(50);
    bad_requests(51);
    process_and_environment(52);
    mount_propagation(53);
    pid_namespaces_and_cpu(54);
    crustd_restart_keeps_containers(55);
    checkpoint_and_restore(77);
}

async fn logs_exit_codes_and_reasons(handler: &'static str, index: u8) {
    let mut e = env(handler, index).await;
    let (s, log) = e
        .run_to_end(e.config("out", &["sh", "-c", "echo hello; echo oops >&2; exit 3"]))
        .await;
    assert_eq!((s.exit_code, s.reason.as_str()), (3, "Error"), "{s:?}");
    assert!(s.finished_at >= s.started_at && s.started_at >= s.created_at);
    let r = records(&log);
    assert!(
        r.contains(&("stdout".into(), "F".into(), "hello".into())),
        "{log}"
    );
    assert!(
        r.contains(&("stderr".into(), "F".into(), "oops".into())),
        "{log}"
    );

    // A 40 KiB line: two 16 KiB partial records and the rest as a full one; the line written
    // just before exit is there too.
    let (s, log) = e
        .run_to_end(e.config(
            "long",
            &[
                "sh",
                "-c",
                "head -c 40960 /dev/zero | tr '\\0' x; echo; echo last",
            ],
        ))
        .await;
    assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"));
    let r = records(&log);
    let tags: Vec<(&str, usize)> = r.iter().map(|(_, t, m)| (t.as_str(), m.len())).collect();
    assert_eq!(
        tags,
        vec![("P", 16384), ("P", 16384), ("F", 8192), ("F", 4)],
        "{tags:?}"
    );
    assert_eq!(r[3].2, "last");

    // A tty container's output is logged as stdout.
    let mut tty = e.config("tty", &["sh", "-c", "echo on-a-tty; tty"]);
    tty.tty = true;
    let (s, log) = e.run_to_end(tty).await;
    assert_eq!(s.exit_code, 0, "{log}");
    assert!(log.contains("stdout F on-a-tty"), "{log}");
    assert!(log.contains("/dev/pts/"), "{log}");

    // A missing executable: StartContainer fails with the runtime's message, the container is
    // exited with StartError.
    let id = e
        .create(e.config("missing", &["/no/such/binary"]))
        .await
        .unwrap();
    let err = e.start(&id).await.unwrap_err();
    assert!(err.message().contains("no/such/binary"), "{err:?}");
    let s = e.status(&id).await;
    assert_eq!(s.state, ContainerState::ContainerExited as i32);
    assert_eq!(
        (s.exit_code, s.reason.as_str()),
        (128, "StartError"),
        "{s:?}"
    );
    assert!(s.message.contains("no/such/binary"), "{s:?}");

    // Lists and filters.
    let all =
        e.rt.list_containers(ListContainersRequest {
            filter: Some(ContainerFilter {
                pod_sandbox_id: e.pod.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(|c| c.image_ref.contains("sha256:")));
    // Removing keeps the log (kubelet's) and leaves no mount.
    for c in &all {
        e.rt.remove_container(RemoveContainerRequest {
            container_id: c.id.clone(),
        })
        .await
        .unwrap();
    }
    assert!(e.logs.join("out/0.log").exists());
    let left: Vec<String> = mounts_under(&e.crustd.runroot.join("containers"));
    assert!(left.is_empty(), "{left:?}");
    assert!(std::fs::read_dir(e.crustd.root.join("containers"))
        .unwrap()
        .next()
        .is_none());
}

async fn user_and_groups(handler: &'static str, index: u8) {
    let mut e = env(handler, index).await;
    let mut c = e.config("ids", SLEEPER);
    let sc = PodEnv::security(&mut c);
    sc.run_as_user = Some(Int64Value { value: 1000 });
    sc.run_as_group = Some(Int64Value { value: 2000 });
    sc.supplemental_groups = vec![3000];
    let id = e.run(c).await;
    assert_eq!(
        e.sh_out(&id, "id -u; id -g; id -G").await,
        "1000\n2000\n2000 3000\n"
    );
    let user = e.status(&id).await.user.unwrap().linux.unwrap();
    assert_eq!((user.uid, user.gid), (1000, 2000));
    assert_eq!(user.supplemental_groups, vec![2000, 3000]);

    // A name from the image's /etc/passwd, and the groups /etc/group gives it (Merge).
    let mut c = e.config("named", SLEEPER);
    c.image.as_mut().unwrap().image = e.images.nonroot.reference.clone();
    PodEnv::security(&mut c).run_as_username = "crustuser".into();
    let id = e.run(c).await;
    assert_eq!(e.sh_out(&id, "id -u; id -g").await, "1234\n1234\n");
    let groups = e.sh_out(&id, "id -G").await;
    assert!(groups.split_whitespace().any(|g| g == "50"), "{groups}");

    // Strict: only the request's groups, none from the image.
    let mut c = e.config("strict", SLEEPER);
    c.image.as_mut().unwrap().image = e.images.nonroot.reference.clone();
    let sc = PodEnv::security(&mut c);
    sc.run_as_username = "crustuser".into();
    sc.supplemental_groups = vec![4000];
    sc.supplemental_groups_policy = SupplementalGroupsPolicy::Strict as i32;
    let id = e.run(c).await;
    assert_eq!(e.sh_out(&id, "id -G").await, "1234 4000\n");

    // The image's own USER.
    let mut c = e.config("imageuser", SLEEPER);
    c.image.as_mut().unwrap().image = e.images.nonroot.reference.clone();
    let id = e.run(c).await;
    assert_eq!(e.sh_out(&id, "id -u").await, "1234\n");

    // A name the image does not know is refused.
    let mut c = e.config("ghost", SLEEPER);
    PodEnv::security(&mut c).run_as_username = "ghost".into();
    let err = e.create(c).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("ghost"), "{err:?}");
}

/// CapEff of the process as hex.
fn cap_eff(status: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .expect("CapEff line");
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

async fn capabilities_and_privileged(handler: &'static str, index: u8) {
    let mut e = env_with(handler, index, true).await;
    const CAP_CHOWN: u64 = 1 << 0;
    const CAP_NET_ADMIN: u64 = 1 << 12;
    const CAP_SYS_ADMIN: u64 = 1 << 21;
    let id = e.run(e.config("default", SLEEPER)).await;
    let eff = cap_eff(&e.sh_out(&id, "cat /proc/self/status").await);
    assert!(eff & CAP_CHOWN != 0 && eff & CAP_SYS_ADMIN == 0, "{eff:x}");
    // The default set allows chown.
    e.sh_out(&id, "touch /tmp/f && chown 5 /tmp/f").await;

    let mut c = e.config("dropped", SLEEPER);
    PodEnv::security(&mut c).capabilities = Some(Capability {
        drop_capabilities: vec!["CHOWN".into()],
        add_capabilities: vec!["NET_ADMIN".into()],
        ..Default::default()
    });
    let id = e.run(c).await;
    let eff = cap_eff(&e.sh_out(&id, "cat /proc/self/status").await);
    assert!(eff & CAP_CHOWN == 0 && eff & CAP_NET_ADMIN != 0, "{eff:x}");
    let r = e
        .exec(&id, &["sh", "-c", "touch /tmp/f && chown 5 /tmp/f"])
        .await;
    assert_ne!(r.exit_code, 0, "chown without CAP_CHOWN must fail");

    let mut c = e.config("dropall", SLEEPER);
    PodEnv::security(&mut c).capabilities = Some(Capability {
        drop_capabilities: vec!["ALL".into()],
        ..Default::default()
    });
    let id = e.run(c).await;
    assert_eq!(cap_eff(&e.sh_out(&id, "cat /proc/self/status").await), 0);

    let mut c = e.config("unknowncap", SLEEPER);
    PodEnv::security(&mut c).capabilities = Some(Capability {
        add_capabilities: vec!["NOT_A_CAP".into()],
        ..Default::default()
    });
    let err = e.create(c).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // Privileged: every capability crustd holds, /sys writable, nothing masked.
    let mut c = e.config("privileged", SLEEPER);
    PodEnv::security(&mut c).privileged = true;
    let id = e.run(c).await;
    let eff = cap_eff(&e.sh_out(&id, "cat /proc/self/status").await);
    assert!(eff & CAP_SYS_ADMIN != 0, "{eff:x}");
    let mounts = e.sh_out(&id, "cat /proc/mounts").await;
    let sys = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some("/sys"))
        .unwrap();
    // The spec asks for a writable /sys; crun gives it. runc 1.1.5 mounts it read-only in a
    // pod whose network namespace was joined by path (see docs/ARCHITECTURE.md).
    if e.handler == "crun" {
        assert!(sys.split(' ').nth(3).unwrap().starts_with("rw"), "{sys}");
    }
    assert!(
        !mounts.contains(" /proc/keys "),
        "privileged: nothing masked: {mounts}"
    );
    // Unprivileged: /sys read-only, /proc/keys masked.
    let id = e.run(e.config("plain", SLEEPER)).await;
    let mounts = e.sh_out(&id, "cat /proc/mounts").await;
    let sys = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some("/sys"))
        .unwrap();
    assert!(sys.split(' ').nth(3).unwrap().starts_with("ro"), "{sys}");
    assert!(mounts.contains(" /proc/keys "), "{mounts}");
}

fn seccomp_mode(status: &str) -> String {
    status
        .lines()
        .find(|l| l.starts_with("Seccomp:"))
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .unwrap()
}

async fn seccomp_profiles(handler: &'static str, index: u8) {
    let mut e = env(handler, index).await;
    let profile = |t: security_profile::ProfileType, r: &str| {
        Some(SecurityProfile {
            profile_type: t as i32,
            localhost_ref: r.into(),
        })
    };
    let mut c = e.config("default", SLEEPER);
    PodEnv::security(&mut c).seccomp = profile(security_profile::ProfileType::RuntimeDefault, "");
    let id = e.run(c).await;
    assert_eq!(
        seccomp_mode(&e.sh_out(&id, "cat /proc/self/status").await),
        "2"
    );
    // x32 is covered only where the kernel serves x32 syscalls (asked as crustd asks).
    let bundle = e.crustd.runroot.join("containers").join(&id);
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    let arches = &spec["linux"]["seccomp"]["architectures"];
    if cfg!(target_arch = "x86_64") {
        let x32 = crust_sys::x32_syscalls() != Some(false);
        assert_eq!(
            arches
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "SCMP_ARCH_X32"),
            x32,
            "{arches}"
        );
    }
    // The default profile refuses what a root container with default capabilities may
    // otherwise do: unshare of a user namespace is blocked by seccomp (EPERM).
    let r = e.exec(&id, &["unshare", "-U", "true"]).await;
    assert_ne!(
        r.exit_code, 0,
        "unshare -U must be refused by RuntimeDefault"
    );

    let mut c = e.config("unconfined", SLEEPER);
    PodEnv::security(&mut c).seccomp = profile(security_profile::ProfileType::Unconfined, "");
    let id = e.run(c).await;
    assert_eq!(
        seccomp_mode(&e.sh_out(&id, "cat /proc/self/status").await),
        "0"
    );

    // A localhost profile that refuses mkdir.
    let path = e.logs.parent().unwrap().join("no-mkdir.json");
    std::fs::write(
        &path,
        serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
        })
        .to_string(),
    )
    .unwrap();
    let mut c = e.config("localhost", SLEEPER);
    PodEnv::security(&mut c).seccomp = profile(
        security_profile::ProfileType::Localhost,
        &path.display().to_string(),
    );
    let id = e.run(c).await;
    let r = e.exec(&id, &["mkdir", "/tmp/blocked"]).await;
    assert_ne!(r.exit_code, 0);
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("not permitted"),
        "{:?}",
        String::from_utf8_lossy(&r.stderr)
    );
    e.sh_out(&id, "touch /tmp/allowed").await;
}

async fn readonly_rootfs_and_mounts(handler: &'static str, index: u8) {
    let mut e = env(handler, index).await;
    let host_dir = e.logs.parent().unwrap().join("vol");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("from-host"), "hi\n").unwrap();
    let mut c = e.config("ro", SLEEPER);
    PodEnv::security(&mut c).readonly_rootfs = true;
    c.mounts = vec![
        Mount {
            container_path: "/data".into(),
            host_path: host_dir.display().to_string(),
            ..Default::default()
        },
        Mount {
            container_path: "/rodata".into(),
            host_path: host_dir.display().to_string(),
            readonly: true,
            ..Default::default()
        },
    ];
    c.devices = vec![Device {
        container_path: "/dev/mynull".into(),
        host_path: "/dev/null".into(),
        permissions: "rw".into(),
    }];
    let id = e.run(c).await;
    let r = e.exec(&id, &["touch", "/rootfs-write"]).await;
    assert_ne!(r.exit_code, 0, "a read-only rootfs refuses writes");
    assert_eq!(e.sh_out(&id, "cat /data/from-host").await, "hi\n");
    e.sh_out(&id, "echo back > /data/from-container").await;
    assert_eq!(
        std::fs::read_to_string(host_dir.join("from-container")).unwrap(),
        "back\n"
    );
    let r = e.exec(&id, &["touch", "/rodata/x"]).await;
    assert_ne!(r.exit_code, 0, "a read-only bind refuses writes");
    e.sh_out(&id, "echo x > /dev/mynull").await;
    // An image volume: another image's rootfs, read-only.
    let mut c = e.config("imgvol", SLEEPER);
    c.mounts = vec![Mount {
        container_path: "/imgvol".into(),
        image: Some(ImageSpec {
            image: e.images.nonroot.reference.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }];
    let vol = e.run(c).await;
    assert_eq!(
        e.sh_out(&vol, "cat /imgvol/home/crustuser/hello.txt").await,
        "hello\n"
    );
    assert_ne!(e.exec(&vol, &["touch", "/imgvol/x"]).await.exit_code, 0);
    // The pod's files are there.
    assert_eq!(e.sh_out(&id, "cat /etc/hostname").await, "ctr\n");
    assert!(e
        .sh_out(&id, "cat /proc/mounts")
        .await
        .contains(" /dev/shm "));

    // The writable layer is private: a write in one container is not seen by another.
    let a = e.run(e.config("a", SLEEPER)).await;
    let b = e.run(e.config("b", SLEEPER)).await;
    e.sh_out(&a, "echo mine > /etc/only-a").await;
    // The writable layers are what ImageFsInfo counts as container filesystems.
    let used = |e: &PodEnv| {
        let mut img = e.images_client.clone();
        async move {
            img.image_fs_info(ImageFsInfoRequest {})
                .await
                .unwrap()
                .into_inner()
                .container_filesystems[0]
                .used_bytes
                .unwrap()
                .value
        }
    };
    let before = used(&e).await;
    e.sh_out(&a, "head -c 5000000 /dev/urandom > /big").await;
    let after = used(&e).await;
    assert!(after >= before + 5_000_000, "{before} -> {after}");
    assert_ne!(e.exec(&b, &["cat", "/etc/only-a"]).await.exit_code, 0);
    // Image layers as built: the whiteout hid the removed file.
    assert_ne!(e.exec(&a, &["cat", "/etc/removed-file"]).await.exit_code, 0);

    // Bad mounts are InvalidArgument and leave nothing.
    for path in ["relative/path", "/a/../b"] {
        let mut c = e.config("badmount", SLEEPER);
        c.mounts = vec![Mount {
            container_path: path.into(),
            host_path: host_dir.display().to_string(),
            ..Default::default()
        }];
        let err = e.create(c).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{path}: {err:?}");
    }
    let mut c = e.config("escape", SLEEPER);
    c.log_path = "../../escape.log".into();
    let err = e.create(c).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
}

async fn memory_limit_oom_kills(handler: &'static str, index: u8) {
    let mut e = env(handler, index).await;
    let mut c = e.config(
        "hog",
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"],
    );
    c.linux.as_mut().unwrap().resources = Some(LinuxContainerResources {
        memory_limit_in_bytes: 32 << 20,
        ..Default::default()
    });
    let id = e.run(c).await;
    let s = e.wait_exited(&id).await;
    let log = std::fs::read_to_string(&s.log_path).unwrap_or_default();
    assert_eq!(s.reason, "OOMKilled", "{s:?} {log}");
    assert_eq!(s.exit_code, 137, "{s:?} {log}");
}

async fn stop_signal_and_timeout(handler: &'static str, index: u8) {
    let mut e = env(handler, index).await;
    // A process that ignores SIGTERM: SIGKILL after 2 s.
    let id = e
        .run(e.config(
            "stubborn",
            &["sh", "-c", "trap '' TERM; touch /tmp/ready; sleep 1000"],
        ))
        .await;
    e.wait_for_file(&id, "/tmp/ready").await;
    let t = Instant::now();
    e.rt.stop_container(StopContainerRequest {
        container_id: id.clone(),
        timeout: 2,
    })
    .await
    .unwrap();
    let took = t.elapsed();
    assert!(took >= Duration::from_secs(2), "{took:?}");
    let s = e.status(&id).await;
    assert_eq!(s.state, ContainerState::ContainerExited as i32);
    assert_eq!(s.exit_code, 137);

    // A container that handles SIGTERM exits by itself.
    let id = e
        .run(e.config(
            "polite",
            &[
                "sh",
                "-c",
                "trap 'exit 0' TERM; touch /tmp/ready; while true; do sleep 0.1; done",
            ],
        ))
        .await;
    e.wait_for_file(&id, "/tmp/ready").await;
    e.rt.stop_container(StopContainerRequest {
        container_id: id.clone(),
        timeout: 30,
    })
    .await
    .unwrap();
    let s = e.status(&id).await;
    assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"), "{s:?}");
    // Idempotent, and unknown IDs succeed.
    for id in [id.as_str(), "no-such-container"] {
        e.rt.stop_container(StopContainerRequest {
            container_id: id.into(),
            timeout: 0,
        })
        .await
        .unwrap();
        e.rt.remove_container(RemoveContainerRequest {
            container_id: id.into(),
        })
        .await
        .unwrap();
    }
    let err = status_err(&mut e, "no-such-container").await;
    assert_eq!(err.code(), Code::NotFound);
    // StopPodSandbox stops what still runs.
    let id = e.run(e.config("left", SLEEPER)).await;
    e.rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: e.pod.clone(),
    })
    .await
    .unwrap();
    assert_eq!(
        e.status(&id).await.state,
        ContainerState::ContainerExited as i32
    );
}

/// A file of the container's own cgroup for `controller` (this node's controllers are on
/// cgroup v1), trimmed; its path comes from the verbose ContainerStatus.
async fn cgroup_file(e: &mut PodEnv, id: &str, controller: &str, file: &str) -> String {
    let info =
        e.rt.container_status(ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner()
        .info;
    let info: serde_json::Value = serde_json::from_str(&info["info"]).unwrap();
    let cgroup = info["cgroupsPath"]
        .as_str()
        .unwrap()
        .trim_start_matches('/');
    let path = Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(cgroup)
        .join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

async fn status_err(e: &mut PodEnv, id: &str) -> tonic::Status {
    e.rt.container_status(ContainerStatusRequest {
        container_id: id.into(),
        verbose: false,
    })
    .await
    .unwrap_err()
}

async fn exec_sync(handler: &'static str, index: u8) {
    let mut e = env(handler, index).await;
    let mut c = e.config("exec", SLEEPER);
    c.envs = vec![KeyValue {
        key: "GREETING".into(),
        value: "hi".into(),
    }];
    let id = e.run(c).await;
    let r = e
        .exec(&id, &["sh", "-c", "echo $GREETING; echo err >&2; exit 3"])
        .await;
    assert_eq!(r.exit_code, 3);
    assert_eq!(r.stdout, b"hi\n");
    assert_eq!(r.stderr, b"err\n");
    // Timeout: DeadlineExceeded, and the command is gone.
    let t = Instant::now();
    let err =
        e.rt.exec_sync(ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["sleep".into(), "77".into()],
            timeout: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(10));
    let ps = e.sh_out(&id, "ps").await;
    assert!(!ps.contains("sleep 77"), "{ps}");
    // Output capped at 16 MiB.
    let r = e
        .exec(&id, &["sh", "-c", "head -c 20000000 /dev/zero"])
        .await;
    assert_eq!(r.stdout.len(), 16 << 20);
    // Not running: FailedPrecondition; unknown: NotFound.
    let done = e.run(e.config("done", &["true"])).await;
    e.wait_exited(&done).await;
    let err =
        e.rt.exec_sync(ExecSyncRequest {
            container_id: done,
            cmd: vec!["true".into()],
            timeout: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err =
        e.rt.exec_sync(ExecSyncRequest {
            container_id: "nope".into(),
            cmd: vec!["true".into()],
            timeout: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

async fn update_resources(handler: &'static str, index: u8) {
    let mut e = env(handler, index).await;
    let id = e.run(e.config("upd", SLEEPER)).await;
    let resources = LinuxContainerResources {
        memory_limit_in_bytes: 64 << 20,
        cpu_quota: 50000,
        cpu_period: 100000,
        ..Default::default()
    };
    e.rt.update_container_resources(UpdateContainerResourcesRequest {
        container_id: id.clone(),
        linux: Some(resources.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    let s = e.status(&id).await;
    let linux = s.resources.unwrap().linux.unwrap();
    assert_eq!(linux.memory_limit_in_bytes, 64 << 20);
    assert_eq!(linux.cpu_quota, 50000);
    // The container's own cgroup has the limit (seen from the node).
    assert_eq!(
        cgroup_file(&mut e, &id, "memory", "memory.limit_in_bytes").await,
        (64u64 << 20).to_string()
    );
    // Invalid values: InvalidArgument, nothing changed.
    let err =
        e.rt.update_container_resources(UpdateContainerResourcesRequest {
            container_id: id.clone(),
            linux: Some(LinuxContainerResources {
                memory_limit_in_bytes: -5,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let s = e.status(&id).await;
    assert_eq!(
        s.resources.unwrap().linux.unwrap().memory_limit_in_bytes,
        64 << 20
    );
}

async fn reopen_log(handler: &'static str, index: u8) {
    let mut e = env(handler, index).await;
    let id = e
        .run(e.config(
            "rotate",
            &[
                "sh",
                "-c",
                "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.05; done",
            ],
        ))
        .await;
    let log = e.status(&id).await.log_path;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rotated = format!("{log}.1");
    std::fs::rename(&log, &rotated).unwrap();
    e.rt.reopen_container_log(ReopenContainerLogRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    e.rt.stop_container(StopContainerRequest {
        container_id: id.clone(),
        timeout: 0,
    })
    .await
    .unwrap();
    // Every line is in one file or the other, in order, none lost.
    let mut all = String::new();
    for f in [&rotated, &log] {
        all.push_str(&std::fs::read_to_string(f).unwrap());
    }
    let numbers: Vec<u64> = records(&all)
        .iter()
        .map(|(_, _, m)| m.trim_start_matches("line").parse().unwrap())
        .collect();
    assert!(numbers.len() > 10, "{numbers:?}");
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
    assert!(!std::fs::read_to_string(&log).unwrap().is_empty());
    // A container that is not running: an error.
    let err =
        e.rt.reopen_container_log(ReopenContainerLogRequest { container_id: id })
            .await
            .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
}

async fn bad_requests(handler: &'static str, index: u8) {
    let mut e = env(handler, index).await;
    let mut c = e.config("noimage", SLEEPER);
    c.image.as_mut().unwrap().image = "127.0.0.1:1/not/there:latest".into();
    let err = e.create(c).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains("not/there"), "{err:?}");
    // The name is reserved per pod and attempt.
    e.create(e.config("twice", SLEEPER)).await.unwrap();
    let err = e.create(e.config("twice", SLEEPER)).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    let mut next = e.config("twice", SLEEPER);
    next.metadata.as_mut().unwrap().attempt = 1;
    e.create(next).await.unwrap();
    // An unknown pod: NotFound.
    let err =
        e.rt.create_container(CreateContainerRequest {
            pod_sandbox_id: "nopod".into(),
            config: Some(e.config("x", SLEEPER)),
            sandbox_config: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // Starting twice: FailedPrecondition.
    let id = e.run(e.config("started", SLEEPER)).await;
    assert_eq!(
        e.start(&id).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    assert_eq!(e.handler, handler);
}

async fn process_and_environment(handler: &'static str, index: u8) {
    let mut e = env(handler, index).await;
    // An image with an entrypoint, a cmd, env, a working dir and a stop signal.
    let image = crust_testenv::push_configured_image(
        &e.reg,
        "crust/configured:latest",
        serde_json::json!({
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["echo from-image-cmd $A $(pwd)"],
            "Env": ["PATH=/bin", "A=image"],
            "WorkingDir": "/tmp",
            "StopSignal": "SIGUSR1",
        }),
    )
    .await
    .unwrap();
    let mut img = e.crustd.images().await.unwrap();
    img.pull_image(PullImageRequest {
        image: Some(ImageSpec {
            image: image.reference.clone(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let configured = |e: &PodEnv, name: &str| {
        let mut c = e.config(name, &[]);
        c.image.as_mut().unwrap().image = image.reference.clone();
        c
    };
    // Neither command nor args: entrypoint + cmd, the image's env and working dir.
    let (s, log) = e.run_to_end(configured(&e, "imagecmd")).await;
    assert_eq!(s.exit_code, 0, "{log}");
    assert!(log.contains("stdout F from-image-cmd image /tmp"), "{log}");
    // args alone replace cmd, not the entrypoint; the request's env overrides the image's.
    let mut c = configured(&e, "args");
    c.args = vec!["echo args $A".into()];
    c.envs = vec![KeyValue {
        key: "A".into(),
        value: "request".into(),
    }];
    let (_, log) = e.run_to_end(c).await;
    assert!(log.contains("stdout F args request"), "{log}");
    // command replaces the entrypoint and the cmd.
    let mut c = configured(&e, "command");
    c.command = vec!["echo".into()];
    c.args = vec!["plain".into(), "words".into()];
    let (_, log) = e.run_to_end(c).await;
    assert!(log.contains("stdout F plain words"), "{log}");
    // StopContainer sends the image's stop signal first.
    let mut c = configured(&e, "usr1");
    c.args = vec![
        "trap 'echo got-usr1; exit 0' USR1; touch /tmp/ready; while true; do sleep 0.1; done"
            .into(),
    ];
    let id = e.run(c).await;
    e.wait_for_file(&id, "/tmp/ready").await;
    e.rt.stop_container(StopContainerRequest {
        container_id: id.clone(),
        timeout: 30,
    })
    .await
    .unwrap();
    let s = e.status(&id).await;
    assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"), "{s:?}");
    let log = std::fs::read_to_string(&s.log_path).unwrap();
    assert!(log.contains("stdout F got-usr1"), "{log}");

    let mut c = e.config("env", SLEEPER);
    c.working_dir = "/made/for/you".into();
    c.envs = vec![
        KeyValue {
            key: "PATH".into(),
            value: "/bin:/usr/bin".into(),
        },
        KeyValue {
            key: "A".into(),
            value: "1".into(),
        },
    ];
    c.labels = kv(&[("app", "env")]);
    let id = e.run(c).await;
    assert_eq!(e.sh_out(&id, "pwd").await, "/made/for/you\n");
    assert_eq!(
        e.sh_out(&id, "echo $PATH $A $HOSTNAME").await,
        "/bin:/usr/bin 1 ctr\n"
    );
    let listed =
        e.rt.list_containers(ListContainersRequest {
            filter: Some(ContainerFilter {
                label_selector: kv(&[("app", "env")]),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    // The pod's status carries its containers (evented PLEG).
    let pod =
        e.rt.pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: e.pod.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(pod.containers_statuses.iter().any(|c| c.id == id));
    // Removing the image keeps the layers a container uses: it goes on working.
    let mut img = e.crustd.images().await.unwrap();
    img.remove_image(RemoveImageRequest {
        image: Some(ImageSpec {
            image: e.images.busybox.reference.clone(),
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for diff_id in &e.images.busybox.diff_ids {
        assert!(e.crustd.layer_dir(diff_id).is_dir(), "layer {diff_id} kept");
    }
    assert_eq!(e.sh_out(&id, "cat /etc/hostname").await, "ctr\n");
}

async fn mount_propagation(handler: &'static str, index: u8) {
    let mut e = env(handler, index).await;
    let base = e.logs.parent().unwrap().join("prop");
    std::fs::create_dir_all(&base).unwrap();
    let sh = |cmd: &str| {
        let ok = std::process::Command::new("sh")
            .args(["-c", cmd])
            .status()
            .unwrap()
            .success();
        assert!(ok, "{cmd}");
    };
    // A shared host mount at base.
    sh(&format!(
        "mount --bind {0} {0} && mount --make-shared {0}",
        base.display()
    ));
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .args(["-R", "-l"])
                .arg(&self.0)
                .status();
        }
    }
    let _guard = Unmount(base.clone());
    let mut c = e.config("slave", SLEEPER);
    c.mounts = vec![
        Mount {
            container_path: "/slave".into(),
            host_path: base.display().to_string(),
            propagation: MountPropagation::PropagationHostToContainer as i32,
            ..Default::default()
        },
        Mount {
            container_path: "/private".into(),
            host_path: base.display().to_string(),
            propagation: MountPropagation::PropagationPrivate as i32,
            ..Default::default()
        },
    ];
    let id = e.run(c).await;
    // A mount made on the host after the start reaches the rslave mount only.
    let sub = base.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    sh(&format!("mount -t tmpfs tmpfs {}", sub.display()));
    std::fs::write(sub.join("late"), "late\n").unwrap();
    assert_eq!(e.sh_out(&id, "cat /slave/sub/late").await, "late\n");
    assert_ne!(
        e.exec(&id, &["cat", "/private/sub/late"]).await.exit_code,
        0
    );

    // Bidirectional on a private host mount is refused.
    let private = e.logs.parent().unwrap().join("private");
    std::fs::create_dir_all(&private).unwrap();
    sh(&format!(
        "mount --bind {0} {0} && mount --make-private {0}",
        private.display()
    ));
    let _guard2 = Unmount(private.clone());
    let mut c = e.config("bidi", SLEEPER);
    c.mounts = vec![Mount {
        container_path: "/bidi".into(),
        host_path: private.display().to_string(),
        propagation: MountPropagation::PropagationBidirectional as i32,
        ..Default::default()
    }];
    let err = e.create(c).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
}

async fn pid_namespaces_and_cpu(handler: &'static str, index: u8) {
    let mut e = env(handler, index).await;
    let with_pid = |mut c: ContainerConfig, mode: NamespaceMode, target: &str| {
        PodEnv::security(&mut c).namespace_options = Some(NamespaceOption {
            pid: mode as i32,
            target_id: target.into(),
            ..Default::default()
        });
        c
    };
    // Its own pid namespace: the command is pid 1.
    let own = e
        .run(with_pid(
            e.config("own", &["sleep", "1001"]),
            NamespaceMode::Container,
            "",
        ))
        .await;
    assert_eq!(
        e.sh_out(&own, "cat /proc/1/cmdline | tr '\\0' ' '").await,
        "sleep 1001 "
    );
    // TARGET: joins the other container's pid namespace and sees its processes.
    let joined = e
        .run(with_pid(
            e.config("joined", SLEEPER),
            NamespaceMode::Target,
            &own,
        ))
        .await;
    let ps = e.sh_out(&joined, "ps").await;
    assert!(ps.contains("sleep 1001"), "{ps}");
    // POD (the CRI default): the pod's shared namespace, whose pid 1 is crust's pod init.
    let pod = e.run(e.config("pod", SLEEPER)).await;
    let ps = e.sh_out(&pod, "ps").await;
    assert!(!ps.contains("sleep 1001"), "{ps}");
    // TARGET without a target, or a stopped one: refused.
    let err = e
        .create(with_pid(
            e.config("notarget", SLEEPER),
            NamespaceMode::Target,
            "",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // CPU limits land in the container's cgroup.
    let mut c = e.config("cpu", SLEEPER);
    c.linux.as_mut().unwrap().resources = Some(LinuxContainerResources {
        cpu_period: 100000,
        cpu_quota: 25000,
        cpu_shares: 256,
        cpuset_cpus: "0".into(),
        ..Default::default()
    });
    let id = e.run(c).await;
    assert_eq!(
        cgroup_file(&mut e, &id, "cpu", "cpu.cfs_quota_us").await,
        "25000"
    );
    assert_eq!(cgroup_file(&mut e, &id, "cpu", "cpu.shares").await, "256");
    assert_eq!(cgroup_file(&mut e, &id, "cpuset", "cpuset.cpus").await, "0");
    assert_eq!(
        e.sh_out(&id, "grep Cpus_allowed_list /proc/self/status")
            .await
            .split_whitespace()
            .nth(1),
        Some("0")
    );
}

async fn crustd_restart_keeps_containers(handler: &'static str, index: u8) {
    let mut e = env(handler, index).await;
    let long = e.run(e.config("long", SLEEPER)).await;
    let short = e
        .run(e.config(
            "short",
            &["sh", "-c", "touch /tmp/ready; sleep 1; echo bye; exit 4"],
        ))
        .await;
    e.wait_for_file(&short, "/tmp/ready").await;
    // crustd crashes; while it is away one container exits and the other goes on.
    e.crustd.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    e.crustd.spawn().await.unwrap();
    e.rt = e.crustd.runtime().await.unwrap();
    let s = e.status(&long).await;
    assert_eq!(s.state, ContainerState::ContainerRunning as i32, "{s:?}");
    let s = e.wait_exited(&short).await;
    assert_eq!((s.exit_code, s.reason.as_str()), (4, "Error"), "{s:?}");
    assert!(s.finished_at > s.started_at);
    let log = std::fs::read_to_string(&s.log_path).unwrap();
    assert!(log.contains("stdout F bye"), "{log}");
    // The recovered container answers exec, and its exit is still seen after the restart.
    assert_eq!(e.sh_out(&long, "echo alive").await, "alive\n");
    e.rt.stop_container(StopContainerRequest {
        container_id: long.clone(),
        timeout: 0,
    })
    .await
    .unwrap();
    assert_eq!(e.status(&long).await.exit_code, 137);
    // Names stay reserved across the restart.
    let err = e.create(e.config("long", SLEEPER)).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
}

/// Whether this node can checkpoint with `handler`: criu installed and `criu check` passing
/// (criu 3.17 fails it on kernels from 6.13 on), and crun built with CRIU.
fn criu_works(handler: &str) -> bool {
    let check = std::process::Command::new("criu")
        .arg("check")
        .output()
        .is_ok_and(|o| o.status.success());
    let runtime = handler != "crun"
        || std::process::Command::new("crun")
            .arg("--version")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("+CRIU"));
    check && runtime
}

/// The names in a tar archive.
fn tar_names(data: &[u8]) -> Vec<String> {
    tar::Archive::new(data)
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

/// A tar of `(name, contents)` files.
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, name, *data).unwrap();
    }
    tar.into_inner().unwrap()
}

async fn checkpoint_and_restore(handler: &'static str, index: u8) {
    let mut e = env(handler, index).await;
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("counter.tar");
    let checkpoint = |id: &str, location: &Path| CheckpointContainerRequest {
        container_id: id.into(),
        location: location.display().to_string(),
        timeout: 60,
    };
    // Bad requests lose nothing.
    let err =
        e.rt.checkpoint_container(checkpoint("", &location))
            .await
            .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err =
        e.rt.checkpoint_container(checkpoint("nosuchcontainer", &location))
            .await
            .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    let counter = e
        .run(e.config(
            "counter",
            &[
                "sh",
                "-c",
                "i=0; while :; do i=$((i+1)); echo $i > /tmp/c; mv /tmp/c /tmp/count; sleep 0.1; done",
            ],
        ))
        .await;
    e.wait_for_file(&counter, "/tmp/count").await;
    let err =
        e.rt.checkpoint_container(checkpoint(&counter, Path::new("relative.tar")))
            .await
            .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let taken = dir.path().join("taken.tar");
    std::fs::write(&taken, "mine").unwrap();
    let err =
        e.rt.checkpoint_container(checkpoint(&counter, &taken))
            .await
            .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert_eq!(std::fs::read_to_string(&taken).unwrap(), "mine");

    let result =
        e.rt.checkpoint_container(checkpoint(&counter, &location))
            .await;
    // Either way the container goes on counting.
    let running = e.status(&counter).await;
    assert_eq!(
        running.state,
        ContainerState::ContainerRunning as i32,
        "{running:?}"
    );
    let count = |s: String| s.trim().parse::<u64>().unwrap();
    let before = count(e.sh_out(&counter, "cat /tmp/count").await);

    if criu_works(handler) {
        result.expect("CheckpointContainer");
        let archive = std::fs::read(&location).unwrap();
        let names = tar_names(&archive);
        for want in ["config.dump", "spec.dump", "rootfs-diff.tar"] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        assert!(
            names.iter().any(|n| n.starts_with("checkpoint/")),
            "{names:?}"
        );
        // Restore into a new pod: the count goes on from where it was.
        let mut config = e.pod_config.clone();
        config.metadata.as_mut().unwrap().name += "-restored";
        config.metadata.as_mut().unwrap().uid += "-restored";
        let pod =
            e.rt.run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: handler.into(),
            })
            .await
            .expect("RunPodSandbox")
            .into_inner()
            .pod_sandbox_id;
        let mut restored = e.config("counter", &["sleep", "1"]);
        restored.image.as_mut().unwrap().image = location.display().to_string();
        let id =
            e.rt.create_container(CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(restored),
                sandbox_config: Some(config),
            })
            .await
            .expect("CreateContainer from a checkpoint")
            .into_inner()
            .container_id;
        e.start(&id).await.expect("StartContainer restores");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = count(e.sh_out(&id, "cat /tmp/count").await);
        assert!(
            after >= before,
            "restored count {after} < checkpointed {before}"
        );
        let _ =
            e.rt.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: pod,
            })
            .await;
        return;
    }

    // No working CRIU here: a clear FailedPrecondition that says so, and no archive.
    let err = result.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("criu") || err.message().contains("CRIU"),
        "{err:?}"
    );
    assert!(!location.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only taken.tar"
    );
    let later = count(e.sh_out(&counter, "sleep 0.3; cat /tmp/count").await);
    assert!(
        later > before,
        "the container stopped counting: {before} then {later}"
    );

    // The restore side up to CRIU: an archive in the checkpoint layout (CRIU's images
    // aside) becomes a container of the image it names, its rootfs changes in place;
    // starting it asks the runtime to restore and reports why it could not.
    let busybox = e.images.busybox.reference.clone();
    let config_dump = serde_json::json!({
        "id": counter, "name": "counter", "rootfsImageName": busybox, "runtime": handler,
    });
    let diff = tar_of(&[("tmp/from-checkpoint", b"41\n")]);
    let archive = tar_of(&[
        ("config.dump", config_dump.to_string().as_bytes()),
        ("spec.dump", b"{}"),
        ("checkpoint/inventory.img", b"not criu's"),
        ("rootfs-diff.tar", &diff),
    ]);
    let handmade = dir.path().join("handmade.tar");
    std::fs::write(&handmade, archive).unwrap();
    let mut restored = e.config("restored", SLEEPER);
    restored.image.as_mut().unwrap().image = handmade.display().to_string();
    let id = e
        .create(restored)
        .await
        .expect("CreateContainer from an archive");
    let s = e.status(&id).await;
    assert_eq!(s.image.as_ref().unwrap().image, busybox, "{s:?}");
    assert_eq!(s.state, ContainerState::ContainerCreated as i32);
    let err = e.start(&id).await.unwrap_err();
    assert!(err.message().contains("restor"), "{err:?}");
    let s = e.status(&id).await;
    assert_eq!(s.reason, "StartError", "{s:?}");

    // An archive that is not a checkpoint is refused, and nothing of it is left behind.
    std::fs::write(dir.path().join("junk.tar"), tar_of(&[("hello", b"hi")])).unwrap();
    let mut junk = e.config("junk", SLEEPER);
    junk.image.as_mut().unwrap().image = dir.path().join("junk.tar").display().to_string();
    let err = e.create(junk).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let leftovers: Vec<_> = std::fs::read_dir(e.crustd.root.join("containers"))
        .unwrap()
        .filter_map(|d| d.ok())
        .filter(|d| d.file_name().to_string_lossy().starts_with(".restore-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
