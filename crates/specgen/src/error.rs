//! The one error type of spec generation.
//!
//! Every variant except [`SpecError::Internal`] is the caller's fault (a request, image or
//! host fact that cannot be turned into a spec): the server maps them to `InvalidArgument`.
//! `Internal` means this crate built something `oci-spec` rejected, a bug here.

use std::path::PathBuf;

/// Why a spec could not be generated. Each variant names the field or value at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error(
        "container has no command: command, args, image entrypoint and image cmd are all empty"
    )]
    NoCommand,
    #[error("working directory {0:?} is not absolute")]
    RelativeWorkingDir(String),
    #[error("{field} {path:?} is not an absolute path")]
    RelativePath { field: &'static str, path: String },
    #[error("{field} {path:?} has a \"..\" component")]
    DotDotPath { field: &'static str, path: String },
    #[error("user {0:?} not found in the image's /etc/passwd")]
    UnknownUser(String),
    #[error("group {0:?} not found in the image's /etc/group")]
    UnknownGroup(String),
    #[error("{field} {value} is not a valid id")]
    InvalidId { field: &'static str, value: i64 },
    #[error("image user {0:?} is malformed")]
    InvalidImageUser(String),
    #[error(
        "mount {path:?}: recursive read-only is not supported by this host's kernel or runtime"
    )]
    RecursiveReadOnlyUnsupported { path: String },
    #[error("mount {path:?}: recursive read-only requires readonly and private propagation")]
    RecursiveReadOnlyInvalid { path: String },
    #[error("mount {path:?}: unknown propagation {value}")]
    UnknownPropagation { path: String, value: i32 },
    #[error("mount {path:?}: id-mapped mounts are not supported")]
    IdMappedMount { path: String },
    #[error("image volume {image:?} was not mounted by the caller")]
    ImageVolumeMissing { image: String },
    #[error("device {path:?}: permissions {permissions:?} are not a non-empty subset of \"rwm\"")]
    DevicePermissions { path: String, permissions: String },
    #[error("device {0:?} is not a known host device")]
    UnknownDevice(String),
    #[error("resources: {field} {value} is negative")]
    NegativeResource { field: &'static str, value: i64 },
    #[error("resources: {field} {value:?} is invalid")]
    InvalidResource { field: &'static str, value: String },
    #[error(
        "resources: memory_swap_limit_in_bytes {swap} is below memory_limit_in_bytes {memory}"
    )]
    SwapBelowMemory { swap: i64, memory: i64 },
    #[error("resources: oom_score_adj {0} is outside -1000..=1000")]
    OomScoreAdj(i64),
    #[error("resources: unified cgroup settings need cgroup v2 (key {0:?})")]
    UnifiedOnV1(String),
    #[error("cgroup parent {0:?} cannot be used with the systemd cgroup driver")]
    InvalidCgroupParent(String),
    #[error("namespace mode {0} is unknown")]
    UnknownNamespaceMode(i32),
    #[error("pid namespace mode TARGET (target {0:?}) needs the target's pid namespace path")]
    TargetPidNamespaceMissing(String),
    #[error("capability {0:?} is unknown")]
    UnknownCapability(String),
    #[error("privileged container in a non-privileged pod sandbox")]
    PrivilegedNotAllowed,
    #[error("{field} profile type {value} is unknown")]
    UnknownProfileType { field: &'static str, value: i32 },
    #[error("{field} profile {value:?} is unknown")]
    UnknownProfile { field: &'static str, value: String },
    #[error("seccomp localhost profile {0:?} was not read by the caller")]
    SeccompProfileMissing(String),
    #[error("seccomp localhost profile {path:?} is malformed: {reason}")]
    SeccompProfileInvalid { path: String, reason: String },
    #[error("stop signal {0:?} is unknown")]
    UnknownSignal(String),
    #[error("mount {mount_point:?} holding {host_path:?} is not a shared mount (needed for bidirectional propagation)")]
    PropagationNotShared {
        host_path: PathBuf,
        mount_point: PathBuf,
    },
    #[error("mount {mount_point:?} holding {host_path:?} is neither shared nor slave (needed for host-to-container propagation)")]
    PropagationNotSlave {
        host_path: PathBuf,
        mount_point: PathBuf,
    },
    #[error("no mount in mountinfo holds {0:?}")]
    NoMountFor(PathBuf),
    #[error("internal: {0}")]
    Internal(String),
}

impl SpecError {
    /// True for errors the request (or image, or host) caused; false only for `Internal`.
    pub fn is_caller_error(&self) -> bool {
        !matches!(self, SpecError::Internal(_))
    }
}
