//! SPDY/3.1 framing and sessions, as Kubernetes' `httpstream/spdy` (moby/spdystream) speaks
//! them for Exec, Attach and PortForward.
//!
//! - [`frame`]: the frame codec, pure: SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING,
//!   GOAWAY, HEADERS, WINDOW_UPDATE and DATA; incremental parsing with size limits checked on
//!   the 8-byte header, before a payload is buffered; unknown control frame types (NOOP,
//!   CREDENTIAL, …) are skipped as the spec says.
//! - [`headers`]: name/value header blocks, zlib-compressed with the SPDY/3 dictionary
//!   ([`dictionary`]), one compression context per direction of a connection.
//! - [`Session`] and [`Stream`]: an async session driven by one task over any
//!   `AsyncRead + AsyncWrite`, streams as tokio `AsyncRead + AsyncWrite`.
//!
//! Flow control is SPDY/3.1's: per-stream and session windows, WINDOW_UPDATE sent as the
//! reader consumes data, SETTINGS INITIAL_WINDOW_SIZE honoured. A peer that never does flow
//! control (spdystream: it neither sends WINDOW_UPDATE nor honours ours) would stall a sender
//! that waits for window, so send windows are enforced only once the peer has sent SETTINGS or
//! WINDOW_UPDATE, and data beyond our window is refused (RST_STREAM FLOW_CONTROL_ERROR) only
//! from such a peer. Memory stays bounded either way: the driver stops reading the connection
//! while a stream holds more than a window of unread data or the output buffer is full.
//!
//! Not implemented: server push (SYN_STREAM's associated stream id is parsed and ignored),
//! priorities (parsed, not acted on), CREDENTIAL frames, persisted settings, extra header
//! blocks from HEADERS frames (decoded, FIN honoured, headers dropped), and TLS/NPN (the
//! connection arrives upgraded from HTTP/1.1).

pub mod dictionary;
mod error;
pub mod frame;
pub mod headers;
mod session;
mod state;
mod stream;

pub use error::SpdyError;
pub use headers::Headers;
pub use session::{Config, Session};
pub use stream::Stream;
