//! Container records.
//!
//! Container lifecycle (each arrow is one committed write; what the node holds for a state is
//! listed under it):
//!
//! ```text
//!  CreateContainer ── name reserved (memory only) ── rootfs mounted ── config.json written
//!        │                                                                  │ put_container
//!        │  any step fails: undo, release the name, nothing stored          v
//!        v                                                               Created
//!     (nothing)                                       (rootfs, bundle; no process)
//!                                                                           │ StartContainer:
//!                       the monitor runs `<runtime> run --detach` with its stdio
//!                  start fails ──> Exited (exit code 128, reason StartError) │
//!                                                                           v
//!                                                                        Running
//!                                                       (runtime state, process, monitor fds)
//!                                                                           │
//!   the process exits (monitor writes exit.json, sends container_exited) ──>│
//!   StopContainer: stop signal, SIGKILL after the timeout ─────────────────>│
//!                                                                           v
//!                                                                        Exited
//!                                                                           │
//!   RemoveContainer: kill if running, runtime delete, unmount rootfs, directories, delete
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
    Unknown,
}

/// The user a container's process runs as, as resolved at creation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub username: String,
}

/// One container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub pod_id: String,
    pub name: String,
    pub attempt: u32,
    pub state: ContainerState,
    /// Unix nanoseconds; 0 while it has not happened.
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    /// The image as the request named it.
    pub image: String,
    /// The image ID (config digest).
    pub image_id: String,
    /// A repo digest of the image when it has one, else its ID.
    pub image_ref: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The CRI ContainerConfig as it was given (serde form of the CRI message).
    pub config: serde_json::Value,
    /// The CRI LinuxContainerResources in force (serde form), updated by
    /// UpdateContainerResources.
    pub resources: serde_json::Value,
    pub runtime_handler: String,
    /// `<runroot>/containers/<id>`: bundle (config.json, rootfs mount point), pid and exit
    /// files, the runtime's log.
    pub bundle_dir: String,
    /// `<root>/containers/<id>`: the writable layer (upper, work).
    pub state_dir: String,
    /// Mount points crustd made for the container (the rootfs and image volumes), unmounted
    /// on removal, innermost last.
    pub mounts: Vec<String>,
    /// The CRI log file (absolute), or empty.
    pub log_path: String,
    /// The container's init pid while it runs.
    pub pid: i32,
    /// The signal StopContainer sends first.
    pub stop_signal: i32,
    /// The container cgroup (the spec's cgroupsPath).
    pub cgroups_path: String,
    /// Diff IDs of the image layers the container's mounts use (its image and image volumes):
    /// image garbage collection keeps them while the container exists, even if the image is
    /// removed.
    #[serde(default)]
    pub layers: Vec<String>,
    pub user: ContainerUser,
    /// For a container created from a checkpoint archive: the extracted archive (its CRIU
    /// images under `checkpoint/`), which StartContainer restores instead of starting anew.
    #[serde(default)]
    pub restore_from: String,
}

impl ContainerRecord {
    /// The name kubelet reserves a container under within its pod.
    pub fn name_key(&self) -> String {
        container_name_key(&self.pod_id, &self.name, self.attempt)
    }
}

/// `name_attempt` within a pod: one container per (pod, name, attempt).
pub fn container_name_key(pod_id: &str, name: &str, attempt: u32) -> String {
    format!("{pod_id}/{name}_{attempt}")
}
