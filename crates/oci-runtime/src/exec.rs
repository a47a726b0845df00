//! `exec`: run a process in a running container and capture its output (CRI ExecSync).
//!
//! runc and crun wait for the exec'd process and exit with its status (128+signal when a signal
//! killed it), so the runtime's exit code is the process' — unless the runtime itself failed
//! (container not running, executable not found). Then it logs an error and never writes the pid
//! file; that is how the two are told apart.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::time::Duration;

use oci_spec::runtime::Process;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};

use crate::log::last_error;
use crate::{Runtime, RuntimeError};

/// How long output is still read after the runtime exited. A process the exec'd one left in the
/// background may keep the pipes open forever; its output is not waited for.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How long the runtime gets to exit by itself once the exec'd process was killed, before it is
/// killed too (runc reaps the process it exec'd; killing runc first would orphan it).
const KILL_GRACE: Duration = Duration::from_secs(2);

/// Options of [`Runtime::exec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOptions {
    /// Kill the process after this long; `None` waits as long as it runs.
    pub timeout: Option<Duration>,
    /// Bytes kept per stream; the rest is read and discarded, and the stream marked truncated.
    pub max_output: usize,
    /// Where `process.json`, `exec.pid` and `exec.log` go. Caller-owned, unique per exec.
    pub work_dir: PathBuf,
}

/// What an exec'd process did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The process' exit code, 128+signal when a signal killed it.
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The timeout expired and the process was killed.
    pub timed_out: bool,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
}

impl Runtime {
    /// `exec --process WORK/process.json --pid-file WORK/exec.pid ID`, stdin `/dev/null`, stdout
    /// and stderr captured up to `opts.max_output` bytes each.
    ///
    /// A process exiting non-zero is `Ok` with its `exit_code`; a runtime failure is
    /// [`RuntimeError::Failed`]. On timeout the process and the runtime are killed and waited
    /// for, and the result is `Ok` with `timed_out`. Dropping the future kills both too.
    pub async fn exec(
        &self,
        id: &str,
        process: &Process,
        opts: &ExecOptions,
    ) -> Result<ExecOutput, RuntimeError> {
        let process_json = opts.work_dir.join("process.json");
        let pid_file = opts.work_dir.join("exec.pid");
        let log = opts.work_dir.join("exec.log");
        let json = serde_json::to_vec(process).expect("Process serializes");
        write_file(&process_json, &json).await?;
        // Both files must tell about this exec only.
        remove_file(&pid_file).await?;
        write_file(&log, b"").await?;

        let argv = self.argv(
            &log,
            [
                "exec".into(),
                "--process".into(),
                process_json.into(),
                "--pid-file".into(),
                pid_file.clone().into(),
                id.into(),
            ],
        );
        let spawn_error = |source| RuntimeError::Spawn {
            binary: self.binary.clone(),
            verb: "exec",
            source,
        };
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_error)?;
        // kill_on_drop takes care of the runtime; this of the process it exec'd.
        let mut guard = KillOnDrop {
            pid_file: &pid_file,
            armed: true,
        };
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut out = Capture::new(opts.max_output);
        let mut err = Capture::new(opts.max_output);

        let (exited_tx, exited_rx) = tokio::sync::oneshot::channel::<()>();
        let waiter = async {
            let result = wait(&mut child, opts.timeout, &pid_file).await;
            let _ = exited_tx.send(());
            result
        };
        let reader = async {
            let drain = async { tokio::join!(out.fill(stdout), err.fill(stderr)) };
            let deadline = async {
                let _ = exited_rx.await;
                tokio::time::sleep(DRAIN_GRACE).await;
            };
            tokio::select! {
                _ = drain => {}
                _ = deadline => {}
            }
        };
        let (waited, ()) = tokio::join!(waiter, reader);
        guard.armed = false;
        let (status, timed_out) = waited.map_err(spawn_error)?;

        let exit_code = exit_code(status);
        if !timed_out && exit_code != 0 {
            let logged = last_error(&log);
            if logged.is_some() || !file_exists(&pid_file).await {
                let output = Output {
                    status,
                    stdout: out.bytes,
                    stderr: err.bytes,
                };
                return Err(self.failure("exec", id, &output, &log));
            }
        }
        Ok(ExecOutput {
            exit_code,
            stdout: out.bytes,
            stderr: err.bytes,
            timed_out,
            stdout_truncated: out.truncated,
            stderr_truncated: err.truncated,
        })
    }
}

/// Wait for the runtime; on timeout kill the exec'd process, give the runtime a moment to reap
/// it and exit, then kill the runtime too. Returns the status and whether the timeout expired.
async fn wait(
    child: &mut Child,
    timeout: Option<Duration>,
    pid_file: &Path,
) -> std::io::Result<(ExitStatus, bool)> {
    let Some(timeout) = timeout else {
        return Ok((child.wait().await?, false));
    };
    if let Ok(status) = tokio::time::timeout(timeout, child.wait()).await {
        return Ok((status?, false));
    }
    kill_exec_process(pid_file);
    if let Ok(status) = tokio::time::timeout(KILL_GRACE, child.wait()).await {
        return Ok((status?, true));
    }
    // The runtime had not even written the pid file, or does not exit: kill it. A pid file
    // written meanwhile names a process nobody waits for now.
    child.start_kill()?;
    let status = child.wait().await?;
    kill_exec_process(pid_file);
    Ok((status, true))
}

/// The exit code as a shell reports it: 128+signal when a signal killed the runtime.
pub(crate) fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(-1)
}

/// SIGKILL the process the pid file names, if it was written.
pub(crate) fn kill_exec_process(pid_file: &Path) {
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return;
    };
    let pid = text
        .trim()
        .parse()
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        // ESRCH: it exited already.
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// Kills the exec'd process when the exec future is dropped before the runtime was waited for.
struct KillOnDrop<'a> {
    pid_file: &'a Path,
    armed: bool,
}

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            kill_exec_process(self.pid_file);
        }
    }
}

/// One output stream, kept up to a limit and drained beyond it.
struct Capture {
    bytes: Vec<u8>,
    limit: usize,
    truncated: bool,
}

impl Capture {
    fn new(limit: usize) -> Self {
        Capture {
            bytes: Vec::new(),
            limit,
            truncated: false,
        }
    }

    /// Read to EOF (a read error counts as EOF: the pipe is all there is).
    async fn fill(&mut self, mut stream: impl AsyncRead + Unpin) {
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let room = self.limit - self.bytes.len();
            if n > room {
                self.truncated = true;
            }
            self.bytes.extend_from_slice(&buf[..n.min(room)]);
        }
    }
}

async fn write_file(path: &Path, bytes: &[u8]) -> Result<(), RuntimeError> {
    tokio::fs::write(path, bytes)
        .await
        .map_err(|source| RuntimeError::Io {
            path: path.to_owned(),
            source,
        })
}

async fn remove_file(path: &Path) -> Result<(), RuntimeError> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RuntimeError::Io {
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

async fn file_exists(path: &Path) -> bool {
    tokio::fs::try_exists(path).await.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn capture_keeps_the_limit_and_drains_the_rest() {
        let data = vec![7u8; 200_000];
        let mut capture = Capture::new(100_000);
        capture.fill(&data[..]).await;
        assert_eq!(capture.bytes.len(), 100_000);
        assert!(capture.truncated);

        let mut capture = Capture::new(200_000);
        capture.fill(&data[..]).await;
        assert_eq!(capture.bytes.len(), 200_000);
        assert!(!capture.truncated);
    }
}
