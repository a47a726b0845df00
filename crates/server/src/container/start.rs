//! StartContainer: the pod's monitor runs `<runtime> run --detach` with stdio it owns (it
//! writes the CRI log from them and records the exit). One runtime process creates and starts
//! the container (containerd's shim runs `create` and then `start`: two). A failure leaves the
//! container exited with reason StartError and the runtime's message, as containerd reports
//! it.

use std::path::{Path, PathBuf};

use crust_oci_runtime::CreateOptions;
use crust_store::ContainerState;
use k8s_cri::v1::{ContainerConfig, ContainerEventType};
use tonic::Status;

use super::{files, Container, Containers};
use crate::sandbox::Lookup as PodLookup;
use crate::service::now_nanos;

/// Exit code and reason of a container that failed to start (containerd's values).
const START_ERROR_CODE: i32 = 128;
const START_ERROR_REASON: &str = "StartError";
/// How long the runtime's create may take.
const CREATE_TIMEOUT_MS: u64 = 60_000;

impl Containers {
    pub async fn start(&self, id: &str) -> Result<(), Status> {
        let c = self.get("StartContainer", id)?;
        let _op = c.op.lock().await;
        let record = c.snapshot();
        if record.state != ContainerState::Created {
            return Err(Status::failed_precondition(format!(
                "StartContainer: container {} is {:?}, not created",
                record.id, record.state
            )));
        }
        let pod = match self.pods.lookup(&record.pod_id) {
            PodLookup::Found(pod) => pod.snapshot(),
            _ => {
                return Err(Status::not_found(format!(
                    "StartContainer: pod sandbox {} of container {} not found",
                    record.pod_id, record.id
                )))
            }
        };
        if pod.state != crust_store::PodState::Ready {
            return Err(Status::failed_precondition(format!(
                "StartContainer: pod sandbox {} is not ready",
                pod.id
            )));
        }
        match self.start_steps(&c, &pod.run_dir).await {
            Ok(()) => Ok(()),
            Err(message) => {
                tracing::warn!(container = %record.id, error = %message, "StartContainer failed");
                // Never running, but no longer created: STOPPED tells the subscribers.
                let _ = self.save_announced(&c, |r| {
                    if r.state == ContainerState::Exited {
                        return &[];
                    }
                    r.state = ContainerState::Exited;
                    r.exit_code = START_ERROR_CODE;
                    r.reason = START_ERROR_REASON.to_string();
                    r.message = message.clone();
                    r.finished_at = now_nanos();
                    r.pid = 0;
                    &[ContainerEventType::ContainerStoppedEvent]
                });
                c.exited.send_replace(true);
                Err(Status::unknown(format!("StartContainer: {message}")))
            }
        }
    }

    /// Create and start through the monitor; the error is the runtime's own message.
    async fn start_steps(&self, c: &Container, pod_run_dir: &str) -> Result<(), String> {
        let record = c.snapshot();
        let runtime = self
            .runtime(&record.runtime_handler)
            .map_err(|e| e.message().to_string())?;
        let config: ContainerConfig =
            serde_json::from_value(record.config.clone()).unwrap_or_default();
        let bundle = PathBuf::from(&record.bundle_dir);
        let runtime_log = bundle.join(files::RUNTIME_LOG);
        // The runtime dials this path, so it must fit sun_path: a short directory of its own.
        let console = config.tty.then(|| {
            self.runroot
                .join(files::CONSOLE_DIR)
                .join(&record.id[..record.id.len().min(24)])
        });
        let pid_file = bundle.join(files::PID);
        let opts = CreateOptions {
            bundle: bundle.clone(),
            pid_file: pid_file.clone(),
            console_socket: console.clone(),
            log: runtime_log.clone(),
        };
        // A container made from a checkpoint has its processes restored, not started anew.
        let argv = if record.restore_from.is_empty() {
            runtime.run_detached_argv(&record.id, &opts)
        } else {
            super::checkpoint::criu_ready(&runtime.binary)
                .await
                .map_err(|why| format!("restoring from a checkpoint: {why}"))?;
            let from = Path::new(&record.restore_from);
            let work = bundle.join("restore-work");
            std::fs::create_dir_all(&work)
                .map_err(|e| format!("creating {}: {e}", work.display()))?;
            runtime.restore_detached_argv(
                &record.id,
                &opts,
                &from.join(super::checkpoint::archive::CHECKPOINT_DIR),
                &work,
            )
        };
        let argv: Vec<String> = argv
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let request = crust_monitor::CreateContainer {
            id: record.id.clone(),
            argv,
            pid_file,
            log_path: PathBuf::from(&record.log_path),
            exit_file: bundle.join(files::EXIT),
            terminal: config.tty,
            console_socket: console,
            stdin: config.stdin,
            stdin_once: config.stdin_once,
            timeout_ms: CREATE_TIMEOUT_MS,
            hold_output: false,
            console_size: None,
        };
        let mut monitor = crust_monitor::MonitorClient::connect(Path::new(pod_run_dir))
            .await
            .map_err(|e| format!("reaching the pod monitor: {e}"))?
            .with_timeout(std::time::Duration::from_millis(CREATE_TIMEOUT_MS + 5_000));
        let pid = match monitor.create_container(&request).await {
            Ok(pid) => pid,
            Err(e) => {
                let mut why =
                    crust_oci_runtime::last_error(&runtime_log).unwrap_or_else(|| e.to_string());
                if !record.restore_from.is_empty() {
                    let log = bundle.join("restore-work").join("restore.log");
                    if let Some(criu) = super::checkpoint::last_criu_error(&log) {
                        why = format!("{why} (criu: {criu})");
                    }
                }
                let _ = runtime.delete(&record.id, true).await;
                return Err(why);
            }
        };
        let started = now_nanos();
        // One commit for the pid and the state: the hot path pays one fsync. An exit that
        // was applied meanwhile (a command that ends at once) is kept.
        // An exit applied meanwhile announced STARTED and STOPPED itself.
        self.save_announced(c, |r| {
            if r.state == ContainerState::Created {
                r.pid = pid;
                r.state = ContainerState::Running;
                r.started_at = started;
                return &[ContainerEventType::ContainerStartedEvent];
            }
            if r.started_at == 0 {
                r.started_at = started.min(r.finished_at.max(1));
            }
            &[]
        })
        .map_err(|e| e.message().to_string())?;
        tracing::info!(container = %record.id, pid, "container started");
        Ok(())
    }
}
