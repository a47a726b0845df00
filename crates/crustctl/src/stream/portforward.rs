//! Port forwarding as client-go's `tools/portforward` does it: a listener on 127.0.0.1 per
//! forwarded port; each accepted connection becomes a pair of streams on the SPDY session
//! (`portforward.k8s.io`): an `error` stream the client closes at once and reads to its end,
//! and a `data` stream carrying the bytes both ways, both with headers `port` and `requestid`.
//!
//! Over WebSocket crictl tunnels that same SPDY session through binary messages
//! (`SPDY/3.1+portforward.k8s.io`). A server that speaks kubelet's channel protocol instead
//! (`v4.channel.k8s.io`, ports in the query, channel 0 data and 1 error, each starting with the
//! port as two little-endian bytes) gets one WebSocket per connection; URLs being one-time,
//! every such connection asks for a new one.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use crust_streaming::spdy;
use futures::future::BoxFuture;
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use super::{spdy_upgrade, ws, Target, Transport};

pub const SPDY_PROTOCOL: &str = "portforward.k8s.io";
/// client-go's tunneling prefix + the SPDY protocol.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
pub const WS_PROTOCOLS: [&str; 3] = [TUNNEL_PROTOCOL, "v4.channel.k8s.io", "channel.k8s.io"];

const BUFFER: usize = 32 * 1024;

/// One `[LOCAL:]REMOTE` argument; `local` 0 picks a free port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub local: u16,
    pub remote: u16,
}

/// Parses `REMOTE`, `LOCAL:REMOTE`, `:REMOTE` (any free local port) as kubectl does.
pub fn parse_forward(spec: &str) -> Result<Forward> {
    let port = |s: &str, what: &str| -> Result<u16> {
        s.parse::<u16>()
            .map_err(|_| anyhow!("invalid {what} port {s:?} in {spec:?}"))
    };
    let forward = match spec.split_once(':') {
        None => {
            let p = port(spec, "port")?;
            Forward {
                local: p,
                remote: p,
            }
        }
        Some(("", remote)) => Forward {
            local: 0,
            remote: port(remote, "remote")?,
        },
        Some((local, remote)) => Forward {
            local: port(local, "local")?,
            remote: port(remote, "remote")?,
        },
    };
    if forward.remote == 0 {
        bail!("remote port must be > 0 in {spec:?}");
    }
    Ok(forward)
}

/// Fresh streaming URLs (a new PortForward call each).
pub type UrlSource = Arc<dyn Fn() -> BoxFuture<'static, Result<String>> + Send + Sync>;

/// How accepted connections reach the pod.
pub enum Dialer {
    /// One SPDY session for every connection (upgraded once, at start).
    Spdy(Arc<spdy::Session>),
    /// WebSocket: a tunnel session once the server chose it, else one socket per connection.
    WebSocket {
        urls: UrlSource,
        first: Mutex<Option<String>>,
        tunnel: tokio::sync::Mutex<Option<Arc<spdy::Session>>>,
    },
}

enum Route {
    Spdy(Arc<spdy::Session>),
    Channels(Box<ws::Ws>),
}

impl Dialer {
    /// Connects for `transport` with the URL `first`; `urls` gives more when needed.
    pub async fn connect(transport: Transport, first: String, urls: UrlSource) -> Result<Dialer> {
        match transport {
            Transport::Spdy => {
                let target = Target::parse(&first)?;
                let (session, protocol) = spdy_upgrade::connect(&target, &[SPDY_PROTOCOL]).await?;
                if protocol != SPDY_PROTOCOL {
                    bail!("unable to negotiate protocol: the server chose {protocol:?}, the client asked for {SPDY_PROTOCOL:?}");
                }
                Ok(Dialer::Spdy(Arc::new(session)))
            }
            Transport::WebSocket => Ok(Dialer::WebSocket {
                urls,
                first: Mutex::new(Some(first)),
                tunnel: tokio::sync::Mutex::new(None),
            }),
        }
    }

    async fn route(&self, remote: u16) -> Result<Route> {
        match self {
            Dialer::Spdy(session) => Ok(Route::Spdy(session.clone())),
            Dialer::WebSocket {
                urls,
                first,
                tunnel,
            } => {
                let mut tunnel = tunnel.lock().await;
                if let Some(session) = tunnel.as_ref() {
                    if session.closed().now_or_never().is_none() {
                        return Ok(Route::Spdy(session.clone()));
                    }
                }
                let url = first.lock().expect("url lock").take();
                let url = match url {
                    Some(url) => url,
                    None => urls().await?,
                };
                let target = Target::parse(&url)?.with_ports(&[remote]);
                let (socket, protocol) = ws::connect(&target, &WS_PROTOCOLS).await?;
                if protocol == TUNNEL_PROTOCOL {
                    let (session, mut pushed) =
                        spdy::Session::client(ws::Tunnel::new(socket), spdy::Config::default());
                    tokio::spawn(async move { while pushed.recv().await.is_some() {} });
                    let session = Arc::new(session);
                    *tunnel = Some(session.clone());
                    Ok(Route::Spdy(session))
                } else {
                    Ok(Route::Channels(Box::new(socket)))
                }
            }
        }
    }

    /// Resolves when the SPDY session of `--transport spdy` is gone (never for WebSocket).
    async fn lost(&self) {
        match self {
            Dialer::Spdy(session) => session.closed().await,
            Dialer::WebSocket { .. } => std::future::pending().await,
        }
    }
}

/// Binds 127.0.0.1:LOCAL for each forward; returns the listeners with their real ports.
pub async fn bind(forwards: &[Forward]) -> Result<Vec<(TcpListener, Forward)>> {
    let mut bound = Vec::new();
    for f in forwards {
        let listener = TcpListener::bind(("127.0.0.1", f.local))
            .await
            .with_context(|| format!("unable to listen on port {}", f.local))?;
        let local = listener.local_addr()?.port();
        bound.push((
            listener,
            Forward {
                local,
                remote: f.remote,
            },
        ));
    }
    Ok(bound)
}

/// Serves the listeners until `stop` resolves (or the SPDY session is lost); `log` gets
/// kubectl's "Handling connection for N" lines, `errors` the failures of single connections.
pub async fn serve(
    dialer: Dialer,
    listeners: Vec<(TcpListener, Forward)>,
    stop: impl std::future::Future<Output = ()>,
    log: Arc<Mutex<dyn std::io::Write + Send>>,
    errors: Arc<Mutex<dyn std::io::Write + Send>>,
) -> Result<()> {
    let dialer = Arc::new(dialer);
    let request_ids = Arc::new(AtomicU64::new(0));
    let mut accepts = Vec::new();
    for (listener, forward) in listeners {
        let dialer = dialer.clone();
        let request_ids = request_ids.clone();
        let log = log.clone();
        let errors = errors.clone();
        accepts.push(tokio::spawn(async move {
            loop {
                let (conn, _) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        let _ = writeln!(errors.lock().expect("log lock"), "accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = writeln!(
                    log.lock().expect("log lock"),
                    "Handling connection for {}",
                    forward.local
                );
                let id = request_ids.fetch_add(1, Ordering::Relaxed);
                let dialer = dialer.clone();
                let errors = errors.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(&dialer, conn, forward, id).await {
                        let _ = writeln!(
                            errors.lock().expect("log lock"),
                            "E an error occurred forwarding {} -> {}: {e:#}",
                            forward.local,
                            forward.remote
                        );
                    }
                });
            }
        }));
    }
    let result = tokio::select! {
        () = stop => Ok(()),
        () = dialer.lost() => Err(anyhow!("lost connection to pod")),
    };
    for accept in accepts {
        accept.abort();
    }
    if let Dialer::Spdy(session) = &*dialer {
        session.go_away();
    }
    result
}

async fn handle(dialer: &Dialer, conn: TcpStream, forward: Forward, id: u64) -> Result<()> {
    conn.set_nodelay(true)?;
    match dialer.route(forward.remote).await? {
        Route::Spdy(session) => over_spdy(&session, conn, forward.remote, id).await,
        Route::Channels(socket) => over_channels(*socket, conn).await,
    }
}

async fn pump<R, W>(mut from: R, to: &mut W) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
    }
}

/// One connection as a stream pair on `session`.
pub async fn over_spdy(
    session: &spdy::Session,
    conn: TcpStream,
    remote: u16,
    id: u64,
) -> Result<()> {
    let headers = |kind: &str| -> spdy::Headers {
        [
            ("streamtype".to_owned(), kind.to_owned()),
            ("port".to_owned(), remote.to_string()),
            ("requestid".to_owned(), id.to_string()),
        ]
        .into_iter()
        .collect()
    };
    // We never write to the error stream: it is created half-closed.
    let mut error = session
        .open_stream(headers("error"), true)
        .await
        .context("create the error stream")?;
    let data = session
        .open_stream(headers("data"), false)
        .await
        .context("create the data stream")?;
    let error = tokio::spawn(async move {
        let mut message = Vec::new();
        let _ = error.read_to_end(&mut message).await;
        message
    });
    let (data_read, mut data_write) = tokio::io::split(data);
    let (conn_read, mut conn_write) = conn.into_split();
    let upstream = tokio::spawn(async move {
        let _ = pump(conn_read, &mut data_write).await;
        // Tell the server we are done sending.
        let _ = data_write.shutdown().await;
        std::future::pending::<()>().await;
    });
    let copied = pump(data_read, &mut conn_write).await;
    let _ = conn_write.shutdown().await;
    upstream.abort();
    let message = tokio::time::timeout(Duration::from_secs(5), error)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    if !message.is_empty() {
        bail!("{}", String::from_utf8_lossy(&message).trim());
    }
    copied.context("copy from the pod")
}

/// One connection over its own WebSocket in the channel protocol: channel 0 data, 1 error.
pub async fn over_channels<S>(socket: S, conn: TcpStream) -> Result<()>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + futures::Sink<Message, Error = tokio_tungstenite::tungstenite::Error>
        + Send
        + Unpin
        + 'static,
{
    let (mut sink, mut incoming) = socket.split();
    let (mut conn_read, mut conn_write) = conn.into_split();
    let upstream = tokio::spawn(async move {
        let mut buf = vec![0u8; BUFFER];
        loop {
            match conn_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink.send(ws::frame(0, &buf[..n])).await.is_err() {
                        return;
                    }
                }
            }
        }
        // The channel protocol cannot half-close: keep the socket open until the pod's side
        // ends it.
        std::future::pending::<()>().await;
    });
    // Each channel starts with the port number (2 bytes, little-endian).
    let mut prefix = [2usize, 2usize];
    let mut message = Vec::new();
    let mut result = Ok(());
    while let Some(next) = incoming.next().await {
        let data = match next {
            Ok(Message::Binary(data)) => data,
            Ok(Message::Close(_)) => break,
            Ok(_) => continue,
            Err(e) => {
                result = Err(anyhow!(e).context("read from the streaming server"));
                break;
            }
        };
        let Some((&channel, mut payload)) = data.split_first() else {
            continue;
        };
        if let Some(skip) = prefix.get_mut(usize::from(channel)) {
            let n = (*skip).min(payload.len());
            payload = &payload[n..];
            *skip -= n;
        }
        match channel {
            0 => {
                if let Err(e) = conn_write.write_all(payload).await {
                    result = Err(anyhow!(e).context("write to the local connection"));
                    break;
                }
            }
            1 => message.extend_from_slice(payload),
            _ => {}
        }
    }
    upstream.abort();
    let _ = conn_write.shutdown().await;
    if !message.is_empty() {
        bail!("{}", String::from_utf8_lossy(&message).trim());
    }
    result
}

/// The address a bound forward listens on.
pub fn listen_address(forward: &Forward) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], forward.local))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards() {
        assert_eq!(
            parse_forward("8080").unwrap(),
            Forward {
                local: 8080,
                remote: 8080
            }
        );
        assert_eq!(
            parse_forward("0:80").unwrap(),
            Forward {
                local: 0,
                remote: 80
            }
        );
        assert_eq!(parse_forward(":80").unwrap().local, 0);
        assert_eq!(parse_forward("9000:80").unwrap().local, 9000);
        assert!(parse_forward("80:0").is_err());
        assert!(parse_forward("x").is_err());
        assert!(parse_forward("1:70000").is_err());
    }
}
