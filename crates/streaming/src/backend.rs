//! What the streaming server asks of crustd: run an exec, attach, or open a port in a pod.

use std::io;

pub use futures::future::BoxFuture;
use k8s_cri::v1::{AttachRequest, ExecRequest};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// The container side of exec, attach and port forwarding; crates/server implements it.
///
/// The futures are dropped when the client goes away (or the server shuts down): that is the
/// cancellation signal, so whatever they hold (a process, a monitor connection) must clean up
/// on drop.
pub trait Backend: Send + Sync + 'static {
    /// Runs the command of `req` in the container; returns its exit code. `io` holds what the
    /// client asked for (stdin/stdout/stderr as requested, `resize` only with a tty).
    fn exec(&self, req: ExecRequest, io: StreamIo) -> BoxFuture<'static, Result<i32, StreamError>>;

    /// Attaches to the container's own stdio until the client or the container goes away.
    fn attach(
        &self,
        req: AttachRequest,
        io: StreamIo,
    ) -> BoxFuture<'static, Result<(), StreamError>>;

    /// A TCP connection to `port` inside the pod's network namespace.
    fn port_forward(
        &self,
        pod_sandbox_id: String,
        port: u16,
    ) -> BoxFuture<'static, Result<TcpStream, StreamError>>;
}

/// The client's streams, as the request asked for them.
///
/// Writers are flushed and closed by the server once the backend's future returns; a backend
/// may close them earlier (stdout at EOF, say).
#[derive(Default)]
pub struct StreamIo {
    pub stdin: Option<Box<dyn AsyncRead + Send + Unpin>>,
    pub stdout: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    pub stderr: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// Terminal sizes as the client sends them; only when `tty`.
    pub resize: Option<mpsc::Receiver<TerminalSize>>,
    pub tty: bool,
}

impl std::fmt::Debug for StreamIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamIo")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .field("resize", &self.resize.is_some())
            .field("tty", &self.tty)
            .finish()
    }
}

/// A terminal size as remotecommand's resize channel carries it: `{"Width":80,"Height":24}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    #[serde(rename = "Width", alias = "width")]
    pub width: u16,
    #[serde(rename = "Height", alias = "height")]
    pub height: u16,
}

/// A backend failure; its message reaches the client's error channel.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The container, pod or process is not there (the message names it).
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be carried out as given.
    #[error("{0}")]
    InvalidArgument(String),
    /// Anything else.
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}
