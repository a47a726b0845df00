//! The local terminal: raw mode for `-t` (restored on drop), its size, SIGWINCH, and stdin
//! read on a thread of its own (a blocked read must not keep the runtime from shutting down
//! when the remote command ends first).

use std::io::{self, Read};
use std::os::fd::BorrowedFd;

use anyhow::{Context, Result};
use bytes::Bytes;
use rustix::termios::{self, OptionalActions, Termios};
use serde::Serialize;
use tokio::io::AsyncRead;
use tokio::sync::mpsc;

/// A terminal size as remotecommand's resize channel carries it: `{"Width":80,"Height":24}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TerminalSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// Puts a terminal in raw mode; the previous mode comes back on drop.
pub struct RawMode {
    fd: BorrowedFd<'static>,
    saved: Termios,
}

impl RawMode {
    pub fn enter(fd: BorrowedFd<'static>) -> Result<RawMode> {
        let saved = termios::tcgetattr(fd).context("read the terminal's mode")?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(fd, OptionalActions::Now, &raw).context("set the terminal raw")?;
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, OptionalActions::Now, &self.saved);
    }
}

pub fn stdin_fd() -> BorrowedFd<'static> {
    rustix::stdio::stdin()
}

pub fn stdout_fd() -> BorrowedFd<'static> {
    rustix::stdio::stdout()
}

pub fn is_terminal(fd: BorrowedFd<'_>) -> bool {
    termios::isatty(fd)
}

/// The size of the terminal on `fd`, if it is one and knows its size.
pub fn size(fd: BorrowedFd<'_>) -> Option<TerminalSize> {
    let ws = termios::tcgetwinsize(fd).ok()?;
    (ws.ws_col > 0 || ws.ws_row > 0).then_some(TerminalSize {
        width: ws.ws_col,
        height: ws.ws_row,
    })
}

/// Terminal sizes of `fd`: the current one now, then one on every SIGWINCH that changes it.
pub fn watch_size(fd: BorrowedFd<'static>) -> Result<mpsc::Receiver<TerminalSize>> {
    let (tx, rx) = mpsc::channel(4);
    let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        .context("watch SIGWINCH")?;
    let mut last = size(fd);
    if let Some(current) = last {
        let _ = tx.try_send(current);
    }
    tokio::spawn(async move {
        while winch.recv().await.is_some() {
            let current = size(fd);
            if current != last {
                last = current;
                if let Some(current) = current {
                    if tx.send(current).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    Ok(rx)
}

/// Our stdin as an async reader fed by a thread of its own.
pub fn stdin_reader() -> impl AsyncRead + Send + Unpin + 'static {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    ChannelReader {
        rx,
        pending: Bytes::new(),
    }
}

/// An [`AsyncRead`] over chunks sent on a channel; EOF when the sender is gone.
pub struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    pending: Bytes,
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        while self.pending.is_empty() {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(chunk))) => self.pending = chunk,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = self.pending.len().min(buf.remaining());
        let chunk = self.pending.split_to(n);
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

/// A file on a duplicate of `fd`: writes to it bypass std's stdout lock (which `main` holds
/// for the whole command) and its line buffering.
pub fn dup_file(fd: BorrowedFd<'_>) -> Result<std::fs::File> {
    Ok(std::fs::File::from(
        rustix::io::dup(fd).context("duplicate a standard stream")?,
    ))
}

/// Our stdout as an async writer, unbuffered.
pub fn stdout_writer() -> Result<tokio::fs::File> {
    Ok(tokio::fs::File::from_std(dup_file(stdout_fd())?))
}

/// Our stderr as an async writer, unbuffered.
pub fn stderr_writer() -> Result<tokio::fs::File> {
    Ok(tokio::fs::File::from_std(
        dup_file(rustix::stdio::stderr())?,
    ))
}
