//! SPDY sessions over in-memory pipes: ours on both ends, or ours against a hand-driven peer.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use crust_streaming::spdy::frame::{self, decode, encode, rst, Frame, Limits};
use crust_streaming::spdy::headers::{HeaderDecoder, HeaderEncoder};
use crust_streaming::spdy::{Config, Headers, Session, SpdyError, Stream};
use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(10);

fn pair(
    server_cfg: Config,
    client_cfg: Config,
) -> ((Session, Receiver<Stream>), (Session, Receiver<Stream>)) {
    let (a, b) = duplex(64 << 10);
    (
        Session::server(a, server_cfg),
        Session::client(b, client_cfg),
    )
}

fn kind(t: &str) -> Headers {
    [("streamtype", t)].into_iter().collect()
}

async fn read_all(s: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    timeout(T, s.read_to_end(&mut v))
        .await
        .expect("read timed out")?;
    Ok(v)
}

#[tokio::test]
async fn kubelet_like_streams_carry_data_both_ways_with_half_close() {
    let ((_server, mut incoming), (client, _)) = pair(Config::default(), Config::default());
    let kinds = ["error", "stdin", "stdout", "stderr", "resize"];
    let mut mine = Vec::new();
    for k in kinds {
        let mut h = kind(k);
        h.insert("X-Stream-Protocol-Version", "v4.channel.k8s.io");
        mine.push(
            timeout(T, client.open_stream(h, false))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(
        mine.iter().map(Stream::id).collect::<Vec<_>>(),
        [1, 3, 5, 7, 9]
    );
    let mut theirs = Vec::new();
    for k in kinds {
        let s = timeout(T, incoming.recv()).await.unwrap().unwrap();
        assert_eq!(s.headers().get("streamtype"), Some(k));
        assert_eq!(
            s.headers().get("x-stream-protocol-version"),
            Some("v4.channel.k8s.io")
        );
        theirs.push(s);
    }
    // stdin: client to server, then FIN.
    mine[1].write_all(b"hello from stdin").await.unwrap();
    mine[1].shutdown().await.unwrap();
    assert_eq!(read_all(&mut theirs[1]).await.unwrap(), b"hello from stdin");
    // stdout: server to client; the client's side is still open for writing afterwards.
    theirs[2].write_all(b"output").await.unwrap();
    theirs[2].shutdown().await.unwrap();
    assert_eq!(read_all(&mut mine[2]).await.unwrap(), b"output");
    mine[2].write_all(b"late").await.unwrap();
    mine[2].shutdown().await.unwrap();
    assert_eq!(read_all(&mut theirs[2]).await.unwrap(), b"late");
    // Writing after FIN fails.
    assert!(theirs[2].write_all(b"x").await.is_err());
    // tokio::io::split works on a stream.
    let (mut r, mut w) = tokio::io::split(theirs.remove(3));
    w.write_all(b"err").await.unwrap();
    w.shutdown().await.unwrap();
    assert_eq!(read_all(&mut mine[3]).await.unwrap(), b"err");
    mine[3].shutdown().await.unwrap();
    assert_eq!(read_all(&mut r).await.unwrap(), b"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_megabytes_through_a_small_window() {
    let small = Config {
        initial_window: 4096,
        ..Config::default()
    };
    let ((_server, mut incoming), (client, _)) = pair(small.clone(), small);
    let mut c = client.open_stream(kind("stdin"), false).await.unwrap();
    let mut s = timeout(T, incoming.recv()).await.unwrap().unwrap();

    // Nobody reads yet: the writer gets one window in, then waits.
    let mut accepted = 0;
    while let Ok(r) = timeout(Duration::from_millis(200), c.write(&[1u8; 1024])).await {
        accepted += r.unwrap();
        assert!(
            accepted <= 4096,
            "wrote {accepted} bytes into a 4096-byte window"
        );
    }
    assert_eq!(accepted, 4096);

    const TOTAL: usize = 10 << 20;
    let writer = tokio::spawn(async move {
        let chunk: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
        let mut left = TOTAL - accepted;
        while left > 0 {
            let n = left.min(chunk.len());
            c.write_all(&chunk[..n]).await.unwrap();
            left -= n;
        }
        c.shutdown().await.unwrap();
        c
    });
    let mut got = 0usize;
    let mut buf = vec![0u8; 3000];
    loop {
        let n = timeout(T, s.read(&mut buf)).await.unwrap().unwrap();
        if n == 0 {
            break;
        }
        got += n;
    }
    assert_eq!(got, TOTAL);
    drop(timeout(T, writer).await.unwrap().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_streams_echo() {
    let ((_server, mut incoming), (client, _)) = pair(Config::default(), Config::default());
    tokio::spawn(async move {
        while let Some(s) = incoming.recv().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(s);
                tokio::io::copy(&mut r, &mut w).await.unwrap();
                w.shutdown().await.unwrap();
            });
        }
    });
    let mut tasks = Vec::new();
    for i in 0..60u32 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let s = client.open_stream(kind("data"), false).await.unwrap();
            let (mut r, mut w) = tokio::io::split(s);
            let payload: Vec<u8> = (0..200_000u32).map(|j| (j * 7 + i) as u8).collect();
            let send = payload.clone();
            let writer = tokio::spawn(async move {
                w.write_all(&send).await.unwrap();
                w.shutdown().await.unwrap();
                w
            });
            let back = read_all(&mut r).await.unwrap();
            assert_eq!(back, payload);
            writer.await.unwrap();
        }));
    }
    for t in tasks {
        timeout(T, t).await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn reset_and_drop_without_fin_reach_the_peer() {
    let ((_server, mut incoming), (client, _)) = pair(Config::default(), Config::default());
    let mut a = client.open_stream(kind("a"), false).await.unwrap();
    let mut b = client.open_stream(kind("b"), false).await.unwrap();
    let sa = incoming.recv().await.unwrap();
    let sb = incoming.recv().await.unwrap();
    sa.reset();
    let e = read_all(&mut a).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
    assert!(e.to_string().contains("reset (status 5)"), "{e}");
    assert!(a.write_all(b"x").await.is_err());
    drop(sb);
    assert_eq!(
        read_all(&mut b).await.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionReset
    );
    // The session goes on.
    client.open_stream(kind("c"), false).await.unwrap();
}

#[tokio::test]
async fn ping_both_ways() {
    let ((server, _in_s), (client, _in_c)) = pair(Config::default(), Config::default());
    timeout(T, client.ping()).await.unwrap().unwrap();
    timeout(T, server.ping()).await.unwrap().unwrap();
    timeout(T, client.ping()).await.unwrap().unwrap();
}

#[tokio::test]
async fn goaway_refuses_new_streams_and_lets_old_ones_finish() {
    let ((server, mut incoming), (client, _)) = pair(Config::default(), Config::default());
    let mut c = client.open_stream(kind("stdout"), false).await.unwrap();
    let mut s = incoming.recv().await.unwrap();
    server.go_away();
    assert!(matches!(
        server.open_stream(kind("x"), false).await,
        Err(SpdyError::GoingAway)
    ));
    // Let the GOAWAY arrive, then the client refuses to open more.
    client.ping().await.unwrap();
    assert!(matches!(
        client.open_stream(kind("x"), false).await,
        Err(SpdyError::GoingAway)
    ));
    s.write_all(b"still here").await.unwrap();
    s.shutdown().await.unwrap();
    assert_eq!(read_all(&mut c).await.unwrap(), b"still here");
    c.shutdown().await.unwrap();
    assert_eq!(read_all(&mut s).await.unwrap(), b"");
    timeout(T, server.closed()).await.unwrap();
    timeout(T, client.closed()).await.unwrap();
}

#[tokio::test]
async fn max_streams_exceeded_is_refused() {
    // A peer that ignores our SETTINGS MAX_CONCURRENT_STREAMS has its extra stream refused.
    let (mut raw, _server, mut incoming) = Raw::with(Config {
        max_streams: 2,
        ..Config::default()
    });
    for id in [1, 3, 5] {
        raw.syn_stream(id, &kind("a")).await;
    }
    for id in [1, 3] {
        assert!(
            matches!(raw.recv().await, Some(Frame::SynReply { stream_id, .. }) if stream_id == id)
        );
    }
    assert_eq!(
        raw.recv().await,
        Some(Frame::RstStream {
            stream_id: 5,
            status: rst::REFUSED_STREAM
        })
    );
    let (_a, _b) = (
        incoming.recv().await.unwrap(),
        incoming.recv().await.unwrap(),
    );
    // One of ours honours it.
    let ((_server, _incoming), (client, _)) = pair(
        Config {
            max_streams: 2,
            ..Config::default()
        },
        Config::default(),
    );
    let _a = client.open_stream(kind("a"), false).await.unwrap();
    let _b = client.open_stream(kind("b"), false).await.unwrap();
    assert!(matches!(
        client.open_stream(kind("c"), false).await,
        Err(SpdyError::TooManyStreams(2))
    ));
    // Our own limit applies to streams we open.
    let ((_s2, _i2), (client2, _)) = pair(
        Config::default(),
        Config {
            max_streams: 1,
            ..Config::default()
        },
    );
    let _x = client2.open_stream(kind("x"), false).await.unwrap();
    assert!(matches!(
        client2.open_stream(kind("y"), false).await,
        Err(SpdyError::TooManyStreams(1))
    ));
}

#[tokio::test]
async fn dropping_every_handle_ends_the_connection() {
    let ((server, mut incoming), (client, client_in)) = pair(Config::default(), Config::default());
    let c = client.open_stream(kind("a"), false).await.unwrap();
    let _s = incoming.recv().await.unwrap();
    drop((client, client_in, c));
    timeout(T, server.closed()).await.unwrap();
}

#[tokio::test]
async fn idle_timeout_closes_the_connection() {
    let idle = Config {
        idle_timeout: Some(Duration::from_millis(100)),
        ..Config::default()
    };
    let ((server, _i), (client, _c)) = pair(idle, Config::default());
    timeout(T, server.closed()).await.unwrap();
    timeout(T, client.closed()).await.unwrap();
    assert!(matches!(server.error(), Some(SpdyError::IdleTimeout)));
}

/// A peer driven frame by frame, like moby/spdystream: it never sends SETTINGS or
/// WINDOW_UPDATE.
struct Raw {
    io: DuplexStream,
    buf: BytesMut,
    enc: HeaderEncoder,
    dec: HeaderDecoder,
}

impl Raw {
    fn server() -> (Raw, Session, Receiver<Stream>) {
        Self::with(Config::default())
    }

    fn with(cfg: Config) -> (Raw, Session, Receiver<Stream>) {
        let (a, b) = duplex(64 << 10);
        let (s, rx) = Session::server(a, cfg);
        (
            Raw {
                io: b,
                buf: BytesMut::new(),
                enc: HeaderEncoder::new(),
                dec: HeaderDecoder::new(1 << 20),
            },
            s,
            rx,
        )
    }

    async fn send(&mut self, f: Frame) {
        let mut out = BytesMut::new();
        encode(&f, &mut out).unwrap();
        self.io.write_all(&out).await.unwrap();
    }

    async fn syn_stream(&mut self, id: u32, h: &Headers) {
        let header_block = self.enc.encode(h).unwrap();
        self.send(Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            slot: 0,
            fin: false,
            unidirectional: false,
            header_block,
        })
        .await;
    }

    /// The next frame other than SETTINGS and WINDOW_UPDATE; `None` at EOF.
    async fn recv(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = decode(&mut self.buf, &Limits::default()).unwrap() {
                match f {
                    Frame::Settings { .. } | Frame::WindowUpdate { .. } => continue,
                    Frame::SynReply {
                        ref header_block, ..
                    }
                    | Frame::SynStream {
                        ref header_block, ..
                    } => {
                        self.dec.decode(header_block).unwrap();
                    }
                    _ => {}
                }
                return Some(f);
            }
            if timeout(T, self.io.read_buf(&mut self.buf))
                .await
                .unwrap()
                .unwrap()
                == 0
            {
                return None;
            }
        }
    }
}

#[tokio::test]
async fn a_peer_without_flow_control_is_not_stalled() {
    let (mut raw, _server, mut incoming) = Raw::server();
    raw.syn_stream(1, &kind("stdout")).await;
    assert!(matches!(
        raw.recv().await,
        Some(Frame::SynReply {
            stream_id: 1,
            fin: false,
            ..
        })
    ));
    let mut s = incoming.recv().await.unwrap();
    // Far beyond the 64 KiB window, never credited by the peer.
    const N: usize = 300_000;
    let writer = tokio::spawn(async move {
        s.write_all(&vec![9u8; N]).await.unwrap();
        s.shutdown().await.unwrap();
        s
    });
    let mut got = 0;
    loop {
        match raw.recv().await.unwrap() {
            Frame::Data {
                stream_id: 1,
                fin,
                data,
            } => {
                got += data.len();
                if fin {
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, N);
    let mut s = writer.await.unwrap();
    // And it may send beyond our window too: reading applies back-pressure, not errors.
    let reader = tokio::spawn(async move { read_all(&mut s).await.unwrap().len() });
    for _ in 0..10 {
        raw.send(Frame::Data {
            stream_id: 1,
            fin: false,
            data: Bytes::from(vec![1u8; 30_000]),
        })
        .await;
    }
    raw.send(Frame::Data {
        stream_id: 1,
        fin: true,
        data: Bytes::new(),
    })
    .await;
    assert_eq!(reader.await.unwrap(), 300_000);
}

async fn expect_goaway(raw: &mut Raw, status: u32) {
    loop {
        match raw.recv().await {
            Some(Frame::GoAway { status: s, .. }) => {
                assert_eq!(s, status);
                return;
            }
            Some(_) => {}
            None => panic!("EOF without GOAWAY"),
        }
    }
}

#[tokio::test]
async fn garbage_bytes_close_the_connection_with_protocol_error() {
    let (mut raw, server, _incoming) = Raw::server();
    raw.io
        .write_all(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
        .await
        .unwrap();
    expect_goaway(&mut raw, frame::goaway::PROTOCOL_ERROR).await;
    assert!(raw.recv().await.is_none());
    timeout(T, server.closed()).await.unwrap();
    assert!(
        matches!(server.error(), Some(SpdyError::Protocol(_))),
        "{:?}",
        server.error()
    );
    // Bytes with the control bit set and a nonsense version.
    let (mut raw, server, _incoming) = Raw::server();
    raw.io.write_all(&[0xff; 64]).await.unwrap();
    expect_goaway(&mut raw, frame::goaway::PROTOCOL_ERROR).await;
    timeout(T, server.closed()).await.unwrap();
    assert!(
        matches!(server.error(), Some(SpdyError::Frame(_))),
        "{:?}",
        server.error()
    );
}

#[tokio::test]
async fn protocol_errors_end_every_stream() {
    // A stream id reused.
    let (mut raw, server, mut incoming) = Raw::server();
    raw.syn_stream(1, &kind("a")).await;
    let mut s = incoming.recv().await.unwrap();
    raw.syn_stream(1, &kind("b")).await;
    expect_goaway(&mut raw, frame::goaway::PROTOCOL_ERROR).await;
    timeout(T, server.closed()).await.unwrap();
    assert!(read_all(&mut s).await.is_err());
    assert!(s.write_all(b"x").await.is_err());

    // DATA for a stream never opened.
    let (mut raw, server, _incoming) = Raw::server();
    raw.send(Frame::Data {
        stream_id: 7,
        fin: false,
        data: Bytes::from_static(b"x"),
    })
    .await;
    expect_goaway(&mut raw, frame::goaway::PROTOCOL_ERROR).await;
    timeout(T, server.closed()).await.unwrap();

    // An oversized header block.
    let (mut raw, server, _incoming) = Raw::server();
    raw.syn_stream(1, &kind(&"x".repeat(300 << 10))).await;
    expect_goaway(&mut raw, frame::goaway::PROTOCOL_ERROR).await;
    timeout(T, server.closed()).await.unwrap();
    assert!(
        matches!(server.error(), Some(SpdyError::Header(_))),
        "{:?}",
        server.error()
    );

    // A session window overflow.
    let (mut raw, server, _incoming) = Raw::server();
    raw.send(Frame::WindowUpdate {
        stream_id: 0,
        delta: 0x7fff_ffff,
    })
    .await;
    expect_goaway(&mut raw, frame::goaway::PROTOCOL_ERROR).await;
    timeout(T, server.closed()).await.unwrap();
}

#[tokio::test]
async fn a_flow_controlled_peer_overrunning_its_window_is_reset() {
    let (mut raw, _server, mut incoming) = Raw::server();
    raw.send(Frame::Settings {
        clear: false,
        entries: vec![],
    })
    .await;
    raw.syn_stream(1, &kind("stdin")).await;
    let _s = incoming.recv().await.unwrap();
    raw.send(Frame::Data {
        stream_id: 1,
        fin: false,
        data: Bytes::from(vec![0u8; 70_000]),
    })
    .await;
    loop {
        match raw.recv().await.unwrap() {
            Frame::RstStream {
                stream_id: 1,
                status,
            } => {
                assert_eq!(status, rst::FLOW_CONTROL_ERROR);
                break;
            }
            Frame::SynReply { .. } => {}
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn pings_from_the_peer_are_answered() {
    let (mut raw, _server, _incoming) = Raw::server();
    raw.send(Frame::Ping { id: 1 }).await;
    assert_eq!(raw.recv().await, Some(Frame::Ping { id: 1 }));
}
