//! ExecSync: a command in the container's namespaces with the container's user, environment
//! and security settings (the process of its runtime spec with other args), run by the OCI
//! runtime; stdout and stderr capped at 16 MiB each, as containerd does (CVE-2022-1708).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crust_oci_runtime::{ExecOptions, ExecOutput};
use crust_store::ContainerState;
use tonic::Status;

use super::{files, Containers};

/// The most output ExecSync returns per stream; the rest is read and discarded.
pub const MAX_EXEC_OUTPUT: usize = 16 * 1024 * 1024;

impl Containers {
    /// Runs `cmd` in the running container `id`; `timeout` seconds (0 = none).
    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: i64,
    ) -> Result<ExecOutput, Status> {
        if cmd.is_empty() {
            return Err(Status::invalid_argument("ExecSync: cmd is required"));
        }
        if timeout < 0 {
            return Err(Status::invalid_argument(format!(
                "ExecSync: timeout {timeout} is negative"
            )));
        }
        let c = self.get("ExecSync", id)?;
        let record = c.snapshot();
        if record.state != ContainerState::Running {
            return Err(Status::failed_precondition(format!(
                "ExecSync: container {} is not running",
                record.id
            )));
        }
        let process = exec_process(&record.bundle_dir, cmd)?;
        let runtime = self.runtime(&record.runtime_handler)?;
        let work_dir = work_dir(&record.bundle_dir)?;
        let opts = ExecOptions {
            timeout: (timeout > 0).then(|| Duration::from_secs(timeout as u64)),
            max_output: MAX_EXEC_OUTPUT,
            work_dir: work_dir.path().to_path_buf(),
        };
        let output = runtime
            .exec(&record.id, &process, &opts)
            .await
            .map_err(|e| Status::unknown(format!("ExecSync in {}: {e:#}", record.id)))?;
        if output.timed_out {
            return Err(Status::deadline_exceeded(format!(
                "ExecSync in {}: command timed out after {timeout}s",
                record.id
            )));
        }
        Ok(output)
    }
}

/// The container's process with `args` in place of its own, no terminal.
pub(super) fn exec_process(
    bundle_dir: &str,
    args: Vec<String>,
) -> Result<oci_spec::runtime::Process, Status> {
    let path = Path::new(bundle_dir).join(files::CONFIG);
    let spec = oci_spec::runtime::Spec::load(&path).map_err(|e| {
        Status::internal(format!("reading the runtime spec {}: {e}", path.display()))
    })?;
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(args));
    process.set_terminal(Some(false));
    process.set_console_size(None);
    Ok(process)
}

/// A private directory for one exec's process.json and pid file, removed when dropped.
pub(super) fn work_dir(bundle_dir: &str) -> Result<TempDir, Status> {
    let base = PathBuf::from(bundle_dir).join("exec");
    std::fs::create_dir_all(&base)
        .map_err(|e| Status::internal(format!("creating {}: {e}", base.display())))?;
    let dir = base.join(&crate::sandbox::new_id()[..16]);
    std::fs::create_dir(&dir)
        .map_err(|e| Status::internal(format!("creating {}: {e}", dir.display())))?;
    Ok(TempDir(dir))
}

pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
