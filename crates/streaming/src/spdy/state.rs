//! The state one connection shares between its driver task, its [`Session`] handles and its
//! [`Stream`]s, and what the driver does with each frame it reads.
//!
//! Everything that writes frames does so under the one lock, into one bounded output buffer, so
//! the header compression context sees header blocks in wire order.
//!
//! [`Session`]: super::Session

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::{oneshot, Notify};

use super::error::SpdyError;
use super::frame::{self, goaway, rst, settings, Frame, Setting};
use super::headers::{HeaderDecoder, HeaderEncoder, Headers};
use super::stream::Stream;

/// Output buffered beyond this makes stream writers wait.
pub(crate) const QUEUE_CAP: usize = 256 << 10;
/// Output buffered beyond this (only frames the driver answers with, PING replies, RST_STREAM,
/// can get it there) makes the driver stop reading. Above `QUEUE_CAP`, so that two sessions
/// whose writers fill their queues still read each other.
const READ_PAUSE: usize = 2 * QUEUE_CAP;
/// The most payload one DATA frame we send carries.
pub(crate) const MAX_CHUNK: usize = 16 << 10;
/// The window SPDY/3.1 starts every stream and the session with.
pub(crate) const DEFAULT_WINDOW: i64 = 64 << 10;
const MAX_WINDOW: i64 = 0x7fff_ffff;

pub(crate) struct Shared {
    pub state: Mutex<State>,
    /// Wakes the driver: output queued, a reader made room, a handle went away.
    pub notify: Notify,
    /// Live `Session` handles plus live `Stream`s.
    pub handles: AtomicUsize,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock must not take every stream down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) struct StreamState {
    pub recv: VecDeque<Bytes>,
    pub recv_len: usize,
    pub remote_fin: bool,
    pub local_fin: bool,
    /// The stream ended abnormally (reset by either side, refused by GOAWAY).
    pub reset: Option<SpdyError>,
    pub send_window: i64,
    pub recv_window: i64,
    /// Bytes the reader consumed that no WINDOW_UPDATE has credited yet.
    pub unacked: i64,
    pub read_waker: Option<Waker>,
    pub write_waker: Option<Waker>,
    /// For a stream we opened, until SYN_REPLY (or RST) arrives.
    pub reply: Option<oneshot::Sender<Result<Headers, SpdyError>>>,
    pub local: bool,
    /// The `Stream` was dropped after sending FIN: what still arrives is discarded.
    pub detached: bool,
}

impl StreamState {
    fn new(local: bool, send_window: i64, recv_window: i64) -> Self {
        StreamState {
            recv: VecDeque::new(),
            recv_len: 0,
            remote_fin: false,
            local_fin: false,
            reset: None,
            send_window,
            recv_window,
            unacked: 0,
            read_waker: None,
            write_waker: None,
            reply: None,
            local,
            detached: false,
        }
    }

    fn wake(&mut self) {
        if let Some(w) = self.read_waker.take() {
            w.wake();
        }
        if let Some(w) = self.write_waker.take() {
            w.wake();
        }
    }

    /// Nothing more will happen on the stream.
    pub fn ended(&self) -> bool {
        self.reset.is_some() || (self.local_fin && self.remote_fin)
    }
}

pub(crate) struct State {
    pub server: bool,
    pub max_streams: usize,
    pub initial_window: i64,
    pub streams: HashMap<u32, StreamState>,
    pub next_id: u32,
    pub last_peer_id: u32,
    pub session_send_window: i64,
    pub session_recv_window: i64,
    session_recv_target: i64,
    session_unacked: i64,
    pub peer_initial_window: i64,
    pub peer_max_streams: usize,
    /// The peer has shown it does flow control (sent SETTINGS or WINDOW_UPDATE). Until then
    /// windows are tracked but not enforced: moby/spdystream, which kubelet and kubectl use,
    /// never sends WINDOW_UPDATE and ignores ours.
    pub peer_flow_control: bool,
    pub out: BytesMut,
    pub encoder: HeaderEncoder,
    pub pings: HashMap<u32, (Instant, oneshot::Sender<Duration>)>,
    pub next_ping_id: u32,
    pub goaway_sent: bool,
    pub goaway_received: bool,
    pub dead: Option<SpdyError>,
}

/// What the driver must do after handling a frame, outside the lock.
pub(crate) enum Outcome {
    Nothing,
    /// A stream the peer opened, for the application.
    Incoming(Stream),
}

impl State {
    pub fn new(server: bool, max_streams: usize, initial_window: u32) -> State {
        let initial_window = i64::from(initial_window.clamp(1, MAX_WINDOW as u32));
        let target = (initial_window * max_streams.max(1) as i64).clamp(DEFAULT_WINDOW, MAX_WINDOW);
        let mut st = State {
            server,
            max_streams,
            initial_window,
            streams: HashMap::new(),
            next_id: if server { 2 } else { 1 },
            last_peer_id: 0,
            session_send_window: DEFAULT_WINDOW,
            session_recv_window: target,
            session_recv_target: target,
            session_unacked: 0,
            peer_initial_window: DEFAULT_WINDOW,
            peer_max_streams: usize::MAX,
            peer_flow_control: false,
            out: BytesMut::new(),
            encoder: HeaderEncoder::new(),
            pings: HashMap::new(),
            next_ping_id: if server { 2 } else { 1 },
            goaway_sent: false,
            goaway_received: false,
            dead: None,
        };
        st.queue(&Frame::Settings {
            clear: false,
            entries: vec![
                Setting {
                    flags: 0,
                    id: settings::MAX_CONCURRENT_STREAMS,
                    value: max_streams as u32,
                },
                Setting {
                    flags: 0,
                    id: settings::INITIAL_WINDOW_SIZE,
                    value: initial_window as u32,
                },
            ],
        });
        if target > DEFAULT_WINDOW {
            st.queue(&Frame::WindowUpdate {
                stream_id: 0,
                delta: (target - DEFAULT_WINDOW) as u32,
            });
        }
        st
    }

    pub fn queue(&mut self, f: &Frame) {
        // Our own frames are always encodable; a bug here must not reach the wire half-written.
        if let Err(e) = frame::encode(f, &mut self.out) {
            tracing::error!("spdy: cannot encode {} frame: {e}", f.name());
        }
    }

    /// Queues SYN_STREAM, SYN_REPLY or HEADERS, compressing `headers` with the connection's
    /// context.
    pub fn queue_with_headers(
        &mut self,
        headers: &Headers,
        make: impl FnOnce(Bytes) -> Frame,
    ) -> Result<(), SpdyError> {
        let block = self.encoder.encode(headers)?;
        self.queue(&make(block));
        Ok(())
    }

    /// Registers a stream we are opening, until its SYN_REPLY.
    pub fn open_local(
        &mut self,
        id: u32,
        fin: bool,
        reply: oneshot::Sender<Result<Headers, SpdyError>>,
    ) {
        let mut s = StreamState::new(true, self.peer_initial_window, self.initial_window);
        s.local_fin = fin;
        s.reply = Some(reply);
        self.streams.insert(id, s);
    }

    /// Whether stream ids of this parity are the ones we open.
    pub fn is_local_id(&self, id: u32) -> bool {
        (id & 1 == 0) == self.server
    }

    /// Whether `id` names a stream that existed once (so late frames for it are not an error).
    pub fn was_opened(&self, id: u32) -> bool {
        if self.is_local_id(id) {
            id < self.next_id
        } else {
            id <= self.last_peer_id
        }
    }

    pub fn active_streams(&self) -> usize {
        self.streams.len()
    }

    pub fn wake_writers(&mut self) {
        for s in self.streams.values_mut() {
            if let Some(w) = s.write_waker.take() {
                w.wake();
            }
        }
    }

    /// Ends the connection: every stream, opener and ping sees `err`. With `status`, GOAWAY is
    /// queued first.
    pub fn fail(&mut self, err: SpdyError, status: Option<u32>) {
        if self.dead.is_some() {
            return;
        }
        if let Some(status) = status {
            self.queue(&Frame::GoAway {
                last_good_stream_id: self.last_peer_id,
                status,
            });
            self.goaway_sent = true;
        }
        for s in self.streams.values_mut() {
            if let Some(tx) = s.reply.take() {
                let _ = tx.send(Err(err.clone()));
            }
            s.wake();
        }
        self.pings.clear();
        self.dead = Some(err);
    }

    /// A stream error: RST_STREAM with `status`; the stream ends with an error.
    pub fn reset_stream(&mut self, id: u32, status: u32) {
        self.queue(&Frame::RstStream {
            stream_id: id,
            status,
        });
        self.end_stream(id, SpdyError::Reset { stream: id, status });
    }

    fn end_stream(&mut self, id: u32, err: SpdyError) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if let Some(tx) = s.reply.take() {
            let _ = tx.send(Err(err.clone()));
        }
        s.reset.get_or_insert(err);
        s.wake();
        if s.detached {
            self.forget(id);
        }
    }

    /// Drops a stream's entry, crediting the session window with what it never read.
    pub fn forget(&mut self, id: u32) {
        if let Some(s) = self.streams.remove(&id) {
            self.credit_session(s.recv_len as i64);
        }
    }

    pub fn credit_session(&mut self, n: i64) {
        self.session_unacked += n;
        if self.session_unacked > 0 && self.session_unacked >= self.session_recv_target / 2 {
            let delta = self.session_unacked;
            self.session_unacked = 0;
            self.session_recv_window += delta;
            self.queue(&Frame::WindowUpdate {
                stream_id: 0,
                delta: delta as u32,
            });
        }
    }

    /// The reader of stream `id` consumed `n` bytes: credit them back to the peer, in
    /// WINDOW_UPDATEs of at least half a window.
    pub fn consumed(&mut self, id: u32, n: usize) {
        let half = (self.initial_window / 2).max(1);
        if let Some(s) = self.streams.get_mut(&id) {
            s.unacked += n as i64;
            if s.unacked >= half && !s.remote_fin && s.reset.is_none() {
                let delta = s.unacked;
                s.unacked = 0;
                s.recv_window += delta;
                self.queue(&Frame::WindowUpdate {
                    stream_id: id,
                    delta: delta as u32,
                });
            }
        }
        self.credit_session(n as i64);
    }

    /// Reading from the connection waits while some stream holds more than a window of unread
    /// data (only a peer ignoring flow control gets it there) or output is backed up.
    pub fn read_paused(&self) -> bool {
        self.out.len() >= READ_PAUSE
            || self
                .streams
                .values()
                .any(|s| !s.detached && s.recv_len as i64 > self.initial_window)
    }

    /// Handles one frame. `Err` is a connection error: the caller sends GOAWAY PROTOCOL_ERROR.
    pub fn handle(
        &mut self,
        f: Frame,
        decoder: &mut HeaderDecoder,
        shared: &Arc<Shared>,
    ) -> Result<Outcome, SpdyError> {
        match f {
            Frame::SynStream {
                stream_id: id,
                fin,
                unidirectional,
                header_block,
                ..
            } => {
                // Decode first: the compression context must see every block.
                let headers = decoder.decode(&header_block)?;
                if self.is_local_id(id) || id <= self.last_peer_id {
                    return Err(SpdyError::Protocol(format!(
                        "SYN_STREAM: stream id {id} is not new or not the peer's"
                    )));
                }
                self.last_peer_id = id;
                if self.goaway_sent || self.dead.is_some() {
                    self.queue(&Frame::RstStream {
                        stream_id: id,
                        status: rst::REFUSED_STREAM,
                    });
                    return Ok(Outcome::Nothing);
                }
                if self.active_streams() >= self.max_streams {
                    self.queue(&Frame::RstStream {
                        stream_id: id,
                        status: rst::REFUSED_STREAM,
                    });
                    return Ok(Outcome::Nothing);
                }
                let mut s = StreamState::new(false, self.peer_initial_window, self.initial_window);
                s.remote_fin = fin;
                // The recipient of a unidirectional stream may not send on it.
                s.local_fin = unidirectional;
                self.streams.insert(id, s);
                if !unidirectional {
                    self.queue_with_headers(&Headers::new(), |header_block| Frame::SynReply {
                        stream_id: id,
                        fin: false,
                        header_block,
                    })?;
                }
                Ok(Outcome::Incoming(Stream::new(shared.clone(), id, headers)))
            }
            Frame::SynReply {
                stream_id: id,
                fin,
                header_block,
            } => {
                let headers = decoder.decode(&header_block)?;
                let closed_local = self.is_local_id(id) && self.was_opened(id);
                match self.streams.get_mut(&id) {
                    Some(s) if s.local && s.reply.is_some() => {
                        s.remote_fin |= fin;
                        if let Some(tx) = s.reply.take() {
                            let _ = tx.send(Ok(headers));
                        }
                        s.wake();
                    }
                    Some(s) if s.reset.is_some() => {}
                    Some(_) => self.reset_stream(id, rst::STREAM_IN_USE),
                    None if closed_local => {}
                    None => {
                        return Err(SpdyError::Protocol(format!(
                            "SYN_REPLY for stream {id}, which was never opened"
                        )))
                    }
                }
                Ok(Outcome::Nothing)
            }
            Frame::RstStream {
                stream_id: id,
                status,
            } => {
                self.end_stream(id, SpdyError::Reset { stream: id, status });
                Ok(Outcome::Nothing)
            }
            Frame::Settings { entries, .. } => {
                self.peer_flow_control = true;
                for e in entries {
                    match e.id {
                        settings::INITIAL_WINDOW_SIZE => {
                            let new = i64::from(e.value);
                            if new > MAX_WINDOW {
                                return Err(SpdyError::Protocol(format!(
                                    "SETTINGS: initial window {new} is too large"
                                )));
                            }
                            let delta = new - self.peer_initial_window;
                            self.peer_initial_window = new;
                            for s in self.streams.values_mut() {
                                s.send_window += delta;
                            }
                            self.wake_writers();
                        }
                        settings::MAX_CONCURRENT_STREAMS => {
                            self.peer_max_streams = e.value as usize
                        }
                        _ => {}
                    }
                }
                Ok(Outcome::Nothing)
            }
            Frame::Ping { id } => {
                if (id & 1 == 0) == self.server {
                    if let Some((sent, tx)) = self.pings.remove(&id) {
                        let _ = tx.send(sent.elapsed());
                    }
                } else {
                    self.queue(&Frame::Ping { id });
                }
                Ok(Outcome::Nothing)
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                self.goaway_received = true;
                let refused: Vec<u32> = self
                    .streams
                    .keys()
                    .copied()
                    .filter(|&id| self.is_local_id(id) && id > last_good_stream_id)
                    .collect();
                for id in refused {
                    self.end_stream(id, SpdyError::PeerGoAway(status));
                }
                Ok(Outcome::Nothing)
            }
            Frame::Headers {
                stream_id: id,
                fin,
                header_block,
            } => {
                // Extra headers are decoded (for the compression context) and not kept.
                decoder.decode(&header_block)?;
                let opened = self.was_opened(id);
                match self.streams.get_mut(&id) {
                    Some(s) => {
                        if fin {
                            s.remote_fin = true;
                            s.wake();
                            if s.detached {
                                self.forget(id);
                            }
                        }
                    }
                    None if opened => {}
                    None => {
                        return Err(SpdyError::Protocol(format!(
                            "HEADERS for stream {id}, which was never opened"
                        )))
                    }
                }
                Ok(Outcome::Nothing)
            }
            Frame::WindowUpdate {
                stream_id: 0,
                delta,
            } => {
                self.peer_flow_control = true;
                self.session_send_window += i64::from(delta);
                if self.session_send_window > MAX_WINDOW {
                    return Err(SpdyError::Protocol(
                        "WINDOW_UPDATE: session window overflow".into(),
                    ));
                }
                self.wake_writers();
                Ok(Outcome::Nothing)
            }
            Frame::WindowUpdate {
                stream_id: id,
                delta,
            } => {
                self.peer_flow_control = true;
                if let Some(s) = self.streams.get_mut(&id) {
                    s.send_window += i64::from(delta);
                    if s.send_window > MAX_WINDOW {
                        self.reset_stream(id, rst::FLOW_CONTROL_ERROR);
                    } else if let Some(w) = s.write_waker.take() {
                        w.wake();
                    }
                }
                Ok(Outcome::Nothing)
            }
            Frame::Data {
                stream_id: id,
                fin,
                data,
            } => {
                self.data(id, fin, data)?;
                Ok(Outcome::Nothing)
            }
            Frame::Unknown { frame_type, .. } => {
                tracing::debug!("spdy: ignoring control frame of unknown type {frame_type}");
                Ok(Outcome::Nothing)
            }
        }
    }

    fn data(&mut self, id: u32, fin: bool, data: Bytes) -> Result<(), SpdyError> {
        let len = data.len() as i64;
        self.session_recv_window -= len;
        if self.peer_flow_control && self.session_recv_window < 0 {
            return Err(SpdyError::Protocol(
                "DATA: session flow-control window exceeded".into(),
            ));
        }
        let enforce = self.peer_flow_control;
        let Some(s) = self.streams.get_mut(&id) else {
            if !self.was_opened(id) {
                return Err(SpdyError::Protocol(format!(
                    "DATA for stream {id}, which was never opened"
                )));
            }
            // A stream already gone (we reset it, or it ended): discard.
            self.credit_session(len);
            return Ok(());
        };
        if s.reset.is_some() || s.detached {
            let detached = s.detached;
            self.credit_session(len);
            if fin && detached {
                self.forget(id);
            }
            return Ok(());
        }
        if s.remote_fin {
            self.credit_session(len);
            self.reset_stream(id, rst::STREAM_ALREADY_CLOSED);
            return Ok(());
        }
        if s.local && s.reply.is_some() {
            self.credit_session(len);
            self.reset_stream(id, rst::PROTOCOL_ERROR);
            return Ok(());
        }
        s.recv_window -= len;
        if enforce && s.recv_window < 0 {
            self.credit_session(len);
            self.reset_stream(id, rst::FLOW_CONTROL_ERROR);
            return Ok(());
        }
        if !data.is_empty() {
            s.recv_len += data.len();
            s.recv.push_back(data);
        }
        if fin {
            s.remote_fin = true;
        }
        if let Some(w) = s.read_waker.take() {
            w.wake();
        }
        Ok(())
    }

    /// Queues GOAWAY OK once.
    pub fn go_away(&mut self) {
        if !self.goaway_sent && self.dead.is_none() {
            self.goaway_sent = true;
            self.queue(&Frame::GoAway {
                last_good_stream_id: self.last_peer_id,
                status: goaway::OK,
            });
        }
    }

    /// After a GOAWAY either way, the connection ends once its streams have.
    pub fn finished(&self) -> bool {
        (self.goaway_sent || self.goaway_received)
            && self.streams.values().all(|s| s.ended() || s.detached)
    }
}
