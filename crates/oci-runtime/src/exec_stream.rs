//! `exec` with the process' stdio handed to the caller (CRI Exec, streamed to kubectl exec):
//! pipes, or with a terminal the pty master the runtime sends over a console socket.
//!
//! As with [`Runtime::exec`], the runtime waits for the process and exits with its status; a
//! runtime failure is told apart by its logged error and the missing pid file. Dropping an
//! [`ExecSession`] before [`ExecSession::wait`] returned kills the process and the runtime.
//! `wait` takes `&mut self` so that it can race the console socket's accept.

use std::os::fd::OwnedFd;
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
    /// A terminal: the runtime connects to this unix socket (which the caller listens on) and
    /// sends the pty master; `process.terminal` must be set. Without it: pipes.
    pub console_socket: Option<PathBuf>,
    /// Give the process a stdin pipe (else /dev/null). Ignored with a terminal.
    pub stdin: bool,
}

/// A running exec: its pipes (none with a terminal) and the runtime waiting for it.
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
    /// Starts `exec --process WORK/process.json --pid-file WORK/exec.pid [--tty
    /// --console-socket S] ID`; the caller copies the stdio and then waits.
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
        if let Some(socket) = &opts.console_socket {
            args.push("--tty".into());
            args.push("--console-socket".into());
            args.push(socket.into());
        }
        args.push(id.into());
        let argv = self.argv(&log, args);
        let tty = opts.console_socket.is_some();
        let piped = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(piped(opts.stdin && !tty))
            .stdout(piped(!tty))
            .stderr(piped(!tty))
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

/// Receives the pty master a runtime sends on `listener` (its `--console-socket`): the first
/// connection's SCM_RIGHTS descriptor.
pub async fn receive_console(listener: &tokio::net::UnixListener) -> std::io::Result<OwnedFd> {
    let (conn, _) = listener.accept().await?;
    let conn = conn.into_std()?;
    conn.set_nonblocking(false)?;
    tokio::task::spawn_blocking(move || {
        crust_sys::recv_fd(&conn)
            .map_err(|e| std::io::Error::other(e.to_string()))?
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the runtime closed the console socket without sending a terminal",
                )
            })
    })
    .await
    .map_err(std::io::Error::other)?
}
