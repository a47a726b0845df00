//! `exec` with the process' pipes handed to the caller (CRI Exec without a terminal, streamed
//! to kubectl exec). A terminal exec cannot run this way: runc refuses a console socket unless
//! it detaches, so crustd has the pod monitor run [`Runtime::exec_detached_argv`] instead.
//!
//! As with [`Runtime::exec`], the runtime waits for the process and exits with its status; a
//! runtime failure is told apart by its logged error and the missing pid file. Dropping an
//! [`ExecSession`] before [`ExecSession::wait`] returned kills the process and the runtime.
//! `wait` takes `&mut self` so that it can race the console socket's accept.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use oci_spec::runtime::Process;
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

use crate::exec::{exit_code, kill_exec_process};
use crate::log::last_error;
use crate::{Runtime, RuntimeError};

/// How a streamed exec gets its stdio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecStreamOptions {
    /// Where `process.json`, `exec.pid` and `exec.log` go. Caller-owned, unique per exec.
    pub work_dir: PathBuf,
    /// Give the process a stdin pipe (else /dev/null).
    pub stdin: bool,
}

/// A running exec: its pipes and the runtime waiting for it.
pub struct ExecSession {
    child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
    id: String,
    binary: PathBuf,
    pid_file: PathBuf,
    log: PathBuf,
    armed: bool,
}

impl Runtime {
    /// Starts `exec --process WORK/process.json --pid-file WORK/exec.pid ID` with piped stdout
    /// and stderr (and stdin when asked); the caller copies them and then waits.
    pub async fn exec_streaming(
        &self,
        id: &str,
        process: &Process,
        opts: &ExecStreamOptions,
    ) -> Result<ExecSession, RuntimeError> {
        let process_json = opts.work_dir.join("process.json");
        let pid_file = opts.work_dir.join("exec.pid");
        let log = opts.work_dir.join("exec.log");
        let json = serde_json::to_vec(process).expect("Process serializes");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RuntimeError::Io { path, source }
        };
        tokio::fs::write(&process_json, &json)
            .await
            .map_err(io(&process_json))?;
        tokio::fs::write(&log, b"").await.map_err(io(&log))?;
        let _ = tokio::fs::remove_file(&pid_file).await;
        let mut args: Vec<std::ffi::OsString> = vec![
            "exec".into(),
            "--process".into(),
            process_json.into(),
            "--pid-file".into(),
            pid_file.clone().into(),
        ];
        args.push(id.into());
        let argv = self.argv(&log, args);
        let piped = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(piped(opts.stdin))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| RuntimeError::Spawn {
                binary: self.binary.clone(),
                verb: "exec",
                source,
            })?;
        Ok(ExecSession {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            child,
            id: id.to_owned(),
            binary: self.binary.clone(),
            pid_file,
            log,
            armed: true,
        })
    }
}

impl ExecSession {
    /// The process' exit code once it ended (128+signal when killed); a runtime failure
    /// (container not running, executable not found) is [`RuntimeError::Failed`].
    pub async fn wait(&mut self) -> Result<i32, RuntimeError> {
        let status = self
            .child
            .wait()
            .await
            .map_err(|source| RuntimeError::Spawn {
                binary: self.binary.clone(),
                verb: "exec",
                source,
            })?;
        self.armed = false;
        let code = exit_code(status);
        if code != 0 {
            let logged = last_error(&self.log);
            if logged.is_some() || !self.pid_file.exists() {
                return Err(RuntimeError::Failed {
                    binary: self.binary.clone(),
                    verb: "exec",
                    id: self.id.clone(),
                    status: status.to_string(),
                    message: logged.unwrap_or_else(|| "no error message".to_owned()),
                });
            }
        }
        Ok(code)
    }

    /// Kills the exec'd process (the runtime then exits with its status).
    pub fn kill(&self) {
        kill_exec_process(&self.pid_file);
    }
}

impl Drop for ExecSession {
    fn drop(&mut self) {
        if self.armed {
            kill_exec_process(&self.pid_file);
        }
    }
}
