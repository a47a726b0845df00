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
                // No monitor holds it and no exit was recorded: it is gone, and how it ended
                // is not known.
                tracing::warn!(container = %record.id, "running container lost its monitor");
                let _ = self.save_announced(&c, |r| {
                    r.state = ContainerState::Exited;
                    r.exit_code = 255;
                    r.reason = "Unknown".into();
                    r.message = "the container's monitor is gone; its exit was not recorded".into();
                    r.finished_at = now_nanos();
                    r.pid = 0;
                    &[ContainerEventType::ContainerStoppedEvent]
                });
                c.exited.send_replace(true);
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
}
