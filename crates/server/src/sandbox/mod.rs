//! Pod sandboxes: the in-memory index over the store's pod records, name reservation, and the
//! lifecycle steps (run.rs, stop.rs) that touch monitors, namespaces, CNI and cgroups.
//!
//! Locking: the index lock is a std mutex held only for map lookups, never across `.await` or
//! a process spawn. Each pod has an async `op` lock that serialises its lifecycle operations
//! (Stop, Remove, the watcher's state change) so they never interleave.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crust_network::Cni;
use crust_store::{PodRecord, PodState, Store};
use tokio::sync::watch;
use tonic::Status;

use crate::config::Config;

pub mod cgroup;
pub mod files;
mod pod_cidr;
mod portforward;
mod recover;
mod run;
mod stats;
mod stop;
pub mod sysctl;
mod view;

pub use stats::{netns_path, network_usage, PodReading, DEFAULT_INTERFACE};
pub use view::{list_filter_matches, pod_info, pod_sandbox, pod_status};

/// Outcome of a RunPodSandbox, shared with retries that arrive while it is under way.
type RunOutcome = Option<Result<String, Status>>;

enum NameSlot {
    /// A RunPodSandbox is creating the pod; a retry waits for it.
    Creating(watch::Receiver<RunOutcome>),
    /// The pod exists. `claimed` is false while no caller has been given its ID (the request
    /// that created it was cancelled, as when kubelet's deadline passes): the next
    /// RunPodSandbox with the same name gets it instead of a duplicate.
    Created { id: String, claimed: bool },
}

/// One pod sandbox known to crustd.
pub struct Pod {
    pub record: Mutex<PodRecord>,
    /// Serialises lifecycle operations on this pod.
    pub op: tokio::sync::Mutex<()>,
}

impl Pod {
    pub fn snapshot(&self) -> PodRecord {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The pod's ID, without copying the rest of its record.
    pub fn id(&self) -> String {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .id
            .clone()
    }
}

#[derive(Default)]
struct Index {
    pods: HashMap<String, Arc<Pod>>,
    names: HashMap<String, NameSlot>,
}

pub struct Pods {
    store: Arc<Store>,
    config: Config,
    root: PathBuf,
    runroot: PathBuf,
    cni: Cni,
    cgroups: cgroup::Layout,
    monitor_binary: PathBuf,
    index: Mutex<Index>,
    /// What the monitors report (container exits, watches up, monitors gone), for the
    /// container side.
    monitor_reports: MonitorReportSender,
    monitor_reports_rx: Mutex<Option<MonitorReportReceiver>>,
    /// The node's pod CIDRs (UpdateRuntimeConfig), for pods created from now on.
    pod_cidrs: Mutex<Vec<String>>,
    /// Lifecycle events for GetContainerEvents.
    events: Arc<crate::lifecycle::Events>,
}

/// What the pods' watchers tell the container side.
pub enum MonitorReport {
    /// A container's exit, as its pod monitor recorded it: (container ID, exit).
    Exited(String, crust_monitor::ContainerExit),
    /// The pod's monitor is gone (it died, or was killed): nothing runs, logs or reaps the
    /// pod's containers any more.
    Gone(String),
    /// The pod's watch is established: exits from now on are reported, and those the monitor
    /// recorded before (between crustd's start-up probe and the watch) are in exit files.
    Watching(String),
}

type MonitorReportSender = tokio::sync::mpsc::UnboundedSender<MonitorReport>;
/// Where the container side receives what the pod monitors report.
pub type MonitorReportReceiver = tokio::sync::mpsc::UnboundedReceiver<MonitorReport>;

/// The result of looking up a pod by ID or unique ID prefix.
pub enum Lookup {
    Found(Arc<Pod>),
    NotFound,
    Ambiguous(Vec<String>),
}

impl Pods {
    /// Opens the pod side of crustd and reconnects to the monitors of pods from earlier runs.
    pub async fn open(
        store: Arc<Store>,
        events: Arc<crate::lifecycle::Events>,
        config: Config,
        root: PathBuf,
        runroot: PathBuf,
    ) -> anyhow::Result<Arc<Pods>> {
        use anyhow::Context;
        let cni = Cni::new(
            config.network.conf_dir.clone(),
            config.network.bin_dirs.clone(),
        );
        let cgroups = cgroup::Layout::detect().context("reading the cgroup layout")?;
        let monitor_binary = monitor_binary(&config)?;
        for dir in [root.join("pods"), runroot.join("pods")] {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let pod_cidrs = pod_cidr::load(&root)?;
        let (monitor_reports, rx) = tokio::sync::mpsc::unbounded_channel();
        let pods = Arc::new(Pods {
            monitor_reports,
            monitor_reports_rx: Mutex::new(Some(rx)),
            pod_cidrs: Mutex::new(pod_cidrs),
            events,
            store,
            config,
            root,
            runroot,
            cni,
            cgroups,
            monitor_binary,
            index: Mutex::new(Index::default()),
        });
        pods.recover().await.context("recovering pods")?;
        Ok(pods)
    }

    /// What the monitors report (once: the container side takes it).
    pub fn take_monitor_reports(&self) -> Option<MonitorReportReceiver> {
        self.monitor_reports_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Where the node's cgroup hierarchies are.
    pub fn cgroup_layout(&self) -> &cgroup::Layout {
        &self.cgroups
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Finds a pod by full ID or unique prefix, as containerd's truncated-ID index does.
    pub fn lookup(&self, id: &str) -> Lookup {
        if id.is_empty() {
            return Lookup::NotFound;
        }
        let index = self.index();
        if let Some(pod) = index.pods.get(id) {
            return Lookup::Found(pod.clone());
        }
        let matches: Vec<&String> = index.pods.keys().filter(|k| k.starts_with(id)).collect();
        match matches.as_slice() {
            [] => Lookup::NotFound,
            [one] => Lookup::Found(index.pods[*one].clone()),
            many => Lookup::Ambiguous(many.iter().map(|s| s.to_string()).collect()),
        }
    }

    /// Every pod, in no particular order.
    pub fn all(&self) -> Vec<Arc<Pod>> {
        self.index().pods.values().cloned().collect()
    }

    /// Persists a changed record; the store is the truth after a restart.
    fn save(&self, pod: &Pod, change: impl FnOnce(&mut PodRecord)) -> Result<(), Status> {
        let record = {
            let mut r = pod.record.lock().unwrap_or_else(|e| e.into_inner());
            change(&mut r);
            r.clone()
        };
        self.store
            .put_pod(&record)
            .map_err(|e| Status::internal(format!("pod {}: saving its record: {e}", record.id)))
    }

    fn mark_not_ready(&self, pod: &Pod, why: &str) {
        let id = pod.snapshot().id;
        if pod.snapshot().state == PodState::Ready {
            tracing::info!(pod = %id, why, "pod sandbox is no longer ready");
            if let Err(e) = self.save_not_ready(pod) {
                tracing::warn!(pod = %id, error = %e.message(), "saving pod state");
            }
        }
    }

    /// Ready → NotReady, stored, then announced (STOPPED: once, by whoever made the change).
    /// The caller holds the pod's op lock (or recovers it before anyone else can).
    fn save_not_ready(&self, pod: &Pod) -> Result<(), Status> {
        let mut changed = false;
        self.save(pod, |r| {
            changed = r.state == PodState::Ready;
            r.state = PodState::NotReady;
        })?;
        if changed {
            let id = pod.snapshot().id;
            self.events
                .pod(k8s_cri::v1::ContainerEventType::ContainerStoppedEvent, &id);
        }
        Ok(())
    }
}

/// The monitor binary: the configured path, else `crust-monitor` next to crustd, else $PATH.
fn monitor_binary(config: &Config) -> anyhow::Result<PathBuf> {
    if !config.runtime.monitor_path.as_os_str().is_empty() {
        return Ok(config.runtime.monitor_path.clone());
    }
    if let Ok(exe) = std::env::current_exe() {
        let beside = exe.with_file_name("crust-monitor");
        if beside.exists() {
            return Ok(beside);
        }
    }
    for dir in std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let candidate = dir.join("crust-monitor");
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    anyhow::bail!("crust-monitor not found next to crustd or in PATH; set [runtime] monitor_path")
}

/// A random 64-hex-digit ID, as containerd and CRI-O give pods and containers.
pub(crate) fn new_id() -> String {
    let mut bytes = [0u8; 32];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        // /dev/urandom always exists on Linux; this fallback only keeps IDs unique.
        let nanos = crate::service::now_nanos() as u128;
        bytes[..16].copy_from_slice(&nanos.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
