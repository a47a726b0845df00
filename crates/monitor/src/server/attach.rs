//! Attach sessions: a connection that asked `attach` carries frames to and from one
//! container's stdio (the format is in [`crate::protocol`]).
//!
//! ```text
//! container output ─read once per turn─> CRI log
//!                                     └─> each session of the container: a frame in its
//!                                         output buffer (over 1 MiB pending: dropped)
//! session input ─frames─> stdin: the container's queue (64 KiB; full: the frame waits and the
//!                                session is not read until the container takes some)
//!                         resize: TIOCSWINSZ on the pty master
//!                         stdin close, or the session's end: stdin_once closes stdin
//! container exit ─> the rest of its output, the exit frame, then the connection is closed
//! ```

use super::{container::Container, log::Stream};
use crate::protocol::{frame, Resize};

/// What an attached connection takes and sends.
#[derive(Debug)]
pub(super) struct Session {
    /// The container's ID.
    pub id: String,
    /// Its stdin frames go to the container: it asked for stdin, the container takes it, and
    /// this session's stdin has not ended.
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// The peer half-closed the connection: no more frames come.
    pub input_done: bool,
    /// The peer closed the connection: the session ends once its input is handled.
    pub hung_up: bool,
}

impl Session {
    /// The frame kind for output from `stream`, if this session takes it.
    pub fn kind_for(&self, stream: Stream) -> Option<u8> {
        match stream {
            Stream::Stdout if self.stdout => Some(frame::STDOUT),
            Stream::Stderr if self.stderr => Some(frame::STDERR),
            _ => None,
        }
    }

    /// This session's stdin ended: with `stdin_once`, the container's stdin is closed.
    pub fn end_stdin(&mut self, container: Option<&mut Container>) {
        if !std::mem::take(&mut self.stdin) {
            return;
        }
        if let Some(container) = container.filter(|c| c.stdin_once) {
            container.close_stdin();
        }
    }
}

/// How handling a session's input went.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Frames {
    /// Every complete frame is handled.
    Done,
    /// A stdin frame waits for room in the container's stdin queue.
    Waiting,
    /// A frame longer than [`frame::MAX_PAYLOAD`]: the session is to be closed.
    TooLong,
}

/// Handles the complete frames at the front of `input` (removing them) for `session`, whose
/// container is `container` (`None`: it is gone, and frames are dropped).
pub(super) fn handle_frames(
    session: &mut Session,
    input: &mut Vec<u8>,
    mut container: Option<&mut Container>,
) -> Frames {
    let mut used = 0;
    let mut result = Frames::Done;
    while let Some(header) = input.get(used..used + frame::HEADER) {
        let header: &[u8; frame::HEADER] = header.try_into().expect("a header's length");
        let (kind, len) = frame::parse_header(header);
        if len > frame::MAX_PAYLOAD {
            result = Frames::TooLong;
            break;
        }
        let start = used + frame::HEADER;
        let Some(payload) = input.get(start..start + len) else {
            break;
        };
        match (kind, container.as_deref_mut()) {
            (frame::STDIN, Some(c)) if session.stdin && c.takes_stdin() => {
                if c.stdin_room() < len {
                    result = Frames::Waiting;
                    break;
                }
                c.queue_stdin(payload);
            }
            (frame::RESIZE, Some(c)) => {
                if let Ok(size) = serde_json::from_slice::<Resize>(payload) {
                    c.resize(size.width, size.height);
                }
            }
            (frame::CLOSE_STDIN, c) => session.end_stdin(c),
            // Stdin nobody takes, frames for a gone container, kinds of a newer crustd.
            _ => {}
        }
        used = start + len;
    }
    input.drain(..used);
    result
}
