//! Start-up: containers from the store are reloaded; those that exited while crustd was away
//! get the exit their monitor recorded; running ones whose monitor is gone (or whose exit was
//! never recorded, as after a reboot) are reported exited with reason Unknown-class; created
//! ones the monitor runs (a start interrupted before its commit) are running;
//! container directories without a record (a CreateContainer that crashed midway) are
//! removed.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use crust_store::ContainerState;
use k8s_cri::v1::ContainerEventType;

use super::{files, rootfs, Container, Containers};
use crate::service::now_nanos;

impl Containers {
    pub(super) async fn recover(self: &Arc<Self>) -> anyhow::Result<()> {
        let records = self.store.list_containers()?;
        let known: HashSet<String> = records.iter().map(|r| r.id.clone()).collect();
        for record in records {
            let c = Container::new(record.clone());
            self.index().insert(record.id.clone(), c.clone());
            self.names.insert_claimed(&record.name_key(), &record.id);
            if !matches!(
                record.state,
                ContainerState::Running | ContainerState::Created
            ) {
                continue;
            }
            if let Some(exit) = Self::exit_file(&record) {
                self.apply_exit(&c, exit);
                continue;
            }
            let monitor_dir = match self.pods.lookup(&record.pod_id) {
                crate::sandbox::Lookup::Found(pod) => Some(pod.snapshot().run_dir),
                _ => None,
            };
            let running_pid = match &monitor_dir {
                Some(dir) => crust_monitor::probe(Path::new(dir))
                    .await
                    .ok()
                    .and_then(|s| {
                        s.containers
                            .iter()
                            .find(|x| x.id == record.id)
                            .map(|x| x.pid)
                    }),
                None => None,
            };
            if record.state == ContainerState::Created {
                // A StartContainer that crashed between the runtime's start and its commit:
                // the monitor runs the container, so it is running.
                if let Some(pid) = running_pid {
                    tracing::info!(container = %record.id, "container started before the restart");
                    let _ = self.save_announced(&c, |r| {
                        r.state = ContainerState::Running;
                        r.pid = pid;
                        r.started_at = now_nanos();
                        &[ContainerEventType::ContainerStartedEvent]
                    });
                }
                continue;
            }
            if running_pid.is_none() {
                // No monitor holds it and no exit was recorded: nothing reaps or logs it any
                // more. Whatever is left of it is killed (a container in a pid namespace of
                // its own outlives its monitor); after a reboot nothing is.
                self.end_orphan(&c).await;
            }
        }
        if let Ok(entries) = std::fs::read_dir(self.runroot.join("containers")) {
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().to_string();
                if known.contains(&id) {
                    continue;
                }
                tracing::warn!(container = %id, "removing a container whose creation was interrupted");
                let path = entry.path();
                if let Ok(mounts) = std::fs::read_dir(path.join(files::IMAGE_MOUNTS)) {
                    for m in mounts.flatten() {
                        let _ = rootfs::unmount(&m.path());
                    }
                }
                let _ = rootfs::unmount(&path.join(files::ROOTFS));
                let _ = std::fs::remove_dir_all(&path);
            }
        }
        if let Ok(entries) = std::fs::read_dir(self.root.join("containers")) {
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().to_string();
                if !known.contains(&id) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        Ok(())
    }

    /// The pod's monitor went away while crustd runs: every running container of the pod is
    /// ended (see [`Containers::end_orphan`]).
    pub(super) async fn monitor_gone(&self, pod_id: &str) {
        for c in self.of_pod(pod_id) {
            let _op = c.op.lock().await;
            // A RemoveContainer that held the lock may have removed it meanwhile.
            if self.index().contains_key(&c.id()) {
                self.end_orphan(&c).await;
            }
        }
    }

    /// A running container whose monitor is gone: its exit, if the monitor recorded one;
    /// else it is killed and deleted through the OCI runtime, as containerd does when a
    /// container's shim dies, and reported exited with 137 (128 + SIGKILL). When the runtime
    /// does not know it either (its state went with a reboot), how it ended is not known:
    /// 255, reason Unknown. The caller holds the op lock, or recovers before anyone can.
    pub(super) async fn end_orphan(&self, c: &Container) {
        let record = c.snapshot();
        if record.state != ContainerState::Running {
            return;
        }
        if let Some(exit) = Self::exit_file(&record) {
            self.apply_exit(c, exit);
            return;
        }
        let mut known = false;
        if let Ok(runtime) = self.runtime(&record.runtime_handler) {
            known = !matches!(runtime.state(&record.id).await, Err(e) if e.is_not_found());
            if known {
                if let Err(e) = runtime.kill(&record.id, 9, true).await {
                    tracing::debug!(container = %record.id, error = %format!("{e:#}"), "SIGKILL of an orphan");
                }
                if let Err(e) = runtime.delete(&record.id, true).await {
                    tracing::warn!(container = %record.id, error = %format!("{e:#}"), "deleting an orphaned container");
                }
            }
        }
        tracing::warn!(container = %record.id, killed = known, "running container lost its monitor");
        let _ = self.save_announced(c, |r| {
            if r.state == ContainerState::Exited {
                return &[];
            }
            r.state = ContainerState::Exited;
            if known {
                r.exit_code = 128 + 9;
                r.reason = "Error".into();
                r.message = "the container's pod monitor died; the container was killed".into();
            } else {
                r.exit_code = 255;
                r.reason = "Unknown".into();
                r.message = "the container's monitor is gone; its exit was not recorded".into();
            }
            r.finished_at = now_nanos();
            r.pid = 0;
            &[ContainerEventType::ContainerStoppedEvent]
        });
        c.exited.send_replace(true);
    }
}
