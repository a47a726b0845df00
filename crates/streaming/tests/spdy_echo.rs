//! Port-forward-shaped echo load: a client session opens several streams at once, each writes
//! 10 MiB while reading the echo, then half-closes and reads to EOF; the server session echoes
//! every stream (directly, or relayed through a TCP echo socket as portforward does). Two of
//! our sessions must never both stop reading while their output is backed up.

use std::future::Future;
use std::time::Duration;

use crust_streaming::spdy::{Config, Headers, Session, Stream};
use tokio::io::{duplex, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SIZE: usize = 10 << 20;
const STREAMS: u8 = 3;
const T: Duration = Duration::from_secs(60);

fn pattern(seed: u8) -> Vec<u8> {
    (0..SIZE)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

/// The copy of portforward.rs: client bytes to `to` until EOF (then half-close), `from`'s
/// bytes back until its EOF (then FIN).
async fn relay<R, W>(stream: Stream, mut from: R, mut to: W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (mut sr, mut sw) = tokio::io::split(stream);
    let up = async {
        let _ = tokio::io::copy(&mut sr, &mut to).await;
        let _ = to.shutdown().await;
        std::future::pending::<()>().await
    };
    let down = async {
        let res = tokio::io::copy(&mut from, &mut sw).await;
        let _ = sw.flush().await;
        let _ = sw.shutdown().await;
        res
    };
    tokio::select! {
        res = down => { res.expect("copy back to the client"); }
        () = up => unreachable!(),
    }
}

/// Serves `incoming`: each stream echoed through an in-memory pipe, or a TCP echo server.
fn serve(mut incoming: tokio::sync::mpsc::Receiver<Stream>, echo: Option<std::net::SocketAddr>) {
    tokio::spawn(async move {
        while let Some(stream) = incoming.recv().await {
            tokio::spawn(async move {
                match echo {
                    Some(addr) => {
                        let tcp = TcpStream::connect(addr).await.unwrap();
                        let (r, w) = tcp.into_split();
                        relay(stream, r, w).await;
                    }
                    None => {
                        // `cat`: what goes into one end of a small pipe comes out of the other.
                        let (a, b) = duplex(32 << 10);
                        let (ar, aw) = tokio::io::split(a);
                        let (mut br, mut bw) = tokio::io::split(b);
                        tokio::spawn(async move {
                            let _ = tokio::io::copy(&mut br, &mut bw).await;
                            let _ = bw.shutdown().await;
                        });
                        relay(stream, ar, aw).await;
                    }
                }
            });
        }
    });
}

/// A TCP echo server (`nc -ll -e cat`).
async fn echo_server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (c, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = c.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// The client's side: `STREAMS` concurrent echoes of 10 MiB each, written and read at once.
async fn clients(session: Session) {
    let mut tasks = Vec::new();
    for seed in 0..STREAMS {
        let session = session.clone();
        tasks.push(tokio::spawn(async move {
            let h: Headers = [("streamtype", "data")].into_iter().collect();
            let stream = session.open_stream(h, false).await.unwrap();
            let (mut r, mut w) = tokio::io::split(stream);
            let data = pattern(seed);
            let sent = data.clone();
            let writer = tokio::spawn(async move {
                for chunk in sent.chunks(32 << 10) {
                    w.write_all(chunk).await.unwrap();
                }
                w.shutdown().await.unwrap();
                w
            });
            let mut back = Vec::with_capacity(SIZE);
            r.read_to_end(&mut back).await.unwrap();
            let _w = writer.await.unwrap();
            assert!(back == data, "stream {seed}: {} bytes back", back.len());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn within(what: &str, f: impl Future<Output = ()>) {
    tokio::time::timeout(T, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: echo hung"));
}

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
    (c.unwrap(), s.unwrap().0)
}

fn server_cfg() -> Config {
    // Port-forward's server session: 256 streams.
    Config {
        max_streams: 256,
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn echo_over_tcp() {
    let (c, s) = tcp_pair().await;
    let (_server, incoming) = Session::server(s, server_cfg());
    serve(incoming, None);
    let (client, _) = Session::client(c, Config::default());
    within("tcp", clients(client)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn echo_over_small_duplex() {
    let (c, s) = duplex(8 << 10);
    let (_server, incoming) = Session::server(s, server_cfg());
    serve(incoming, None);
    let (client, _) = Session::client(c, Config::default());
    within("duplex", clients(client)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn echo_relayed_through_a_tcp_echo_server() {
    let echo = echo_server().await;
    let (c, s) = tcp_pair().await;
    let (_server, incoming) = Session::server(s, server_cfg());
    serve(incoming, Some(echo));
    let (client, _) = Session::client(c, Config::default());
    within("relayed", clients(client)).await;
}

#[tokio::test(flavor = "current_thread")]
async fn echo_relayed_on_one_thread() {
    let echo = echo_server().await;
    let (c, s) = tcp_pair().await;
    let (_server, incoming) = Session::server(s, server_cfg());
    serve(incoming, Some(echo));
    let (client, _) = Session::client(c, Config::default());
    within("one thread", clients(client)).await;
}

/// Over a transport that buffers writes until flushed (TLS, a WebSocket tunnel), as
/// `tokio::io::BufWriter` does: the driver must flush what it wrote, or the last frames sit in
/// the buffer while both peers wait for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn echo_over_a_buffering_transport() {
    let (c, s) = tcp_pair().await;
    let (_server, incoming) = Session::server(tokio::io::BufWriter::new(s), server_cfg());
    serve(incoming, None);
    let (client, _) = Session::client(tokio::io::BufWriter::new(c), Config::default());
    within("buffered", clients(client)).await;
}
