//! WebSocket connections to the streaming server: the handshake with the subprotocols
//! offered in `Sec-WebSocket-Protocol`, the channel framing of `*.channel.k8s.io` (each binary
//! message starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize; v5 adds
//! 255 = "close channel N"), and [`Tunnel`], the byte stream over binary messages that carries
//! SPDY for `SPDY/3.1+portforward.k8s.io` (client-go's tunneling port-forward, which crictl
//! uses for `--transport websocket`).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::Target;

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
/// v5: the payload's first byte names a channel the sender will not write to again.
pub const CLOSE: u8 = 255;

pub type Ws = WebSocketStream<TcpStream>;

/// Connects, offering `protocols` in order of preference; returns the one the server chose.
pub async fn connect(target: &Target, protocols: &[&str]) -> Result<(Ws, String)> {
    let url = target.ws_url();
    let mut request = url
        .as_str()
        .into_client_request()
        .with_context(|| format!("WebSocket request for {url}"))?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_str(&protocols.join(", "))?,
    );
    let tcp = TcpStream::connect(&target.authority)
        .await
        .with_context(|| format!("connect to the streaming server {}", target.authority))?;
    tcp.set_nodelay(true)?;
    let (ws, response) = match tokio_tungstenite::client_async(request, tcp).await {
        Ok(ok) => ok,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).trim().to_owned())
                .unwrap_or_default();
            bail!(
                "unable to upgrade connection: {}: {body}",
                response.status()
            );
        }
        Err(e) => return Err(e).context("WebSocket handshake with the streaming server"),
    };
    let protocol = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((ws, protocol))
}

/// A binary message for `channel`.
pub fn frame(channel: u8, payload: &[u8]) -> Message {
    let mut data = Vec::with_capacity(payload.len() + 1);
    data.push(channel);
    data.extend_from_slice(payload);
    Message::Binary(data.into())
}

/// A byte stream over a WebSocket's binary messages (no channel byte): each write one
/// message, reads across message boundaries; a close or the end of the connection is EOF.
pub struct Tunnel<S> {
    ws: S,
    pending: Bytes,
}

impl<S> Tunnel<S> {
    pub fn new(ws: S) -> Tunnel<S> {
        Tunnel {
            ws,
            pending: Bytes::new(),
        }
    }
}

fn ws_error(e: tokio_tungstenite::tungstenite::Error) -> io::Error {
    io::Error::other(e)
}

impl<S> AsyncRead for Tunnel<S>
where
    S: Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.pending.is_empty() {
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(data))) => self.pending = data,
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "invalid message type received",
                    )))
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(ws_error(e))),
            }
        }
        let n = self.pending.len().min(buf.remaining());
        let chunk = self.pending.split_to(n);
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

impl<S> AsyncWrite for Tunnel<S>
where
    S: Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(ws_error)?;
        Pin::new(&mut self.ws)
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(ws_error)?;
        // Push it out now if the socket takes it; a later flush finishes the job otherwise.
        if let Poll::Ready(Err(e)) = Pin::new(&mut self.ws).poll_flush(cx) {
            return Poll::Ready(Err(ws_error(e)));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(ws_error)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_close(cx).map_err(ws_error)
    }
}
