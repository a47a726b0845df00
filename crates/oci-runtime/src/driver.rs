//! The verbs that run to completion: start, kill, delete, state, update.
//!
//! Each call gets a log file of its own (a temp file) so the error it reports is the one this
//! call caused, not an older line of an appended log.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Output, Stdio};

use oci_spec::runtime::LinuxResources;
use tokio::process::Command;

use crate::error::{failure_message, says_not_found};
use crate::log::last_error;
use crate::{Runtime, RuntimeError, State};

impl Runtime {
    /// `start ID`: run the user process of a created container.
    pub async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.run("start", id, ["start".into(), id.into()]).await?;
        Ok(())
    }

    /// `kill [--all] ID SIGNAL`. `all` signals every process in the container's cgroup.
    pub async fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), RuntimeError> {
        let mut args: Vec<OsString> = vec!["kill".into()];
        if all {
            args.push("--all".into());
        }
        args.push(id.into());
        args.push(signal.to_string().into());
        self.run("kill", id, args).await?;
        Ok(())
    }

    /// `delete [--force] ID`. Idempotent: a container the runtime does not know is already gone.
    pub async fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let mut args: Vec<OsString> = vec!["delete".into()];
        if force {
            args.push("--force".into());
        }
        args.push(id.into());
        match self.run("delete", id, args).await {
            Err(RuntimeError::NotFound { .. }) => Ok(()),
            other => other.map(drop),
        }
    }

    /// `state ID`; an unknown container is [`RuntimeError::NotFound`].
    pub async fn state(&self, id: &str) -> Result<State, RuntimeError> {
        let output = self.run("state", id, ["state".into(), id.into()]).await?;
        serde_json::from_slice(&output.stdout).map_err(|source| RuntimeError::Decode {
            verb: "state",
            id: id.to_owned(),
            source,
        })
    }

    /// `update --resources FILE ID`, FILE holding `resources` as JSON.
    pub async fn update(&self, id: &str, resources: &LinuxResources) -> Result<(), RuntimeError> {
        let file = temp_file("crust-resources-")?;
        let json = serde_json::to_vec(resources).expect("LinuxResources serializes");
        std::fs::write(file.path(), json).map_err(|source| RuntimeError::Io {
            path: file.path().to_owned(),
            source,
        })?;
        let args = [
            "update".into(),
            "--resources".into(),
            file.path().into(),
            id.into(),
        ];
        self.run("update", id, args).await?;
        Ok(())
    }

    /// `checkpoint --image-path I --work-path W [--leave-running] ID`: CRIU dumps the
    /// container's processes into `image_path` (its log, `dump.log`, goes to `work_path`).
    /// With `leave_running` the container goes on running afterwards.
    pub async fn checkpoint(
        &self,
        id: &str,
        image_path: &Path,
        work_path: &Path,
        leave_running: bool,
    ) -> Result<(), RuntimeError> {
        let mut args: Vec<OsString> = vec![
            "checkpoint".into(),
            format!("--image-path={}", image_path.display()).into(),
            format!("--work-path={}", work_path.display()).into(),
        ];
        if leave_running {
            args.push("--leave-running".into());
        }
        args.push(id.into());
        self.run("checkpoint", id, args).await?;
        Ok(())
    }

    /// Run one verb to completion with a log of its own; a failure becomes
    /// [`RuntimeError::NotFound`] when the runtime says it does not know the container.
    async fn run(
        &self,
        verb: &'static str,
        id: &str,
        args: impl IntoIterator<Item = OsString>,
    ) -> Result<Output, RuntimeError> {
        let log = temp_file("crust-runtime-log-")?;
        let argv = self.argv(log.path(), args);
        let output = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|source| RuntimeError::Spawn {
                binary: self.binary.clone(),
                verb,
                source,
            })?;
        if output.status.success() {
            return Ok(output);
        }
        Err(self.failure(verb, id, &output, log.path()))
    }

    pub(crate) fn failure(
        &self,
        verb: &'static str,
        id: &str,
        output: &Output,
        log: &Path,
    ) -> RuntimeError {
        let message = failure_message(last_error(log), &output.stderr, &output.stdout);
        if verb != "exec" && says_not_found(&message, id) {
            return RuntimeError::NotFound { id: id.to_owned() };
        }
        RuntimeError::Failed {
            binary: self.binary.clone(),
            verb,
            id: id.to_owned(),
            status: output.status.to_string(),
            message,
        }
    }
}

/// An empty temp file, removed on drop.
fn temp_file(prefix: &str) -> Result<tempfile::NamedTempFile, RuntimeError> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempfile()
        .map_err(|source| RuntimeError::Io {
            path: std::env::temp_dir(),
            source,
        })
}
