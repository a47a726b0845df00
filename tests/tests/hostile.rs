//! Hostile input: requests and images built to reach the node through crustd, each mirroring
//! a CVE of another container runtime. Real crustd, registry, runc/crun and CNI (bridges
//! crt65-67 and crt165-167; the sysctl and log tests' pods share the node's network and need
//! none); every test checks the node afterwards, not just the error. These tests need root.

use std::path::Path;

use crust_testenv::{push_image_with_layer, push_standard_images, LayerEntry, Registry};
use crust_tests::{
    both_runtimes, mounts_under, pod_config, stop_and_remove_pod, tree, Crustd, PodEnv,
};
use k8s_cri::v1::*;
use serde_json::json;
use tonic::Code;

both_runtimes! {
    mount_through_image_symlinks_stays_in_the_rootfs(66);
    image_volumes_and_dotdot_paths_expose_nothing_of_the_host(67);
    supplementary_groups_come_from_the_request_and_the_user_name(65);
}

const SLEEPER: &[&str] = &["sleep", "1000"];

/// An env with a pod of its own on bridge `index`.
async fn env(handler: &'static str, index: u8) -> PodEnv {
    PodEnv::builder(handler, index)
        .pod(move |logs| pod_config(&format!("hostile-{handler}-{index}"), "hostile", logs))
        .build()
        .await
}

async fn pull(e: &mut PodEnv, reference: &str) {
    e.images_client
        .pull_image(PullImageRequest {
            image: Some(ImageSpec {
                image: reference.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("pull");
}

fn bind(host: &Path, container: &str) -> Mount {
    Mount {
        host_path: host.display().to_string(),
        container_path: container.into(),
        ..Default::default()
    }
}

/// Host mount points at or below `dir`.
fn host_mounts_at(dir: &Path) -> Vec<String> {
    mounts_under(dir)
}

/// `path` without its leading slash: the hop from `/` to it, for `../../..` links.
fn rel(path: &Path) -> String {
    path.display()
        .to_string()
        .trim_start_matches('/')
        .to_string()
}

fn assert_invalid(err: &tonic::Status, needles: &[&str]) {
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    for n in needles {
        assert!(err.message().contains(n), "{n:?} not in {err:?}");
    }
}

async fn container_count(
    rt: &mut k8s_cri::v1::runtime_service_client::RuntimeServiceClient<tonic::transport::Channel>,
) -> usize {
    crust_tests::all_containers(rt).await.len()
}

/// CVE-2021-30465 (runc mount-destination symlink race) and CVE-2023-27561 (its
/// regression): the image's rootfs holds symlinks aiming at a host directory, absolutely
/// (`/data-abs -> /<victim>`) and relatively (`/data-rel -> ../../../../<victim>`), and the
/// request mounts a host directory onto them (and onto `/data-rel/sub`, which the runtime must
/// create). The binds must land inside the rootfs, where the links resolve against the
/// container's root: the host victim directory stays empty, has no mount on the node, and the
/// container sees the bound content at the link.
async fn mount_through_image_symlinks_stays_in_the_rootfs(handler: &'static str, index: u8) {
    let mut e = env(handler, index).await;
    let victim = e.dir.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    let source = e.dir.path().join("source");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("marker"), "bound\n").unwrap();

    let escape = format!("../../../../../../../../{}", rel(&victim));
    let image = push_image_with_layer(
        &e.reg,
        "crust/symlinks",
        json!({}),
        &[
            LayerEntry::Symlink("data-abs".into(), victim.display().to_string()),
            LayerEntry::Symlink("data-rel".into(), escape.clone()),
            LayerEntry::Dir("deep".into()),
            LayerEntry::Symlink("deep/up".into(), escape),
        ],
    )
    .await
    .unwrap();
    pull(&mut e, &image.reference).await;

    // One container per link. Either the runtime resolves the destination inside the rootfs
    // (runc: the bind shows at the link and in the container's mountinfo at the in-root path)
    // or the container fails cleanly naming the link (crun 1.8 refuses a dangling one); the
    // node must be untouched either way.
    let inside = victim.display().to_string();
    let cases = [
        ("abs", "/data-abs", inside.clone()),
        ("rel", "/data-rel/sub", format!("{inside}/sub")),
        (
            "deep",
            "/deep/up/nested/dir",
            format!("{inside}/nested/dir"),
        ),
    ];
    let mut contained = 0;
    for (name, path, resolved) in cases {
        let mut c = e.config(name, SLEEPER);
        c.image.as_mut().unwrap().image = image.reference.clone();
        c.mounts = vec![bind(&source, path)];
        let outcome = match e.create(c).await {
            Ok(id) => e.start(&id).await.map(|_| id),
            Err(err) => Err(err),
        };
        assert!(
            std::fs::read_dir(&victim).unwrap().next().is_none(),
            "{path}: the runtime wrote into the host's {}: {:?}",
            victim.display(),
            tree(&victim)
        );
        assert_eq!(
            host_mounts_at(&victim),
            Vec::<String>::new(),
            "{path}: a bind landed on the host"
        );
        let link = path.split('/').nth(1).unwrap();
        match outcome {
            Ok(id) => {
                contained += 1;
                assert_eq!(
                    e.sh_out(&id, &format!("cat {path}/marker {resolved}/marker"))
                        .await,
                    "bound\nbound\n"
                );
                let mounts = e.sh_out(&id, "cat /proc/self/mountinfo").await;
                assert!(
                    mounts
                        .lines()
                        .any(|l| l.split(' ').nth(4) == Some(resolved.as_str())),
                    "{path}: no mount at {resolved} inside: {mounts}"
                );
                e.stop(&id).await;
            }
            Err(err) => assert!(err.message().contains(link), "{path}: {err:?}"),
        }
    }
    if handler == "runc" {
        assert_eq!(
            contained, 3,
            "runc resolves every destination in the rootfs"
        );
    }
    assert!(std::fs::read_dir(&victim).unwrap().next().is_none());
    assert_eq!(host_mounts_at(&victim), Vec::<String>::new());
    assert_eq!(tree(&source), vec!["marker".to_string()]);
}

/// CVE-2022-23648 (containerd CRI: image volumes with `../` copied host files into the
/// container): an image config whose `Volumes` climb out with `../`, a CRI image volume
/// (`Mount.image`) of an image whose content links out with absolute and `../` symlinks, and
/// Mount container_paths with `..` components. Nothing of the host outside is shown to the
/// container or created on the node; the `..` paths are refused with InvalidArgument naming
/// container_path, leaving no container, no mount and the name free. (The k8s-cri 0.11
/// bindings have no `image_sub_path`, so sub-path escapes cannot be asked for.)
async fn image_volumes_and_dotdot_paths_expose_nothing_of_the_host(
    handler: &'static str,
    index: u8,
) {
    let mut e = env(handler, index).await;
    let secret_dir = e.dir.path().join("secret");
    std::fs::create_dir_all(&secret_dir).unwrap();
    std::fs::write(secret_dir.join("secret.txt"), "host secret\n").unwrap();
    let outside = e.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let up = "../../../../../../../../";

    // Image config Volumes aimed at the node. crust makes no volumes from an image config (as
    // containerd since the fix does not copy anything out of the image for them).
    let volumes: serde_json::Map<String, serde_json::Value> = [
        format!("/{up}{}", rel(&secret_dir)),
        format!("{up}{}/made", rel(&outside)),
        format!("/{up}{}", rel(&outside)),
    ]
    .into_iter()
    .map(|v| (v, json!({})))
    .collect();
    let with_volumes = push_image_with_layer(
        &e.reg,
        "crust/volumes",
        json!({ "Volumes": volumes }),
        &[LayerEntry::File("in-image.txt".into(), b"image\n".to_vec())],
    )
    .await
    .unwrap();
    // An image used as a CRI image volume, its content linking out of it.
    let linky = push_image_with_layer(
        &e.reg,
        "crust/linky",
        json!({}),
        &[
            LayerEntry::Symlink("abs".into(), secret_dir.display().to_string()),
            LayerEntry::Symlink("root".into(), "/".into()),
            LayerEntry::Symlink("rel".into(), format!("{up}{}", rel(&secret_dir))),
        ],
    )
    .await
    .unwrap();
    pull(&mut e, &with_volumes.reference).await;
    pull(&mut e, &linky.reference).await;
    let image_mount = |path: &str| Mount {
        container_path: path.into(),
        image: Some(ImageSpec {
            image: linky.reference.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };

    // `..` in a container_path, bind or image volume: refused, nothing kept.
    let before = mounts_under(e.crustd.dir.path());
    let escapes = [
        format!("/{up}{}", rel(&outside)),
        format!("/vol/../../{}", rel(&outside)),
        "/..".to_string(),
        "vol".to_string(),
    ];
    for path in &escapes {
        for image_volume in [false, true] {
            let mut c = e.config("vol", SLEEPER);
            c.image.as_mut().unwrap().image = with_volumes.reference.clone();
            c.mounts = vec![if image_volume {
                image_mount(path)
            } else {
                bind(&secret_dir, path)
            }];
            let err = e.create(c).await.unwrap_err();
            assert_invalid(&err, &["container_path", path]);
        }
    }
    assert_eq!(container_count(&mut e.rt).await, 0);
    assert_eq!(
        mounts_under(e.crustd.dir.path()),
        before,
        "a refused volume stayed mounted"
    );
    assert!(std::fs::read_dir(&outside).unwrap().next().is_none());

    // The same name, now contained: the image's own Volumes and the image volume.
    let mut c = e.config("vol", SLEEPER);
    c.image.as_mut().unwrap().image = with_volumes.reference.clone();
    c.mounts = vec![image_mount("/vol")];
    let id = e.run(c).await;
    let secret = secret_dir.display().to_string();
    for path in [
        format!("{secret}/secret.txt"),
        "/vol/abs/secret.txt".into(),
        "/vol/rel/secret.txt".into(),
        format!("/vol/root/{secret}/secret.txt"),
    ] {
        let r = e.exec(&id, &["cat", &path]).await;
        assert_ne!(
            r.exit_code,
            0,
            "{path} shows the host's secret: {}",
            String::from_utf8_lossy(&r.stdout)
        );
    }
    // The links are the image's, resolved in the container; the volume is read-only.
    assert_eq!(
        e.sh_out(&id, "readlink /vol/abs; cat /in-image.txt").await,
        format!("{secret}\nimage\n")
    );
    let r = e.exec(&id, &["touch", "/vol/new"]).await;
    assert_ne!(r.exit_code, 0, "the image volume is writable");
    let r = e
        .exec(&id, &["sh", "-c", "echo x > /vol/rel/planted"])
        .await;
    assert_ne!(r.exit_code, 0, "wrote through the volume's link");
    assert_eq!(
        tree(&secret_dir),
        vec!["secret.txt".to_string()],
        "the host's directory changed"
    );
    assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
    assert!(!outside.join("made").exists());
    e.stop(&id).await;
}

/// The Groups, Uid and Gid lines of `/proc/self/status`, as printed by a container.
fn ids(log: &str) -> (String, String, Vec<u32>) {
    let line = |key: &str| -> String {
        log.lines()
            .filter_map(|l| l.splitn(4, ' ').nth(3))
            .find_map(|m| m.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {log}"))
            .trim()
            .to_string()
    };
    let mut groups: Vec<u32> = line("Groups:")
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    groups.sort();
    (line("Uid:"), line("Gid:"), groups)
}

/// CVE-2023-25173 (containerd: supplementary groups not set up properly, so the process kept
/// groups it was never given): a hostile image whose /etc/group puts the user in `disk` (6)
/// and gives the group named after the user gid 0 with the user as member. The process's
/// groups are exactly containerd's (post-fix): the primary gid, the groups listing the user's
/// *name* (the passwd name of a run_as_user uid) other than the one named after it, and the
/// request's supplemental_groups; with SupplementalGroupsPolicy Strict none from the image; a
/// uid the image does not know gets its gid alone. Never gid 0 or anything of crustd's own.
async fn supplementary_groups_come_from_the_request_and_the_user_name(
    handler: &'static str,
    index: u8,
) {
    let mut e = env(handler, index).await;
    let image = push_image_with_layer(
        &e.reg,
        "crust/groups",
        json!({ "User": "crustuser" }),
        &[
            LayerEntry::Dir("etc".into()),
            LayerEntry::File(
                "etc/passwd".into(),
                b"root:x:0:0:root:/root:/bin/sh\ncrustuser:x:1234:1234::/:/bin/sh\n".to_vec(),
            ),
            LayerEntry::File(
                "etc/group".into(),
                b"root:x:0:\ndisk:x:6:crustuser\ncrustuser:x:0:crustuser\nextra:x:4242:other,crustuser\nnogroup:x:65534:\n"
                    .to_vec(),
            ),
        ],
    )
    .await
    .unwrap();
    pull(&mut e, &image.reference).await;
    let cmd = &["grep", "-E", "^(Uid|Gid|Groups):", "/proc/self/status"];
    struct Case {
        name: &'static str,
        user: Option<i64>,
        username: &'static str,
        group: Option<i64>,
        supplemental: Vec<i64>,
        strict: bool,
        want: (&'static str, &'static str, Vec<u32>),
    }
    let cases = [
        Case {
            name: "by-uid",
            user: Some(1234),
            username: "",
            group: Some(1234),
            supplemental: vec![],
            strict: false,
            want: (
                "1234\t1234\t1234\t1234",
                "1234\t1234\t1234\t1234",
                vec![6, 1234, 4242],
            ),
        },
        Case {
            name: "by-name",
            user: None,
            username: "crustuser",
            group: None,
            supplemental: vec![5000],
            strict: false,
            // The primary gid comes from passwd (1234), not from the hostile group of that name.
            want: (
                "1234\t1234\t1234\t1234",
                "1234\t1234\t1234\t1234",
                vec![6, 1234, 4242, 5000],
            ),
        },
        Case {
            name: "image-user",
            user: None,
            username: "",
            group: None,
            supplemental: vec![],
            strict: false,
            want: (
                "1234\t1234\t1234\t1234",
                "1234\t1234\t1234\t1234",
                vec![6, 1234, 4242],
            ),
        },
        Case {
            name: "strict",
            user: Some(1234),
            username: "",
            group: Some(1234),
            supplemental: vec![5000],
            strict: true,
            want: (
                "1234\t1234\t1234\t1234",
                "1234\t1234\t1234\t1234",
                vec![1234, 5000],
            ),
        },
        Case {
            name: "unknown-uid",
            user: Some(4321),
            username: "",
            group: Some(4321),
            supplemental: vec![],
            strict: false,
            want: (
                "4321\t4321\t4321\t4321",
                "4321\t4321\t4321\t4321",
                vec![4321],
            ),
        },
    ];
    for case in cases {
        let mut c = e.config(case.name, cmd);
        c.image.as_mut().unwrap().image = image.reference.clone();
        let sc = PodEnv::security(&mut c);
        sc.run_as_user = case.user.map(|value| Int64Value { value });
        sc.run_as_username = case.username.into();
        sc.run_as_group = case.group.map(|value| Int64Value { value });
        sc.supplemental_groups = case.supplemental.clone();
        if case.strict {
            sc.supplemental_groups_policy = SupplementalGroupsPolicy::Strict as i32;
        }
        let (s, log) = e.run_to_end(c).await;
        assert_eq!(s.exit_code, 0, "{}: {log}", case.name);
        let (uid, gid, groups) = ids(&log);
        assert_eq!(
            (uid.as_str(), gid.as_str(), groups.clone()),
            case.want,
            "{}: {log}",
            case.name
        );
        // What ContainerStatus reports is what the process got.
        let user = s.user.unwrap().linux.unwrap();
        let mut reported: Vec<u32> = user.supplemental_groups.iter().map(|g| *g as u32).collect();
        reported.sort();
        assert_eq!(reported, groups, "{}: {user:?}", case.name);
    }
}

/// A crustd on no CNI network (pods share the node's network) with busybox pulled: for tests
/// whose pods never need a bridge of their own.
async fn hostnet_crustd() -> (Registry, crust_testenv::StandardImages, Crustd) {
    let reg = Registry::start().await.unwrap();
    let images = push_standard_images(&reg, None).await.unwrap();
    let crustd = Crustd::start_local("").await.expect("crustd starts");
    crustd
        .images()
        .await
        .unwrap()
        .pull_image(PullImageRequest {
            image: Some(ImageSpec {
                image: images.busybox.reference.clone(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("pull");
    (reg, images, crustd)
}

/// A pod in the node's network namespace (no CNI), its own IPC namespace.
fn hostnet_pod(name: &str, logs: &Path) -> PodSandboxConfig {
    let mut c = pod_config(name, "", logs);
    c.linux.as_mut().unwrap().security_context = Some(LinuxSandboxSecurityContext {
        namespace_options: Some(NamespaceOption {
            network: NamespaceMode::Node as i32,
            ..Default::default()
        }),
        ..Default::default()
    });
    c
}

async fn pod_count(
    rt: &mut k8s_cri::v1::runtime_service_client::RuntimeServiceClient<tonic::transport::Channel>,
) -> usize {
    crust_tests::all_pods(rt).await.len()
}

/// CVE-2022-0811 (CRI-O "cr8escape": pinns split sysctl values on `+`, so
/// `kernel.shm_rmid_forced=1+kernel.core_pattern=|/evil` set the node's core_pattern and ran
/// the attacker's binary as root on the next crash). Values smuggling a second setting
/// (`+`, `=`, newline, carriage return, NUL forms), keys doing it, and keys that are not
/// namespaced (kernel.core_pattern itself, its slash form, `..` forms) are all refused with
/// InvalidArgument naming config.linux.sysctls and the key, before any pod exists; the node's
/// core_pattern is unchanged, and the pod name runs afterwards with an honest sysctl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sysctl_smuggling_is_refused() {
    let crustd = Crustd::start_local("").await.expect("crustd starts");
    let mut rt = crustd.runtime().await.unwrap();
    let core_pattern = || std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let before = core_pattern();
    let logs = crustd.dir.path().join("logs");
    let evil = "|/evil %p";
    let cases: &[(&str, &str)] = &[
        ("kernel.shm_rmid_forced", "1+kernel.core_pattern=|/evil"),
        ("kernel.shm_rmid_forced", "1+kernel.core_pattern=|/evil+"),
        ("kernel.shm_rmid_forced", "1 kernel.core_pattern=|/evil"),
        ("kernel.shm_rmid_forced", "1\nkernel.core_pattern=|/evil"),
        ("kernel.shm_rmid_forced", "1\rkernel.core_pattern=|/evil"),
        ("kernel.shm_rmid_forced", "1\0kernel.core_pattern=|/evil"),
        ("kernel.shm_rmid_forced", "kernel.core_pattern=|/evil"),
        ("kernel.msgmax", "8192+kernel.core_pattern=|/evil"),
        (
            "net.ipv4.ip_unprivileged_port_start",
            "0+kernel.core_pattern=|/evil",
        ),
        ("kernel.shm_rmid_forced+kernel.core_pattern", evil),
        ("kernel.shm_rmid_forced=1+kernel.core_pattern", evil),
        ("kernel.shm_rmid_forced=1\nkernel.core_pattern", evil),
        ("kernel.core_pattern", evil),
        ("kernel/core_pattern", evil),
        ("net/../kernel/core_pattern", evil),
        ("net.ipv4/../../kernel/core_pattern", evil),
        ("fs.mqueue/../../kernel/core_pattern", evil),
        ("kernel.shm_rmid_forced/../core_pattern", evil),
    ];
    for (key, value) in cases {
        let mut config = hostnet_pod("sysctl", &logs);
        config.linux.as_mut().unwrap().sysctls = [(key.to_string(), value.to_string())].into();
        let err = rt
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            })
            .await
            .expect_err(&format!("{key}={value:?} was accepted"));
        assert_invalid(&err, &["config.linux.sysctls", &format!("{key:?}")]);
        assert_eq!(core_pattern(), before, "{key}={value:?} changed the node");
        assert_eq!(pod_count(&mut rt).await, 0, "{key}={value:?} left a pod");
    }
    // The same pod with an honest IPC sysctl runs, and it applies in the pod's own namespace.
    let mut config = hostnet_pod("sysctl", &logs);
    config.linux.as_mut().unwrap().sysctls =
        [("kernel.shm_rmid_forced".to_string(), "1".to_string())].into();
    let pod = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        })
        .await
        .expect("RunPodSandbox with an honest sysctl")
        .into_inner()
        .pod_sandbox_id;
    assert_eq!(core_pattern(), before);
    stop_and_remove_pod(&mut rt, &pod).await;
}

/// Log paths and names that try to leave their directories (the path-traversal class of
/// CVE-2021-30465 / CVE-2022-23648 applied to the files crustd itself makes; no single CVE):
/// a relative or `..` PodSandboxConfig.log_directory, ContainerConfig.log_path that is
/// absolute or climbs with `..` or holds a NUL, and container names with `/`, `..` or NUL.
/// Each is InvalidArgument naming the field; nothing is made outside the pod's log directory
/// (nor relative to crustd's working directory), no pod or container is stored, and the same
/// names work after the request is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_paths_and_names_stay_in_their_directories() {
    let (_reg, images, crustd) = hostnet_crustd().await;
    let mut rt = crustd.runtime().await.unwrap();
    let base = crustd.dir.path().join("t");
    let logs = base.join("pods/logs");
    std::fs::create_dir_all(&base).unwrap();
    let cwd = std::env::current_dir().unwrap();
    let relative = format!("crust-hostile-logs-{}", std::process::id());

    let run = |config: PodSandboxConfig| RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: "runc".into(),
    };
    for dir in [
        relative.clone(),
        format!("./{relative}"),
        format!("{}/../escaped", logs.display()),
        format!("{}/..", logs.display()),
        format!("{}/a\0b", logs.display()),
    ] {
        let mut config = hostnet_pod("logs", &logs);
        config.log_directory = dir.clone();
        match rt.run_pod_sandbox(run(config)).await {
            Err(err) => assert_invalid(&err, &["config.log_directory"]),
            Ok(_) => {
                // Made relative to the cwd the test shares with crustd: not ours to leave.
                let _ = std::fs::remove_dir_all(cwd.join(&relative));
                panic!("log_directory {dir:?} was accepted");
            }
        }
    }
    assert!(
        !cwd.join(&relative).exists(),
        "a relative log directory was made"
    );
    assert_eq!(
        tree(&base),
        Vec::<String>::new(),
        "a log directory was made"
    );
    assert_eq!(pod_count(&mut rt).await, 0);

    let pod_cfg = hostnet_pod("logs", &logs);
    let pod = rt
        .run_pod_sandbox(run(pod_cfg.clone()))
        .await
        .expect("RunPodSandbox with the fixed log directory")
        .into_inner()
        .pod_sandbox_id;
    let container = |name: &str, log_path: &str| ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: images.busybox.reference.clone(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into(), "echo logged".into()],
        log_path: log_path.into(),
        ..Default::default()
    };
    let create = |config: ContainerConfig| CreateContainerRequest {
        pod_sandbox_id: pod.clone(),
        config: Some(config),
        sandbox_config: Some(pod_cfg.clone()),
    };
    let escaped = base.join("escaped.log");
    for log_path in [
        "../../escaped.log".to_string(),
        "web/../../../escaped.log".to_string(),
        escaped.display().to_string(),
        "/etc/crust-hostile.log".to_string(),
        "web/0.log\0x".to_string(),
    ] {
        let err = rt
            .create_container(create(container("web", &log_path)))
            .await
            .unwrap_err();
        assert_invalid(&err, &["config.log_path"]);
    }
    for name in ["a/b", "../web", "..", ".", "web\0x", "/web", "web/../x"] {
        let err = rt
            .create_container(create(container(name, "web/0.log")))
            .await
            .unwrap_err();
        assert_invalid(&err, &["config.metadata.name"]);
    }
    assert!(!Path::new("/etc/crust-hostile.log").exists());
    assert_eq!(
        container_count(&mut rt).await,
        0,
        "a refused container was stored"
    );
    // Only the pod's log directory, empty.
    assert_eq!(
        tree(&base),
        vec!["pods".to_string(), "pods/logs".to_string()]
    );

    // The name is free: fixed, the request works and logs inside the directory.
    let id = rt
        .create_container(create(container("web", "web/0.log")))
        .await
        .expect("CreateContainer with the fixed request")
        .into_inner()
        .container_id;
    rt.start_container(StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .expect("StartContainer");
    let log = logs.join("web/0.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("stdout F logged")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no log at {}",
            log.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        tree(&base),
        vec!["pods", "pods/logs", "pods/logs/web", "pods/logs/web/0.log"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    );
    stop_and_remove_pod(&mut rt, &pod).await;
}
