//! Every way a request can be refused, through `generate`.

mod common;

use common::Case;
use crust_specgen::{generate, SpecError};
use k8s_cri::v1::{
    Capability, Device, ImageSpec, Int64Value, Mount, MountPropagation, NamespaceMode,
    NamespaceOption,
};

fn err(case: &Case) -> SpecError {
    let e = generate(&case.input()).expect_err("generate should fail");
    assert!(e.is_caller_error());
    let msg = e.to_string();
    assert!(!msg.ends_with('.'), "{msg}");
    assert!(msg.chars().next().unwrap().is_lowercase(), "{msg}");
    e
}

fn with_mount(container: &str, host: &str) -> Case {
    let mut case = Case::new();
    case.config.mounts.push(Mount {
        container_path: container.into(),
        host_path: host.into(),
        ..Default::default()
    });
    case
}

#[test]
fn relative_container_path() {
    assert_eq!(
        err(&with_mount("data", "/srv")),
        SpecError::RelativePath {
            field: "container_path",
            path: "data".into()
        }
    );
}

#[test]
fn dot_dot_container_path() {
    assert_eq!(
        err(&with_mount("/data/../etc", "/srv")),
        SpecError::DotDotPath {
            field: "container_path",
            path: "/data/../etc".into()
        }
    );
}

#[test]
fn relative_host_path() {
    assert_eq!(
        err(&with_mount("/data", "srv")),
        SpecError::RelativePath {
            field: "host_path",
            path: "srv".into()
        }
    );
}

#[test]
fn recursive_read_only_rules() {
    let mut case = with_mount("/data", "/srv");
    case.config.mounts[0].recursive_read_only = true;
    assert_eq!(
        err(&case),
        SpecError::RecursiveReadOnlyInvalid {
            path: "/data".into()
        }
    );
    case.config.mounts[0].readonly = true;
    case.config.mounts[0].propagation = MountPropagation::PropagationHostToContainer as i32;
    assert_eq!(
        err(&case),
        SpecError::RecursiveReadOnlyInvalid {
            path: "/data".into()
        }
    );
    case.config.mounts[0].propagation = MountPropagation::PropagationPrivate as i32;
    assert_eq!(
        err(&case),
        SpecError::RecursiveReadOnlyUnsupported {
            path: "/data".into()
        }
    );
    case.host.recursive_read_only = true;
    assert!(generate(&case.input()).is_ok());
}

#[test]
fn image_volume_not_mounted() {
    let mut case = with_mount("/models", "");
    case.config.mounts[0].image = Some(ImageSpec {
        image: "models:v1".into(),
        ..Default::default()
    });
    assert_eq!(
        err(&case),
        SpecError::ImageVolumeMissing {
            image: "models:v1".into()
        }
    );
}

#[test]
fn unknown_capability() {
    let mut case = Case::new();
    case.sc().capabilities = Some(Capability {
        add_capabilities: vec!["CAP_TELEPORT".into()],
        ..Default::default()
    });
    assert_eq!(
        err(&case),
        SpecError::UnknownCapability("CAP_TELEPORT".into())
    );
}

#[test]
fn unknown_user_name() {
    let mut case = Case::new();
    case.sc().run_as_username = "ghost".into();
    assert_eq!(err(&case), SpecError::UnknownUser("ghost".into()));
    let mut case = Case::new();
    case.image.user = "ghost:root".into();
    assert_eq!(err(&case), SpecError::UnknownUser("ghost".into()));
}

#[test]
fn negative_run_as_user() {
    let mut case = Case::new();
    case.sc().run_as_user = Some(Int64Value { value: -5 });
    assert_eq!(
        err(&case),
        SpecError::InvalidId {
            field: "run_as_user",
            value: -5
        }
    );
}

#[test]
fn bad_device_permissions() {
    let mut case = Case::new();
    case.config.devices.push(Device {
        container_path: "/dev/fuse".into(),
        host_path: "/dev/fuse".into(),
        permissions: "rwx".into(),
    });
    assert_eq!(
        err(&case),
        SpecError::DevicePermissions {
            path: "/dev/fuse".into(),
            permissions: "rwx".into()
        }
    );
}

#[test]
fn unknown_device() {
    let mut case = Case::new();
    case.config.devices.push(Device {
        container_path: "/dev/kvm".into(),
        host_path: "/dev/kvm".into(),
        permissions: "rw".into(),
    });
    assert_eq!(err(&case), SpecError::UnknownDevice("/dev/kvm".into()));
}

#[test]
fn negative_cpu() {
    let mut case = Case::new();
    case.resources().cpu_quota = -1;
    assert_eq!(
        err(&case),
        SpecError::NegativeResource {
            field: "cpu_quota",
            value: -1
        }
    );
    let mut case = Case::new();
    case.resources().memory_limit_in_bytes = -1;
    assert_eq!(
        err(&case),
        SpecError::NegativeResource {
            field: "memory_limit_in_bytes",
            value: -1
        }
    );
}

#[test]
fn swap_below_memory() {
    let mut case = Case::new();
    case.resources().memory_limit_in_bytes = 100;
    case.resources().memory_swap_limit_in_bytes = 50;
    assert_eq!(
        err(&case),
        SpecError::SwapBelowMemory {
            swap: 50,
            memory: 100
        }
    );
}

#[test]
fn unified_on_cgroup_v1() {
    let mut case = Case::new();
    case.host.cgroup_v2 = false;
    case.resources().unified = [("memory.high".to_string(), "1".to_string())].into();
    assert_eq!(err(&case), SpecError::UnifiedOnV1("memory.high".into()));
    case.host.cgroup_v2 = true;
    assert!(generate(&case.input()).is_ok());
}

#[test]
fn bad_hugepage_size() {
    let mut case = Case::new();
    case.resources().hugepage_limits = vec![k8s_cri::v1::HugepageLimit {
        page_size: "2M".into(),
        limit: 1,
    }];
    assert!(matches!(
        err(&case),
        SpecError::InvalidResource {
            field: "hugepage_limits.page_size",
            ..
        }
    ));
}

#[test]
fn oom_score_out_of_range() {
    let mut case = Case::new();
    case.resources().oom_score_adj = 1001;
    assert_eq!(err(&case), SpecError::OomScoreAdj(1001));
}

#[test]
fn target_pid_namespace_without_target() {
    let mut case = Case::new();
    case.sc().namespace_options = Some(NamespaceOption {
        pid: NamespaceMode::Target as i32,
        target_id: "other".into(),
        ..Default::default()
    });
    assert_eq!(
        err(&case),
        SpecError::TargetPidNamespaceMissing("other".into())
    );
}

#[test]
fn no_command() {
    let mut case = Case::new();
    case.image.cmd.clear();
    assert_eq!(err(&case), SpecError::NoCommand);
}

#[test]
fn relative_working_dir() {
    let mut case = Case::new();
    case.config.working_dir = "app".into();
    assert_eq!(err(&case), SpecError::RelativeWorkingDir("app".into()));
}

#[test]
fn privileged_in_unprivileged_pod() {
    let mut case = Case::new();
    case.sc().privileged = true;
    assert_eq!(err(&case), SpecError::PrivilegedNotAllowed);
}

#[test]
fn seccomp_localhost_missing_or_malformed() {
    let mut case = Case::new();
    case.sc().seccomp = Some(k8s_cri::v1::SecurityProfile {
        profile_type: k8s_cri::v1::security_profile::ProfileType::Localhost as i32,
        localhost_ref: "/etc/seccomp/p.json".into(),
    });
    assert_eq!(
        crust_specgen::localhost_seccomp_path(&case.config),
        Some("/etc/seccomp/p.json".into())
    );
    assert_eq!(
        err(&case),
        SpecError::SeccompProfileMissing("/etc/seccomp/p.json".into())
    );
    case.seccomp_localhost = Some(b"not json".to_vec());
    assert!(matches!(
        err(&case),
        SpecError::SeccompProfileInvalid { .. }
    ));
}

#[test]
#[allow(deprecated)]
fn unknown_legacy_seccomp_profile() {
    let mut case = Case::new();
    case.sc().seccomp_profile_path = "mine".into();
    assert_eq!(
        err(&case),
        SpecError::UnknownProfile {
            field: "seccomp",
            value: "mine".into()
        }
    );
}

#[test]
fn unknown_propagation() {
    let mut case = with_mount("/data", "/srv");
    case.config.mounts[0].propagation = 7;
    assert_eq!(
        err(&case),
        SpecError::UnknownPropagation {
            path: "/data".into(),
            value: 7
        }
    );
}
