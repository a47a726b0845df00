//! The WebSocket transport (apimachinery's wsstream): numbered channels multiplexed over one
//! connection, each message starting with its channel number — a byte (`channel.k8s.io`,
//! `v4.channel.k8s.io`, `v5.channel.k8s.io`) or an ASCII digit followed by base64
//! (`base64.channel.k8s.io`, `v4.base64.channel.k8s.io`). v5 adds a CLOSE message
//! (`[255, channel]`) by which the client half-closes a channel (stdin EOF).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::{CancellationToken, PollSender};

use crate::pipe::ChanReader;

/// A negotiated WebSocket subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WsProtocol {
    pub name: &'static str,
    pub base64: bool,
    /// remotecommand: the error channel carries a metav1.Status.
    pub json_status: bool,
    /// v5: the client may half-close channels.
    pub close_signal: bool,
}

const fn proto(name: &'static str, base64: bool, json_status: bool, close: bool) -> WsProtocol {
    WsProtocol {
        name,
        base64,
        json_status,
        close_signal: close,
    }
}

/// remotecommand over WebSocket, as kubelet's streaming server offers it ("" = no header).
pub(crate) const REMOTECOMMAND: &[WsProtocol] = &[
    proto("v5.channel.k8s.io", false, true, true),
    proto("v4.channel.k8s.io", false, true, false),
    proto("v4.base64.channel.k8s.io", true, true, false),
    proto("channel.k8s.io", false, false, false),
    proto("base64.channel.k8s.io", true, false, false),
    proto("", false, false, false),
];

/// portforward over WebSocket (kubelet's portforward/websocket.go), plus the SPDY protocol's
/// name, which some clients offer.
pub(crate) const PORTFORWARD: &[WsProtocol] = &[
    proto("v4.channel.k8s.io", false, false, false),
    proto("v4.base64.channel.k8s.io", true, false, false),
    proto("portforward.k8s.io", false, false, false),
    proto("", false, false, false),
];

/// The first protocol in the client's order that `supported` has; "" when the client named
/// none.
pub(crate) fn negotiate(client: &[String], supported: &[WsProtocol]) -> Option<WsProtocol> {
    if client.is_empty() {
        return supported.iter().find(|p| p.name.is_empty()).copied();
    }
    client
        .iter()
        .find_map(|c| supported.iter().find(|p| !p.name.is_empty() && p.name == c))
        .copied()
}

/// Largest message payload the server sends; longer writes are split.
const MAX_CHUNK: usize = 32 * 1024;
/// Largest message the server accepts.
const MAX_MESSAGE: usize = 1 << 20;
/// The CLOSE pseudo-channel of v5.
const CLOSE_CHANNEL: u8 = 255;

enum Out {
    Data(u8, Bytes),
    Close,
}

/// One multiplexed WebSocket connection: a reader task dispatching incoming channels, a writer
/// task sending what the channel writers queue.
pub(crate) struct WsConn {
    out: mpsc::Sender<Out>,
    gone: CancellationToken,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Drop for WsConn {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

/// Milliseconds since `start` of the last message in either direction.
struct Activity {
    start: Instant,
    last: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last.store(ms, Ordering::Relaxed);
    }

    fn idle_deadline(&self, idle: Duration) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed)) + idle
    }
}

impl WsConn {
    /// Starts the connection over an upgraded `io`. `inputs[i]` says whether channel `i` is
    /// read; the returned readers are `Some` exactly there.
    pub(crate) async fn start<IO>(
        io: IO,
        proto: WsProtocol,
        inputs: &[bool],
        idle: Duration,
    ) -> (WsConn, Vec<Option<ChanReader>>)
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        let (mut sink, mut stream) = ws.split();
        let mut senders = Vec::with_capacity(inputs.len());
        let mut readers = Vec::with_capacity(inputs.len());
        for &input in inputs {
            if input {
                let (tx, rx) = mpsc::channel(16);
                senders.push(Some(tx));
                readers.push(Some(ChanReader::new(rx)));
            } else {
                senders.push(None);
                readers.push(None);
            }
        }
        let gone = CancellationToken::new();
        let activity = Arc::new(Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
        });
        let (out, mut out_rx) = mpsc::channel::<Out>(32);

        let base64 = proto.base64;
        let writer_gone = gone.clone();
        let writer_activity = activity.clone();
        let writer = tokio::spawn(async move {
            while let Some(item) = out_rx.recv().await {
                let msg = match item {
                    Out::Data(ch, data) => encode(ch, &data, base64),
                    Out::Close => {
                        let frame = CloseFrame {
                            code: CloseCode::Normal,
                            reason: "".into(),
                        };
                        let _ = sink.send(Message::Close(Some(frame))).await;
                        break;
                    }
                };
                if sink.send(msg).await.is_err() {
                    break;
                }
                writer_activity.touch();
            }
            let _ = sink.close().await;
            writer_gone.cancel();
        });

        let reader_gone = gone.clone();
        let reader = tokio::spawn(async move {
            let reason = loop {
                let deadline = activity.idle_deadline(idle);
                let msg = tokio::select! {
                    m = stream.next() => m,
                    () = tokio::time::sleep_until(deadline) => {
                        if activity.idle_deadline(idle) <= Instant::now() {
                            break "idle timeout";
                        }
                        continue;
                    }
                    () = reader_gone.cancelled() => break "closed",
                };
                let data: Bytes = match msg {
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Text(t))) => Bytes::copy_from_slice(t.as_bytes()),
                    Some(Ok(Message::Close(_))) | None => break "closed by client",
                    Some(Ok(_)) => continue,
                    Some(Err(_)) => break "protocol error",
                };
                activity.touch();
                let Some((&first, payload)) = data.split_first() else {
                    continue;
                };
                if proto.close_signal && first == CLOSE_CHANNEL {
                    match payload {
                        [ch] => {
                            if let Some(s) = senders.get_mut(*ch as usize) {
                                *s = None;
                            }
                            continue;
                        }
                        _ => break "malformed close message",
                    }
                }
                let (ch, payload) = if base64 {
                    match STANDARD.decode(payload) {
                        Ok(p) => (first.wrapping_sub(b'0'), Bytes::from(p)),
                        Err(_) => break "malformed base64",
                    }
                } else {
                    (first, data.slice(1..))
                };
                // Kubernetes ignores messages for channels it does not read.
                if let Some(slot) = senders.get_mut(ch as usize) {
                    if let Some(tx) = slot {
                        if tx.send(payload).await.is_err() {
                            *slot = None;
                        }
                    }
                }
            };
            tracing::debug!(reason, "websocket stream connection ended");
            drop(senders);
            reader_gone.cancel();
        });
        (
            WsConn {
                out,
                gone,
                reader,
                writer,
            },
            readers,
        )
    }

    /// A writer for channel `ch`: each write becomes one message (or several, if long).
    pub(crate) fn writer(&self, ch: u8) -> WsWriter {
        WsWriter {
            tx: PollSender::new(self.out.clone()),
            ch,
        }
    }

    /// Sends one message on `ch` (possibly empty, as the "connection ready" signal).
    pub(crate) async fn send(&self, ch: u8, data: Bytes) {
        let _ = self.out.send(Out::Data(ch, data)).await;
    }

    /// Completes when the client closed the connection, it failed, or it was idle too long.
    pub(crate) fn gone(&self) -> CancellationToken {
        self.gone.clone()
    }

    /// Sends what is queued, then a close message; bounded so a client that does not read
    /// cannot hold the session.
    pub(crate) async fn finish(mut self) {
        let _ = self.out.send(Out::Close).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.writer).await;
    }
}

fn encode(ch: u8, data: &[u8], base64: bool) -> Message {
    if base64 {
        let mut s = String::with_capacity(1 + data.len().div_ceil(3) * 4);
        s.push(char::from(b'0'.wrapping_add(ch)));
        STANDARD.encode_string(data, &mut s);
        Message::text(s)
    } else {
        let mut frame = Vec::with_capacity(1 + data.len());
        frame.push(ch);
        frame.extend_from_slice(data);
        Message::Binary(frame.into())
    }
}

/// Writes to one channel of a [`WsConn`].
pub(crate) struct WsWriter {
    tx: PollSender<Out>,
    ch: u8,
}

impl AsyncWrite for WsWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let broken = |_| io::Error::from(io::ErrorKind::BrokenPipe);
        ready!(self.tx.poll_reserve(cx)).map_err(broken)?;
        let n = buf.len().min(MAX_CHUNK);
        let ch = self.ch;
        self.tx
            .send_item(Out::Data(ch, Bytes::copy_from_slice(&buf[..n])))
            .map_err(broken)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The writer task sends (and flushes) each message as it comes.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tx.close();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn negotiation_follows_client_order() {
        let p = negotiate(
            &names(&["base64.channel.k8s.io", "v4.channel.k8s.io"]),
            REMOTECOMMAND,
        );
        assert_eq!(p.unwrap().name, "base64.channel.k8s.io");
        assert!(p.unwrap().base64);
        assert_eq!(negotiate(&[], REMOTECOMMAND).unwrap().name, "");
        assert!(negotiate(&names(&["v9.channel.k8s.io"]), REMOTECOMMAND).is_none());
        assert!(negotiate(&names(&[""]), REMOTECOMMAND).is_none());
        let v5 = negotiate(&names(&["v5.channel.k8s.io"]), REMOTECOMMAND).unwrap();
        assert!(v5.close_signal && v5.json_status);
    }

    #[test]
    fn base64_encoding() {
        let Message::Text(t) = encode(1, b"foo\n", true) else {
            panic!()
        };
        assert_eq!(t.as_str(), "1Zm9vCg==");
        let Message::Binary(b) = encode(3, b"x", false) else {
            panic!()
        };
        assert_eq!(&b[..], &[3, b'x']);
    }

    #[tokio::test]
    async fn readers_only_for_input_channels() {
        let (a, _b) = tokio::io::duplex(1024);
        let p = negotiate(&names(&["v4.base64.channel.k8s.io"]), REMOTECOMMAND).unwrap();
        let (_conn, readers) = WsConn::start(a, p, &[true, false], Duration::from_secs(5)).await;
        assert!(readers[0].is_some() && readers[1].is_none());
    }
}
