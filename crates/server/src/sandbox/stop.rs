//! StopPodSandbox and RemovePodSandbox. Both are idempotent: an unknown pod, or one already
//! stopped or removed, succeeds. A CNI DEL that fails keeps the pod's network record so the
//! next Stop or Remove retries it: IPs never leak.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crust_network::NetworkList;
use crust_store::{PodRecord, PodState};
use tonic::Status;

use super::{cgroup, Lookup, NameSlot, Pod, Pods};

impl Pods {
    /// StopPodSandbox of `id` (full or unique prefix).
    pub async fn stop(&self, id: &str) -> Result<(), Status> {
        let pod = match self.lookup(id) {
            Lookup::Found(pod) => pod,
            Lookup::NotFound => return Ok(()),
            Lookup::Ambiguous(ids) => return Err(ambiguous("StopPodSandbox", id, &ids)),
        };
        let _op = pod.op.lock().await;
        self.stop_locked(&pod).await
    }

    async fn stop_locked(&self, pod: &Pod) -> Result<(), Status> {
        // NotReady is recorded before the network goes: a crash in between must not leave a
        // pod that recovery reports Ready while its IP is already released (and handed to
        // another pod). A torn-down flag not yet saved only means CNI DEL runs again.
        if pod.snapshot().state == PodState::Ready {
            self.save_not_ready(pod)?;
        }
        self.teardown_network(pod).await
    }

    /// CNI DEL with the config and result of ADD, once.
    async fn teardown_network(&self, pod: &Pod) -> Result<(), Status> {
        let record = pod.snapshot();
        let Some(net) = &record.network else {
            return Ok(());
        };
        if net.torn_down {
            return Ok(());
        }
        let list = NetworkList::from_raw(net.conflist.clone(), PathBuf::from(&net.file))
            .map_err(|e| Status::internal(format!("pod {}: stored CNI config: {e}", record.id)))?;
        let netns = record
            .namespaces
            .get("net")
            .map(PathBuf::from)
            .unwrap_or_default();
        let config: k8s_cri::v1::PodSandboxConfig =
            serde_json::from_value(record.config.clone()).unwrap_or_default();
        let bandwidth = crust_network::Bandwidth::from_annotations(
            &config.annotations.clone().into_iter().collect(),
        )
        .unwrap_or(None);
        let mut attachment = super::run::attachment_for(
            &record.id,
            &netns,
            &record.namespace,
            &record.name,
            &record.uid,
            &config,
            bandwidth,
        );
        attachment.ip_ranges = super::pod_cidr::ip_ranges(&net.pod_cidrs);
        self.cni
            .del(&list, &attachment, Some(&net.result))
            .await
            .map_err(|e| {
                Status::internal(format!(
                    "pod {}: tearing down the pod network (retried on the next stop or remove): {e}",
                    record.id
                ))
            })?;
        self.save(pod, |r| {
            if let Some(n) = &mut r.network {
                n.torn_down = true;
            }
        })
    }

    /// RemovePodSandbox of `id` (full or unique prefix).
    pub async fn remove(&self, id: &str) -> Result<(), Status> {
        let pod = match self.lookup(id) {
            Lookup::Found(pod) => pod,
            Lookup::NotFound => return Ok(()),
            Lookup::Ambiguous(ids) => return Err(ambiguous("RemovePodSandbox", id, &ids)),
        };
        let _op = pod.op.lock().await;
        self.stop_locked(&pod).await?;
        let record = pod.snapshot();
        release(&record).await;
        self.store.delete_pod(&record.id).map_err(|e| {
            Status::internal(format!("pod {}: deleting its record: {e}", record.id))
        })?;
        let mut index = self.index();
        index.pods.remove(&record.id);
        let key = record.name_key();
        if matches!(index.names.get(&key), Some(NameSlot::Created { id, .. }) if *id == record.id) {
            index.names.remove(&key);
        }
        drop(index);
        self.events.pod_deleted(&record);
        tracing::info!(pod = %record.id, "pod sandbox removed");
        Ok(())
    }

    /// Watches the pod's monitor: container exits go to the container side; when the pod init
    /// dies or the monitor goes away, the pod is no longer ready (the watch goes on after the
    /// init's exit: the containers' exits follow it).
    pub(super) fn watch(self: &Arc<Self>, pod: Arc<Pod>) {
        let pods = Arc::downgrade(self);
        tokio::spawn(async move {
            let dir = PathBuf::from(pod.snapshot().run_dir);
            let mut events = match crust_monitor::MonitorClient::connect(&dir).await {
                Ok(client) => match client.watch().await {
                    Ok(events) => {
                        if let Some(pods) = pods.upgrade() {
                            let id = pod.id();
                            let _ = pods
                                .monitor_reports
                                .send(super::MonitorReport::Watching(id));
                        }
                        Some(events)
                    }
                    Err(_) => {
                        Self::monitor_gone(&pods, &pod, "the pod monitor does not answer").await;
                        None
                    }
                },
                Err(_) => {
                    Self::monitor_gone(&pods, &pod, "the pod monitor is gone").await;
                    None
                }
            };
            while let Some(stream) = events.as_mut() {
                match stream.next_event().await {
                    Some(crust_monitor::Event::InitExited { .. }) => {
                        Self::not_ready_from_watch(&pods, &pod, "the pod init exited").await;
                    }
                    Some(crust_monitor::Event::ContainerExited {
                        id,
                        exit_code,
                        signal,
                        finished_at,
                    }) => {
                        if let Some(pods) = pods.upgrade() {
                            let exit = crust_monitor::ContainerExit {
                                exit_code,
                                signal,
                                finished_at,
                            };
                            let _ = pods
                                .monitor_reports
                                .send(super::MonitorReport::Exited(id, exit));
                        }
                    }
                    Some(_) => {}
                    None => {
                        Self::monitor_gone(&pods, &pod, "the pod monitor went away").await;
                        break;
                    }
                }
            }
        });
    }

    /// Returns whether the pod is still known (not removed).
    async fn not_ready_from_watch(pods: &std::sync::Weak<Pods>, pod: &Pod, why: &str) -> bool {
        if let Some(pods) = pods.upgrade() {
            // A Remove under way owns the pod; it is going anyway.
            let _op = pod.op.lock().await;
            if pods.index().pods.contains_key(&pod.id()) {
                pods.mark_not_ready(pod, why);
                return true;
            }
        }
        false
    }

    /// The pod's monitor died (or was killed): the pod is not ready, and the container side
    /// is told, as nothing reaps, logs or reports its containers any more (containerd kills a
    /// container whose shim died).
    async fn monitor_gone(pods: &std::sync::Weak<Pods>, pod: &Pod, why: &str) {
        if Self::not_ready_from_watch(pods, pod, why).await {
            if let Some(pods) = pods.upgrade() {
                let id = pod.id();
                let _ = pods.monitor_reports.send(super::MonitorReport::Gone(id));
            }
        }
    }
}

fn ambiguous(rpc: &str, id: &str, ids: &[String]) -> Status {
    Status::invalid_argument(format!(
        "{rpc}: pod sandbox ID prefix {id:?} matches {} pods",
        ids.len()
    ))
}

/// Everything a pod holds on the node, released: monitor (with its namespace pins), the /dev/shm
/// mount, cgroups crustd made, and its directories.
pub(super) async fn release(record: &PodRecord) {
    let run_dir = PathBuf::from(&record.run_dir);
    shutdown_monitor(&run_dir).await;
    let shm = run_dir.join("shm");
    if Path::new(&record.shm_path) == shm {
        if let Err(e) = crust_sys::unmount_detach(&shm) {
            if e.raw_os_error() != Some(22) && e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %shm.display(), error = %e, "unmounting /dev/shm");
            }
        }
    }
    let created: Vec<PathBuf> = record.cgroups_created.iter().map(PathBuf::from).collect();
    let failed = tokio::task::spawn_blocking(move || cgroup::remove(&created))
        .await
        .unwrap_or_default();
    for (path, e) in failed {
        tracing::warn!(pod = %record.id, path = %path.display(), error = %e, "removing the pod cgroup");
    }
    for dir in [&record.run_dir, &record.state_dir] {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(pod = %record.id, path = %dir, error = %e, "removing pod directory");
            }
        }
    }
}

/// Tells the monitor in `dir` to end the pod (kill its init, unpin its namespaces) and exit.
/// A monitor that is already gone leaves pins behind; they are unmounted here.
pub(super) async fn shutdown_monitor(dir: &Path) {
    let shut = match crust_monitor::MonitorClient::connect(dir).await {
        Ok(client) => client.shutdown().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = shut {
        tracing::debug!(dir = %dir.display(), error = %e, "pod monitor shutdown; cleaning up after it");
        // A monitor that is stuck or gone: kill it, unpin its namespaces, remove its files.
        let dir = dir.to_path_buf();
        let cleaned = tokio::task::spawn_blocking(move || crust_monitor::force_cleanup(&dir)).await;
        if let Ok(Err(e)) = cleaned {
            tracing::warn!(error = %e, "cleaning up after a pod monitor");
        }
    }
}
