//! The streamed side of Exec and Attach: what the streaming server runs once a client has
//! connected to the URL the RPC returned.
//!
//! - Exec without a terminal: crustd runs the OCI runtime's `exec` in the foreground with
//!   pipes; the runtime waits for the process and exits with its status.
//! - Exec with a terminal: a runtime in the foreground cannot hand its terminal over, so the
//!   pod's monitor runs `exec --detach --console-socket` (it receives the pty master and,
//!   being the subreaper, reaps the process and records its exit, as containerd's shim does)
//!   with its output held until crustd attaches to it like to a container.
//! - Attach: the container's own stdio, held by the pod's monitor (which fans its output out
//!   to every attached client and keeps writing the CRI log).
//!
//! Cancellation is the cleanup: when the client goes away the streaming server drops these
//! futures, which kills an exec'd process (ExecSession's drop, or the pidfd guard of a terminal
//! exec) and closes the monitor connection of an attach (the monitor then ends that session).

use std::path::Path;
use std::time::Duration;

use crust_oci_runtime::{ExecStreamOptions, Runtime};
use crust_store::{ContainerRecord, ContainerState};
use crust_streaming::{StreamError, StreamIo, TerminalSize};
use k8s_cri::v1::{AttachRequest, ExecRequest};
use oci_spec::runtime::Process;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{exec::exec_process, files, Containers};

/// How long an exec's output is still read after the process exited.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How long a terminal exec waits for the client's first terminal size before it starts.
const FIRST_SIZE_WAIT: Duration = Duration::from_millis(500);
/// How long the runtime may take to start a terminal exec.
const EXEC_START_TIMEOUT_MS: u64 = 30_000;

type BoxFut = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

fn failed(e: impl std::fmt::Display) -> StreamError {
    StreamError::Failed(e.to_string())
}

impl Containers {
    /// The running container and its pod's monitor directory, for a streamed request.
    fn stream_target(&self, id: &str) -> Result<(ContainerRecord, String), StreamError> {
        let c = match self.lookup(id) {
            super::Lookup::Found(c) => c,
            _ => return Err(StreamError::NotFound(format!("container {id} not found"))),
        };
        let record = c.snapshot();
        if record.state != ContainerState::Running {
            return Err(failed(format!("container {} is not running", record.id)));
        }
        let pod = match self.pods.lookup(&record.pod_id) {
            crate::sandbox::Lookup::Found(pod) => pod.snapshot(),
            _ => {
                return Err(StreamError::NotFound(format!(
                    "pod sandbox {} not found",
                    record.pod_id
                )))
            }
        };
        Ok((record, pod.run_dir))
    }

    /// Runs `req.cmd` in the container with `io`; returns its exit code.
    pub async fn exec_streamed(&self, req: ExecRequest, io: StreamIo) -> Result<i32, StreamError> {
        let (record, monitor_dir) = self.stream_target(&req.container_id)?;
        let mut process =
            exec_process(&record.bundle_dir, req.cmd.clone()).map_err(|e| failed(e.message()))?;
        process.set_terminal(Some(req.tty));
        let runtime = self
            .runtime(&record.runtime_handler)
            .map_err(|e| failed(e.message()))?;
        let work = super::exec::work_dir(&record.bundle_dir).map_err(|e| failed(e.message()))?;
        if req.tty {
            return self
                .exec_with_terminal(&record, &monitor_dir, runtime, &process, work.path(), io)
                .await;
        }
        let opts = ExecStreamOptions {
            work_dir: work.path().to_path_buf(),
            stdin: io.stdin.is_some(),
        };
        let mut session = runtime
            .exec_streaming(&record.id, &process, &opts)
            .await
            .map_err(|e| failed(format!("{e:#}")))?;
        let StreamIo {
            stdin,
            stdout,
            stderr,
            ..
        } = io;
        let (child_in, child_out, child_err) = (
            session.stdin.take(),
            session.stdout.take(),
            session.stderr.take(),
        );
        let input: BoxFut = Box::pin(async move {
            if let (Some(stdin), Some(child)) = (stdin, child_in) {
                copy_then_close(stdin, child).await;
            }
        });
        let output: BoxFut = Box::pin(async move {
            tokio::join!(forward(child_out, stdout), forward(child_err, stderr));
        });
        // The exit is reported once the output is read: to its end, or for a moment after the
        // process exited (a child it left in the background may hold the pipes forever).
        let (exited_tx, exited_rx) = tokio::sync::oneshot::channel::<()>();
        let waiter = async {
            let code = session.wait().await;
            let _ = exited_tx.send(());
            code
        };
        let drain = async {
            tokio::select! {
                () = output => {}
                () = async {
                    let _ = exited_rx.await;
                    tokio::time::sleep(DRAIN_GRACE).await;
                } => {}
            }
        };
        let run = async { tokio::join!(waiter, drain).0 };
        let side = async {
            input.await;
            std::future::pending::<()>().await
        };
        let code = tokio::select! {
            code = run => code,
            () = side => unreachable!("pending"),
        };
        code.map_err(|e| failed(format!("{e:#}")))
    }

    /// A terminal exec through the pod's monitor (see the module's comment).
    async fn exec_with_terminal(
        &self,
        record: &ContainerRecord,
        monitor_dir: &str,
        runtime: &Runtime,
        process: &Process,
        work: &Path,
        mut io: StreamIo,
    ) -> Result<i32, StreamError> {
        // Clients send the terminal's size first thing: start the process with it, so that
        // what runs at once (`stty size`, a shell's first prompt) sees the right size.
        let mut process = process.clone();
        let mut first_size = None;
        if let Some(rx) = io.resize.as_mut() {
            if let Ok(Some(size)) = tokio::time::timeout(FIRST_SIZE_WAIT, rx.recv()).await {
                first_size = Some((size.width, size.height));
                let console = oci_spec::runtime::BoxBuilder::default()
                    .height(u64::from(size.height))
                    .width(u64::from(size.width))
                    .build()
                    .map_err(failed)?;
                process.set_console_size(Some(console));
            }
        }
        let process_json = work.join("process.json");
        let pid_file = work.join("exec.pid");
        let log = work.join("exec.log");
        std::fs::write(&process_json, serde_json::to_vec(&process).map_err(failed)?)
            .map_err(failed)?;
        let token = &crate::sandbox::new_id()[..20];
        // The runtime dials the console socket: a short path (sun_path).
        let console = self
            .runroot
            .join(files::CONSOLE_DIR)
            .join(format!("x{token}"));
        let exec_id = format!("{}-exec-{token}", record.id);
        let argv = runtime
            .exec_detached_argv(&record.id, &process_json, &pid_file, Some(&console), &log)
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let request = crust_monitor::CreateContainer {
            id: exec_id.clone(),
            argv,
            pid_file,
            log_path: Default::default(),
            exit_file: work.join(files::EXIT),
            terminal: true,
            console_socket: Some(console),
            stdin: io.stdin.is_some(),
            stdin_once: true,
            timeout_ms: EXEC_START_TIMEOUT_MS,
            hold_output: true,
            console_size: first_size,
        };
        let mut monitor = crust_monitor::MonitorClient::connect(Path::new(monitor_dir))
            .await
            .map_err(failed)?
            .with_timeout(Duration::from_millis(EXEC_START_TIMEOUT_MS + 5_000));
        let pid = match monitor.create_container(&request).await {
            Ok(pid) => pid,
            Err(e) => {
                return Err(failed(
                    crust_oci_runtime::last_error(&log).unwrap_or_else(|| e.to_string()),
                ))
            }
        };
        // Killed if the client goes away before it ends; a pidfd, so never another process.
        let guard = KillOnDrop(crust_sys::PidFd::open(pid).ok());
        let client = crust_monitor::MonitorClient::connect(Path::new(monitor_dir))
            .await
            .map_err(failed)?;
        let exit = pump_attach(client, &exec_id, io).await?;
        drop(guard);
        exit.map(|e| e.exit_code)
            .ok_or_else(|| failed("the exec's session ended before its process"))
    }

    /// Attaches `io` to the container's own stdio through the pod's monitor, until the
    /// container exits or the client goes away.
    pub async fn attach_streamed(
        &self,
        req: AttachRequest,
        io: StreamIo,
    ) -> Result<(), StreamError> {
        let (record, monitor_dir) = self.stream_target(&req.container_id)?;
        let client = crust_monitor::MonitorClient::connect(Path::new(&monitor_dir))
            .await
            .map_err(failed)?;
        pump_attach(client, &record.id, io).await.map(|_| ())
    }
}

/// Kills a terminal exec's process when its client went away first.
struct KillOnDrop(Option<crust_sys::PidFd>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pidfd) = &self.0 {
            // ESRCH: it has exited already.
            let _ = pidfd.send_signal(crust_sys::Signal::KILL);
        }
    }
}

/// Runs an attach session of the monitor entry `id` with `io`: stdin and resizes to it, its
/// output to the client, until it exits (its exit returned) or the session ends.
async fn pump_attach(
    client: crust_monitor::MonitorClient,
    id: &str,
    io: StreamIo,
) -> Result<Option<crust_monitor::ContainerExit>, StreamError> {
    let StreamIo {
        stdin,
        mut stdout,
        mut stderr,
        resize,
        ..
    } = io;
    let attach = client
        .attach(
            id,
            crust_monitor::AttachOptions {
                stdin: stdin.is_some(),
                stdout: stdout.is_some(),
                stderr: stderr.is_some(),
            },
        )
        .await
        .map_err(failed)?;
    let (mut reader, mut writer) = attach.split();
    let input = async move {
        let mut resize = resize;
        let mut stdin = stdin;
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            tokio::select! {
                n = async {
                    match stdin.as_mut() {
                        Some(s) => s.read(&mut buf).await,
                        None => std::future::pending().await,
                    }
                } => {
                    match n {
                        Ok(0) | Err(_) => {
                            let _ = writer.close_stdin().await;
                            stdin = None;
                        }
                        Ok(n) => {
                            if writer.send_stdin(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                size = async {
                    match resize.as_mut() {
                        Some(r) => r.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    match size {
                        Some(TerminalSize { width, height }) => {
                            if writer.resize(width, height).await.is_err() {
                                break;
                            }
                        }
                        None => resize = None,
                    }
                }
            }
        }
        std::future::pending::<()>().await
    };
    let output = async {
        let mut exit = None;
        loop {
            match reader.next().await {
                Ok(Some(crust_monitor::AttachOutput::Stdout(data))) => {
                    if let Some(w) = stdout.as_mut() {
                        if w.write_all(&data).await.is_err() {
                            break;
                        }
                        let _ = w.flush().await;
                    }
                }
                Ok(Some(crust_monitor::AttachOutput::Stderr(data))) => {
                    if let Some(w) = stderr.as_mut() {
                        if w.write_all(&data).await.is_err() {
                            break;
                        }
                        let _ = w.flush().await;
                    }
                }
                Ok(Some(crust_monitor::AttachOutput::Exited(e))) => {
                    exit = Some(e);
                    break;
                }
                Ok(None) => break,
                Err(e) => return Err(failed(e)),
            }
        }
        for w in [stdout.as_mut(), stderr.as_mut()].into_iter().flatten() {
            let _ = w.shutdown().await;
        }
        Ok(exit)
    };
    tokio::select! {
        done = output => done,
        () = input => unreachable!("pending"),
    }
}

/// Copies until EOF, then shuts the writer down (closing the process' stdin).
async fn copy_then_close(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin) {
    let _ = tokio::io::copy(&mut from, &mut to).await;
    let _ = to.shutdown().await;
}

/// Copies everything, flushing as it goes (interactive output must not sit in a buffer).
async fn copy_all(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
    }
    to.shutdown().await
}

/// Output of the process to the client's stream, or read and dropped when the client did not
/// ask for that stream (a full pipe would stall the process).
async fn forward(
    from: Option<impl AsyncRead + Unpin>,
    to: Option<Box<dyn AsyncWrite + Send + Unpin>>,
) {
    let Some(mut from) = from else {
        return;
    };
    match to {
        Some(to) => {
            let _ = copy_all(from, to).await;
        }
        None => {
            let _ = tokio::io::copy(&mut from, &mut tokio::io::sink()).await;
        }
    }
}
