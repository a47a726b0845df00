//! Session and stream errors.

use std::io;
use std::sync::Arc;

use super::frame::FrameError;
use super::headers::HeaderError;

/// Why a session or stream operation failed. Cloneable: one connection error ends every stream.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SpdyError {
    #[error("spdy connection: {0}")]
    Frame(#[from] FrameError),
    #[error("spdy connection: {0}")]
    Header(#[from] HeaderError),
    #[error("spdy connection: protocol error: {0}")]
    Protocol(String),
    #[error("spdy connection: i/o: {0}")]
    Io(Arc<io::Error>),
    #[error("spdy connection: closed")]
    Closed,
    #[error("spdy connection: idle timeout")]
    IdleTimeout,
    #[error("spdy connection: going away, no new streams")]
    GoingAway,
    #[error("spdy connection: the peer sent GOAWAY (status {0})")]
    PeerGoAway(u32),
    #[error("spdy stream {stream}: reset (status {status})")]
    Reset { stream: u32, status: u32 },
    #[error("spdy session: {0} concurrent streams already open")]
    TooManyStreams(usize),
    #[error("spdy session: stream ids exhausted")]
    StreamIdsExhausted,
}

impl From<io::Error> for SpdyError {
    fn from(e: io::Error) -> Self {
        SpdyError::Io(Arc::new(e))
    }
}

impl SpdyError {
    /// The error as a stream's `AsyncRead`/`AsyncWrite` reports it.
    pub fn to_io(&self) -> io::Error {
        let kind = match self {
            SpdyError::Reset { .. } => io::ErrorKind::ConnectionReset,
            SpdyError::Io(e) => e.kind(),
            SpdyError::IdleTimeout => io::ErrorKind::TimedOut,
            SpdyError::Closed | SpdyError::PeerGoAway(_) => io::ErrorKind::ConnectionAborted,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, self.clone())
    }
}
