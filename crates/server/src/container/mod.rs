//! Containers: the in-memory index over the store's container records, and the lifecycle
//! steps (create.rs, start.rs, stop.rs, exec.rs, update.rs) that touch rootfs mounts, the OCI
//! runtime and the pod's monitor. The state machine is drawn in `store/src/container.rs`.
//!
//! Locking: the index and each record are std mutexes held only for map lookups and record
//! edits, never across `.await` or a process spawn. Each container has an async `op` lock that
//! serialises its lifecycle operations (Start, Stop, Remove, Update). Exits reported by the
//! monitor are applied without the op lock (a Stop waiting for the exit holds it), through
//! [`Containers::apply_exit`], which is idempotent.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crust_image::ImageManager;
use crust_oci_runtime::Runtime;
use crust_store::{ContainerRecord, ContainerState, Store};
use k8s_cri::v1::ContainerEventType;
use tokio::sync::watch;
use tonic::Status;

use crate::config::{CgroupDriver, Config};
use crate::lifecycle::Events;
use crate::names::Names;
use crate::sandbox::{cgroup, Pods};

mod checkpoint;
mod create;
mod events;
mod exec;
mod host;
mod log;
mod recover;
mod restore;
mod rootfs;
mod start;
mod stats;
mod stop;
mod stream;
mod update;
mod view;

pub use events::ContainerExit;
pub use stats::ContainerReading;
pub use view::{container_info, container_status, list_filter_matches, to_cri_container};

/// One container known to crustd.
pub struct Container {
    pub record: Mutex<ContainerRecord>,
    /// Serialises lifecycle operations on this container.
    pub op: tokio::sync::Mutex<()>,
    /// Becomes true once the container has exited (its exit is in the record).
    exited: watch::Sender<bool>,
    /// The deletion of the container's OCI runtime state, started when it exited (as
    /// containerd deletes the task); RemoveContainer awaits it instead of deleting twice.
    /// The task yields whether the deletion succeeded.
    runtime_delete: Mutex<Option<tokio::task::JoinHandle<bool>>>,
    /// Held from a state change's commit to its event, so that the events of one container
    /// keep the order of its changes (an exit applied from the monitor races StartContainer's
    /// commit). Taken before, never while holding, the record lock.
    announce: Mutex<()>,
}

impl Container {
    fn new(record: ContainerRecord) -> Arc<Container> {
        let exited = record.state == ContainerState::Exited;
        Arc::new(Container {
            record: Mutex::new(record),
            op: tokio::sync::Mutex::new(()),
            exited: watch::channel(exited).0,
            runtime_delete: Mutex::new(None),
            announce: Mutex::new(()),
        })
    }

    pub fn snapshot(&self) -> ContainerRecord {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The container's ID, without copying the rest of its record.
    pub fn id(&self) -> String {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .id
            .clone()
    }
}

/// The result of looking up a container by ID or unique ID prefix.
pub enum Lookup {
    Found(Arc<Container>),
    NotFound,
    Ambiguous(usize),
}

pub struct Containers {
    store: Arc<Store>,
    images: Arc<ImageManager>,
    pods: Arc<Pods>,
    config: Config,
    root: PathBuf,
    runroot: PathBuf,
    runtimes: BTreeMap<String, Runtime>,
    host: host::HostFacts,
    names: Arc<Names>,
    index: Mutex<HashMap<String, Arc<Container>>>,
    /// Lifecycle events for GetContainerEvents.
    events: Arc<Events>,
}

impl Containers {
    /// Opens the container side of crustd: reloads the records, applies exits that happened
    /// while crustd was away, and follows the pods' monitors for exits from now on.
    pub async fn open(
        store: Arc<Store>,
        events: Arc<Events>,
        images: Arc<ImageManager>,
        pods: Arc<Pods>,
        config: Config,
        root: PathBuf,
        runroot: PathBuf,
    ) -> anyhow::Result<Arc<Containers>> {
        use anyhow::Context;
        for dir in [
            root.join("containers"),
            runroot.join("containers"),
            runroot.join(files::CONSOLE_DIR),
        ] {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let runtimes = config
            .runtimes
            .iter()
            .map(|(name, handler)| {
                (
                    name.clone(),
                    Runtime {
                        binary: handler.path.clone(),
                        root: runroot.join("runtime").join(name),
                        systemd_cgroup: config.runtime.cgroup_driver == CgroupDriver::Systemd,
                    },
                )
            })
            .collect();
        let host = host::HostFacts::detect(pods.cgroup_layout().clone());
        let containers = Arc::new(Containers {
            store,
            images,
            pods,
            config,
            root,
            runroot,
            runtimes,
            host,
            names: Arc::new(Names::default()),
            index: Mutex::new(HashMap::new()),
            events,
        });
        containers
            .recover()
            .await
            .context("recovering containers")?;
        containers.follow_exits();
        Ok(containers)
    }

    fn index(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Container>>> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Finds a container by full ID or unique prefix.
    pub fn lookup(&self, id: &str) -> Lookup {
        if id.is_empty() {
            return Lookup::NotFound;
        }
        let index = self.index();
        if let Some(c) = index.get(id) {
            return Lookup::Found(c.clone());
        }
        let matches: Vec<&String> = index.keys().filter(|k| k.starts_with(id)).collect();
        match matches.as_slice() {
            [] => Lookup::NotFound,
            [one] => Lookup::Found(index[*one].clone()),
            many => Lookup::Ambiguous(many.len()),
        }
    }

    /// The container `id`, or NotFound / InvalidArgument (ambiguous prefix) for `rpc`.
    pub fn get(&self, rpc: &str, id: &str) -> Result<Arc<Container>, Status> {
        match self.lookup(id) {
            Lookup::Found(c) => Ok(c),
            Lookup::NotFound => Err(Status::not_found(format!(
                "{rpc}: container {id:?} not found"
            ))),
            Lookup::Ambiguous(n) => Err(Status::invalid_argument(format!(
                "{rpc}: container ID prefix {id:?} matches {n} containers"
            ))),
        }
    }

    /// The running container `id` (full ID and its config), for Exec and Attach; else
    /// NotFound or FailedPrecondition.
    pub fn running(
        &self,
        rpc: &str,
        id: &str,
    ) -> Result<(String, k8s_cri::v1::ContainerConfig), Status> {
        let record = self.get(rpc, id)?.snapshot();
        if record.state != ContainerState::Running {
            return Err(Status::failed_precondition(format!(
                "{rpc}: container {} is not running",
                record.id
            )));
        }
        let config = serde_json::from_value(record.config.clone()).unwrap_or_default();
        Ok((record.id, config))
    }

    /// Every container, in no particular order.
    pub fn all(&self) -> Vec<Arc<Container>> {
        self.index().values().cloned().collect()
    }

    /// The containers of one pod.
    pub fn of_pod(&self, pod_id: &str) -> Vec<Arc<Container>> {
        self.index()
            .values()
            .filter(|c| c.snapshot().pod_id == pod_id)
            .cloned()
            .collect()
    }

    /// Persists a changed record; the store is the truth after a restart.
    fn save(
        &self,
        container: &Container,
        change: impl FnOnce(&mut ContainerRecord),
    ) -> Result<ContainerRecord, Status> {
        let record = {
            let mut r = container.record.lock().unwrap_or_else(|e| e.into_inner());
            change(&mut r);
            r.clone()
        };
        self.store.put_container(&record).map_err(|e| {
            Status::internal(format!("container {}: saving its record: {e}", record.id))
        })?;
        Ok(record)
    }

    /// Persists a change and announces the lifecycle events `change` returns (those of the
    /// transition it made, decided under the record lock), once the change is stored.
    fn save_announced(
        &self,
        container: &Container,
        change: impl FnOnce(&mut ContainerRecord) -> &'static [ContainerEventType],
    ) -> Result<ContainerRecord, Status> {
        let _order = container.announce.lock().unwrap_or_else(|e| e.into_inner());
        let mut kinds: &'static [ContainerEventType] = &[];
        let record = self.save(container, |r| kinds = change(r))?;
        for kind in kinds {
            self.events.container(*kind, &record.id, &record.pod_id);
        }
        Ok(record)
    }

    /// The OCI runtime of a handler name as recorded ("" = the default handler).
    fn runtime(&self, handler: &str) -> Result<&Runtime, Status> {
        let name = if handler.is_empty() {
            self.config.runtime.default_handler.as_str()
        } else {
            handler
        };
        self.runtimes.get(name).ok_or_else(|| {
            Status::failed_precondition(format!("runtime handler {name:?} is not configured"))
        })
    }

    /// The per-container files under the bundle directory.
    fn bundle_file(record: &ContainerRecord, name: &str) -> PathBuf {
        Path::new(&record.bundle_dir).join(name)
    }

    /// The container cgroup's directory for `controller` (v1) or its unified directory.
    fn cgroup_dir(&self, record: &ContainerRecord, controller: &str) -> Option<PathBuf> {
        // With the systemd driver the spec's cgroupsPath is `slice:prefix:name`, not a path.
        let path =
            cgroup::container_cgroup_path(&record.cgroups_path, self.config.runtime.cgroup_driver)?;
        cgroup::controller_dir(&self.host.cgroups, controller, &path)
    }
}

/// Names of the files in a container's bundle directory.
pub(crate) mod files {
    pub const CONFIG: &str = "config.json";
    pub const ROOTFS: &str = "rootfs";
    pub const PID: &str = "container.pid";
    pub const EXIT: &str = "exit.json";
    pub const RUNTIME_LOG: &str = "runtime.log";
    /// Under the run root: console sockets (short paths, for sun_path).
    pub const CONSOLE_DIR: &str = "cs";
    pub const IMAGE_MOUNTS: &str = "image-mounts";
}
