//! A bounded, seeded fuzz run of spec generation (CI runs it; no nightly needed): arbitrary
//! container configs (names, mounts with odd paths, env, args, security contexts with random
//! ids, resources with extreme values, devices, labels, annotations) and host/pod facts go
//! through `generate`, as CreateContainer calls it. Nothing may panic; an error is always a
//! caller error; a generated spec serialises to JSON, and its mounts' destinations and bind
//! sources are absolute and normalized.
//!
//! `CRUST_FUZZ_CASES=20000 cargo test -p crust-specgen --test fuzz_spec` runs longer;
//! `CRUST_FUZZ_SEED=<n>` picks another seed (the seed in use is printed on failure).

mod common;

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::Case;
use crust_specgen::{generate, stop_signal, to_json, CgroupDriver, ImageConfig};
use k8s_cri::v1::{
    Capability, ContainerMetadata, Device, HugepageLimit, ImageSpec, Int64Value, KeyValue,
    LinuxContainerResources, LinuxContainerSecurityContext, LinuxSandboxSecurityContext, Mount,
    NamespaceOption, SecurityProfile,
};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

/// Paths as a request may send them: clean, with `.`/`..`/repeated and trailing slashes,
/// relative, empty, with odd bytes.
fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(
            prop_oneof![
                4 => "[a-z0-9_-]{1,8}",
                1 => Just(".".to_string()),
                1 => Just("..".to_string()),
                1 => Just(String::new()),
                1 => "[^/\u{0}]{1,4}",
            ],
            0..5,
        )
        .prop_map(|parts| format!("/{}", parts.join("/"))),
        1 => Just("/etc/hosts".to_string()),
        1 => Just("/dev".to_string()),
        1 => Just("/dev/shm/".to_string()),
        1 => Just("/proc".to_string()),
        1 => Just("//sys//fs/./cgroup/".to_string()),
        1 => ".{0,12}",
    ]
}

fn mount() -> impl Strategy<Value = Mount> {
    (
        path(),
        path(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![6 => 0i32..3, 1 => -1i32..5],
        prop::option::weighted(0.1, "[a-z]{1,5}"),
    )
        .prop_map(|(c, h, readonly, rro, propagation, image)| Mount {
            // Recursive read-only only now and then: it needs readonly and private.
            recursive_read_only: (rro && readonly && propagation == 0) || (rro && c.len() % 5 == 0),
            container_path: c,
            host_path: h,
            readonly,
            propagation,
            image: image.map(|image| ImageSpec {
                image,
                ..Default::default()
            }),
            ..Default::default()
        })
}

fn device() -> impl Strategy<Value = Device> {
    (
        prop_oneof![
            Just("/dev/null".to_string()),
            Just("/dev/fuse".to_string()),
            Just("/dev//sda/".to_string()),
            path()
        ],
        prop_oneof![Just(String::new()), path()],
        prop_oneof![4 => "[rwm]{1,3}", 1 => "[rwmx]{0,4}"],
    )
        .prop_map(|(host_path, container_path, permissions)| Device {
            host_path,
            container_path,
            permissions,
        })
}

fn extreme() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => Just(0i64),
        1 => Just(-1),
        1 => Just(i64::MIN),
        2 => Just(i64::MAX),
        4 => 0i64..2_000_000,
        1 => any::<i64>(),
    ]
}

fn resources() -> impl Strategy<Value = LinuxContainerResources> {
    (
        (extreme(), extreme(), extreme(), extreme(), extreme()),
        (
            prop_oneof![
                Just(-1000i64),
                Just(1000),
                Just(1001),
                -1500i64..1500,
                any::<i64>()
            ],
            "([0-9]{1,2}(-[0-9]{0,2})?,?){0,3}|.{0,5}",
            "([0-9]{1,2}(-[0-9]{0,2})?,?){0,3}",
        ),
        prop::collection::vec(("[0-9]{0,4}(kB|MB|GB|XB|)|.{0,4}", any::<u64>()), 0..3),
        prop::collection::hash_map("[a-z.]{1,12}", ".{0,8}", 0..3),
    )
        .prop_map(
            |((period, quota, shares, memory, swap), (oom, cpus, mems), pages, unified)| {
                LinuxContainerResources {
                    cpu_period: period,
                    cpu_quota: quota,
                    cpu_shares: shares,
                    memory_limit_in_bytes: memory,
                    memory_swap_limit_in_bytes: swap,
                    oom_score_adj: oom,
                    cpuset_cpus: cpus,
                    cpuset_mems: mems,
                    hugepage_limits: pages
                        .into_iter()
                        .map(|(page_size, limit)| HugepageLimit { page_size, limit })
                        .collect(),
                    unified,
                }
            },
        )
}

fn capability_names() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop_oneof![
            Just("ALL".to_string()),
            Just("CAP_SYS_ADMIN".to_string()),
            Just("NET_ADMIN".to_string()),
            Just("cap_chown".to_string()),
            Just("SYS_PTRACE".to_string()),
            Just("CAP_NET_RAW".to_string()),
            "[A-Z_]{0,10}",
        ],
        0..2,
    )
}

fn profile() -> impl Strategy<Value = Option<SecurityProfile>> {
    prop::option::of(
        (
            prop_oneof![6 => 0i32..2, 1 => -1i32..4],
            prop_oneof![Just(String::new()), path(), "[a-z/]{0,10}"],
        )
            .prop_map(|(profile_type, localhost_ref)| SecurityProfile {
                profile_type,
                localhost_ref,
            }),
    )
}

fn id() -> impl Strategy<Value = Option<Int64Value>> {
    prop::option::of(
        prop_oneof![
            4 => Just(0i64),
            4 => Just(1000),
            2 => Just(65534),
            2 => 0i64..100_000,
            1 => Just(-1),
            1 => Just(u32::MAX as i64),
            1 => Just(u32::MAX as i64 + 1),
            1 => any::<i64>()
        ]
        .prop_map(|value| Int64Value { value }),
    )
}

fn security() -> impl Strategy<Value = LinuxContainerSecurityContext> {
    (
        (prop::bool::weighted(0.15), any::<bool>(), any::<bool>()),
        (id(), id(), "|||root|app|nobody|ghost"),
        prop::collection::vec(
            prop_oneof![8 => Just(44i64), 1 => Just(-5), 1 => any::<i64>()],
            0..3,
        ),
        (capability_names(), capability_names(), capability_names()),
        (profile(), profile()),
        (-1i32..5, -1i32..5, -1i32..5, "|c0ffee|other"),
        (
            prop::collection::vec(path(), 0..2),
            prop::collection::vec(path(), 0..2),
        ),
    )
        .prop_map(
            |(
                (privileged, readonly_rootfs, no_new_privs),
                (run_as_user, run_as_group, run_as_username),
                supplemental_groups,
                (add, drop, ambient),
                (seccomp, apparmor),
                (network, pid, ipc, target_id),
                (masked_paths, readonly_paths),
            )| LinuxContainerSecurityContext {
                privileged,
                readonly_rootfs,
                no_new_privs,
                run_as_user,
                run_as_group,
                run_as_username,
                supplemental_groups,
                capabilities: Some(Capability {
                    add_capabilities: add,
                    drop_capabilities: drop,
                    add_ambient_capabilities: ambient,
                }),
                seccomp,
                apparmor,
                namespace_options: Some(NamespaceOption {
                    network,
                    pid,
                    ipc,
                    target_id,
                    ..Default::default()
                }),
                masked_paths,
                readonly_paths,
                ..Default::default()
            },
        )
}

fn strings(n: usize) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(".{0,10}", 0..n)
}

fn image() -> impl Strategy<Value = ImageConfig> {
    (
        strings(3),
        strings(2),
        strings(2),
        prop_oneof![3 => Just(String::new()), 1 => path()],
        "||||root|1000|1000:44|app:video|:wheel|ghost|[0-9:a-z]{0,8}",
        "|SIGTERM|KILL|9|SIGRTMIN\\+3|SIGRTMAX-40|[A-Z0-9+-]{0,8}",
    )
        .prop_map(
            |(env, entrypoint, cmd, working_dir, user, stop_signal)| ImageConfig {
                env,
                entrypoint,
                cmd,
                working_dir,
                user,
                stop_signal,
            },
        )
}

#[derive(Debug, Clone)]
struct Fuzzed {
    name: String,
    command: Vec<String>,
    args: Vec<String>,
    working_dir: String,
    envs: Vec<(String, String)>,
    mounts: Vec<Mount>,
    devices: Vec<Device>,
    labels: Vec<(String, String)>,
    annotations: Vec<(String, String)>,
    tty: bool,
    resources: Option<LinuxContainerResources>,
    security: Option<LinuxContainerSecurityContext>,
    image: ImageConfig,
    pod_privileged: bool,
    host: (bool, bool, bool, bool, bool, i32),
    cgroup_parent: String,
    image_volume: bool,
}

fn fuzzed() -> impl Strategy<Value = Fuzzed> {
    (
        (
            ".{0,12}",
            strings(3),
            strings(3),
            prop_oneof![3 => Just(String::new()), 1 => path()],
            prop::collection::vec(("[A-Z_=]{0,6}", ".{0,8}"), 0..4),
        ),
        (
            prop::collection::vec(mount(), 0..4),
            prop::collection::vec(device(), 0..2),
            prop::collection::vec((".{0,10}", ".{0,10}"), 0..3),
            prop::collection::vec((".{0,10}", ".{0,10}"), 0..3),
            any::<bool>(),
        ),
        (
            prop::option::of(resources()),
            prop::option::of(security()),
            image(),
        ),
        (
            any::<bool>(),
            (
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                prop_oneof![Just(0i32), Just(-999), any::<i32>()],
            ),
            "|/kubepods/burstable/pod1|kubepods.slice|/a/../b|[a-z./_-]{0,12}",
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (name, command, args, working_dir, envs),
                (mounts, devices, labels, annotations, tty),
                (resources, security, image),
                (pod_privileged, host, cgroup_parent, image_volume),
            )| Fuzzed {
                name,
                command,
                args,
                working_dir,
                envs,
                mounts,
                devices,
                labels,
                annotations,
                tty,
                resources,
                security,
                image,
                pod_privileged,
                host,
                cgroup_parent,
                image_volume,
            },
        )
}

fn case(f: &Fuzzed) -> Case {
    let mut c = Case::new();
    c.config.metadata = Some(ContainerMetadata {
        name: f.name.clone(),
        attempt: 0,
    });
    c.config.command = f.command.clone();
    c.config.args = f.args.clone();
    c.config.working_dir = f.working_dir.clone();
    c.config.envs = f
        .envs
        .iter()
        .map(|(key, value)| KeyValue {
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    c.config.mounts = f.mounts.clone();
    c.config.devices = f.devices.clone();
    c.config.labels = f.labels.iter().cloned().collect();
    c.config.annotations = f.annotations.iter().cloned().collect();
    c.config.tty = f.tty;
    let linux = c.config.linux.get_or_insert_with(Default::default);
    linux.resources = f.resources.clone();
    linux.security_context = f.security.clone();
    c.image = f.image.clone();
    if f.pod_privileged {
        c.sandbox_config
            .linux
            .get_or_insert_with(Default::default)
            .security_context = Some(LinuxSandboxSecurityContext {
            privileged: true,
            ..Default::default()
        });
    }
    let (v2, systemd, swap, apparmor, rro, oom) = f.host;
    c.host.cgroup_v2 = v2;
    c.host.cgroup_driver = if systemd {
        CgroupDriver::Systemd
    } else {
        CgroupDriver::Cgroupfs
    };
    c.host.swap_accounting = swap;
    c.host.apparmor = apparmor;
    c.host.recursive_read_only = rro;
    c.host.oom_score_adj = oom;
    c.sandbox.cgroup_parent = f.cgroup_parent.clone();
    if f.image_volume {
        for m in &f.mounts {
            if let Some(i) = &m.image {
                c.image_mounts
                    .insert(i.image.clone(), "/var/lib/crust/image-mounts/x".into());
            }
        }
    }
    c.target_pid_ns = Some("/proc/4242/ns/pid".into());
    c
}

fn normalized_absolute(p: &Path) -> bool {
    let s = p.to_str().unwrap_or("");
    p.is_absolute()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && !s.contains("//")
        && (s == "/" || !s.ends_with('/'))
}

/// Checks one case; returns whether a spec was generated.
fn check(f: &Fuzzed) -> Result<bool, TestCaseError> {
    let case = case(f);
    let _ = stop_signal(&case.image);
    let input = case.input();
    let out = match generate(&input) {
        Err(e) => {
            prop_assert!(e.is_caller_error(), "internal error: {e}");
            if std::env::var_os("CRUST_FUZZ_STATS").is_some() {
                let d = format!("{e:?}");
                eprintln!("refused: {}", d.split(['(', ' ', '{']).next().unwrap_or(""));
            }
            return Ok(false);
        }
        Ok(out) => out,
    };
    let json = to_json(&out.spec).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    prop_assert!(value.is_object());
    let process = out.spec.process().as_ref().unwrap();
    prop_assert!(!process.args().as_ref().unwrap().is_empty());
    prop_assert!(process.cwd().is_absolute());
    let mounts = out.spec.mounts().as_ref().unwrap();
    for m in mounts {
        prop_assert!(
            normalized_absolute(m.destination()),
            "destination {:?}",
            m.destination()
        );
        if m.typ().as_deref() == Some("bind") {
            let source = m.source().as_ref().unwrap();
            prop_assert!(
                normalized_absolute(source),
                "bind source {:?} {:x?}",
                source,
                source.to_str().map(str::as_bytes)
            );
        }
    }
    let linux = out.spec.linux().as_ref().unwrap();
    for d in linux.devices().iter().flatten() {
        prop_assert!(normalized_absolute(d.path()), "device {:?}", d.path());
    }
    if let Some(adj) = process.oom_score_adj() {
        prop_assert!((-1000..=1000).contains(&adj));
    }
    // A request mount asked for read-only stays read-only.
    let dest_of = |m: &Mount| {
        Path::new(&m.container_path)
            .components()
            .collect::<PathBuf>()
    };
    for req in &f.mounts {
        let dest = dest_of(req);
        if req.readonly && f.mounts.iter().filter(|m| dest_of(m) == dest).count() == 1 {
            for m in mounts.iter().filter(|m| m.destination() == &dest) {
                let opts = m.options().as_ref().unwrap();
                prop_assert!(
                    opts.iter().any(|o| o == "ro" || o == "rro"),
                    "{:?} lost ro: {:?}",
                    dest,
                    opts
                );
            }
        }
    }
    Ok(true)
}

#[test]
fn generated_specs_are_sound() {
    let config = crust_fuzzing::config(1500);
    let cases = config.cases as usize;
    let mut runner = TestRunner::new(config);
    let generated = AtomicUsize::new(0);
    runner
        .run(&fuzzed(), |f| {
            if check(&f)? {
                generated.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    // The strategies must reach spec generation's end, not only its first checks.
    let generated = generated.into_inner();
    eprintln!("{generated} of {cases} cases generated a spec");
    assert!(
        generated * 20 >= cases,
        "only {generated} of {cases} cases generated a spec"
    );
}
