//! A SPDY/3.1 session over one connection: the handle, and the task that drives its IO.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch, Notify};

use super::error::SpdyError;
use super::frame::{self, goaway, Frame, Limits};
use super::headers::{HeaderDecoder, Headers, DEFAULT_MAX_BLOCK};
use super::state::{Outcome, Shared, State};
use super::stream::Stream;

/// How long the driver keeps trying to flush its last frames (GOAWAY) to a peer that is gone.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
const READ_CHUNK: usize = 16 << 10;

/// Session limits.
#[derive(Debug, Clone)]
pub struct Config {
    /// Concurrent streams (either side's) before the peer's SYN_STREAM is refused and
    /// `open_stream` fails.
    pub max_streams: usize,
    /// The receive window of each stream (advertised in SETTINGS); SPDY/3.1's default is 64 KiB.
    pub initial_window: u32,
    /// The largest DATA frame accepted (control frames: 1 MiB).
    pub max_frame: usize,
    /// The largest decompressed header block accepted.
    pub max_header_block: usize,
    /// Close the connection when no frame has been read or written for this long.
    pub idle_timeout: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_streams: 64,
            initial_window: 64 << 10,
            max_frame: frame::DEFAULT_MAX_DATA,
            max_header_block: DEFAULT_MAX_BLOCK,
            idle_timeout: None,
        }
    }
}

/// A handle on a session; clones share it. The connection ends when every handle, every
/// stream and the receiver of incoming streams are dropped, after `go_away` once the streams
/// have ended, on a GOAWAY from the peer once the streams have ended, or on an error.
pub struct Session {
    shared: Arc<Shared>,
    closed: watch::Receiver<()>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl Clone for Session {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::SeqCst);
        Session {
            shared: self.shared.clone(),
            closed: self.closed.clone(),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.handles.fetch_sub(1, Ordering::SeqCst);
        self.shared.notify.notify_one();
    }
}

impl Session {
    /// Server side: the peer (a client) opens streams with odd ids; each SYN_STREAM is answered
    /// with SYN_REPLY and the stream delivered on the receiver. Streams we open get even ids.
    pub fn server<IO>(io: IO, cfg: Config) -> (Session, mpsc::Receiver<Stream>)
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        Self::start(io, cfg, true)
    }

    /// Client side: we open streams with odd ids; streams the peer opens (even ids) arrive on
    /// the receiver.
    pub fn client<IO>(io: IO, cfg: Config) -> (Session, mpsc::Receiver<Stream>)
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        Self::start(io, cfg, false)
    }

    fn start<IO>(io: IO, cfg: Config, server: bool) -> (Session, mpsc::Receiver<Stream>)
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(server, cfg.max_streams, cfg.initial_window)),
            notify: Notify::new(),
            handles: AtomicUsize::new(1),
        });
        let (tx, rx) = mpsc::channel(cfg.max_streams.max(1));
        let (closed_tx, closed_rx) = watch::channel(());
        tokio::spawn(drive(io, cfg, shared.clone(), tx, closed_tx));
        (
            Session {
                shared,
                closed: closed_rx,
            },
            rx,
        )
    }

    /// Opens a stream: sends SYN_STREAM (with FIN if `fin`: we will not write) and resolves once
    /// the peer's SYN_REPLY arrives, or fails on its RST_STREAM or the connection's end.
    pub async fn open_stream(&self, headers: Headers, fin: bool) -> Result<Stream, SpdyError> {
        let (tx, rx) = oneshot::channel();
        let stream = {
            let mut st = self.shared.lock();
            if let Some(e) = &st.dead {
                return Err(e.clone());
            }
            if st.goaway_sent || st.goaway_received {
                return Err(SpdyError::GoingAway);
            }
            let limit = st.max_streams.min(st.peer_max_streams);
            if st.active_streams() >= limit {
                return Err(SpdyError::TooManyStreams(limit));
            }
            let id = st.next_id;
            if id > 0x7fff_ffff {
                return Err(SpdyError::StreamIdsExhausted);
            }
            st.queue_with_headers(&headers, |header_block| Frame::SynStream {
                stream_id: id,
                associated_to: 0,
                priority: 0,
                slot: 0,
                fin,
                unidirectional: false,
                header_block,
            })?;
            st.next_id += 2;
            st.open_local(id, fin, tx);
            Stream::new(self.shared.clone(), id, headers)
        };
        self.shared.notify.notify_one();
        // Dropping this future drops `stream`, which resets it.
        match rx.await {
            Ok(Ok(_reply_headers)) => Ok(stream),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(self.shared.lock().dead.clone().unwrap_or(SpdyError::Closed)),
        }
    }

    /// Sends PING and resolves with the round trip once the peer echoes it.
    pub async fn ping(&self) -> Result<Duration, SpdyError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.shared.lock();
            if let Some(e) = &st.dead {
                return Err(e.clone());
            }
            let id = st.next_ping_id;
            st.next_ping_id = if id >= 0x7fff_fff0 {
                2 - id % 2
            } else {
                id + 2
            };
            st.pings.insert(id, (Instant::now(), tx));
            st.queue(&Frame::Ping { id });
        }
        self.shared.notify.notify_one();
        rx.await
            .map_err(|_| self.shared.lock().dead.clone().unwrap_or(SpdyError::Closed))
    }

    /// Sends GOAWAY: the peer's new streams are refused, `open_stream` fails, and the connection
    /// closes once the existing streams have ended.
    pub fn go_away(&self) {
        self.shared.lock().go_away();
        self.shared.notify.notify_one();
    }

    /// Resolves when the connection is gone.
    pub async fn closed(&self) {
        let mut rx = self.closed.clone();
        while rx.changed().await.is_ok() {}
    }

    /// Why the connection ended, once it has.
    pub fn error(&self) -> Option<SpdyError> {
        self.shared.lock().dead.clone()
    }
}

/// The connection's one task: reads frames and acts on them, writes what is queued.
async fn drive<IO>(
    io: IO,
    cfg: Config,
    shared: Arc<Shared>,
    incoming: mpsc::Sender<Stream>,
    _closed: watch::Sender<()>,
) where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let limits = Limits {
        max_data: cfg.max_frame,
        max_control: frame::DEFAULT_MAX_CONTROL,
    };
    let mut decoder = HeaderDecoder::new(cfg.max_header_block);
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut wbuf = Bytes::new();
    // Written since the last flush: a transport that buffers (TLS, a WebSocket tunnel) holds
    // those bytes until flushed, and the peer may be waiting for them.
    let mut unflushed = false;
    let mut last_activity = tokio::time::Instant::now();
    let mut receiver_gone = false;

    loop {
        let want_read = {
            let mut st = shared.lock();
            if st.dead.is_none() {
                if st.finished() {
                    st.fail(SpdyError::Closed, None);
                } else if receiver_gone && shared.handles.load(Ordering::SeqCst) == 0 {
                    st.go_away();
                    st.fail(SpdyError::Closed, None);
                }
            }
            if wbuf.is_empty() && !st.out.is_empty() {
                wbuf = st.out.split().freeze();
                st.wake_writers();
            }
            if st.dead.is_some() {
                break;
            }
            !st.read_paused()
        };
        let idle_at = cfg.idle_timeout.map(|t| last_activity + t);
        let idle = async move {
            match idle_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        if rbuf.capacity() - rbuf.len() < READ_CHUNK {
            rbuf.reserve(READ_CHUNK);
        }
        tokio::select! {
            r = rd.read_buf(&mut rbuf), if want_read => {
                match r {
                    Ok(0) => {
                        shared.lock().fail(SpdyError::Closed, None);
                    }
                    Ok(_) => {
                        last_activity = tokio::time::Instant::now();
                        read_frames(&shared, &mut rbuf, &limits, &mut decoder, &incoming);
                    }
                    Err(e) => shared.lock().fail(e.into(), None),
                }
            }
            r = async {
                if wbuf.is_empty() {
                    wr.flush().await.map(|()| None)
                } else {
                    wr.write(&wbuf).await.map(Some)
                }
            }, if !wbuf.is_empty() || unflushed => {
                match r {
                    Ok(Some(0)) => shared.lock().fail(SpdyError::Closed, None),
                    Ok(Some(n)) => {
                        last_activity = tokio::time::Instant::now();
                        wbuf.advance(n);
                        unflushed = true;
                    }
                    Ok(None) => unflushed = false,
                    Err(e) => shared.lock().fail(e.into(), None),
                }
            }
            _ = shared.notify.notified() => {}
            _ = incoming.closed(), if !receiver_gone => receiver_gone = true,
            _ = idle => {
                let mut st = shared.lock();
                st.go_away();
                st.fail(SpdyError::IdleTimeout, None);
            }
        }
    }

    // Best effort: the last frames (GOAWAY, RST_STREAM) out, then close our side.
    let rest = {
        let mut st = shared.lock();
        let mut rest = BytesMut::from(&wbuf[..]);
        rest.extend_from_slice(&st.out.split());
        rest
    };
    let _ = tokio::time::timeout(FLUSH_TIMEOUT, async {
        wr.write_all(&rest).await?;
        wr.shutdown().await
    })
    .await;
    drop(incoming);
}

/// Acts on every whole frame in `rbuf`; stops at the first connection error.
fn read_frames(
    shared: &Arc<Shared>,
    rbuf: &mut BytesMut,
    limits: &Limits,
    decoder: &mut HeaderDecoder,
    incoming: &mpsc::Sender<Stream>,
) {
    loop {
        let mut st = shared.lock();
        if st.dead.is_some() {
            return;
        }
        if let Some(id) = frame::data_stream_id(rbuf) {
            if id != 0 && !st.streams.contains_key(&id) && !st.was_opened(id) {
                let e =
                    SpdyError::Protocol(format!("DATA for stream {id}, which was never opened"));
                tracing::debug!("spdy: {e}");
                st.fail(e, Some(goaway::PROTOCOL_ERROR));
                return;
            }
        }
        let f = match frame::decode(rbuf, limits) {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!("spdy: {e}");
                st.fail(e.into(), Some(goaway::PROTOCOL_ERROR));
                return;
            }
        };
        match st.handle(f, decoder, shared) {
            Ok(Outcome::Nothing) => {}
            Ok(Outcome::Incoming(stream)) => {
                drop(st);
                // A refused stream is dropped here, outside the lock, which resets it.
                if let Err(e) = incoming.try_send(stream) {
                    drop(e);
                }
            }
            Err(e) => {
                tracing::debug!("spdy: {e}");
                st.fail(e, Some(goaway::PROTOCOL_ERROR));
                return;
            }
        }
    }
}
