//! The client protocols against fake servers built from the same pieces a server uses: the
//! SPDY session's server side and tokio-tungstenite's server handshake, over loopback TCP or
//! in-memory pipes.

// tungstenite's handshake callback returns its (large) error response type.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crust_streaming::spdy;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use super::portforward::{self, Dialer, Forward};
use super::remotecommand::{self, Io};
use super::status::Outcome;
use super::term::TerminalSize;
use super::{ws, Transport};

const EXIT3: &str = r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit status 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
const SUCCESS: &str = r#"{"metadata":{},"status":"Success"}"#;

/// An AsyncWrite that keeps what it is given.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl AsyncWrite for Captured {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.lock().unwrap().extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Reads an HTTP/1.1 request head; answers 101 with `protocol`. The request head back.
async fn fake_upgrade(conn: &mut TcpStream, protocol: &str) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {protocol}\r\n\r\n"
    );
    conn.write_all(reply.as_bytes()).await.unwrap();
    String::from_utf8(head).unwrap()
}

/// The streams a remotecommand client opened, by `streamtype`.
async fn accept_streams(
    incoming: &mut tokio::sync::mpsc::Receiver<spdy::Stream>,
    count: usize,
) -> HashMap<String, spdy::Stream> {
    let mut streams = HashMap::new();
    for _ in 0..count {
        let stream = incoming.recv().await.expect("a stream");
        let kind = stream.headers().get("streamtype").unwrap().to_owned();
        streams.insert(kind, stream);
    }
    streams
}

#[tokio::test]
async fn spdy_exec_echoes_stdin_and_exits_3() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/exec/token", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let head = fake_upgrade(&mut conn, "v4.channel.k8s.io").await;
        let (_session, mut incoming) = spdy::Session::server(conn, spdy::Config::default());
        let mut s = accept_streams(&mut incoming, 4).await;
        let mut stdin = s.remove("stdin").unwrap();
        let mut stdout = s.remove("stdout").unwrap();
        let mut stderr = s.remove("stderr").unwrap();
        let mut error = s.remove("error").unwrap();
        let mut input = Vec::new();
        stdin.read_to_end(&mut input).await.unwrap();
        stdout.write_all(&input).await.unwrap();
        stdout.shutdown().await.unwrap();
        stderr.write_all(b"to stderr").await.unwrap();
        stderr.shutdown().await.unwrap();
        error.write_all(EXIT3.as_bytes()).await.unwrap();
        error.shutdown().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        head
    });
    let stdout = Captured::default();
    let stderr = Captured::default();
    let io = Io {
        stdin: Some(Box::new(std::io::Cursor::new(
            b"hello through spdy\n".to_vec(),
        ))),
        stdout: Some(Box::new(stdout.clone())),
        stderr: Some(Box::new(stderr.clone())),
        ..Default::default()
    };
    let outcome = remotecommand::stream(&url, Transport::Spdy, io)
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Exited(3));
    assert_eq!(stdout.text(), "hello through spdy\n");
    assert_eq!(stderr.text(), "to stderr");
    let head = server.await.unwrap().to_ascii_lowercase();
    assert!(head.starts_with("post /exec/token http/1.1"), "{head}");
    assert!(head.contains("upgrade: spdy/3.1"), "{head}");
    for p in remotecommand::SPDY_PROTOCOLS {
        assert!(
            head.contains(&format!("x-stream-protocol-version: {p}\r\n")),
            "{head}"
        );
    }
}

#[tokio::test]
async fn spdy_tty_sends_resizes_and_reports_failures() {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let (client, _pushed) = spdy::Session::client(client_io, spdy::Config::default());
    let server = tokio::spawn(async move {
        let (_session, mut incoming) = spdy::Session::server(server_io, spdy::Config::default());
        // tty: no stderr stream; stdin, stdout, resize, error.
        let mut s = accept_streams(&mut incoming, 4).await;
        assert!(!s.contains_key("stderr"));
        let mut resize = s.remove("resize").unwrap();
        let mut sizes = Vec::new();
        let mut buf = Vec::new();
        while sizes.len() < 2 {
            let mut chunk = [0u8; 256];
            let n = resize.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&chunk[..n]);
            while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                sizes.push(String::from_utf8(line).unwrap().trim().to_owned());
            }
        }
        let mut stdout = s.remove("stdout").unwrap();
        stdout.write_all(b"\x1b[0m$ ").await.unwrap();
        stdout.shutdown().await.unwrap();
        let mut error = s.remove("error").unwrap();
        error
            .write_all(
                br#"{"status":"Failure","message":"container is gone","reason":"InternalError"}"#,
            )
            .await
            .unwrap();
        error.shutdown().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        sizes
    });
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(TerminalSize {
        width: 80,
        height: 24,
    })
    .await
    .unwrap();
    tx.send(TerminalSize {
        width: 132,
        height: 43,
    })
    .await
    .unwrap();
    let stdout = Captured::default();
    let (_keep_stdin_open, stdin) = tokio::io::duplex(16);
    let io = Io {
        stdin: Some(Box::new(stdin)),
        stdout: Some(Box::new(stdout.clone())),
        stderr: Some(Box::new(Captured::default())),
        resize: Some(rx),
        tty: true,
    };
    let outcome = remotecommand::run_spdy(&client, "v4.channel.k8s.io", io)
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Failed("container is gone".into()));
    assert_eq!(stdout.text(), "\x1b[0m$ ");
    assert_eq!(
        server.await.unwrap(),
        [
            r#"{"Width":80,"Height":24}"#,
            r#"{"Width":132,"Height":43}"#
        ]
    );
}

/// A WebSocket server on loopback choosing `chosen` among the client's offer; `serve` gets
/// the socket and the offer.
async fn ws_server<F, Fut, T>(
    chosen: &'static str,
    serve: F,
) -> (String, tokio::task::JoinHandle<T>)
where
    F: FnOnce(tokio_tungstenite::WebSocketStream<TcpStream>, String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + Send,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/exec/token", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (conn, _) = listener.accept().await.unwrap();
        let offered = Arc::new(Mutex::new(String::new()));
        let seen = offered.clone();
        let socket =
            tokio_tungstenite::accept_hdr_async(conn, move |req: &Request, mut resp: Response| {
                *seen.lock().unwrap() = req
                    .headers()
                    .get("Sec-WebSocket-Protocol")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                resp.headers_mut()
                    .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(chosen));
                Ok(resp)
            })
            .await
            .unwrap();
        let offered = offered.lock().unwrap().clone();
        serve(socket, offered).await
    });
    (url, task)
}

#[tokio::test]
async fn websocket_v5_exec_frames_stdin_resize_and_close() {
    let (url, server) = ws_server("v5.channel.k8s.io", |mut socket, offered| async move {
        let mut received = Vec::new();
        let mut stdin = Vec::new();
        let (mut closed, mut resized) = (false, false);
        while !(closed && resized) {
            let Some(Ok(message)) = socket.next().await else {
                panic!("client went away");
            };
            let Message::Binary(data) = message else {
                continue;
            };
            received.push(data.to_vec());
            match data[0] {
                ws::STDIN => {
                    assert!(!closed, "stdin after its close");
                    stdin.extend_from_slice(&data[1..]);
                }
                ws::CLOSE => {
                    assert_eq!(&data[1..], [ws::STDIN]);
                    closed = true;
                }
                ws::RESIZE => resized = true,
                _ => {}
            }
        }
        socket.send(ws::frame(ws::STDOUT, &[])).await.unwrap();
        socket.send(ws::frame(ws::STDOUT, &stdin)).await.unwrap();
        socket.send(ws::frame(ws::STDERR, b"err")).await.unwrap();
        socket
            .send(ws::frame(ws::CLOSE, &[ws::STDOUT]))
            .await
            .unwrap();
        socket
            .send(ws::frame(ws::ERROR, EXIT3.as_bytes()))
            .await
            .unwrap();
        socket.close(None).await.unwrap();
        (offered, received)
    })
    .await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(TerminalSize {
        width: 100,
        height: 30,
    })
    .await
    .unwrap();
    drop(tx);
    let stdout = Captured::default();
    let stderr = Captured::default();
    let io = Io {
        stdin: Some(Box::new(std::io::Cursor::new(b"typed".to_vec()))),
        stdout: Some(Box::new(stdout.clone())),
        stderr: Some(Box::new(stderr.clone())),
        resize: Some(rx),
        tty: true,
    };
    let outcome = remotecommand::stream(&url, Transport::WebSocket, io)
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Exited(3));
    assert_eq!(stdout.text(), "typed");
    assert_eq!(stderr.text(), "err");
    let (offered, received) = server.await.unwrap();
    assert_eq!(offered, "v5.channel.k8s.io, v4.channel.k8s.io");
    assert!(
        received.contains(&b"\x04{\"Width\":100,\"Height\":30}\n".to_vec()),
        "{received:?}"
    );
    assert!(received.contains(&vec![ws::CLOSE, ws::STDIN]));
    assert!(received.contains(&b"\x00typed".to_vec()));
}

#[tokio::test]
async fn websocket_v4_exec_success_without_close_channel() {
    let (url, server) = ws_server("v4.channel.k8s.io", |mut socket, _| async move {
        let mut received = Vec::new();
        // v4 cannot say stdin ended: wait for the bytes, then end.
        while received.len() < 4 {
            match socket.next().await {
                Some(Ok(Message::Binary(data))) => received.extend_from_slice(&data[1..]),
                other => panic!("{other:?}"),
            }
        }
        // Nothing else was sent: no close channel, no resize without a tty.
        let extra = tokio::time::timeout(Duration::from_millis(200), socket.next()).await;
        assert!(extra.is_err(), "{extra:?}");
        socket.send(ws::frame(ws::STDOUT, b"out:")).await.unwrap();
        socket.send(ws::frame(ws::STDOUT, &received)).await.unwrap();
        socket
            .send(ws::frame(ws::ERROR, SUCCESS.as_bytes()))
            .await
            .unwrap();
        socket.close(None).await.unwrap();
    })
    .await;
    let stdout = Captured::default();
    let io = Io {
        stdin: Some(Box::new(std::io::Cursor::new(b"data".to_vec()))),
        stdout: Some(Box::new(stdout.clone())),
        stderr: Some(Box::new(Captured::default())),
        ..Default::default()
    };
    let outcome = remotecommand::stream(&url, Transport::WebSocket, io)
        .await
        .unwrap();
    server.await.unwrap();
    assert_eq!(outcome, Outcome::Exited(0));
    assert_eq!(stdout.text(), "out:data");
}

async fn echo_client(addr: std::net::SocketAddr, payload: Vec<u8>) -> Vec<u8> {
    let conn = TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = conn.into_split();
    let writer = tokio::spawn(async move {
        w.write_all(&payload).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    r.read_to_end(&mut back).await.unwrap();
    writer.await.unwrap();
    back
}

fn payload(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

struct Sink;
impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn spdy_port_forward_pairs_streams_for_concurrent_connections() {
    let (client_io, server_io) = tokio::io::duplex(256 * 1024);
    let (client, _pushed) = spdy::Session::client(client_io, spdy::Config::default());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server_seen = seen.clone();
    tokio::spawn(async move {
        let (_session, mut incoming) = spdy::Session::server(server_io, spdy::Config::default());
        let mut errors: HashMap<String, spdy::Stream> = HashMap::new();
        while let Some(stream) = incoming.recv().await {
            let h = stream.headers();
            let kind = h.get("streamtype").unwrap().to_owned();
            let id = h.get("requestid").unwrap().to_owned();
            let port = h.get("port").unwrap().to_owned();
            server_seen
                .lock()
                .unwrap()
                .push((kind.clone(), id.clone(), port));
            if kind == "error" {
                errors.insert(id, stream);
                continue;
            }
            let error = errors.remove(&id).expect("error stream first");
            tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(stream);
                tokio::io::copy(&mut r, &mut w).await.unwrap();
                w.shutdown().await.unwrap();
                drop(error);
            });
        }
    });
    let listeners = portforward::bind(&[Forward {
        local: 0,
        remote: 8080,
    }])
    .await
    .unwrap();
    let addr = portforward::listen_address(&listeners[0].1);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(portforward::serve(
        Dialer::Spdy(Arc::new(client)),
        listeners,
        async {
            let _ = stop_rx.await;
        },
        Arc::new(Mutex::new(Sink)),
        Arc::new(Mutex::new(Sink)),
    ));
    let payloads: Vec<Vec<u8>> = (0..3)
        .map(|i| payload(i, 300_000 + usize::from(i) * 1000))
        .collect();
    let echoed =
        futures::future::join_all(payloads.iter().map(|p| echo_client(addr, p.clone()))).await;
    for (sent, back) in payloads.iter().zip(&echoed) {
        assert_eq!(sent.len(), back.len());
        assert!(sent == back, "echo differs");
    }
    stop_tx.send(()).unwrap();
    serving.await.unwrap().unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 6, "{seen:?}");
    let mut ids: Vec<&str> = seen.iter().map(|(_, id, _)| id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    assert!(seen.iter().all(|(_, _, port)| port == "8080"));
}

#[tokio::test]
async fn websocket_port_forward_channel_protocol_one_socket_per_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let paths = Arc::new(Mutex::new(Vec::new()));
    let server_paths = paths.clone();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let paths = server_paths.clone();
            tokio::spawn(async move {
                let mut socket = tokio_tungstenite::accept_hdr_async(
                    conn,
                    move |req: &Request, mut resp: Response| {
                        paths.lock().unwrap().push(req.uri().to_string());
                        resp.headers_mut().insert(
                            "Sec-WebSocket-Protocol",
                            HeaderValue::from_static("v4.channel.k8s.io"),
                        );
                        Ok(resp)
                    },
                )
                .await
                .unwrap();
                let port = 80u16.to_le_bytes();
                socket.send(ws::frame(0, &port)).await.unwrap();
                socket.send(ws::frame(1, &port)).await.unwrap();
                // Echo until the client sent this many bytes (the channel protocol has no
                // half-close), then close.
                let mut left = 100_000usize;
                while left > 0 {
                    let Some(Ok(Message::Binary(data))) = socket.next().await else {
                        panic!("client went away");
                    };
                    assert_eq!(data[0], 0);
                    left -= data.len() - 1;
                    socket.send(ws::frame(0, &data[1..])).await.unwrap();
                }
                socket.close(None).await.unwrap();
            });
        }
    });
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let urls: portforward::UrlSource = {
        let counter = counter.clone();
        let base = base.clone();
        Arc::new(move || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let url = format!("{base}/portforward/token{}", n + 1);
            Box::pin(async move { Ok(url) })
        })
    };
    let dialer = Dialer::connect(
        Transport::WebSocket,
        format!("{base}/portforward/token0"),
        urls,
    )
    .await
    .unwrap();
    let listeners = portforward::bind(&[Forward {
        local: 0,
        remote: 80,
    }])
    .await
    .unwrap();
    let addr = portforward::listen_address(&listeners[0].1);
    tokio::spawn(portforward::serve(
        dialer,
        listeners,
        std::future::pending(),
        Arc::new(Mutex::new(Sink)),
        Arc::new(Mutex::new(Sink)),
    ));
    let payloads: Vec<Vec<u8>> = (0..3).map(|i| payload(i, 100_000)).collect();
    let echoed =
        futures::future::join_all(payloads.iter().map(|p| echo_client(addr, p.clone()))).await;
    for (sent, back) in payloads.iter().zip(&echoed) {
        assert!(
            sent == back,
            "echo differs: {} vs {} bytes",
            sent.len(),
            back.len()
        );
    }
    let mut paths = paths.lock().unwrap().clone();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/portforward/token0?port=80",
            "/portforward/token1?port=80",
            "/portforward/token2?port=80"
        ]
    );
}
