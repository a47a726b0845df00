//! A fake backend and small clients for the streaming tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crust_streaming::{Backend, BoxFuture, Config, Server, StreamError, StreamIo};
use k8s_cri::v1::{AttachRequest, ExecRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Sets its flag when dropped: shows a backend future was cancelled.
pub struct DropGuard(pub Arc<AtomicBool>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// exec: `["exit3"]` and the default echo stdin to stdout (up to EOF or a newline), write
/// "err" to stderr and exit 3 or 0; `["resize"]` prints the first two terminal sizes;
/// `["sleep"]` waits forever holding a drop guard. attach: a counter, 1 to 5.
/// port_forward: a connection to an echo server.
#[derive(Default)]
pub struct Fake {
    pub echo: Mutex<Option<SocketAddr>>,
    pub started: Arc<AtomicUsize>,
    pub dropped: Arc<AtomicBool>,
}

impl Backend for Fake {
    fn exec(
        &self,
        req: ExecRequest,
        mut io: StreamIo,
    ) -> BoxFuture<'static, Result<i32, StreamError>> {
        let started = self.started.clone();
        let dropped = self.dropped.clone();
        Box::pin(async move {
            started.fetch_add(1, Ordering::SeqCst);
            match req.cmd.first().map(String::as_str) {
                Some("sleep") => {
                    let _guard = DropGuard(dropped);
                    std::future::pending::<()>().await;
                    Ok(0)
                }
                Some("resize") => {
                    let mut rx = io
                        .resize
                        .take()
                        .ok_or_else(|| StreamError::Failed("no resize".into()))?;
                    let mut out = io.stdout.take().unwrap();
                    for _ in 0..2 {
                        let s = rx
                            .recv()
                            .await
                            .ok_or_else(|| StreamError::Failed("resize ended".into()))?;
                        out.write_all(format!("{}x{}\n", s.width, s.height).as_bytes())
                            .await?;
                    }
                    Ok(0)
                }
                Some("notfound") => Err(StreamError::NotFound("container x not found".into())),
                _ => {
                    if let (Some(mut inp), Some(out)) = (io.stdin.take(), io.stdout.as_mut()) {
                        let mut buf = [0u8; 4096];
                        loop {
                            let n = inp.read(&mut buf).await?;
                            if n == 0 {
                                break;
                            }
                            out.write_all(&buf[..n]).await?;
                            if buf[..n].contains(&b'\n') {
                                break;
                            }
                        }
                    }
                    if let Some(err) = io.stderr.as_mut() {
                        err.write_all(b"err").await?;
                    }
                    Ok(if req.cmd == ["exit3"] { 3 } else { 0 })
                }
            }
        })
    }

    fn attach(
        &self,
        _req: AttachRequest,
        mut io: StreamIo,
    ) -> BoxFuture<'static, Result<(), StreamError>> {
        Box::pin(async move {
            let mut out = io
                .stdout
                .take()
                .ok_or_else(|| StreamError::Failed("no stdout".into()))?;
            for i in 1..=5 {
                out.write_all(format!("{i}\n").as_bytes()).await?;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(())
        })
    }

    fn port_forward(
        &self,
        _pod: String,
        _port: u16,
    ) -> BoxFuture<'static, Result<TcpStream, StreamError>> {
        let addr = *self.echo.lock().unwrap();
        Box::pin(async move {
            let addr = addr.ok_or_else(|| StreamError::Failed("no echo server".into()))?;
            Ok(TcpStream::connect(addr).await?)
        })
    }
}

/// An echo server on 127.0.0.1; returns its address.
pub async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

pub async fn start(cfg: Config) -> (Server, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    *fake.echo.lock().unwrap() = Some(echo_server().await);
    let server = Server::start(cfg, fake.clone()).await.unwrap();
    (server, fake)
}

pub fn exec_req(cmd: &[&str], stdin: bool, stdout: bool, stderr: bool, tty: bool) -> ExecRequest {
    ExecRequest {
        container_id: "c1".into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin,
        stdout,
        stderr,
    }
}

/// Splits `http://host:port/path` into the address and the path.
pub fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let i = rest.find('/').unwrap();
    (rest[..i].to_string(), rest[i..].to_string())
}

/// Sends an HTTP/1.1 request and reads the response head. Returns the connection (for what
/// follows an upgrade), the status, the headers (names lower-case) and, without an upgrade,
/// the body as far as it came.
pub async fn http(
    url: &str,
    headers: &[(&str, &str)],
) -> (TcpStream, u16, Vec<(String, String)>, String) {
    let (addr, path) = split_url(url);
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    let mut req = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tcp.read(&mut b).await.unwrap();
        assert!(n > 0, "connection closed in the response head");
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let hs: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = String::new();
    if status != 101 {
        let len: usize = hs
            .iter()
            .find(|(k, _)| k == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        let mut buf = vec![0u8; len];
        tcp.read_exact(&mut buf).await.unwrap();
        body = String::from_utf8(buf).unwrap();
    }
    (tcp, status, hs, body)
}

pub fn header<'a>(hs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    hs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Waits up to 5 s for `f` to hold.
pub async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}
