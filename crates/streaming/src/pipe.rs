//! Small adapters between the transports and the backend's `AsyncRead`/`AsyncWrite` halves.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;

use crate::backend::TerminalSize;

/// Reads what a transport's dispatcher receives for one channel; EOF when the sender is gone.
pub(crate) struct ChanReader {
    rx: mpsc::Receiver<Bytes>,
    buf: Bytes,
}

impl ChanReader {
    pub(crate) fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        ChanReader {
            rx,
            buf: Bytes::new(),
        }
    }
}

impl AsyncRead for ChanReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.buf.is_empty() {
            match ready!(self.rx.poll_recv(cx)) {
                Some(b) => self.buf = b,
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = self.buf.len().min(out.remaining());
        out.put_slice(&self.buf[..n]);
        self.buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// A writer the backend gets while the server keeps a handle, so the server can close the
/// stream (FIN, EOF to the client) after the backend is done with it, whatever the backend did.
pub(crate) struct SharedWriter<W>(Arc<Mutex<W>>);

impl<W> Clone for SharedWriter<W> {
    fn clone(&self) -> Self {
        SharedWriter(self.0.clone())
    }
}

impl<W: AsyncWrite + Unpin> SharedWriter<W> {
    pub(crate) fn new(w: W) -> Self {
        SharedWriter(Arc::new(Mutex::new(w)))
    }

    fn with<T>(&self, f: impl FnOnce(Pin<&mut W>) -> T) -> T {
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(Pin::new(&mut *w))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for SharedWriter<W> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        self.with(|w| w.poll_write(cx, b))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|w| w.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|w| w.poll_shutdown(cx))
    }
}

/// A spawned helper that ends with its owner, also when the owner's future is dropped.
pub(crate) struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Flushes and closes `w`, ignoring errors (the peer may be gone or the backend closed it).
pub(crate) async fn close<W: AsyncWrite + Unpin>(w: &mut W) {
    let _ = w.flush().await;
    let _ = w.shutdown().await;
}

/// Longest run of bytes a resize stream may send without completing a JSON object.
const MAX_RESIZE_MESSAGE: usize = 4096;

/// Decodes remotecommand's resize stream (JSON objects one after another) into sizes. Ends at
/// EOF, at malformed input, or when the receiver is gone.
pub(crate) async fn decode_resizes<R: AsyncRead + Unpin>(mut r: R, tx: mpsc::Sender<TerminalSize>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<TerminalSize>();
        let mut sizes = Vec::new();
        let (consumed, malformed) = loop {
            match it.next() {
                Some(Ok(size)) => sizes.push(size),
                Some(Err(e)) if e.is_eof() => break (it.byte_offset(), false),
                Some(Err(_)) => break (0, true),
                None => break (it.byte_offset(), false),
            }
        };
        buf.drain(..consumed);
        for size in sizes {
            if tx.send(size).await.is_err() {
                return;
            }
        }
        if malformed || buf.len() > MAX_RESIZE_MESSAGE {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resizes_split_anywhere() {
        let (mut w, r) = tokio::io::duplex(64);
        let (tx, mut rx) = mpsc::channel(8);
        let task = tokio::spawn(decode_resizes(r, tx));
        w.write_all(b"{\"Width\":80,\"Hei").await.unwrap();
        w.write_all(b"ght\":24}{\"Width\":100,\"Height\":50}\n{\"width\":1,")
            .await
            .unwrap();
        w.write_all(b"\"height\":2}").await.unwrap();
        drop(w);
        let mut got = Vec::new();
        while let Some(s) = rx.recv().await {
            got.push((s.width, s.height));
        }
        task.await.unwrap();
        assert_eq!(got, [(80, 24), (100, 50), (1, 2)]);
    }

    #[tokio::test]
    async fn garbage_ends_the_resize_stream() {
        let (mut w, r) = tokio::io::duplex(64);
        let (tx, mut rx) = mpsc::channel(8);
        let task = tokio::spawn(decode_resizes(r, tx));
        w.write_all(b"{\"Width\":80,\"Height\":24}]]]")
            .await
            .unwrap();
        assert_eq!(rx.recv().await.map(|s| s.width), Some(80));
        assert!(rx.recv().await.is_none());
        task.await.unwrap();
    }

    #[tokio::test]
    async fn chan_reader_reads_in_pieces() {
        let (tx, rx) = mpsc::channel(4);
        tx.send(Bytes::from_static(b"hello ")).await.unwrap();
        tx.send(Bytes::from_static(b"world")).await.unwrap();
        drop(tx);
        let mut s = String::new();
        ChanReader::new(rx).read_to_string(&mut s).await.unwrap();
        assert_eq!(s, "hello world");
    }
}
