//! Container exits: reported by the pod monitors (event `container_exited`, and the exit file
//! each monitor writes before it reports), applied to the records here. OOM kills are told
//! apart from other SIGKILLs by the container cgroup's oom_kill counter, read before the
//! runtime's delete removes the cgroup.

use std::sync::Arc;
use std::time::Duration;

use crust_store::{ContainerRecord, ContainerState};
use k8s_cri::v1::ContainerEventType;

use super::{files, Container, Containers};
use crate::sandbox::MonitorReport;

/// How a container's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerExit {
    pub exit_code: i32,
    pub signal: Option<i32>,
    /// Unix nanoseconds.
    pub finished_at: i64,
}

impl From<crust_monitor::ContainerExit> for ContainerExit {
    fn from(e: crust_monitor::ContainerExit) -> Self {
        ContainerExit {
            exit_code: e.exit_code,
            signal: e.signal,
            finished_at: e.finished_at as i64,
        }
    }
}

impl Containers {
    /// Applies the exits the pod monitors report, for as long as crustd runs.
    pub(super) fn follow_exits(self: &Arc<Self>) {
        let Some(mut rx) = self.pods.take_monitor_reports() else {
            return;
        };
        let containers = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(report) = rx.recv().await {
                let Some(containers) = containers.upgrade() else {
                    break;
                };
                match report {
                    MonitorReport::Exited(id, exit) => {
                        if let super::Lookup::Found(c) = containers.lookup(&id) {
                            if c.id() == id {
                                containers.apply_exit(&c, exit.into());
                            }
                        }
                    }
                    MonitorReport::Gone(pod_id) => {
                        tokio::spawn(async move { containers.monitor_gone(&pod_id).await });
                    }
                    MonitorReport::Watching(pod_id) => {
                        // An exit between the start-up probe and the watch was sent to no one.
                        for c in containers.of_pod(&pod_id) {
                            let record = c.snapshot();
                            if record.state == ContainerState::Running {
                                if let Some(exit) = Self::exit_file(&record) {
                                    containers.apply_exit(&c, exit);
                                }
                            }
                        }
                    }
                }
            }
        });
    }

    /// The exit the monitor recorded for the container, if it has exited.
    pub(super) fn exit_file(record: &ContainerRecord) -> Option<ContainerExit> {
        crust_monitor::read_exit_file(&Self::bundle_file(record, files::EXIT))
            .ok()
            .flatten()
            .map(Into::into)
    }

    /// Records the exit (once; later calls change nothing), announces it (STOPPED) and wakes
    /// whoever waits for it.
    pub(super) fn apply_exit(&self, c: &Container, exit: ContainerExit) {
        let record = c.snapshot();
        if record.state != ContainerState::Exited {
            let oom = self.oom_killed(&record);
            let reason = if oom {
                "OOMKilled"
            } else if exit.exit_code == 0 {
                "Completed"
            } else {
                "Error"
            };
            tracing::info!(container = %record.id, exit_code = exit.exit_code, reason, "container exited");
            let saved = self.save_announced(c, |r| {
                if r.state == ContainerState::Exited {
                    return &[];
                }
                // Exited before StartContainer committed Running (a command that ends at
                // once): it did start, so STARTED goes first.
                let kinds: &'static [ContainerEventType] = if r.state == ContainerState::Created {
                    &[
                        ContainerEventType::ContainerStartedEvent,
                        ContainerEventType::ContainerStoppedEvent,
                    ]
                } else {
                    &[ContainerEventType::ContainerStoppedEvent]
                };
                r.state = ContainerState::Exited;
                r.exit_code = exit.exit_code;
                r.finished_at = exit.finished_at;
                if r.started_at == 0 || r.started_at > exit.finished_at {
                    r.started_at = exit.finished_at;
                }
                r.reason = reason.to_string();
                r.pid = 0;
                kinds
            });
            if let Err(e) = saved {
                tracing::warn!(container = %record.id, error = %e.message(), "saving the exit");
            }
            self.delete_runtime_state(c, &record);
        }
        c.exited.send_replace(true);
    }

    /// Deletes the exited container from the OCI runtime in the background (its cgroup was
    /// read for OOM kills already), so RemoveContainer has less to do.
    fn delete_runtime_state(&self, c: &Container, record: &ContainerRecord) {
        let Ok(runtime) = self.runtime(&record.runtime_handler) else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let (runtime, id) = (runtime.clone(), record.id.clone());
        let task = tokio::spawn(async move {
            match runtime.delete(&id, true).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(container = %id, error = %format!("{e:#}"), "runtime delete after exit");
                    false
                }
            }
        });
        *c.runtime_delete.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }

    /// Waits up to `timeout` for the container to exit, also reading its exit file (the
    /// monitor's event may be lost when crustd's watch of the monitor broke). True if exited.
    pub(super) async fn wait_exit(&self, c: &Container, timeout: Duration) -> bool {
        let mut rx = c.exited.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if *rx.borrow_and_update() {
                return true;
            }
            if let Some(exit) = Self::exit_file(&c.snapshot()) {
                self.apply_exit(c, exit);
                return true;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return false;
            }
            let step = (deadline - now).min(Duration::from_millis(250));
            let _ = tokio::time::timeout(step, rx.changed()).await;
        }
    }

    /// Whether the kernel's OOM killer killed a process of the container's cgroup.
    fn oom_killed(&self, record: &ContainerRecord) -> bool {
        if record.cgroups_path.is_empty() {
            return false;
        }
        let (file, key) = if self.host.cgroup_v2 {
            ("memory.events", "oom_kill")
        } else {
            ("memory.oom_control", "oom_kill")
        };
        let Some(dir) = self.cgroup_dir(record, "memory") else {
            return false;
        };
        std::fs::read_to_string(dir.join(file))
            .map(|text| counter(&text, key) > 0)
            .unwrap_or(false)
    }
}

/// The value of `key N` in a cgroup flat-keyed file.
fn counter(text: &str, key: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn counters() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(super::counter(v1, "oom_kill"), 2);
        let v2 = "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(super::counter(v2, "oom_kill"), 1);
        assert_eq!(super::counter("", "oom_kill"), 0);
    }
}
