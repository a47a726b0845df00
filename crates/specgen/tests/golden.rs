//! Golden-file tests: each case's spec must equal `tests/golden/<name>.json`.
//! `UPDATE_GOLDEN=1 cargo test -p crust-specgen --test golden` rewrites the files (read the
//! diff before committing it).

mod common;

use std::path::{Path, PathBuf};

use common::Case;
use crust_specgen::{generate, to_json, CgroupDriver};
use k8s_cri::v1::{
    security_profile::ProfileType, Capability, Device, HugepageLimit, ImageSpec, Int64Value,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, Mount, MountPropagation, NamespaceMode,
    NamespaceOption, SecurityProfile, SupplementalGroupsPolicy,
};

fn check(name: &str, case: &Case) -> crust_specgen::Output {
    let out = generate(&case.input()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let json = to_json(&out.spec).unwrap() + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &json).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert!(
        want == json,
        "{name}: generated spec differs from {}:\n{json}",
        path.display()
    );
    out
}

fn unconfined() -> Option<SecurityProfile> {
    Some(SecurityProfile {
        profile_type: ProfileType::Unconfined as i32,
        localhost_ref: String::new(),
    })
}

/// A plain container in a pod with its own network: the default mounts, capabilities,
/// masked paths and the runtime default seccomp profile.
#[test]
fn basic() {
    let case = Case::new();
    let out = check("basic", &case);
    assert_eq!(
        (out.user.uid, out.user.gid, out.user.username.as_str()),
        (0, 0, "root")
    );
    assert!(out.warnings.is_empty());
}

/// Privileged: every capability, every host device, writable /sys, no masks, no seccomp.
#[test]
fn privileged() {
    let mut case = Case::new();
    case.sandbox_config.linux = Some(LinuxPodSandboxConfig {
        security_context: Some(LinuxSandboxSecurityContext {
            privileged: true,
            ..Default::default()
        }),
        ..Default::default()
    });
    case.sc().privileged = true;
    case.config.command = vec!["/bin/sh".into(), "-c".into()];
    case.config.args = vec!["sleep 1".into()];
    case.config.tty = true;
    check("privileged", &case);
}

/// CRI mounts: sorted parents first, ro/rw, propagation, rro, an image volume, and the
/// kubelet's own /etc/hosts replacing the pod's.
#[test]
fn mounts() {
    let mut case = Case::new();
    case.sc().seccomp = unconfined();
    case.sc().readonly_rootfs = true;
    case.host.recursive_read_only = true;
    let m = |container: &str, host: &str, readonly: bool, propagation: MountPropagation| Mount {
        container_path: container.into(),
        host_path: host.into(),
        readonly,
        propagation: propagation as i32,
        ..Default::default()
    };
    case.config.mounts = vec![
        m(
            "/data/cache",
            "/var/lib/kubelet/pods/x/volumes/cache",
            false,
            MountPropagation::PropagationPrivate,
        ),
        m(
            "/data",
            "/var/lib/kubelet/pods/x/volumes/data",
            false,
            MountPropagation::PropagationHostToContainer,
        ),
        m(
            "/etc/hosts",
            "/var/lib/kubelet/pods/x/etc-hosts",
            false,
            MountPropagation::PropagationPrivate,
        ),
        m(
            "/mnt/shared/",
            "/mnt/shared",
            false,
            MountPropagation::PropagationBidirectional,
        ),
        Mount {
            recursive_read_only: true,
            ..m(
                "/config",
                "/var/lib/kubelet/pods/x/volumes/config",
                true,
                MountPropagation::PropagationPrivate,
            )
        },
        m("/proc", "/proc", true, MountPropagation::PropagationPrivate),
        Mount {
            image: Some(ImageSpec {
                image: "registry.local/models:v1".into(),
                ..Default::default()
            }),
            ..m("/models", "", false, MountPropagation::PropagationPrivate)
        },
    ];
    case.image_mounts.insert(
        "registry.local/models:v1".into(),
        PathBuf::from("/var/lib/crust/image-volumes/abc"),
    );
    check("mounts", &case);
}

/// Resources on a cgroup v1 host with swap accounting and the systemd driver, a requested
/// device, and the OOM score clamped to crustd's own.
#[test]
fn resources() {
    let mut case = Case::new();
    case.sc().seccomp = unconfined();
    case.host.cgroup_v2 = false;
    case.host.swap_accounting = true;
    case.host.oom_score_adj = -500;
    case.host.cgroup_driver = CgroupDriver::Systemd;
    *case.resources() = k8s_cri::v1::LinuxContainerResources {
        cpu_period: 100000,
        cpu_quota: 50000,
        cpu_shares: 512,
        memory_limit_in_bytes: 128 << 20,
        oom_score_adj: -998,
        cpuset_cpus: "0-1".into(),
        cpuset_mems: "0".into(),
        hugepage_limits: vec![HugepageLimit {
            page_size: "2MB".into(),
            limit: 4 << 20,
        }],
        ..Default::default()
    };
    case.config.devices = vec![Device {
        container_path: "/dev/fuse0".into(),
        host_path: "/dev/fuse".into(),
        permissions: "rw".into(),
    }];
    check("resources", &case);
}

/// User and capability requests, custom masked paths, no_new_privs, a Localhost seccomp
/// profile, unified cgroup settings with an explicit swap limit.
#[test]
fn user_and_security() {
    let mut case = Case::new();
    case.image.user = "app".into();
    case.image.working_dir = "/home/app".into();
    case.image.entrypoint = vec!["/entry".into()];
    case.config.args = vec!["serve".into()];
    {
        let sc = case.sc();
        sc.run_as_group = Some(Int64Value { value: 3000 });
        sc.supplemental_groups = vec![4000];
        sc.supplemental_groups_policy = SupplementalGroupsPolicy::Merge as i32;
        sc.no_new_privs = true;
        sc.masked_paths = vec!["/proc/kcore".into()];
        sc.readonly_paths = vec!["/proc/sys".into()];
        sc.capabilities = Some(Capability {
            add_capabilities: vec!["net_admin".into(), "CAP_SYS_TIME".into()],
            drop_capabilities: vec!["ALL".into()],
            add_ambient_capabilities: vec!["NET_BIND_SERVICE".into()],
        });
        sc.seccomp = Some(SecurityProfile {
            profile_type: ProfileType::Localhost as i32,
            localhost_ref: "/var/lib/kubelet/seccomp/audit.json".into(),
        });
        sc.apparmor = Some(SecurityProfile {
            profile_type: ProfileType::RuntimeDefault as i32,
            localhost_ref: String::new(),
        });
    }
    case.seccomp_localhost = Some(
        br#"{"defaultAction": "SCMP_ACT_LOG", "archMap": [{"architecture": "SCMP_ARCH_X86_64",
            "subArchitectures": ["SCMP_ARCH_X86"]}], "syscalls": [{"names": ["reboot"],
            "action": "SCMP_ACT_ERRNO", "errnoRet": 1}, {"names": ["settimeofday"],
            "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_TIME"]}}]}"#
            .to_vec(),
    );
    let r = case.resources();
    r.memory_limit_in_bytes = 64 << 20;
    r.memory_swap_limit_in_bytes = 96 << 20;
    r.unified = [("memory.high".to_string(), "50000000".to_string())].into();
    let out = check("user_and_security", &case);
    assert_eq!(out.user.uid, 1000);
    assert_eq!(out.user.gid, 3000);
    assert_eq!(out.user.additional_gids, [3000, 10, 44, 4000]);
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
}

/// Host namespaces (hostNetwork: no pins), the pid namespace of a target container, and a
/// command overriding the image's entrypoint.
#[test]
fn namespaces() {
    let mut case = Case::new();
    case.sandbox.namespaces.clear();
    case.sandbox.cgroup_parent = String::new();
    case.host.cgroup_v2 = false;
    case.image.entrypoint = vec!["/ignored".into()];
    case.config.command = vec!["/debug".into()];
    case.config.working_dir = "/tmp".into();
    case.target_pid_ns = Some(PathBuf::from("/proc/4242/ns/pid"));
    case.sc().seccomp = unconfined();
    case.sc().namespace_options = Some(NamespaceOption {
        pid: NamespaceMode::Target as i32,
        target_id: "target-container".into(),
        ..Default::default()
    });
    case.config.linux.as_mut().unwrap().resources = None;
    check("namespaces", &case);
}
