//! One SPDY stream as tokio `AsyncRead + AsyncWrite`.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::frame::{rst, Frame};
use super::headers::Headers;
use super::state::{Shared, MAX_CHUNK, QUEUE_CAP};

/// A stream of a [`Session`](super::Session).
///
/// Reading returns the peer's data, then EOF after the peer's FIN; after a reset or a
/// connection error it returns what was already received, then the error. Writing waits for
/// flow-control window (once the peer does flow control) and for room in the connection's
/// bounded output buffer. `poll_shutdown` sends FIN (an empty DATA frame): a half close.
///
/// Dropping a stream that has not sent FIN resets it (RST_STREAM CANCEL), so the peer is not
/// left waiting; dropping one that has sent FIN sends nothing, and data still arriving on it is
/// discarded. (spdystream, written in Go, has no drop; this is the closest to its `Close`.)
pub struct Stream {
    shared: Arc<Shared>,
    id: u32,
    headers: Headers,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.id)
            .field("headers", &self.headers)
            .finish()
    }
}

impl Stream {
    pub(crate) fn new(shared: Arc<Shared>, id: u32, headers: Headers) -> Stream {
        shared.handles.fetch_add(1, Ordering::SeqCst);
        Stream {
            shared,
            id,
            headers,
        }
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// The headers of the SYN_STREAM that opened the stream (whichever side sent it).
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Resets the stream: RST_STREAM CANCEL; the peer's reads and writes fail.
    pub fn reset(self) {
        let mut st = self.shared.lock();
        let open = st.streams.get(&self.id).is_some_and(|s| !s.ended());
        if open && st.dead.is_none() {
            st.reset_stream(self.id, rst::CANCEL);
        }
        drop(st);
        self.shared.notify.notify_one();
        // Drop forgets the entry.
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut st = this.shared.lock();
        let dead = st.dead.clone();
        let Some(s) = st.streams.get_mut(&this.id) else {
            return Poll::Ready(Ok(()));
        };
        if s.recv_len > 0 {
            let mut n = 0;
            while buf.remaining() > 0 {
                let Some(front) = s.recv.front_mut() else {
                    break;
                };
                let take = front.len().min(buf.remaining());
                buf.put_slice(&front[..take]);
                front.advance(take);
                if front.is_empty() {
                    s.recv.pop_front();
                }
                n += take;
            }
            s.recv_len -= n;
            st.consumed(this.id, n);
            drop(st);
            this.shared.notify.notify_one();
            return Poll::Ready(Ok(()));
        }
        if s.remote_fin {
            return Poll::Ready(Ok(()));
        }
        if let Some(e) = s.reset.as_ref().or(dead.as_ref()) {
            return Poll::Ready(Err(e.to_io()));
        }
        s.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut st = this.shared.lock();
        let dead = st.dead.clone();
        let out_full = st.out.len() >= QUEUE_CAP;
        let (enforce, session_window) = (st.peer_flow_control, st.session_send_window);
        let Some(s) = st.streams.get_mut(&this.id) else {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "spdy stream: gone",
            )));
        };
        if let Some(e) = s.reset.as_ref().or(dead.as_ref()) {
            return Poll::Ready(Err(e.to_io()));
        }
        if s.local_fin {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "spdy stream: write after FIN",
            )));
        }
        let mut n = buf.len().min(MAX_CHUNK);
        if enforce {
            let window = s.send_window.min(session_window);
            n = n.min(window.max(0) as usize);
        }
        if out_full || n == 0 {
            s.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        s.send_window -= n as i64;
        st.session_send_window -= n as i64;
        st.queue(&Frame::Data {
            stream_id: this.id,
            fin: false,
            data: Bytes::copy_from_slice(&buf[..n]),
        });
        drop(st);
        this.shared.notify.notify_one();
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut st = this.shared.lock();
        let dead = st.dead.clone();
        let Some(s) = st.streams.get_mut(&this.id) else {
            return Poll::Ready(Ok(()));
        };
        if s.local_fin {
            return Poll::Ready(Ok(()));
        }
        if let Some(e) = s.reset.as_ref().or(dead.as_ref()) {
            return Poll::Ready(Err(e.to_io()));
        }
        s.local_fin = true;
        st.queue(&Frame::Data {
            stream_id: this.id,
            fin: true,
            data: Bytes::new(),
        });
        drop(st);
        this.shared.notify.notify_one();
        Poll::Ready(Ok(()))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        let dead = st.dead.is_some();
        if let Some(s) = st.streams.get_mut(&self.id) {
            let live = s.reset.is_none() && !dead;
            if live && !s.local_fin {
                st.reset_stream(self.id, rst::CANCEL);
                st.forget(self.id);
            } else if live && !s.remote_fin {
                s.detached = true;
                let unread = s.recv_len as i64;
                s.recv.clear();
                s.recv_len = 0;
                st.credit_session(unread);
            } else {
                st.forget(self.id);
            }
        }
        drop(st);
        self.shared.handles.fetch_sub(1, Ordering::SeqCst);
        self.shared.notify.notify_one();
    }
}
