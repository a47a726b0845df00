//! remotecommand, the protocol of exec and attach, as client-go's `tools/remotecommand`
//! speaks it.
//!
//! Over SPDY the client opens one stream per channel, each named by its `streamtype` header:
//! `error` first, then `stdin`, `stdout`, `stderr` (not with a tty) and, from v3 on with a tty,
//! `resize` (a JSON `{"Width","Height"}` object per size). Stdin ends with a FIN; the server
//! ends stdout and stderr with FINs and writes the outcome on the error stream.
//!
//! Over WebSocket the same channels are the first byte of each binary message; v5 adds the
//! close channel, the only way to tell the server stdin is done.

use std::time::Duration;

use anyhow::{Context, Result};
use crust_streaming::spdy;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{self, Message};

use super::status::{self, Outcome};
use super::term::TerminalSize;
use super::{spdy_upgrade, ws, Target, Transport};

/// Offered over SPDY, most preferred first (what client-go's SPDY executor offers).
pub const SPDY_PROTOCOLS: [&str; 4] = [
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// Offered over WebSocket.
pub const WS_PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

const BUFFER: usize = 32 * 1024;

pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// The local ends of a remote command's streams.
#[derive(Default)]
pub struct Io {
    pub stdin: Option<Reader>,
    pub stdout: Option<Writer>,
    /// Ignored with a tty: the terminal merges stderr into stdout.
    pub stderr: Option<Writer>,
    /// Terminal sizes to send; only with a tty.
    pub resize: Option<mpsc::Receiver<TerminalSize>>,
    pub tty: bool,
}

/// The protocol version a negotiated name stands for (`channel.k8s.io` is 1).
fn version(protocol: &str) -> u32 {
    protocol
        .strip_prefix('v')
        .and_then(|rest| rest.split_once('.'))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(1)
}

/// Connects to a remotecommand URL (Exec or Attach) and runs the streams to the end.
pub async fn stream(url: &str, transport: Transport, io: Io) -> Result<Outcome> {
    let target = Target::parse(url)?;
    match transport {
        Transport::Spdy => {
            let (session, protocol) = spdy_upgrade::connect(&target, &SPDY_PROTOCOLS).await?;
            let outcome = run_spdy(&session, &protocol, io).await;
            session.go_away();
            outcome
        }
        Transport::WebSocket => {
            let (socket, protocol) = ws::connect(&target, &WS_PROTOCOLS).await?;
            run_ws(socket, &protocol, io).await
        }
    }
}

/// Copies until EOF, flushing every chunk (a prompt without a newline must show).
async fn pump<R, W>(mut from: R, to: &mut W) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut buf = vec![0u8; BUFFER];
    let mut total = 0;
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
        total += n as u64;
    }
}

fn resize_json(size: TerminalSize) -> Vec<u8> {
    let mut json = serde_json::to_vec(&size).expect("a terminal size serializes");
    json.push(b'\n');
    json
}

/// remotecommand over an established SPDY session.
pub async fn run_spdy(session: &spdy::Session, protocol: &str, io: Io) -> Result<Outcome> {
    let version = version(protocol);
    let open = |kind: &'static str| async move {
        let headers: spdy::Headers = [("streamtype".to_owned(), kind.to_owned())]
            .into_iter()
            .collect();
        session
            .open_stream(headers, false)
            .await
            .with_context(|| format!("create the {kind} stream"))
    };
    let mut error = open("error").await?;
    let mut tasks = Vec::new();
    if let Some(mut stdin) = io.stdin {
        let mut remote = open("stdin").await?;
        tasks.push(tokio::spawn(async move {
            let _ = pump(&mut stdin, &mut remote).await;
            let _ = remote.shutdown().await;
            // Keep the stream (and our half-closed side) until the command ends.
            std::future::pending::<()>().await;
        }));
    }
    let stdout = match io.stdout {
        Some(local) => Some((open("stdout").await?, local)),
        None => None,
    };
    let stderr = match io.stderr.filter(|_| !io.tty) {
        Some(local) => Some((open("stderr").await?, local)),
        None => None,
    };
    if let (true, true, Some(mut sizes)) = (io.tty, version >= 3, io.resize) {
        let mut remote = open("resize").await?;
        tasks.push(tokio::spawn(async move {
            while let Some(size) = sizes.recv().await {
                if remote.write_all(&resize_json(size)).await.is_err()
                    || remote.flush().await.is_err()
                {
                    break;
                }
            }
            std::future::pending::<()>().await;
        }));
    }
    let copy_out = |pair: Option<(spdy::Stream, Writer)>| async move {
        match pair {
            Some((remote, mut local)) => pump(remote, &mut local).await.map(drop),
            None => Ok(()),
        }
    };
    let mut message = Vec::new();
    let (out, err, status) = tokio::join!(
        copy_out(stdout),
        copy_out(stderr),
        error.read_to_end(&mut message)
    );
    for task in tasks {
        task.abort();
    }
    status.context("read the error stream")?;
    out.context("copy stdout")?;
    err.context("copy stderr")?;
    Ok(status::decode(&message, version >= 4))
}

/// remotecommand over an established WebSocket.
pub async fn run_ws<S>(socket: S, protocol: &str, io: Io) -> Result<Outcome>
where
    S: futures::Stream<Item = Result<Message, tungstenite::Error>>
        + futures::Sink<Message, Error = tungstenite::Error>
        + Send
        + Unpin
        + 'static,
{
    let version = version(protocol);
    let (mut sink, mut incoming) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Message>(8);
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            let close = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || close {
                break;
            }
        }
    });
    let mut tasks = Vec::new();
    if let Some(mut stdin) = io.stdin {
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; BUFFER];
            loop {
                match stdin.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(ws::frame(ws::STDIN, &buf[..n])).await.is_err() {
                            return;
                        }
                    }
                }
            }
            if version >= 5 {
                let _ = tx.send(ws::frame(ws::CLOSE, &[ws::STDIN])).await;
            }
        }));
    }
    if let (true, Some(mut sizes)) = (io.tty, io.resize) {
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(size) = sizes.recv().await {
                if tx
                    .send(ws::frame(ws::RESIZE, &resize_json(size)))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }));
    }
    let mut stdout = io.stdout;
    let mut stderr = io.stderr;
    let mut message = Vec::new();
    let mut failure = None;
    while let Some(next) = incoming.next().await {
        let data = match next {
            Ok(Message::Binary(data)) => data,
            Ok(Message::Close(_)) => break,
            Ok(_) => continue,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        let Some((&channel, payload)) = data.split_first() else {
            continue;
        };
        let local = match channel {
            ws::STDOUT => stdout.as_mut(),
            ws::STDERR => stderr.as_mut(),
            ws::ERROR => {
                message.extend_from_slice(payload);
                continue;
            }
            ws::CLOSE => {
                match payload.first() {
                    Some(&ws::STDOUT) => shut(&mut stdout).await,
                    Some(&ws::STDERR) => shut(&mut stderr).await,
                    _ => {}
                }
                continue;
            }
            _ => continue,
        };
        if let Some(local) = local {
            local.write_all(payload).await.context("write output")?;
            local.flush().await.context("write output")?;
        }
    }
    for task in tasks {
        task.abort();
    }
    let _ = tx.send(Message::Close(None)).await;
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
    shut(&mut stdout).await;
    shut(&mut stderr).await;
    if let Some(e) = failure {
        // A connection that broke after the outcome arrived ended well enough.
        if message.is_empty() {
            return Err(e).context("read from the streaming server");
        }
    }
    Ok(status::decode(&message, version >= 4))
}

async fn shut(local: &mut Option<Writer>) {
    if let Some(mut w) = local.take() {
        let _ = w.flush().await;
        let _ = w.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(version("v5.channel.k8s.io"), 5);
        assert_eq!(version("v4.channel.k8s.io"), 4);
        assert_eq!(version("channel.k8s.io"), 1);
        assert_eq!(version(""), 1);
    }
}
