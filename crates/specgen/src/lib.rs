//! CRI container config -> OCI runtime spec, as pure functions.
//!
//! [`generate`] turns a CRI `ContainerConfig` plus facts about the pod ([`Sandbox`]), the image
//! ([`ImageConfig`], its `/etc/passwd` and `/etc/group`) and the host ([`Host`]) into the
//! `config.json` of the container's bundle and the user the process will run as. Nothing here
//! touches the filesystem or other processes: whatever needs reading (passwd files, a Localhost
//! seccomp profile, the host's device nodes, a target container's pid namespace) is read by the
//! caller and passed in [`Input`]. That keeps the crate testable with golden files
//! (`tests/golden/*.json`; `UPDATE_GOLDEN=1 cargo test -p crust-specgen` rewrites them).
//!
//! The behaviour follows containerd's CRI plugin where Kubernetes leaves a choice:
//! - process args as Kubernetes defines them ([`process`]);
//! - user resolution through the image's passwd/group, additional gids always explicit
//!   ([`user`]);
//! - default mounts, CRI mounts sorted parents first, image volumes read-only ([`mounts`]);
//! - devices, cgroup resources and the cgroups path ([`resources`]);
//! - namespaces joined by path from the pod's pins ([`namespaces`]);
//! - capabilities, masked/readonly paths, AppArmor ([`security`]) and seccomp ([`seccomp`]).
//!
//! Other helpers: [`check_propagation`] (given `/proc/self/mountinfo` text, is a host path's
//! mount shared/slave enough for the requested propagation), [`stop_signal`] (the image's
//! `StopSignal` as a number), [`localhost_seccomp_path`] (which file the caller must read), and
//! [`to_json`] (deterministic JSON for `config.json`: `oci-spec` keeps capabilities and
//! annotations in hash containers).
//!
//! All [`SpecError`]s are caller errors except [`SpecError::Internal`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_cri::v1::{ContainerConfig, PodSandboxConfig};
use oci_spec::runtime::{Linux, Process, Root, Spec};

mod error;
pub mod mounts;
pub mod namespaces;
pub mod process;
pub mod resources;
pub mod seccomp;
pub mod security;
pub mod user;

pub use error::SpecError;
pub use mounts::{check_propagation, MountPropagation};
pub use process::stop_signal;
pub use seccomp::{localhost_seccomp_path, Arch};
pub use user::ResolvedUser;

/// Everything [`generate`] needs; the caller gathers the impure parts.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub container_id: &'a str,
    pub config: &'a ContainerConfig,
    pub sandbox_id: &'a str,
    pub sandbox_config: &'a PodSandboxConfig,
    pub sandbox: Sandbox,
    pub image: ImageConfig,
    /// The image's name, for the `io.kubernetes.cri.image-name` annotation.
    pub image_ref: String,
    /// Absolute path of the mounted rootfs (`spec.root.path`).
    pub rootfs: PathBuf,
    /// The image rootfs' `/etc/passwd`, read by the caller (`None` when absent).
    pub etc_passwd: Option<String>,
    /// The image rootfs' `/etc/group`, read by the caller (`None` when absent).
    pub etc_group: Option<String>,
    /// `Mount.image.image` (as given in the request) -> the host directory where the caller
    /// mounted that image read-only.
    pub image_mounts: BTreeMap<String, PathBuf>,
    /// For pid namespace mode TARGET: the target container's `/proc/<pid>/ns/pid`.
    pub target_pid_ns: Option<PathBuf>,
    /// Contents of the Localhost seccomp profile file (see [`localhost_seccomp_path`]).
    pub seccomp_localhost: Option<Vec<u8>>,
    pub host: Host,
}

/// Paths of the things a pod's containers share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandbox {
    /// Namespace pins by kind ("net", "ipc", "uts", "pid"); an absent kind is the node's.
    pub namespaces: BTreeMap<String, PathBuf>,
    pub hostname: String,
    pub hostname_path: PathBuf,
    pub hosts_path: PathBuf,
    pub resolv_path: PathBuf,
    pub shm_path: PathBuf,
    /// The pod's cgroup parent in cgroupfs path form (`/kubepods/burstable/pod<uid>`); may be
    /// empty, or a systemd slice name.
    pub cgroup_parent: String,
}

/// The parts of the image's config JSON that matter here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub stop_signal: String,
}

/// How crustd drives cgroups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CgroupDriver {
    #[default]
    Cgroupfs,
    Systemd,
}

/// Facts about the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub cgroup_driver: CgroupDriver,
    /// The controllers live in cgroup v2 (unified hierarchy).
    pub cgroup_v2: bool,
    /// The memory controller accounts swap (`memory.memsw.*` or `memory.swap.max` exist).
    pub swap_accounting: bool,
    /// crustd's own oom_score_adj: without CAP_SYS_RESOURCE a child cannot go below it.
    pub oom_score_adj: i32,
    pub apparmor: bool,
    /// Kernel (mount_setattr) and OCI runtime support the "rro" mount option.
    pub recursive_read_only: bool,
    /// Every host device node (for privileged containers and device lookups).
    pub devices: Vec<HostDevice>,
    /// The architecture the default seccomp profile is built for.
    pub arch: Arch,
    /// The kernel serves x32 syscalls: the default seccomp profile covers x32 only then.
    pub x32_syscalls: bool,
    /// crustd's own bounding set (`CAP_*` names): what privileged containers and `add: ALL`
    /// get. `None`: every capability the kernel knows.
    pub capabilities: Option<Vec<String>>,
}

impl Default for Host {
    fn default() -> Self {
        Host {
            cgroup_driver: CgroupDriver::Cgroupfs,
            cgroup_v2: true,
            swap_accounting: false,
            oom_score_adj: 0,
            apparmor: false,
            recursive_read_only: false,
            devices: Vec::new(),
            arch: Arch::native(),
            x32_syscalls: true,
            capabilities: None,
        }
    }
}

/// The kind of a device node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Char,
    Block,
}

/// One device node of the host, as the caller found it (stat of the node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDevice {
    pub path: PathBuf,
    pub kind: DeviceKind,
    pub major: i64,
    pub minor: i64,
    /// Permission bits of the node (`st_mode & 0o7777`).
    pub file_mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// What [`generate`] produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub spec: Spec,
    pub user: ResolvedUser,
    /// Things requested that this host cannot do but that are safe to run without
    /// (AppArmor asked for on a host without it).
    pub warnings: Vec<String>,
}

/// The OCI version written to `config.json`.
pub const OCI_VERSION: &str = "1.0.2";

/// Builds the OCI runtime spec for one container. Pure: see the crate docs.
pub fn generate(input: &Input) -> Result<Output, SpecError> {
    let sc = security::context(input.config);
    let privileged = sc.is_some_and(|s| s.privileged);
    if privileged && !security::sandbox_privileged(input.sandbox_config) {
        return Err(SpecError::PrivilegedNotAllowed);
    }
    let mut warnings = Vec::new();

    let args = process::args(input.config, &input.image)?;
    let env = process::env(input.config, &input.image, &input.sandbox.hostname);
    let cwd = process::cwd(input.config, &input.image)?;
    let resolved = user::resolve(
        sc,
        &input.image.user,
        input.etc_passwd.as_deref(),
        input.etc_group.as_deref(),
    )?;

    let caps = security::capabilities(sc, privileged, input.host.capabilities.as_deref())?;
    let mut process = Process::default();
    process.set_terminal(Some(input.config.tty));
    process.set_console_size(None);
    process.set_args(Some(args));
    process.set_env(Some(env));
    process.set_cwd(cwd);
    process.set_user(resolved.oci_user());
    process.set_rlimits(None);
    process.set_no_new_privileges(Some(sc.is_some_and(|s| s.no_new_privs)));
    process.set_capabilities(Some(caps.to_oci()));
    process.set_apparmor_profile(security::apparmor(
        sc,
        privileged,
        &input.host,
        &mut warnings,
    )?);

    let readonly_rootfs = sc.is_some_and(|s| s.readonly_rootfs);
    let mut root = Root::default();
    root.set_path(input.rootfs.clone());
    root.set_readonly(Some(readonly_rootfs));

    let mounts = mounts::build(input, privileged, readonly_rootfs)?;

    let mut linux = Linux::default();
    linux.set_uid_mappings(None);
    linux.set_gid_mappings(None);
    linux.set_sysctl(None);
    linux.set_rootfs_propagation(mounts.rootfs_propagation.clone());
    let res = resources::build(input, privileged)?;
    process.set_oom_score_adj(res.oom_score_adj);
    linux.set_resources(Some(res.resources));
    linux.set_devices(if res.devices.is_empty() {
        None
    } else {
        Some(res.devices)
    });
    linux.set_cgroups_path(Some(resources::cgroups_path(
        &input.host,
        &input.sandbox.cgroup_parent,
        input.container_id,
    )?));
    linux.set_namespaces(Some(namespaces::build(input)?));
    let (masked, readonly) = security::masked_and_readonly_paths(sc, privileged);
    linux.set_masked_paths(masked);
    linux.set_readonly_paths(readonly);
    linux.set_seccomp(seccomp::build(
        sc,
        privileged,
        &caps,
        input.host.arch,
        input.host.x32_syscalls,
        input.seccomp_localhost.as_deref(),
    )?);

    let mut spec = Spec::default();
    spec.set_version(OCI_VERSION.to_string());
    spec.set_hostname(None);
    spec.set_root(Some(root));
    spec.set_mounts(Some(mounts.mounts));
    spec.set_process(Some(process));
    spec.set_annotations(Some(annotations(input)));
    spec.set_linux(Some(linux));
    spec.set_hooks(None);

    Ok(Output {
        spec,
        user: resolved,
        warnings,
    })
}

/// Annotation keys containerd sets on every container, which tools (and NRI plugins) read.
pub mod annotation {
    pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
    pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
    pub const SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
    pub const SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
    pub const SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";
    pub const CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
    pub const IMAGE_NAME: &str = "io.kubernetes.cri.image-name";
}

fn annotations(input: &Input) -> std::collections::HashMap<String, String> {
    let mut out: std::collections::HashMap<String, String> = input
        .config
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let meta = input.sandbox_config.metadata.clone().unwrap_or_default();
    let name = input
        .config
        .metadata
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default();
    for (k, v) in [
        (annotation::CONTAINER_TYPE, "container".to_string()),
        (annotation::SANDBOX_ID, input.sandbox_id.to_string()),
        (annotation::SANDBOX_NAME, meta.name),
        (annotation::SANDBOX_NAMESPACE, meta.namespace),
        (annotation::SANDBOX_UID, meta.uid),
        (annotation::CONTAINER_NAME, name),
        (annotation::IMAGE_NAME, input.image_ref.clone()),
    ] {
        out.insert(k.to_string(), v);
    }
    out
}

/// The spec as pretty JSON with a stable order: object keys sorted, capability sets sorted
/// (`oci-spec` holds them in `HashSet`s and annotations in a `HashMap`). Write this as the
/// bundle's `config.json` so identical inputs give identical files.
pub fn to_json(spec: &Spec) -> Result<String, SpecError> {
    let value = serde_json::to_value(spec).map_err(|e| SpecError::Internal(e.to_string()))?;
    let value = canonical(value);
    serde_json::to_string_pretty(&value).map_err(|e| SpecError::Internal(e.to_string()))
}

fn canonical(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out = serde_json::Map::new();
            for (k, v) in entries {
                let v = match (k.as_str(), v) {
                    (
                        "bounding" | "effective" | "inheritable" | "permitted" | "ambient",
                        Value::Array(mut a),
                    ) => {
                        a.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
                        Value::Array(a)
                    }
                    (_, v) => canonical(v),
                };
                out.insert(k, v);
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(canonical).collect()),
        v => v,
    }
}
