//! exec, attach and port forwarding over SPDY/3.1, with the crate's own SPDY client session.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use crust_streaming::spdy::{self, Headers, Session, Stream};
use crust_streaming::Config;
use k8s_cri::v1::{AttachRequest, PortForwardRequest};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

async fn connect(url: &str, protocols: &[&str]) -> (Session, mpsc::Receiver<Stream>, String) {
    let mut hs = vec![("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")];
    hs.extend(protocols.iter().map(|p| ("X-Stream-Protocol-Version", *p)));
    let (tcp, status, resp, _) = http(url, &hs).await;
    assert_eq!(status, 101);
    let chosen = header(&resp, "x-stream-protocol-version")
        .unwrap()
        .to_string();
    let (session, rx) = Session::client(tcp, spdy::Config::default());
    (session, rx, chosen)
}

fn headers(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn open(s: &Session, kind: &str, fin: bool) -> Stream {
    s.open_stream(headers(&[("streamtype", kind)]), fin)
        .await
        .unwrap()
}

async fn read_string(mut r: impl AsyncRead + Unpin) -> String {
    let mut v = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), r.read_to_end(&mut v))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(v).unwrap()
}

/// An exec with stdin "hello\n", returning stdout, stderr and the error stream's content.
async fn exec(protocols: &[&str], cmd: &[&str]) -> (String, String, String, String) {
    let (server, _) = start(Config::default()).await;
    let url = server
        .get_exec(exec_req(cmd, true, true, true, false))
        .unwrap();
    let (session, _rx, chosen) = connect(&url, protocols).await;
    let error = open(&session, "error", true).await;
    let mut stdin = open(&session, "stdin", false).await;
    let stdout = open(&session, "stdout", true).await;
    let stderr = open(&session, "stderr", true).await;
    stdin.write_all(b"hello\n").await.unwrap();
    stdin.shutdown().await.unwrap();
    let (out, err, status) =
        tokio::join!(read_string(stdout), read_string(stderr), read_string(error));
    server.shutdown().await;
    (chosen, out, err, status)
}

#[tokio::test]
async fn exec_v4_reports_the_exit_code() {
    let (chosen, out, err, status) = exec(
        &[
            "v4.channel.k8s.io",
            "v3.channel.k8s.io",
            "v2.channel.k8s.io",
            "channel.k8s.io",
        ],
        &["exit3"],
    )
    .await;
    assert_eq!(chosen, "v4.channel.k8s.io");
    assert_eq!((out.as_str(), err.as_str()), ("hello\n", "err"));
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["status"], "Failure");
    assert_eq!(v["reason"], "NonZeroExitCode");
    assert_eq!(
        v["details"]["causes"][0],
        serde_json::json!({"reason": "ExitCode", "message": "3"})
    );
}

#[tokio::test]
async fn exec_v4_success() {
    let (_, out, _, status) = exec(&["v4.channel.k8s.io"], &["echo"]).await;
    assert_eq!(out, "hello\n");
    assert_eq!(status, r#"{"metadata":{},"status":"Success"}"#);
}

#[tokio::test]
async fn exec_v3_v2_v1_report_text() {
    for p in ["v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"] {
        // The client's order decides: an unknown first choice is skipped.
        let (chosen, out, err, status) = exec(&["v9.channel.k8s.io", p], &["exit3"]).await;
        assert_eq!(chosen, p);
        assert_eq!((out.as_str(), err.as_str()), ("hello\n", "err"), "{p}");
        assert_eq!(
            status, "command terminated with non-zero exit code: exit status 3",
            "{p}"
        );
        let (_, _, _, status) = exec(&[p], &["echo"]).await;
        assert_eq!(status, "", "{p}: success writes nothing");
    }
}

#[tokio::test]
async fn exec_tty_resize_reaches_the_backend() {
    let (server, _) = start(Config::default()).await;
    let url = server
        .get_exec(exec_req(&["resize"], true, true, false, true))
        .unwrap();
    let (session, _rx, _) = connect(&url, &["v4.channel.k8s.io"]).await;
    let error = open(&session, "error", true).await;
    let _stdin = open(&session, "stdin", false).await;
    let stdout = open(&session, "stdout", true).await;
    let mut resize = open(&session, "resize", false).await;
    resize
        .write_all(br#"{"Width":80,"Height":24}{"Width":100,"Height":50}"#)
        .await
        .unwrap();
    let (out, status) = tokio::join!(read_string(stdout), read_string(error));
    assert_eq!(out, "80x24\n100x50\n");
    assert_eq!(status, r#"{"metadata":{},"status":"Success"}"#);
    server.shutdown().await;
}

#[tokio::test]
async fn attach_streams_the_counter() {
    let (server, _) = start(Config::default()).await;
    let req = AttachRequest {
        container_id: "c1".into(),
        stdout: true,
        ..Default::default()
    };
    let url = server.get_attach(req).unwrap();
    let (session, _rx, _) = connect(&url, &["v4.channel.k8s.io"]).await;
    let error = open(&session, "error", true).await;
    let stdout = open(&session, "stdout", true).await;
    let (out, status) = tokio::join!(read_string(stdout), read_string(error));
    assert_eq!(out, "1\n2\n3\n4\n5\n");
    assert_eq!(status, r#"{"metadata":{},"status":"Success"}"#);
    server.shutdown().await;
}

#[tokio::test]
async fn client_disconnect_cancels_the_backend() {
    let (server, fake) = start(Config::default()).await;
    let url = server
        .get_exec(exec_req(&["sleep"], true, true, false, false))
        .unwrap();
    let (session, rx, _) = connect(&url, &["v4.channel.k8s.io"]).await;
    let error = open(&session, "error", true).await;
    let stdin = open(&session, "stdin", false).await;
    let stdout = open(&session, "stdout", true).await;
    assert!(eventually(|| fake.started.load(Ordering::SeqCst) == 1).await);
    drop((error, stdin, stdout, rx, session));
    assert!(
        eventually(|| fake.dropped.load(Ordering::SeqCst)).await,
        "backend future not dropped"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn server_shutdown_cancels_the_backend() {
    let (server, fake) = start(Config::default()).await;
    let url = server
        .get_exec(exec_req(&["sleep"], false, true, false, false))
        .unwrap();
    let (session, _rx, _) = connect(&url, &["v4.channel.k8s.io"]).await;
    let _error = open(&session, "error", true).await;
    let _stdout = open(&session, "stdout", true).await;
    assert!(eventually(|| fake.started.load(Ordering::SeqCst) == 1).await);
    server.shutdown().await;
    assert!(fake.dropped.load(Ordering::SeqCst));
    tokio::time::timeout(Duration::from_secs(5), session.closed())
        .await
        .unwrap();
}

#[tokio::test]
async fn missing_streams_time_out_and_unknown_ones_close_the_connection() {
    let cfg = Config {
        stream_creation_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let (server, fake) = start(cfg).await;
    let url = server
        .get_exec(exec_req(&["echo"], true, true, false, false))
        .unwrap();
    let (session, _rx, _) = connect(&url, &["v4.channel.k8s.io"]).await;
    let _error = open(&session, "error", true).await;
    tokio::time::timeout(Duration::from_secs(5), session.closed())
        .await
        .expect("not closed after the timeout");

    let url = server
        .get_exec(exec_req(&["echo"], true, true, false, false))
        .unwrap();
    let (session, _rx, _) = connect(&url, &["v4.channel.k8s.io"]).await;
    let _ = session
        .open_stream(headers(&[("streamtype", "bogus")]), true)
        .await;
    tokio::time::timeout(Duration::from_secs(5), session.closed())
        .await
        .expect("not closed after a bad stream");
    assert_eq!(fake.started.load(Ordering::SeqCst), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn garbage_after_the_upgrade_closes_only_that_connection() {
    let (server, _) = start(Config::default()).await;
    let url = server
        .get_exec(exec_req(&["sleep"], true, true, false, false))
        .unwrap();
    let hs = [
        ("Connection", "Upgrade"),
        ("Upgrade", "SPDY/3.1"),
        ("X-Stream-Protocol-Version", "v4.channel.k8s.io"),
    ];
    let (mut tcp, status, _, _) = http(&url, &hs).await;
    assert_eq!(status, 101);
    // A control frame of version 9 and type 0xffff with a huge length.
    tcp.write_all(&[0x80, 0x09, 0xff, 0xff, 0x00, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    tcp.write_all(&[0xAB; 256]).await.unwrap();
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut sink)).await;
    assert!(closed.is_ok(), "the server kept a broken connection open");

    let url = server
        .get_exec(exec_req(&["echo"], true, true, false, false))
        .unwrap();
    let (session, _rx, _) = connect(&url, &["v4.channel.k8s.io"]).await;
    let error = open(&session, "error", true).await;
    let mut stdin = open(&session, "stdin", false).await;
    let stdout = open(&session, "stdout", true).await;
    stdin.write_all(b"still here\n").await.unwrap();
    assert_eq!(read_string(stdout).await, "still here\n");
    assert_eq!(
        read_string(error).await,
        r#"{"metadata":{},"status":"Success"}"#
    );
    server.shutdown().await;
}

async fn pair(session: &Session, port: u16, id: usize) -> (Stream, Stream) {
    let (port, id) = (port.to_string(), id.to_string());
    let h = |kind| headers(&[("streamtype", kind), ("port", &port), ("requestid", &id)]);
    let error = session.open_stream(h("error"), true).await.unwrap();
    let data = session.open_stream(h("data"), false).await.unwrap();
    (error, data)
}

#[tokio::test]
async fn portforward_concurrent_pairs_and_10_mb() {
    let (server, fake) = start(Config::default()).await;
    let port = fake.echo.lock().unwrap().unwrap().port();
    let url = server
        .get_port_forward(PortForwardRequest {
            pod_sandbox_id: "pod1".into(),
            port: vec![],
        })
        .unwrap();
    let (session, _rx, chosen) = connect(&url, &["portforward.k8s.io"]).await;
    assert_eq!(chosen, "portforward.k8s.io");
    let mut tasks = Vec::new();
    for i in 0..5 {
        let (error, data) = pair(&session, port, i).await;
        tasks.push(tokio::spawn(async move {
            let payload: Vec<u8> = if i == 0 {
                (0..10 << 20).map(|n: u32| (n % 251) as u8).collect()
            } else {
                format!("pair {i}").into_bytes()
            };
            let (mut r, mut w) = tokio::io::split(data);
            let send = {
                let payload = payload.clone();
                async move {
                    w.write_all(&payload).await.unwrap();
                    w.shutdown().await.unwrap();
                }
            };
            let recv = async move {
                let mut got = Vec::new();
                r.read_to_end(&mut got).await.unwrap();
                got
            };
            let ((), got) = tokio::join!(send, recv);
            assert_eq!(got.len(), payload.len(), "pair {i}");
            assert!(got == payload, "pair {i}: data differs");
            assert_eq!(read_string(error).await, "", "pair {i}");
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .unwrap()
            .unwrap();
    }
    server.shutdown().await;
}

#[tokio::test]
async fn portforward_refusals_reach_the_error_stream() {
    let (server, fake) = start(Config::default()).await;
    let port = fake.echo.lock().unwrap().unwrap().port();
    let url = server
        .get_port_forward(PortForwardRequest {
            pod_sandbox_id: "pod1".into(),
            port: vec![1],
        })
        .unwrap();
    let (session, _rx, _) = connect(&url, &["portforward.k8s.io"]).await;
    let (error, _data) = pair(&session, port, 0).await;
    assert_eq!(
        read_string(error).await,
        format!(
            "error forwarding port {port} to pod pod1: port {port} is not allowed by the request"
        )
    );
    // Backend failures too: nothing listens on port 1... the fake always dials the echo server,
    // so take it away.
    *fake.echo.lock().unwrap() = None;
    let (error, _data) = pair(&session, 1, 1).await;
    assert_eq!(
        read_string(error).await,
        "error forwarding port 1 to pod pod1: no echo server"
    );
    server.shutdown().await;
}
