//! The streamed side of Exec and Attach: what the streaming server runs once a client has
//! connected to the URL the RPC returned.
//!
//! - Exec: a new process in the container through the OCI runtime's `exec`, with pipes, or a
//!   terminal whose pty master the runtime sends over a console socket crustd listens on;
//!   stdin is forwarded, resizes applied to the master, the exit code returned.
//! - Attach: the container's own stdio, held by the pod's monitor (which fans its output out
//!   to every attached client and keeps writing the CRI log).
//!
//! Cancellation is the cleanup: when the client goes away the streaming server drops these
//! futures, which kills an exec'd process (ExecSession's drop) and closes the monitor
//! connection of an attach (the monitor then forgets that session).

use std::path::Path;
use std::time::Duration;

use crust_oci_runtime::ExecStreamOptions;
use crust_store::ContainerState;
use crust_streaming::{StreamError, StreamIo, TerminalSize};
use k8s_cri::v1::{AttachRequest, ExecRequest};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{exec::exec_process, files, Containers};

/// How long the runtime may take to send an exec's terminal.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an exec's output is still read after the process exited.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

type BoxFut = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

fn failed(e: impl std::fmt::Display) -> StreamError {
    StreamError::Failed(e.to_string())
}

impl Containers {
    /// Runs `req.cmd` in the container with `io`; returns its exit code.
    pub async fn exec_streamed(&self, req: ExecRequest, io: StreamIo) -> Result<i32, StreamError> {
        let c = match self.lookup(&req.container_id) {
            super::Lookup::Found(c) => c,
            _ => {
                return Err(StreamError::NotFound(format!(
                    "container {} not found",
                    req.container_id
                )))
            }
        };
        let record = c.snapshot();
        if record.state != ContainerState::Running {
            return Err(failed(format!("container {} is not running", record.id)));
        }
        let mut process =
            exec_process(&record.bundle_dir, req.cmd.clone()).map_err(|e| failed(e.message()))?;
        process.set_terminal(Some(req.tty));
        let runtime = self
            .runtime(&record.runtime_handler)
            .map_err(|e| failed(e.message()))?;
        let work = super::exec::work_dir(&record.bundle_dir).map_err(|e| failed(e.message()))?;
        let console = req.tty.then(|| {
            self.runroot
                .join(files::CONSOLE_DIR)
                .join(format!("x{}", &crate::sandbox::new_id()[..20]))
        });
        let listener = match &console {
            Some(path) => Some(ConsoleListener::bind(path).map_err(failed)?),
            None => None,
        };
        let opts = ExecStreamOptions {
            work_dir: work.path().to_path_buf(),
            console_socket: console.clone(),
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
            resize,
            ..
        } = io;

        let (input, output, sizes): (BoxFut, BoxFut, BoxFut) = if let Some(listener) = listener {
            // The runtime connects once the process is set up; if it fails first, its exit
            // says why.
            let master = tokio::select! {
                master = tokio::time::timeout(CONSOLE_TIMEOUT, crust_oci_runtime::receive_console(&listener.0)) => {
                    match master {
                        Ok(Ok(master)) => master,
                        Ok(Err(e)) => return Err(failed(format!("receiving the exec's terminal: {e}"))),
                        Err(_) => return Err(failed("the runtime sent no terminal for the exec")),
                    }
                }
                code = session.wait() => {
                    return code.map_err(|e| failed(format!("{e:#}")));
                }
            };
            drop(listener);
            let master = std::fs::File::from(master);
            let resizer = master.try_clone().map_err(failed)?;
            let reader = tokio::fs::File::from_std(master.try_clone().map_err(failed)?);
            let writer = tokio::fs::File::from_std(master);
            (
                Box::pin(async move {
                    if let Some(stdin) = stdin {
                        copy_then_close(stdin, writer).await;
                    }
                }),
                // A pty's master reads EIO once every holder of the slave is gone.
                Box::pin(forward(Some(reader), stdout)),
                Box::pin(apply_resizes(resize, resizer)),
            )
        } else {
            let (child_in, child_out, child_err) = (
                session.stdin.take(),
                session.stdout.take(),
                session.stderr.take(),
            );
            (
                Box::pin(async move {
                    if let (Some(stdin), Some(child)) = (stdin, child_in) {
                        copy_then_close(stdin, child).await;
                    }
                }),
                Box::pin(async move {
                    tokio::join!(forward(child_out, stdout), forward(child_err, stderr));
                }),
                Box::pin(async {}),
            )
        };
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
            tokio::join!(input, sizes);
            std::future::pending::<()>().await
        };
        let code = tokio::select! {
            code = run => code,
            () = side => unreachable!("pending"),
        };
        code.map_err(|e| failed(format!("{e:#}")))
    }

    /// Attaches `io` to the container's own stdio through the pod's monitor, until the
    /// container exits or the client goes away.
    pub async fn attach_streamed(
        &self,
        req: AttachRequest,
        io: StreamIo,
    ) -> Result<(), StreamError> {
        let c = match self.lookup(&req.container_id) {
            super::Lookup::Found(c) => c,
            _ => {
                return Err(StreamError::NotFound(format!(
                    "container {} not found",
                    req.container_id
                )))
            }
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
        let client = crust_monitor::MonitorClient::connect(Path::new(&pod.run_dir))
            .await
            .map_err(failed)?;
        let StreamIo {
            stdin,
            mut stdout,
            mut stderr,
            resize,
            ..
        } = io;
        let attach = client
            .attach(
                &record.id,
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
                    Ok(Some(crust_monitor::AttachOutput::Exited(_))) | Ok(None) => break,
                    Err(e) => return Err(failed(e)),
                }
            }
            for w in [stdout.as_mut(), stderr.as_mut()].into_iter().flatten() {
                let _ = w.shutdown().await;
            }
            Ok(())
        };
        tokio::select! {
            done = output => done,
            () = input => unreachable!(),
        }
    }
}

/// A console socket crustd listens on for one exec, removed when dropped.
struct ConsoleListener(tokio::net::UnixListener, std::path::PathBuf);

impl ConsoleListener {
    fn bind(path: &Path) -> std::io::Result<ConsoleListener> {
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(ConsoleListener(listener, path.to_path_buf()))
    }
}

impl Drop for ConsoleListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.1);
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
            // A pty master reads EIO when the other side is gone.
            Err(e) if e.raw_os_error() == Some(5) => break,
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

/// Applies every terminal size the client sends to the pty.
async fn apply_resizes(
    resize: Option<tokio::sync::mpsc::Receiver<TerminalSize>>,
    master: std::fs::File,
) {
    if let Some(mut rx) = resize {
        while let Some(size) = rx.recv().await {
            let ws = rustix::termios::Winsize {
                ws_row: size.height,
                ws_col: size.width,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            if let Err(e) = rustix::termios::tcsetwinsize(&master, ws) {
                tracing::debug!(error = %e, "resizing an exec's terminal");
            }
        }
    }
}
