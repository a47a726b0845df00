//! exec, attach and port forwarding over WebSocket, and the HTTP-level refusals.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::*;
use crust_streaming::{Config, TokenError};
use futures::{SinkExt, StreamExt};
use k8s_cri::v1::{AttachRequest, PortForwardRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;

async fn connect(url: &str, protocol: &str) -> Ws {
    let (addr, _) = split_url(url);
    let mut req = url
        .replacen("http://", "ws://", 1)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (ws, resp) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], protocol);
    ws
}

/// Every message until the server closes, as (channel, payload) in arrival order.
async fn read_all(ws: &mut Ws, base64: bool) -> Vec<(u8, Vec<u8>)> {
    let mut got = Vec::new();
    while let Some(m) = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
    {
        match m {
            Ok(Message::Binary(b)) if !base64 => got.push((b[0], b[1..].to_vec())),
            Ok(Message::Text(t)) if base64 => {
                let t = t.as_bytes();
                got.push((t[0] - b'0', STANDARD.decode(&t[1..]).unwrap()));
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(other) => panic!("unexpected message {other:?}"),
        }
    }
    got
}

fn by_channel(msgs: &[(u8, Vec<u8>)]) -> BTreeMap<u8, String> {
    let mut m = BTreeMap::new();
    for (ch, data) in msgs {
        m.entry(*ch)
            .or_insert_with(String::new)
            .push_str(&String::from_utf8_lossy(data));
    }
    m
}

fn frame(ch: u8, data: &[u8], base64: bool) -> Message {
    if base64 {
        Message::text(format!("{}{}", (b'0' + ch) as char, STANDARD.encode(data)))
    } else {
        let mut v = vec![ch];
        v.extend_from_slice(data);
        Message::Binary(v.into())
    }
}

async fn ws_exec(protocol: &str, base64: bool, cmd: &[&str]) -> BTreeMap<u8, String> {
    let (server, _) = start(Config::default()).await;
    let url = server
        .get_exec(exec_req(cmd, true, true, true, false))
        .unwrap();
    let mut ws = connect(&url, protocol).await;
    ws.send(frame(0, b"hello\n", base64)).await.unwrap();
    let msgs = read_all(&mut ws, base64).await;
    // The connection is announced by an empty message on stdout, the first thing sent.
    assert_eq!(msgs[0], (1, vec![]));
    server.shutdown().await;
    by_channel(&msgs)
}

#[tokio::test]
async fn exec_ws_v4_binary() {
    let ch = ws_exec("v4.channel.k8s.io", false, &["exit3"]).await;
    assert_eq!(ch[&1], "hello\n");
    assert_eq!(ch[&2], "err");
    let status: serde_json::Value = serde_json::from_str(&ch[&3]).unwrap();
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");
}

#[tokio::test]
async fn exec_ws_v4_base64_success() {
    let ch = ws_exec("v4.base64.channel.k8s.io", true, &["echo"]).await;
    assert_eq!(ch[&1], "hello\n");
    assert_eq!(ch[&2], "err");
    assert_eq!(ch[&3], r#"{"metadata":{},"status":"Success"}"#);
}

#[tokio::test]
async fn exec_ws_base64_v1_text_status() {
    let ch = ws_exec("base64.channel.k8s.io", true, &["exit3"]).await;
    assert_eq!(ch[&1], "hello\n");
    assert_eq!(
        ch[&3],
        "command terminated with non-zero exit code: exit status 3"
    );
}

#[tokio::test]
async fn exec_ws_backend_error_reaches_error_channel() {
    let ch = ws_exec("v4.channel.k8s.io", false, &["notfound"]).await;
    let status: serde_json::Value = serde_json::from_str(&ch[&3]).unwrap();
    assert_eq!(status["status"], "Failure");
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("container x not found"));
}

#[tokio::test]
async fn exec_ws_v5_close_is_stdin_eof_and_resize_arrives() {
    let (server, _) = start(Config::default()).await;
    // stdin EOF by v5's CLOSE: the echo ends without a newline.
    let url = server
        .get_exec(exec_req(&["exit3"], true, true, true, false))
        .unwrap();
    let mut ws = connect(&url, "v5.channel.k8s.io").await;
    ws.send(frame(0, b"no newline", false)).await.unwrap();
    ws.send(Message::Binary(vec![255, 0].into())).await.unwrap();
    let ch = by_channel(&read_all(&mut ws, false).await);
    assert_eq!(ch[&1], "no newline");
    assert!(ch[&3].contains("NonZeroExitCode"));

    // A tty session: resize messages on channel 4 reach the backend.
    let url = server
        .get_exec(exec_req(&["resize"], true, true, false, true))
        .unwrap();
    let mut ws = connect(&url, "v5.channel.k8s.io").await;
    ws.send(frame(4, br#"{"Width":80,"Height":24}"#, false))
        .await
        .unwrap();
    ws.send(frame(4, br#"{"Width":100,"Height":50}"#, false))
        .await
        .unwrap();
    let ch = by_channel(&read_all(&mut ws, false).await);
    assert_eq!(ch[&1], "80x24\n100x50\n");
    assert_eq!(ch[&3], r#"{"metadata":{},"status":"Success"}"#);
    server.shutdown().await;
}

#[tokio::test]
async fn attach_ws_streams_the_counter() {
    let (server, _) = start(Config::default()).await;
    let url = server
        .get_attach(AttachRequest {
            container_id: "c1".into(),
            stdout: true,
            ..Default::default()
        })
        .unwrap();
    let mut ws = connect(&url, "v4.channel.k8s.io").await;
    let ch = by_channel(&read_all(&mut ws, false).await);
    assert_eq!(ch[&1], "1\n2\n3\n4\n5\n");
    assert_eq!(ch[&3], r#"{"metadata":{},"status":"Success"}"#);
    server.shutdown().await;
}

#[tokio::test]
async fn portforward_ws() {
    let (server, fake) = start(Config::default()).await;
    let port = fake.echo.lock().unwrap().unwrap().port();
    let url = server
        .get_port_forward(PortForwardRequest {
            pod_sandbox_id: "pod1".into(),
            port: vec![],
        })
        .unwrap();
    let mut ws = connect(&format!("{url}?port={port}"), "v4.channel.k8s.io").await;
    let le = port.to_le_bytes().to_vec();
    for want in [0u8, 1] {
        let Some(Ok(Message::Binary(b))) = ws.next().await else {
            panic!("no port message")
        };
        assert_eq!((b[0], b[1..].to_vec()), (want, le.clone()));
    }
    ws.send(frame(0, b"ping", false)).await.unwrap();
    let mut echoed = Vec::new();
    while echoed.len() < 4 {
        let Some(Ok(Message::Binary(b))) = ws.next().await else {
            panic!("no echo")
        };
        assert_eq!(b[0], 0);
        echoed.extend_from_slice(&b[1..]);
    }
    assert_eq!(echoed, b"ping");
    ws.close(None).await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn portforward_ws_port_outside_the_request_is_refused_on_its_error_channel() {
    let (server, fake) = start(Config::default()).await;
    let port = fake.echo.lock().unwrap().unwrap().port();
    let url = server
        .get_port_forward(PortForwardRequest {
            pod_sandbox_id: "pod1".into(),
            port: vec![1],
        })
        .unwrap();
    let mut ws = connect(&format!("{url}?port={port}"), "v4.channel.k8s.io").await;
    let ch = by_channel(&read_all(&mut ws, false).await);
    assert!(
        ch[&1].ends_with(&format!(
            "error forwarding port {port} to pod pod1: port {port} is not allowed by the request"
        )),
        "{ch:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn tokens_are_single_use_expire_and_are_bounded() {
    let cfg = Config {
        token_ttl: Duration::from_millis(200),
        max_tokens: 3,
        ..Config::default()
    };
    let (server, _) = start(cfg).await;
    let ws = [
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Protocol", "v4.channel.k8s.io"),
    ];

    let url = server
        .get_exec(exec_req(&["echo"], false, true, false, false))
        .unwrap();
    let (_c, status, hs, _) = http(&url, &ws).await;
    assert_eq!(status, 101);
    assert_eq!(
        header(&hs, "sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    let (_, status, _, body) = http(&url, &ws).await;
    assert_eq!(
        (status, body.as_str()),
        (404, "404 page not found\n"),
        "a used token"
    );

    let url = server
        .get_exec(exec_req(&["echo"], false, true, false, false))
        .unwrap();
    let token = url.rsplit('/').next().unwrap().to_string();
    let (_, status, _, _) = http(&url.replace("/exec/", "/attach/"), &ws).await;
    assert_eq!(status, 404, "a token at the wrong kind of URL");
    let (_, status, _, _) = http(&url, &ws).await;
    assert_eq!(status, 404, "which spends it");

    let (_, status, _, body) = http(&format!("{}/exec/{}x", server.base_url(), token), &ws).await;
    assert_eq!(status, 404, "an unknown token");
    assert!(!body.contains(&token));

    let url = server
        .get_exec(exec_req(&["echo"], false, true, false, false))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, status, _, _) = http(&url, &ws).await;
    assert_eq!(status, 404, "an expired token");

    for _ in 0..3 {
        server
            .get_exec(exec_req(&["echo"], false, true, false, false))
            .unwrap();
    }
    assert_eq!(
        server.get_exec(exec_req(&["echo"], false, true, false, false)),
        Err(TokenError::Full)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        server
            .get_exec(exec_req(&["echo"], false, true, false, false))
            .is_ok(),
        "expired ones make room"
    );

    assert!(matches!(
        server.get_exec(exec_req(&["x"], false, true, true, true)),
        Err(TokenError::Invalid(_))
    ));
    assert!(matches!(
        server.get_exec(exec_req(&["x"], false, false, false, false)),
        Err(TokenError::Invalid(_))
    ));
    server.shutdown().await;
}

#[tokio::test]
async fn refused_handshakes() {
    let (server, _) = start(Config::default()).await;
    let url = server
        .get_exec(exec_req(&["echo"], false, true, false, false))
        .unwrap();
    let (_, status, _, _) = http(&url, &[]).await;
    assert_eq!(status, 400, "no upgrade");
    let url = server
        .get_exec(exec_req(&["echo"], false, true, false, false))
        .unwrap();
    let spdy = [
        ("Connection", "Upgrade"),
        ("Upgrade", "SPDY/3.1"),
        ("X-Stream-Protocol-Version", "v9.channel.k8s.io"),
    ];
    let (_, status, hs, _) = http(&url, &spdy).await;
    assert_eq!(status, 403, "no common protocol");
    assert!(hs
        .iter()
        .any(|(k, v)| k == "x-accepted-stream-protocol-versions" && v == "v4.channel.k8s.io"));
    let (_, status, _, _) = http(&format!("{}/nothing", server.base_url()), &[]).await;
    assert_eq!(status, 404);
    server.shutdown().await;
}

#[tokio::test]
async fn ws_client_disconnect_cancels_the_backend() {
    let (server, fake) = start(Config::default()).await;
    let url = server
        .get_exec(exec_req(&["sleep"], true, true, false, false))
        .unwrap();
    let ws = connect(&url, "v4.channel.k8s.io").await;
    assert!(eventually(|| fake.started.load(Ordering::SeqCst) == 1).await);
    drop(ws);
    assert!(
        eventually(|| fake.dropped.load(Ordering::SeqCst)).await,
        "backend future not dropped"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn ws_garbage_closes_only_that_connection() {
    let (server, _) = start(Config::default()).await;
    let ws = [
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Protocol", "v4.channel.k8s.io"),
    ];
    let url = server
        .get_exec(exec_req(&["sleep"], true, true, false, false))
        .unwrap();
    let (mut tcp, status, _, _) = http(&url, &ws).await;
    assert_eq!(status, 101);
    // An unmasked frame with a reserved opcode and a bogus length: not WebSocket.
    tcp.write_all(&[0xff; 64]).await.unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the server kept a broken connection open");
    // Others are unaffected.
    let ch = ws_exec_on(&server, "v4.channel.k8s.io").await;
    assert_eq!(ch[&1], "hello\n");
    server.shutdown().await;
}

async fn ws_exec_on(server: &crust_streaming::Server, protocol: &str) -> BTreeMap<u8, String> {
    let url = server
        .get_exec(exec_req(&["echo"], true, true, true, false))
        .unwrap();
    let mut ws = connect(&url, protocol).await;
    ws.send(frame(0, b"hello\n", false)).await.unwrap();
    by_channel(&read_all(&mut ws, false).await)
}

#[tokio::test]
async fn idle_sessions_close() {
    let cfg = Config {
        stream_idle_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let (server, fake) = start(cfg).await;
    let url = server
        .get_exec(exec_req(&["sleep"], true, true, false, false))
        .unwrap();
    let mut ws = connect(&url, "v4.channel.k8s.io").await;
    let _ = read_all(&mut ws, false).await;
    assert!(eventually(|| fake.dropped.load(Ordering::SeqCst)).await);
    server.shutdown().await;
}
