//! The HTTP server: one-time URLs, the upgrade handshakes (SPDY/3.1 and WebSocket), and the
//! tasks that run the upgraded sessions (kubelet's cri/streaming/server.go).

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use k8s_cri::v1::{AttachRequest, ExecRequest, PortForwardRequest};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::remotecommand::{self, Command};
use crate::token::{Cached, RequestCache, TokenError};
use crate::{httpstream, portforward, websocket, ws};

/// The streaming server's settings (kubelet's streaming.Config).
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen; `127.0.0.1:0` picks a free port. An unspecified address (0.0.0.0)
    /// listens everywhere and hands out loopback URLs.
    pub address: SocketAddr,
    /// A session with no traffic for this long is closed.
    pub stream_idle_timeout: Duration,
    /// How long a SPDY client may take to open the streams it announced.
    pub stream_creation_timeout: Duration,
    /// How long a URL stays valid.
    pub token_ttl: Duration,
    /// URLs outstanding at most; more are refused with [`TokenError::Full`].
    pub max_tokens: usize,
    /// Certificate and key files for HTTPS. Not built: no TLS library is among the workspace's
    /// dependencies, so `start` refuses `Some`.
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            stream_idle_timeout: Duration::from_secs(4 * 60 * 60),
            stream_creation_timeout: Duration::from_secs(30),
            token_ttl: Duration::from_secs(60),
            max_tokens: 1000,
            tls: None,
        }
    }
}

/// Most ports one WebSocket port-forward request may name (two channels each, below 255).
const MAX_WS_PORTS: usize = 127;
/// Longest a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Inner {
    pub(crate) cfg: Config,
    pub(crate) backend: Arc<dyn Backend>,
    cache: RequestCache,
    tasks: Mutex<JoinSet<()>>,
    stop: CancellationToken,
}

impl Inner {
    /// Spawns `fut` so that shutdown cancels it.
    fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        while tasks.try_join_next().is_some() {}
        if !self.stop.is_cancelled() {
            tasks.spawn(fut);
        }
    }
}

/// The running server; crustd hands its URLs out from Exec, Attach and PortForward.
pub struct Server {
    inner: Arc<Inner>,
    base_url: String,
}

impl Server {
    /// Binds `cfg.address` and serves in a task until [`Server::shutdown`].
    pub async fn start(cfg: Config, backend: Arc<dyn Backend>) -> io::Result<Server> {
        let tls = match &cfg.tls {
            Some((cert, key)) => Some(tls_acceptor(cert, key)?),
            None => None,
        };
        let listener = TcpListener::bind(cfg.address).await?;
        let mut local = listener.local_addr()?;
        if local.ip().is_unspecified() {
            local.set_ip(match local.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base_url = format!("{scheme}://{local}");
        let inner = Arc::new(Inner {
            cache: RequestCache::new(cfg.token_ttl, cfg.max_tokens),
            cfg,
            backend,
            tasks: Mutex::new(JoinSet::new()),
            stop: CancellationToken::new(),
        });
        let accept_inner = inner.clone();
        inner.spawn(async move { accept_loop(accept_inner, listener, tls).await });
        tracing::info!(address = %local, "streaming server listening");
        Ok(Server { inner, base_url })
    }

    /// `http://ADDRESS:PORT`, the prefix of every URL handed out.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// A one-time URL for `req` (kubelet's GetExec).
    pub fn get_exec(&self, req: ExecRequest) -> Result<String, TokenError> {
        validate_stdio(req.stdin, req.stdout, req.stderr, req.tty)?;
        if req.cmd.is_empty() {
            return Err(TokenError::Invalid("cmd must not be empty".into()));
        }
        self.url(Cached::Exec(req))
    }

    /// A one-time URL for `req` (kubelet's GetAttach).
    pub fn get_attach(&self, req: AttachRequest) -> Result<String, TokenError> {
        validate_stdio(req.stdin, req.stdout, req.stderr, req.tty)?;
        self.url(Cached::Attach(req))
    }

    /// A one-time URL for `req` (kubelet's GetPortForward).
    pub fn get_port_forward(&self, req: PortForwardRequest) -> Result<String, TokenError> {
        if let Some(p) = req.port.iter().find(|&&p| !(1..=65535).contains(&p)) {
            return Err(TokenError::Invalid(format!("port {p} is out of range")));
        }
        self.url(Cached::PortForward(req))
    }

    fn url(&self, req: Cached) -> Result<String, TokenError> {
        let kind = req.kind();
        let token = self.inner.cache.insert(req)?;
        Ok(format!("{}/{kind}/{token}", self.base_url))
    }

    /// Stops listening and ends every session (their backend futures are dropped).
    pub async fn shutdown(self) {
        self.inner.stop.cancel();
        let mut tasks = {
            let mut guard = self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *guard)
        };
        tasks.shutdown().await;
    }
}

/// kubelet's validation: tty excludes stderr, and something must be streamed.
fn validate_stdio(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> Result<(), TokenError> {
    if tty && stderr {
        return Err(TokenError::Invalid(
            "tty and stderr cannot both be true".into(),
        ));
    }
    if !stdin && !stdout && !stderr {
        return Err(TokenError::Invalid(
            "one of stdin, stdout, or stderr must be set".into(),
        ));
    }
    Ok(())
}

async fn accept_loop(
    inner: Arc<Inner>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "streaming server accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = inner.stop.cancelled() => return,
        };
        let _ = tcp.set_nodelay(true);
        let conn_inner = inner.clone();
        let tls = tls.clone();
        inner.spawn(async move {
            match tls {
                None => serve_connection(conn_inner, tcp).await,
                Some(acceptor) => {
                    // A client that never finishes its handshake holds nothing for long.
                    match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => serve_connection(conn_inner, stream).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "streaming TLS handshake failed"),
                        Err(_) => tracing::debug!("streaming TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Serves HTTP/1.1 (with upgrades) on one accepted connection, plain or TLS.
async fn serve_connection<IO>(inner: Arc<Inner>, io: IO)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let svc_inner = inner.clone();
    let svc = service_fn(move |req| handle(svc_inner.clone(), req));
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "streaming connection ended");
    }
}

/// A TLS acceptor from a PEM certificate chain and its PEM private key.
fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> io::Result<tokio_rustls::TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let bad = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("streaming TLS {what} {}: {e}", path.display()),
        )
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad("certificate", cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("certificate", cert, &e))?;
    if certs.is_empty() {
        return Err(bad("certificate", cert, &"no certificate in the file"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad("key", key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("config for", cert, &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| bad("certificate and key", cert, &e))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

type Resp = Response<Full<Bytes>>;

fn plain(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn not_found() -> Resp {
    plain(StatusCode::NOT_FOUND, "404 page not found\n")
}

/// Every value of `name`, comma-split and trimmed, in the client's order.
fn header_list(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn connection_upgrade(h: &HeaderMap) -> bool {
    header_list(h, "connection")
        .iter()
        .any(|t| t.eq_ignore_ascii_case("upgrade"))
}

fn upgrade_is(h: &HeaderMap, proto: &str) -> bool {
    h.get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(proto))
}

async fn handle(inner: Arc<Inner>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    Ok(route(&inner, req))
}

fn route(inner: &Arc<Inner>, req: Request<Incoming>) -> Resp {
    let path = req.uri().path();
    let Some((kind, token)) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .filter(|(k, t)| matches!(*k, "exec" | "attach" | "portforward") && !t.is_empty())
    else {
        return not_found();
    };
    if req.method() != Method::GET && req.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    let Some(cached) = inner.cache.consume(kind, token) else {
        return not_found();
    };
    let websocket = upgrade_is(req.headers(), "websocket") && connection_upgrade(req.headers());
    match cached {
        Cached::Exec(r) => remote_command(inner, req, Command::Exec(r), websocket),
        Cached::Attach(r) => remote_command(inner, req, Command::Attach(r), websocket),
        Cached::PortForward(r) if websocket => ws_portforward(inner, req, r),
        Cached::PortForward(r) => spdy_portforward(inner, req, r),
    }
}

fn remote_command(
    inner: &Arc<Inner>,
    req: Request<Incoming>,
    cmd: Command,
    websocket: bool,
) -> Resp {
    if websocket {
        let (resp, proto) = match ws_handshake(&req, ws::REMOTECOMMAND) {
            Ok(x) => x,
            Err(resp) => return *resp,
        };
        let (backend, idle) = (inner.backend.clone(), inner.cfg.stream_idle_timeout);
        upgrade_then(inner, req, move |io| {
            websocket::remotecommand(io, proto, cmd, backend, idle)
        });
        return resp;
    }
    let (resp, proto) = match spdy_handshake(&req, remotecommand::SPDY_PROTOCOLS) {
        Ok(x) => x,
        Err(resp) => return *resp,
    };
    let session_inner = inner.clone();
    upgrade_then(inner, req, move |io| {
        httpstream::remotecommand(io, proto, cmd, session_inner)
    });
    resp
}

fn spdy_portforward(inner: &Arc<Inner>, req: Request<Incoming>, pf: PortForwardRequest) -> Resp {
    let (resp, _) = match spdy_handshake(&req, &[portforward::SPDY_PROTOCOL]) {
        Ok(x) => x,
        Err(resp) => return *resp,
    };
    let session_inner = inner.clone();
    upgrade_then(inner, req, move |io| {
        httpstream::portforward(io, pf, session_inner)
    });
    resp
}

fn ws_portforward(inner: &Arc<Inner>, req: Request<Incoming>, pf: PortForwardRequest) -> Resp {
    let ports = match query_ports(req.uri().query().unwrap_or(""), &pf) {
        Ok(p) => p,
        Err(msg) => return plain(StatusCode::BAD_REQUEST, msg),
    };
    let (resp, proto) = match ws_handshake(&req, ws::PORTFORWARD) {
        Ok(x) => x,
        Err(resp) => return *resp,
    };
    let (backend, idle) = (inner.backend.clone(), inner.cfg.stream_idle_timeout);
    upgrade_then(inner, req, move |io| {
        websocket::portforward(io, proto, pf, ports, backend, idle)
    });
    resp
}

/// The ports of a WebSocket port forward: the `port` (or `ports`) query parameters, each a
/// comma-separated list, else the request's own list.
fn query_ports(query: &str, pf: &PortForwardRequest) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k != "port" && k != "ports" {
            continue;
        }
        for p in v.split(',') {
            let n: u16 = p
                .trim()
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("unable to parse {p:?} as a port\n"))?;
            ports.push(n);
        }
    }
    if ports.is_empty() {
        ports = pf
            .port
            .iter()
            .filter_map(|&p| u16::try_from(p).ok())
            .collect();
    }
    if ports.is_empty() {
        return Err("query parameter \"port\" is required\n".into());
    }
    if ports.len() > MAX_WS_PORTS {
        return Err(format!("at most {MAX_WS_PORTS} ports per request\n"));
    }
    Ok(ports)
}

/// httpstream.Handshake and the SPDY upgrader's checks: the client's first protocol the server
/// supports, answered with 101 and `X-Stream-Protocol-Version`.
fn spdy_handshake(
    req: &Request<Incoming>,
    supported: &[&'static str],
) -> Result<(Resp, &'static str), Box<Resp>> {
    let h = req.headers();
    if !connection_upgrade(h) || !upgrade_is(h, "SPDY/3.1") {
        return Err(Box::new(plain(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: missing upgrade headers in request\n",
        )));
    }
    let client = header_list(h, "x-stream-protocol-version");
    if client.is_empty() {
        return Err(Box::new(plain(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: X-Stream-Protocol-Version is required\n",
        )));
    }
    let Some(chosen) = client
        .iter()
        .find_map(|c| supported.iter().find(|s| *s == c))
    else {
        let mut resp = plain(
            StatusCode::FORBIDDEN,
            format!(
                "unable to upgrade: unable to negotiate protocol: client supports {client:?}, server accepts {supported:?}\n"
            ),
        );
        for s in supported {
            resp.headers_mut().append(
                "x-accepted-stream-protocol-versions",
                HeaderValue::from_static(s),
            );
        }
        return Err(Box::new(resp));
    };
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let hs = resp.headers_mut();
    hs.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    hs.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    hs.insert(
        "x-stream-protocol-version",
        HeaderValue::from_static(chosen),
    );
    Ok((resp, chosen))
}

/// The RFC 6455 server handshake with subprotocol negotiation.
fn ws_handshake(
    req: &Request<Incoming>,
    supported: &[ws::WsProtocol],
) -> Result<(Resp, ws::WsProtocol), Box<Resp>> {
    let h = req.headers();
    let key = h.get(header::SEC_WEBSOCKET_KEY).map(|k| k.as_bytes());
    let version_ok = h
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    let (Some(key), true) = (key, version_ok) else {
        return Err(Box::new(plain(
            StatusCode::BAD_REQUEST,
            "bad websocket handshake\n",
        )));
    };
    let client = header_list(h, "sec-websocket-protocol");
    let Some(proto) = ws::negotiate(&client, supported) else {
        return Err(Box::new(plain(
            StatusCode::FORBIDDEN,
            "requested websocket protocol(s) are not supported\n",
        )));
    };
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let hs = resp.headers_mut();
    hs.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    hs.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    let accept = derive_accept_key(key);
    hs.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).unwrap_or(HeaderValue::from_static("")),
    );
    if !proto.name.is_empty() {
        hs.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(proto.name),
        );
    }
    Ok((resp, proto))
}

/// Once hyper has sent the 101, runs `session` on the upgraded connection.
fn upgrade_then<F, Fut>(inner: &Arc<Inner>, mut req: Request<Incoming>, session: F)
where
    F: FnOnce(TokioIo<hyper::upgrade::Upgraded>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let on_upgrade = hyper::upgrade::on(&mut req);
    inner.spawn(async move {
        match on_upgrade.await {
            Ok(up) => session(TokioIo::new(up)).await,
            Err(e) => tracing::debug!(error = %e, "streaming upgrade failed"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_from_query_or_request() {
        let none = PortForwardRequest::default();
        assert_eq!(
            query_ports("port=80,443&x=1&ports=8080", &none).unwrap(),
            [80, 443, 8080]
        );
        assert!(query_ports("port=http", &none).is_err());
        assert!(query_ports("port=0", &none).is_err());
        assert!(query_ports("", &none).is_err());
        let some = PortForwardRequest {
            pod_sandbox_id: "p".into(),
            port: vec![22],
        };
        assert_eq!(query_ports("", &some).unwrap(), [22]);
    }

    #[test]
    fn stdio_validation() {
        assert!(validate_stdio(false, true, true, true).is_err());
        assert!(validate_stdio(false, false, false, false).is_err());
        assert!(validate_stdio(true, false, false, true).is_ok());
    }
}
