//! Pod sandbox records.
//!
//! Pod sandbox lifecycle (each arrow is one committed write; a crash between writes leaves the
//! earlier state, which start-up reconciliation finishes or rolls back):
//!
//! ```text
//!  RunPodSandbox ── name reserved (memory only) ── monitor + namespaces ── files ── CNI ADD
//!        │                                                                          │
//!        │  any step fails: undo the steps done, release the name, nothing stored   │
//!        v                                                                          v
//!     (nothing)                                                      put_pod: Ready
//!                                                                          │
//!   StopPodSandbox: containers stopped, CNI DEL (network.torn_down) ──> NotReady
//!   pod init or monitor died ──────────────────────────────────────────> NotReady
//!                                                                          │
//!   RemovePodSandbox: Stop, monitor shut down (pins gone), files and cgroup removed,
//!                     delete_pod
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodState {
    Ready,
    NotReady,
}

/// The network a pod was attached to, kept so that DEL uses the very config and result of ADD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodNetwork {
    /// The conflist as loaded at ADD time.
    pub conflist: serde_json::Value,
    /// Where it was loaded from.
    pub file: String,
    /// The final CNI result of ADD.
    pub result: serde_json::Value,
    /// Pod IPs in CNI result order.
    pub ips: Vec<String>,
    /// CNI DEL done; until then a Stop or Remove retries it.
    pub torn_down: bool,
    /// The node's pod CIDRs (UpdateRuntimeConfig) passed as the `ipRanges` capability at ADD,
    /// passed again at DEL (host-local needs a range to release the address).
    #[serde(default)]
    pub pod_cidrs: Vec<String>,
}

/// One pod sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodRecord {
    pub id: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub attempt: u32,
    pub state: PodState,
    /// Unix nanoseconds.
    pub created_at: i64,
    pub runtime_handler: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The CRI PodSandboxConfig as it was given (serde form of the CRI message).
    pub config: serde_json::Value,
    /// Pod namespaces pinned under the run root, by kind (net, ipc, uts, pid); kinds shared with
    /// the node are absent.
    pub namespaces: BTreeMap<String, String>,
    /// The pod's monitor process and its directory (socket, pins) under the run root.
    pub monitor_pid: i32,
    pub run_dir: String,
    /// Per-pod files (hostname, hosts, resolv.conf) under the root.
    pub state_dir: String,
    /// The pod's /dev/shm (a tmpfs under run_dir), or the host's /dev/shm for host IPC.
    pub shm_path: String,
    /// Absolute cgroup directories crustd created for the pod (removed with it).
    pub cgroups_created: Vec<String>,
    /// The pod cgroup (cgroupfs path form, e.g. /kubepods/besteffort/pod1234).
    pub cgroup_parent: String,
    pub network: Option<PodNetwork>,
}

impl PodRecord {
    /// The name kubelet reserves a pod under: one pod per (name, namespace, uid, attempt).
    pub fn name_key(&self) -> String {
        name_key(&self.name, &self.namespace, &self.uid, self.attempt)
    }
}

/// `name_namespace_uid_attempt`, as containerd and CRI-O build the reserved pod name.
pub fn name_key(name: &str, namespace: &str, uid: &str, attempt: u32) -> String {
    format!("{name}_{namespace}_{uid}_{attempt}")
}
