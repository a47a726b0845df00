//! exec/attach and port forwarding over SPDY/3.1 (kubelet's remotecommand/httpstream.go and
//! portforward/httpstream.go): the client opens one stream per channel, typed by its
//! `streamtype` header.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_cri::v1::PortForwardRequest;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::backend::StreamError;
use crate::pipe;
use crate::portforward;
use crate::remotecommand::{self, Channels, Command};
use crate::server::Inner;
use crate::spdy::{self, Session, Stream};

const STREAM_TYPE: &str = "streamtype";
const PORT: &str = "port";
const REQUEST_ID: &str = "requestid";
/// How long a finished session waits for the client to close before dropping the connection.
const LINGER: Duration = Duration::from_secs(2);
/// Concurrent streams of a port-forward session (two per forwarded connection).
const PORTFORWARD_MAX_STREAMS: usize = 256;

fn session_config(inner: &Inner, max_streams: usize) -> spdy::Config {
    spdy::Config {
        max_streams,
        idle_timeout: Some(inner.cfg.stream_idle_timeout),
        ..spdy::Config::default()
    }
}

/// The streams of one exec/attach, as they arrive.
#[derive(Default)]
struct Slots {
    error: Option<Stream>,
    stdin: Option<Stream>,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
    resize: Option<Stream>,
}

impl Slots {
    fn count(&self) -> usize {
        [
            &self.error,
            &self.stdin,
            &self.stdout,
            &self.stderr,
            &self.resize,
        ]
        .iter()
        .filter(|s| s.is_some())
        .count()
    }
}

pub(crate) async fn remotecommand<IO>(io: IO, proto: &'static str, cmd: Command, inner: Arc<Inner>)
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (session, mut incoming) = Session::server(io, session_config(&inner, 16));
    let wants = cmd.wants();
    let resize = wants.tty
        && matches!(
            proto,
            remotecommand::V5 | remotecommand::V4 | remotecommand::V3
        );
    let expected = 1 + [wants.stdin, wants.stdout, wants.stderr, resize]
        .iter()
        .filter(|&&b| b)
        .count();

    let mut slots = Slots::default();
    let deadline = Instant::now() + inner.cfg.stream_creation_timeout;
    while slots.count() < expected {
        let stream = tokio::select! {
            s = incoming.recv() => match s {
                Some(s) => s,
                None => return,
            },
            () = tokio::time::sleep_until(deadline) => {
                tracing::debug!("timed out waiting for client to create streams");
                session.go_away();
                return;
            }
        };
        let kind = stream.headers().get(STREAM_TYPE).unwrap_or("").to_string();
        let slot = match kind.as_str() {
            "error" => Some(&mut slots.error),
            "stdin" => wants.stdin.then_some(&mut slots.stdin),
            "stdout" => wants.stdout.then_some(&mut slots.stdout),
            "stderr" => wants.stderr.then_some(&mut slots.stderr),
            "resize" => resize.then_some(&mut slots.resize),
            _ => {
                tracing::debug!(stream_type = %kind, "unexpected stream type; closing the connection");
                stream.reset();
                session.go_away();
                return;
            }
        };
        match slot {
            Some(slot @ None) => *slot = Some(stream),
            // A stream the request did not ask for, or a second one of a type.
            _ => {
                tracing::debug!(stream_type = %kind, "unrequested stream; closing the connection");
                stream.reset();
                session.go_away();
                return;
            }
        }
    }
    // remotecommand opens no further streams: refuse any.
    let drain = pipe::AbortOnDrop(tokio::spawn(async move {
        while let Some(s) = incoming.recv().await {
            s.reset();
        }
    }));
    // We never write on stdin and resize: half-close them now, so dropping them later is clean.
    for s in [&mut slots.stdin, &mut slots.resize].into_iter().flatten() {
        let _ = s.shutdown().await;
    }
    let ch = Channels {
        stdin: slots.stdin.map(|s| Box::new(s) as _),
        stdout: slots.stdout.map(|s| Box::new(s) as _),
        stderr: slots.stderr.map(|s| Box::new(s) as _),
        resize: slots.resize.map(|s| Box::new(s) as _),
        error: slots.error.map(|s| Box::new(s) as _),
        json_status: matches!(proto, remotecommand::V5 | remotecommand::V4),
    };
    remotecommand::run(&inner.backend, cmd, ch, session.closed()).await;
    session.go_away();
    let _ = tokio::time::timeout(LINGER, session.closed()).await;
    drop(drain);
}

/// The two streams of one forwarded connection.
struct Pair {
    data: Option<Stream>,
    error: Option<Stream>,
    created: Instant,
}

/// The streams of a connection are paired by `requestid`; old clients that send none get the
/// error stream's id (and the data stream's id minus 2), as kubelet does.
fn request_id(s: &Stream, kind: &str) -> String {
    match s.headers().get(REQUEST_ID) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ if kind == "error" => s.id().to_string(),
        _ => s.id().saturating_sub(2).to_string(),
    }
}

pub(crate) async fn portforward<IO>(io: IO, req: PortForwardRequest, inner: Arc<Inner>)
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (session, mut incoming) =
        Session::server(io, session_config(&inner, PORTFORWARD_MAX_STREAMS));
    let req = Arc::new(req);
    let timeout = inner.cfg.stream_creation_timeout;
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    // Dropped with the session: every forward still running is cancelled.
    let mut forwards = JoinSet::new();
    let mut sweep = tokio::time::interval(Duration::from_secs(1).min(timeout));
    loop {
        let stream = tokio::select! {
            s = incoming.recv() => match s {
                Some(s) => s,
                None => break,
            },
            _ = sweep.tick() => {
                expire(&mut pairs, timeout).await;
                while forwards.try_join_next().is_some() {}
                continue;
            }
        };
        let kind = stream.headers().get(STREAM_TYPE).unwrap_or("").to_string();
        let port = stream
            .headers()
            .get(PORT)
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|&p| p > 0);
        let (Some(port), "error" | "data") = (port, kind.as_str()) else {
            tracing::debug!(stream_type = %kind, "bad port-forward stream; closing the connection");
            stream.reset();
            session.go_away();
            break;
        };
        let id = request_id(&stream, &kind);
        let pair = pairs.entry(id.clone()).or_insert_with(|| Pair {
            data: None,
            error: None,
            created: Instant::now(),
        });
        let slot = if kind == "error" {
            &mut pair.error
        } else {
            &mut pair.data
        };
        if slot.is_some() {
            tracing::debug!(
                "second {kind} stream for one port-forward request; closing the connection"
            );
            stream.reset();
            session.go_away();
            break;
        }
        *slot = Some(stream);
        if pair.data.is_some() && pair.error.is_some() {
            let Some(Pair {
                data: Some(data),
                error: Some(error),
                ..
            }) = pairs.remove(&id)
            else {
                continue;
            };
            let (backend, req) = (inner.backend.clone(), req.clone());
            forwards.spawn(async move {
                let mut error = error;
                // The client does not write on the error stream.
                let res = match portforward::check_port(&req, port) {
                    Ok(()) => {
                        let (mut r, mut w) = tokio::io::split(data);
                        portforward::forward(&backend, &req.pod_sandbox_id, port, &mut r, &mut w)
                            .await
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = res {
                    report(&mut error, port, &req.pod_sandbox_id, &e).await;
                }
                pipe::close(&mut error).await;
            });
        }
    }
    // The client closed (or misbehaved): wait for the connection to go, cancelling forwards.
    drop(pairs);
    tokio::select! {
        () = session.closed() => {}
        _ = async { while forwards.join_next().await.is_some() {} } => {
            let _ = tokio::time::timeout(LINGER, session.closed()).await;
        }
    }
}

async fn report(error: &mut Stream, port: u16, pod: &str, e: &StreamError) {
    tracing::debug!(port, error = %e, "port forward failed");
    let msg = portforward::error_message(port, pod, e);
    let _ = error.write_all(msg.as_bytes()).await;
}

/// Pairs whose second stream did not come within `timeout`: an error, then they are dropped.
async fn expire(pairs: &mut HashMap<String, Pair>, timeout: Duration) {
    let now = Instant::now();
    let old: Vec<String> = pairs
        .iter()
        .filter(|(_, p)| now - p.created >= timeout)
        .map(|(k, _)| k.clone())
        .collect();
    for id in old {
        if let Some(Pair {
            error: Some(mut e), ..
        }) = pairs.remove(&id)
        {
            let _ = e.write_all(b"timed out waiting for streams").await;
            pipe::close(&mut e).await;
        }
    }
}
