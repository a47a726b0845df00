//! StopContainer and RemoveContainer. Both are idempotent: an unknown container, or one
//! already stopped or removed, succeeds.

use std::path::Path;
use std::time::Duration;

use crust_store::ContainerState;
use k8s_cri::v1::ContainerEventType;
use tonic::Status;

use super::{files, rootfs, Container, Containers, Lookup};

/// How long a SIGKILLed container may take to be reported gone.
const KILL_WAIT: Duration = Duration::from_secs(10);
const SIGKILL: i32 = 9;

impl Containers {
    /// StopContainer of `id` (full or unique prefix) with `timeout` seconds of grace.
    pub async fn stop(&self, id: &str, timeout: i64) -> Result<(), Status> {
        let c = match self.lookup(id) {
            Lookup::Found(c) => c,
            Lookup::NotFound => return Ok(()),
            Lookup::Ambiguous(n) => {
                return Err(Status::invalid_argument(format!(
                    "StopContainer: container ID prefix {id:?} matches {n} containers"
                )))
            }
        };
        let _op = c.op.lock().await;
        self.stop_locked(&c, Duration::from_secs(timeout.max(0) as u64))
            .await
    }

    /// The stop signal, then SIGKILL once `grace` has passed (at once when it is zero).
    pub(super) async fn stop_locked(&self, c: &Container, grace: Duration) -> Result<(), Status> {
        let record = c.snapshot();
        if record.state != ContainerState::Running {
            return Ok(());
        }
        if let Some(exit) = Self::exit_file(&record) {
            self.apply_exit(c, exit);
            return Ok(());
        }
        if self.monitor_is_gone(&record.pod_id) {
            // No exit would ever be reported: kill it and record that here.
            self.end_orphan(c).await;
            return Ok(());
        }
        let runtime = self.runtime(&record.runtime_handler)?;
        if !grace.is_zero() && record.stop_signal != SIGKILL {
            tracing::info!(container = %record.id, signal = record.stop_signal, "stopping container");
            if let Err(e) = runtime.kill(&record.id, record.stop_signal, false).await {
                tracing::debug!(container = %record.id, error = %format!("{e:#}"), "stop signal");
            }
            if self.wait_stopped(c, grace).await {
                return Ok(());
            }
        }
        // `all`: every process of the container, also those in a shared pod pid namespace.
        if let Err(e) = runtime.kill(&record.id, SIGKILL, true).await {
            tracing::debug!(container = %record.id, error = %format!("{e:#}"), "SIGKILL");
        }
        if self.wait_stopped(c, KILL_WAIT).await {
            return Ok(());
        }
        Err(Status::deadline_exceeded(format!(
            "StopContainer: container {} did not exit within {}s of SIGKILL",
            record.id,
            KILL_WAIT.as_secs()
        )))
    }

    /// RemoveContainer of `id` (full or unique prefix): kills it if it runs, then removes its
    /// runtime state, rootfs and directories. The log file stays (it is kubelet's).
    pub async fn remove(&self, id: &str) -> Result<(), Status> {
        let c = match self.lookup(id) {
            Lookup::Found(c) => c,
            Lookup::NotFound => return Ok(()),
            Lookup::Ambiguous(n) => {
                return Err(Status::invalid_argument(format!(
                    "RemoveContainer: container ID prefix {id:?} matches {n} containers"
                )))
            }
        };
        let _op = c.op.lock().await;
        self.remove_locked(&c).await
    }

    pub(super) async fn remove_locked(&self, c: &Container) -> Result<(), Status> {
        self.stop_locked(c, Duration::ZERO).await?;
        let record = c.snapshot();
        if self.index().get(&record.id).is_none() {
            return Ok(());
        }
        let pending = c
            .runtime_delete
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let deleted = match pending {
            Some(task) => task.await.unwrap_or(false),
            None => false,
        };
        if let (false, Ok(runtime)) = (deleted, self.runtime(&record.runtime_handler)) {
            runtime.delete(&record.id, true).await.map_err(|e| {
                Status::internal(format!(
                    "RemoveContainer: deleting {} from the OCI runtime: {e:#}",
                    record.id
                ))
            })?;
        }
        if let crate::sandbox::Lookup::Found(pod) = self.pods.lookup(&record.pod_id) {
            let dir = pod.snapshot().run_dir;
            if let Ok(mut monitor) = crust_monitor::MonitorClient::connect(Path::new(&dir)).await {
                let _ = monitor.forget(&record.id).await;
            }
        }
        // The runtime removes the container's cgroup with its state; a runtime whose state is
        // gone (a reboot wiped the run root) leaves it to us. Else the pod cgroup stays too.
        let cgroup = crate::sandbox::cgroup::container_cgroup_path(
            &record.cgroups_path,
            self.config.runtime.cgroup_driver,
        )
        .map(|path| (self.host.cgroups.clone(), path));
        let cleanup = record.clone();
        tokio::task::spawn_blocking(move || {
            if let Some((layout, path)) = cgroup {
                for (dir, e) in crate::sandbox::cgroup::remove_path(&layout, &path) {
                    tracing::warn!(container = %cleanup.id, path = %dir.display(), error = %e, "removing the container cgroup");
                }
            }
            release(&cleanup)
        })
            .await
            .map_err(|e| Status::internal(format!("RemoveContainer: cleanup task: {e}")))??;
        self.store.delete_container(&record.id).map_err(|e| {
            Status::internal(format!(
                "RemoveContainer: deleting the record of {}: {e}",
                record.id
            ))
        })?;
        {
            // After any event of its exit still being announced.
            let _order = c.announce.lock().unwrap_or_else(|e| e.into_inner());
            self.index().remove(&record.id);
            self.events.container(
                ContainerEventType::ContainerDeletedEvent,
                &record.id,
                &record.pod_id,
            );
        }
        self.names.release(&record.name_key(), &record.id);
        tracing::info!(container = %record.id, "container removed");
        Ok(())
    }

    /// Waits up to `timeout` for the container's exit; a pod monitor that dies meanwhile ends
    /// the wait (nothing would report the exit any more): the container is ended here.
    async fn wait_stopped(&self, c: &Container, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let step = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .min(Duration::from_millis(500));
            if self.wait_exit(c, step).await {
                return true;
            }
            if self.monitor_is_gone(&c.snapshot().pod_id) {
                self.end_orphan(c).await;
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// Whether the monitor of the pod `pod_id` is known to be gone (its pid file names no live
    /// crust-monitor); a pod crustd no longer knows has none either.
    fn monitor_is_gone(&self, pod_id: &str) -> bool {
        match self.pods.lookup(pod_id) {
            crate::sandbox::Lookup::Found(pod) => {
                crust_monitor::monitor_pid(Path::new(&pod.snapshot().run_dir)).is_none()
            }
            _ => true,
        }
    }

    /// Stops every container of a pod (StopPodSandbox), with no grace: kubelet stops them
    /// itself first, with the grace period the pod asked for.
    pub async fn stop_pod(&self, pod_id: &str) -> Result<(), Status> {
        for c in self.of_pod(pod_id) {
            let _op = c.op.lock().await;
            self.stop_locked(&c, Duration::ZERO).await?;
        }
        Ok(())
    }

    /// Removes every container of a pod (RemovePodSandbox).
    pub async fn remove_pod(&self, pod_id: &str) -> Result<(), Status> {
        for c in self.of_pod(pod_id) {
            let _op = c.op.lock().await;
            self.remove_locked(&c).await?;
        }
        Ok(())
    }
}

/// Unmounts the rootfs and image volumes and removes the container's directories.
fn release(record: &crust_store::ContainerRecord) -> Result<(), Status> {
    for m in record.mounts.iter().rev() {
        rootfs::unmount(Path::new(m)).map_err(|e| {
            Status::internal(format!(
                "RemoveContainer {}: unmounting {m}: {e}",
                record.id
            ))
        })?;
    }
    // The rootfs mount point may have been mounted by an older record format: make sure.
    let _ = rootfs::unmount(&Path::new(&record.bundle_dir).join(files::ROOTFS));
    for dir in [&record.bundle_dir, &record.state_dir] {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(Status::internal(format!(
                    "RemoveContainer {}: removing {dir}: {e}",
                    record.id
                )));
            }
        }
    }
    Ok(())
}
