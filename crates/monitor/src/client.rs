//! crustd's side: start a monitor and talk to it (tokio).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use bytes::{Buf, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{
        unix::{OwnedReadHalf, OwnedWriteHalf},
        UnixStream,
    },
    process::Command,
    time::timeout,
};

use crate::{
    error::MonitorError,
    options::SpawnOptions,
    protocol::{
        frame, AttachRequest, Attached, ContainerExit, CreateContainer, Created, Event, Ready,
        Request, Resize, Status, SOCKET_NAME,
    },
};

/// How long a request may wait for its answer, unless [`MonitorClient::with_timeout`] says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a shutdown may take at least (killing a pid namespace waits for all of it).
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// How much longer than the runtime's own `timeout_ms` a create_container may wait for its
/// answer (the monitor kills the runtime at `timeout_ms` and then answers).
pub const CREATE_GRACE: Duration = Duration::from_secs(5);
/// How long a monitor may take to report readiness.
pub const SPAWN_TIMEOUT: Duration = Duration::from_secs(30);
/// No protocol line is anywhere near this long.
const MAX_LINE: u64 = 1024 * 1024;

/// Starts a pod's monitor and waits for its readiness report.
///
/// Runs the binary with stdout piped and stdin/stderr on /dev/null, reads its one readiness
/// line and waits for the first process to exit (the monitor proper has detached by then and
/// serves on `RUNDIR/monitor.sock`). On failure the monitor has undone whatever it did before
/// this returns; the error carries its message.
pub async fn spawn(opts: &SpawnOptions) -> Result<Ready, MonitorError> {
    let pod_id = opts.pod_id.clone();
    let mut child = Command::new(&opts.binary)
        .args(opts.args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| MonitorError::Spawn {
            pod_id: pod_id.clone(),
            binary: opts.binary.clone(),
            source,
        })?;
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        let mut reader = BufReader::new(stdout.take(MAX_LINE));
        match timeout(SPAWN_TIMEOUT, reader.read_line(&mut line)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                let _ = child.wait().await;
                return Err(MonitorError::BadReadiness {
                    pod_id,
                    line,
                    reason: e.to_string(),
                });
            }
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(MonitorError::ReadyTimeout {
                    pod_id,
                    timeout: SPAWN_TIMEOUT,
                });
            }
        }
    }
    let status = match timeout(SPAWN_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) => status.to_string(),
        Ok(Err(e)) => format!("unknown status: {e}"),
        Err(_) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            "did not exit".to_string()
        }
    };
    let line = line.trim();
    if line.is_empty() {
        return Err(MonitorError::NoReadiness { pod_id, status });
    }
    parse_reply::<Ready>(line).map_err(|e| match e {
        ReplyError::Refused(message) => MonitorError::Failed { pod_id, message },
        ReplyError::Malformed(reason) => MonitorError::BadReadiness {
            pod_id,
            line: line.to_string(),
            reason,
        },
    })
}

enum ReplyError {
    Refused(String),
    Malformed(String),
}

/// Parses a reply line: `{"ok":true,...T}` or `{"ok":false,"error":"..."}`.
fn parse_reply<T: DeserializeOwned>(line: &str) -> Result<T, ReplyError> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| ReplyError::Malformed(e.to_string()))?;
    match value.get("ok").and_then(|ok| ok.as_bool()) {
        Some(true) => {
            serde_json::from_value(value).map_err(|e| ReplyError::Malformed(e.to_string()))
        }
        Some(false) => Err(ReplyError::Refused(
            value
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("unspecified error")
                .to_string(),
        )),
        None => Err(ReplyError::Malformed("no \"ok\" field".to_string())),
    }
}

/// `dir/monitor.sock` for a run directory (existing or not); a path ending in `.sock` as it is.
pub fn socket_path(dir_or_socket: &Path) -> PathBuf {
    let is_socket = dir_or_socket.extension().is_some_and(|ext| ext == "sock");
    if is_socket && !dir_or_socket.is_dir() {
        dir_or_socket.to_path_buf()
    } else {
        dir_or_socket.join(SOCKET_NAME)
    }
}

/// A connection to a pod's monitor. Requests are answered in order; each waits at most the
/// client's timeout ([`DEFAULT_TIMEOUT`]).
#[derive(Debug)]
pub struct MonitorClient {
    socket: PathBuf,
    stream: BufReader<UnixStream>,
    timeout: Duration,
}

/// The empty body of `{"ok":true}`.
#[derive(serde::Deserialize)]
struct Empty {}

impl MonitorClient {
    /// Connects to the monitor of the run directory `path` (or to the socket `path`).
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self, MonitorError> {
        let socket = socket_path(path.as_ref());
        let (_dir, address) =
            crate::protocol::socket_address(&socket).map_err(|source| MonitorError::Connect {
                socket: socket.clone(),
                source,
            })?;
        let stream = match timeout(DEFAULT_TIMEOUT, UnixStream::connect(&address)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => return Err(MonitorError::Connect { socket, source }),
            Err(_) => {
                return Err(MonitorError::Timeout {
                    socket,
                    op: "connecting",
                    timeout: DEFAULT_TIMEOUT,
                })
            }
        };
        Ok(MonitorClient {
            socket,
            stream: BufReader::new(stream),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same client with another per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The socket it is connected to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The monitor's status: pids, the init's exit if it exited, the namespace pins, the
    /// running containers.
    pub async fn status(&mut self) -> Result<Status, MonitorError> {
        self.request(&Request::Status, "status", self.timeout).await
    }

    /// Creates a container: the monitor runs `req.argv` (the runtime's `create`) with the
    /// container's stdio and answers with the container init's pid. Waits `req.timeout_ms`
    /// plus [`CREATE_GRACE`]. When the runtime fails, [`MonitorError::refusal`] is the
    /// monitor's message (`runtime create exited with status 1`); the runtime's own log says
    /// why.
    pub async fn create_container(&mut self, req: &CreateContainer) -> Result<i32, MonitorError> {
        let wait = Duration::from_millis(req.timeout_ms) + CREATE_GRACE;
        let created: Created = self
            .request(
                &Request::CreateContainer(req.clone()),
                "create_container",
                wait,
            )
            .await
            .map_err(|e| container_error(&req.id, e))?;
        Ok(created.pid)
    }

    /// Reopens a running container's log file (after kubelet renamed it away).
    pub async fn reopen_log(&mut self, id: &str) -> Result<(), MonitorError> {
        let request = Request::ReopenLog { id: id.to_string() };
        let _: Empty = self
            .request(&request, "reopen_log", self.timeout)
            .await
            .map_err(|e| container_error(id, e))?;
        Ok(())
    }

    /// Drops whatever the monitor still keeps of an exited container (idempotent).
    pub async fn forget(&mut self, id: &str) -> Result<(), MonitorError> {
        let request = Request::Forget { id: id.to_string() };
        let _: Empty = self
            .request(&request, "forget", self.timeout)
            .await
            .map_err(|e| container_error(id, e))?;
        Ok(())
    }

    /// Ends the pod: the monitor kills the running containers (writing their exit files and
    /// sending their events), the pod init (and everything in the pod's pid namespace), unpins the namespaces, removes its socket and pid file and exits. Returns
    /// once the monitor has exited (its end of the connection closed).
    pub async fn shutdown(mut self) -> Result<(), MonitorError> {
        let wait = self.timeout.max(SHUTDOWN_TIMEOUT);
        let _: Empty = self.request(&Request::Shutdown, "shutdown", wait).await?;
        let mut rest = Vec::new();
        match timeout(wait, self.stream.read_to_end(&mut rest)).await {
            Ok(_) => Ok(()),
            Err(_) => Err(MonitorError::Timeout {
                socket: self.socket,
                op: "waiting for the monitor to exit",
                timeout: wait,
            }),
        }
    }

    /// Turns the connection into a stream of the pod's events. The pod init's exit is
    /// delivered even when it happened before this call.
    pub async fn watch(mut self) -> Result<Events, MonitorError> {
        let _: Empty = self.request(&Request::Watch, "watch", self.timeout).await?;
        Ok(Events {
            socket: self.socket,
            stream: self.stream,
        })
    }

    /// Turns the connection into an attach session of the running container `id` (CRI
    /// Attach): its output from now on (as asked in `opts`) until it exits, and a way to send
    /// stdin, resizes and the end of stdin. Fails with a refusal (`container c1 is not
    /// running`) for an unknown or exited container. Dropping the session (or its writer:
    /// that half-closes the connection) ends its stdin, which closes the container's stdin
    /// when it was created with `stdin_once`; the container goes on.
    pub async fn attach(mut self, id: &str, opts: AttachOptions) -> Result<Attach, MonitorError> {
        let request = Request::Attach(AttachRequest {
            id: id.to_string(),
            stdin: opts.stdin,
            stdout: opts.stdout,
            stderr: opts.stderr,
        });
        let attached: Attached = self
            .request(&request, "attach", self.timeout)
            .await
            .map_err(|e| container_error(id, e))?;
        // Frames may have come with the answer.
        let buf = BytesMut::from(self.stream.buffer());
        let (read, write) = self.stream.into_inner().into_split();
        Ok(Attach {
            tty: attached.tty,
            reader: AttachReader {
                socket: self.socket.clone(),
                read,
                buf,
            },
            writer: AttachWriter {
                socket: self.socket,
                write,
            },
        })
    }

    async fn request<T: DeserializeOwned>(
        &mut self,
        request: &Request,
        op: &'static str,
        wait: Duration,
    ) -> Result<T, MonitorError> {
        let mut line = serde_json::to_vec(request).map_err(|e| MonitorError::Protocol {
            socket: self.socket.clone(),
            op,
            line: String::new(),
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        let io = |socket: &Path, source| MonitorError::Io {
            socket: socket.to_path_buf(),
            op,
            source,
        };
        match timeout(wait, self.stream.get_mut().write_all(&line)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(io(&self.socket, e)),
            Err(_) => {
                return Err(MonitorError::Timeout {
                    socket: self.socket.clone(),
                    op,
                    timeout: wait,
                })
            }
        }
        let mut reply = String::new();
        let mut limited = (&mut self.stream).take(MAX_LINE);
        match timeout(wait, limited.read_line(&mut reply)).await {
            Ok(Ok(0)) => {
                return Err(MonitorError::Closed {
                    socket: self.socket.clone(),
                    op,
                })
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(io(&self.socket, e)),
            Err(_) => {
                return Err(MonitorError::Timeout {
                    socket: self.socket.clone(),
                    op,
                    timeout: wait,
                })
            }
        }
        parse_reply(reply.trim()).map_err(|e| match e {
            ReplyError::Refused(message) => MonitorError::Refused {
                socket: self.socket.clone(),
                op,
                message,
            },
            ReplyError::Malformed(reason) => MonitorError::Protocol {
                socket: self.socket.clone(),
                op,
                line: reply.trim().to_string(),
                reason,
            },
        })
    }
}

fn container_error(id: &str, source: MonitorError) -> MonitorError {
    MonitorError::Container {
        id: id.to_string(),
        source: Box::new(source),
    }
}

/// Which of a container's streams an attach session takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttachOptions {
    /// Send stdin (ignored by the monitor when the container was created without it).
    pub stdin: bool,
    /// Receive stdout (for a terminal, all output).
    pub stdout: bool,
    /// Receive stderr (a terminal has none).
    pub stderr: bool,
}

/// What an attach session receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachOutput {
    Stdout(Bytes),
    Stderr(Bytes),
    /// The container exited (after its last output); the session ends.
    Exited(ContainerExit),
}

/// An attach session ([`MonitorClient::attach`]); [`Attach::split`] to read and write from
/// different tasks.
#[derive(Debug)]
pub struct Attach {
    /// The container has a terminal: output is all stdout, and resizes apply.
    pub tty: bool,
    reader: AttachReader,
    writer: AttachWriter,
}

impl Attach {
    /// The next output; `Ok(None)` once the monitor closed the session (after the exit, or
    /// when it dropped a session that did not read).
    pub async fn next(&mut self) -> Result<Option<AttachOutput>, MonitorError> {
        self.reader.next().await
    }

    /// Sends stdin.
    pub async fn send_stdin(&mut self, data: &[u8]) -> Result<(), MonitorError> {
        self.writer.send_stdin(data).await
    }

    /// Sets the terminal's size.
    pub async fn resize(&mut self, width: u16, height: u16) -> Result<(), MonitorError> {
        self.writer.resize(width, height).await
    }

    /// Ends this session's stdin.
    pub async fn close_stdin(&mut self) -> Result<(), MonitorError> {
        self.writer.close_stdin().await
    }

    /// The reading and the writing half.
    pub fn split(self) -> (AttachReader, AttachWriter) {
        (self.reader, self.writer)
    }
}

/// The output half of an attach session.
#[derive(Debug)]
pub struct AttachReader {
    socket: PathBuf,
    read: OwnedReadHalf,
    /// Received bytes not yet returned (whole frames are split off without copying).
    buf: BytesMut,
}

impl AttachReader {
    /// The next output; `Ok(None)` once the monitor closed the session. Waits as long as it
    /// takes: no timeout.
    pub async fn next(&mut self) -> Result<Option<AttachOutput>, MonitorError> {
        loop {
            if self.buf.len() >= frame::HEADER {
                let mut header = [0u8; frame::HEADER];
                header.copy_from_slice(&self.buf[..frame::HEADER]);
                let (kind, len) = frame::parse_header(&header);
                if len > frame::MAX_PAYLOAD {
                    return Err(self.malformed(format!(
                        "a frame of {len} bytes (at most {} are sent)",
                        frame::MAX_PAYLOAD
                    )));
                }
                if self.buf.len() >= frame::HEADER + len {
                    self.buf.advance(frame::HEADER);
                    let payload = self.buf.split_to(len).freeze();
                    match kind {
                        frame::STDOUT => return Ok(Some(AttachOutput::Stdout(payload))),
                        frame::STDERR => return Ok(Some(AttachOutput::Stderr(payload))),
                        frame::EXIT => {
                            return serde_json::from_slice(&payload)
                                .map(|exit| Some(AttachOutput::Exited(exit)))
                                .map_err(|e| self.malformed(format!("exit frame: {e}")))
                        }
                        // A kind of a newer monitor.
                        _ => continue,
                    }
                }
                self.buf.reserve(frame::HEADER + len - self.buf.len());
            } else {
                self.buf.reserve(16 * 1024);
            }
            let n = self
                .read
                .read_buf(&mut self.buf)
                .await
                .map_err(|source| MonitorError::Io {
                    socket: self.socket.clone(),
                    op: "attach: reading",
                    source,
                })?;
            if n == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(self.malformed("the connection closed inside a frame".into()));
            }
        }
    }

    fn malformed(&self, reason: String) -> MonitorError {
        MonitorError::Protocol {
            socket: self.socket.clone(),
            op: "attach: reading",
            line: String::new(),
            reason,
        }
    }
}

/// The input half of an attach session. Dropping it half-closes the connection: the
/// session's stdin ends, its output still comes.
#[derive(Debug)]
pub struct AttachWriter {
    socket: PathBuf,
    write: OwnedWriteHalf,
}

impl AttachWriter {
    /// Sends stdin (in frames of at most 32 KiB). Waits while the container does not read.
    pub async fn send_stdin(&mut self, data: &[u8]) -> Result<(), MonitorError> {
        for chunk in data.chunks(frame::MAX_PAYLOAD) {
            self.send(frame::STDIN, chunk).await?;
        }
        Ok(())
    }

    /// Sets the terminal's size: `width` columns, `height` rows (nothing without a terminal).
    pub async fn resize(&mut self, width: u16, height: u16) -> Result<(), MonitorError> {
        let payload = serde_json::to_vec(&Resize { width, height }).unwrap_or_default();
        self.send(frame::RESIZE, &payload).await
    }

    /// Ends this session's stdin: with `stdin_once`, the container's stdin is closed.
    pub async fn close_stdin(&mut self) -> Result<(), MonitorError> {
        self.send(frame::CLOSE_STDIN, &[]).await
    }

    async fn send(&mut self, kind: u8, payload: &[u8]) -> Result<(), MonitorError> {
        let mut buf = Vec::with_capacity(frame::HEADER + payload.len());
        buf.extend_from_slice(&frame::header(kind, payload.len()));
        buf.extend_from_slice(payload);
        self.write
            .write_all(&buf)
            .await
            .map_err(|source| MonitorError::Io {
                socket: self.socket.clone(),
                op: "attach: writing",
                source,
            })
    }
}

/// The events of a watched pod, in order. Waits as long as it takes: no timeout.
#[derive(Debug)]
pub struct Events {
    socket: PathBuf,
    stream: BufReader<UnixStream>,
}

impl Events {
    /// The next event; `Ok(None)` when the monitor closed the connection (it exited).
    pub async fn next(&mut self) -> Result<Option<Event>, MonitorError> {
        loop {
            let mut line = String::new();
            let n = (&mut self.stream)
                .take(MAX_LINE)
                .read_line(&mut line)
                .await
                .map_err(|source| MonitorError::Io {
                    socket: self.socket.clone(),
                    op: "reading events",
                    source,
                })?;
            if n == 0 {
                return Ok(None);
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            return serde_json::from_str(line)
                .map(Some)
                .map_err(|e| MonitorError::Protocol {
                    socket: self.socket.clone(),
                    op: "reading events",
                    line: line.to_string(),
                    reason: e.to_string(),
                });
        }
    }

    /// [`Events::next`], with any error taken as the end of the stream.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.next().await.ok().flatten()
    }

    /// The monitor's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

/// Connects to the monitor of `dir` and asks its status: the way to tell a live monitor from
/// a stale socket (crustd's reconnect at start).
pub async fn probe(dir: &Path) -> Result<Status, MonitorError> {
    MonitorClient::connect(dir).await?.status().await
}

/// Whether a monitor answers at `dir`.
pub async fn is_alive(dir: &Path) -> bool {
    probe(dir).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_path_of_a_dir_or_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(socket_path(dir.path()), dir.path().join("monitor.sock"));
        // A run directory that is already gone still maps to its socket.
        let gone = dir.path().join("gone");
        assert_eq!(socket_path(&gone), gone.join("monitor.sock"));
        let sock = dir.path().join("monitor.sock");
        assert_eq!(socket_path(&sock), sock);
    }

    #[test]
    fn replies_parse_into_values_or_errors() {
        let ready: Ready =
            match parse_reply(r#"{"ok":true,"pid":3,"init_pid":null,"namespaces":{}}"#) {
                Ok(ready) => ready,
                Err(_) => panic!("a ready line"),
            };
        assert_eq!(ready.pid, 3);
        assert!(matches!(
            parse_reply::<Ready>(r#"{"ok":false,"error":"boom"}"#),
            Err(ReplyError::Refused(m)) if m == "boom"
        ));
        assert!(matches!(
            parse_reply::<Ready>(r#"{"pid":3}"#),
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            parse_reply::<Ready>(r#"{"ok":true}"#),
            Err(ReplyError::Malformed(_))
        ));
    }
}
