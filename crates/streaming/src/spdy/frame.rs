//! The SPDY/3.1 frame codec: pure, no IO and no header compression (header blocks stay as the
//! compressed bytes; see [`super::headers`]).
//!
//! Every frame starts with 8 bytes. A control frame: `1 | version(15) | type(16)`, then
//! `flags(8) | length(24)`; a data frame: `0 | stream-id(31)`, then `flags(8) | length(24)`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The only protocol version spoken.
pub const VERSION: u16 = 3;
/// Bytes in every frame header.
pub const HEADER_LEN: usize = 8;
/// The largest length the 24-bit length field can carry.
pub const MAX_LENGTH: usize = (1 << 24) - 1;
/// Default limit on a DATA frame's payload (16 MiB, i.e. whatever the length field allows).
pub const DEFAULT_MAX_DATA: usize = 16 << 20;
/// Default limit on a control frame's payload.
pub const DEFAULT_MAX_CONTROL: usize = 1 << 20;

/// Flag on SYN_STREAM, SYN_REPLY, HEADERS and DATA: the sender's last frame on the stream.
pub const FLAG_FIN: u8 = 0x01;
/// Flag on SYN_STREAM: the recipient may not send on the stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// Flag on SETTINGS: clear previously persisted settings.
pub const FLAG_SETTINGS_CLEAR: u8 = 0x01;

/// RST_STREAM status codes (SPDY/3 §2.4.2).
pub mod rst {
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INVALID_STREAM: u32 = 2;
    pub const REFUSED_STREAM: u32 = 3;
    pub const UNSUPPORTED_VERSION: u32 = 4;
    pub const CANCEL: u32 = 5;
    pub const INTERNAL_ERROR: u32 = 6;
    pub const FLOW_CONTROL_ERROR: u32 = 7;
    pub const STREAM_IN_USE: u32 = 8;
    pub const STREAM_ALREADY_CLOSED: u32 = 9;
    pub const FRAME_TOO_LARGE: u32 = 11;
}

/// GOAWAY status codes (SPDY/3.1 §2.6.6).
pub mod goaway {
    pub const OK: u32 = 0;
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INTERNAL_ERROR: u32 = 2;
}

/// SETTINGS ids that this implementation acts on (others are parsed and ignored).
pub mod settings {
    pub const MAX_CONCURRENT_STREAMS: u32 = 4;
    pub const INITIAL_WINDOW_SIZE: u32 = 7;
}

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

const STREAM_ID_MASK: u32 = 0x7fff_ffff;

/// One SETTINGS entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub flags: u8,
    /// 24-bit id.
    pub id: u32,
    pub value: u32,
}

/// A frame. Header blocks are the compressed bytes as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        /// 3-bit priority (0 is highest); parsed, not acted on.
        priority: u8,
        slot: u8,
        fin: bool,
        unidirectional: bool,
        header_block: Bytes,
    },
    SynReply {
        stream_id: u32,
        fin: bool,
        header_block: Bytes,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        clear: bool,
        entries: Vec<Setting>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        fin: bool,
        header_block: Bytes,
    },
    WindowUpdate {
        /// 0 for the session window.
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
    /// A control frame of a type this implementation does not know (NOOP, CREDENTIAL, …): the
    /// spec says to ignore it; its payload is skipped.
    Unknown {
        frame_type: u16,
        flags: u8,
        length: usize,
    },
}

impl Frame {
    /// The frame type's name as the spec writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Frame::SynStream { .. } => "SYN_STREAM",
            Frame::SynReply { .. } => "SYN_REPLY",
            Frame::RstStream { .. } => "RST_STREAM",
            Frame::Settings { .. } => "SETTINGS",
            Frame::Ping { .. } => "PING",
            Frame::GoAway { .. } => "GOAWAY",
            Frame::Headers { .. } => "HEADERS",
            Frame::WindowUpdate { .. } => "WINDOW_UPDATE",
            Frame::Data { .. } => "DATA",
            Frame::Unknown { .. } => "unknown control",
        }
    }
}

/// Why bytes are not a valid frame (or a frame cannot be encoded). Each names the frame type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("{frame} frame: unsupported version {version} (only 3 is spoken)")]
    UnsupportedVersion { frame: &'static str, version: u16 },
    #[error("{frame} frame: length {length} exceeds the limit of {max} bytes")]
    TooLarge {
        frame: &'static str,
        length: usize,
        max: usize,
    },
    #[error("{frame} frame: invalid length {length}")]
    BadLength { frame: &'static str, length: usize },
    #[error("{frame} frame: stream id 0 is not allowed")]
    ZeroStreamId { frame: &'static str },
    #[error("RST_STREAM frame: status 0 is not allowed")]
    ZeroStatus,
    #[error("WINDOW_UPDATE frame: delta 0 is not allowed")]
    ZeroDelta,
    #[error("SETTINGS frame: {count} entries do not fit a payload of {length} bytes")]
    SettingsCount { count: u32, length: usize },
}

/// Size limits applied before a frame's payload is buffered.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_data: usize,
    pub max_control: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_data: DEFAULT_MAX_DATA,
            max_control: DEFAULT_MAX_CONTROL,
        }
    }
}

/// What [`parse`] found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole frame yet: at least this many bytes in total are needed.
    Incomplete { needed: usize },
    /// A frame, and the bytes it took.
    Frame(Frame, usize),
}

/// The fields of a frame header.
struct Head {
    control: bool,
    /// Control: the frame type; data: unused.
    frame_type: u16,
    version: u16,
    stream_id: u32,
    flags: u8,
    length: usize,
}

fn control_name(frame_type: u16) -> &'static str {
    match frame_type {
        TYPE_SYN_STREAM => "SYN_STREAM",
        TYPE_SYN_REPLY => "SYN_REPLY",
        TYPE_RST_STREAM => "RST_STREAM",
        TYPE_SETTINGS => "SETTINGS",
        TYPE_PING => "PING",
        TYPE_GOAWAY => "GOAWAY",
        TYPE_HEADERS => "HEADERS",
        TYPE_WINDOW_UPDATE => "WINDOW_UPDATE",
        _ => "unknown control",
    }
}

/// Reads and validates the 8-byte header (version, length limit) of `buf`, if it is all there.
fn head(buf: &[u8], limits: &Limits) -> Result<Option<Head>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let first = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let flags = buf[4];
    let length = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
    if first & 0x8000_0000 != 0 {
        let version = ((first >> 16) & 0x7fff) as u16;
        let frame_type = (first & 0xffff) as u16;
        let frame = control_name(frame_type);
        if version != VERSION {
            return Err(FrameError::UnsupportedVersion { frame, version });
        }
        if length > limits.max_control {
            return Err(FrameError::TooLarge {
                frame,
                length,
                max: limits.max_control,
            });
        }
        Ok(Some(Head {
            control: true,
            frame_type,
            version,
            stream_id: 0,
            flags,
            length,
        }))
    } else {
        let stream_id = first & STREAM_ID_MASK;
        if stream_id == 0 {
            return Err(FrameError::ZeroStreamId { frame: "DATA" });
        }
        if length > limits.max_data {
            return Err(FrameError::TooLarge {
                frame: "DATA",
                length,
                max: limits.max_data,
            });
        }
        Ok(Some(Head {
            control: false,
            frame_type: 0,
            version: 0,
            stream_id,
            flags,
            length,
        }))
    }
}

/// Parses the frame at the start of `buf` without consuming it (the payload is copied).
/// Never panics, whatever the input.
pub fn parse(buf: &[u8], limits: &Limits) -> Result<Parsed, FrameError> {
    let Some(h) = head(buf, limits)? else {
        return Ok(Parsed::Incomplete { needed: HEADER_LEN });
    };
    let total = HEADER_LEN + h.length;
    if buf.len() < total {
        return Ok(Parsed::Incomplete { needed: total });
    }
    let payload = Bytes::copy_from_slice(&buf[HEADER_LEN..total]);
    Ok(Parsed::Frame(body(&h, payload)?, total))
}

/// Takes the frame at the start of `buf` off it, if it is all there (the payload is not copied).
/// Refuses an oversized frame as soon as its header is in, before its payload is buffered.
pub fn decode(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Frame>, FrameError> {
    let Some(h) = head(buf, limits)? else {
        return Ok(None);
    };
    let total = HEADER_LEN + h.length;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let mut frame = buf.split_to(total);
    frame.advance(HEADER_LEN);
    body(&h, frame.freeze()).map(Some)
}

/// The stream id of the DATA frame whose header starts `buf`, if it does: lets a session refuse
/// data for a stream that does not exist before buffering the payload.
pub fn data_stream_id(buf: &[u8]) -> Option<u32> {
    match buf {
        [a, b, c, d, _, _, _, _, ..] if a & 0x80 == 0 => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

fn be32(p: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

fn body(h: &Head, p: Bytes) -> Result<Frame, FrameError> {
    let fin = h.flags & FLAG_FIN != 0;
    if !h.control {
        return Ok(Frame::Data {
            stream_id: h.stream_id,
            fin,
            data: p,
        });
    }
    debug_assert_eq!(h.version, VERSION);
    let frame = control_name(h.frame_type);
    let len = p.len();
    let bad_length = || FrameError::BadLength { frame, length: len };
    let stream_id = |at: usize| -> Result<u32, FrameError> {
        let id = be32(&p, at) & STREAM_ID_MASK;
        if id == 0 {
            Err(FrameError::ZeroStreamId { frame })
        } else {
            Ok(id)
        }
    };
    match h.frame_type {
        TYPE_SYN_STREAM => {
            if len < 10 {
                return Err(bad_length());
            }
            Ok(Frame::SynStream {
                stream_id: stream_id(0)?,
                associated_to: be32(&p, 4) & STREAM_ID_MASK,
                priority: p[8] >> 5,
                slot: p[9],
                fin,
                unidirectional: h.flags & FLAG_UNIDIRECTIONAL != 0,
                header_block: p.slice(10..),
            })
        }
        TYPE_SYN_REPLY | TYPE_HEADERS => {
            if len < 4 {
                return Err(bad_length());
            }
            let stream_id = stream_id(0)?;
            let header_block = p.slice(4..);
            Ok(if h.frame_type == TYPE_SYN_REPLY {
                Frame::SynReply {
                    stream_id,
                    fin,
                    header_block,
                }
            } else {
                Frame::Headers {
                    stream_id,
                    fin,
                    header_block,
                }
            })
        }
        TYPE_RST_STREAM => {
            if len != 8 {
                return Err(bad_length());
            }
            let stream_id = stream_id(0)?;
            let status = be32(&p, 4);
            if status == 0 {
                return Err(FrameError::ZeroStatus);
            }
            Ok(Frame::RstStream { stream_id, status })
        }
        TYPE_SETTINGS => {
            if len < 4 {
                return Err(bad_length());
            }
            let count = be32(&p, 0);
            if (len - 4) & 7 != 0 || (len - 4) / 8 != count as usize {
                return Err(FrameError::SettingsCount { count, length: len });
            }
            let entries = p[4..]
                .chunks_exact(8)
                .map(|e| Setting {
                    flags: e[0],
                    id: u32::from_be_bytes([0, e[1], e[2], e[3]]),
                    value: be32(e, 4),
                })
                .collect();
            Ok(Frame::Settings {
                clear: h.flags & FLAG_SETTINGS_CLEAR != 0,
                entries,
            })
        }
        TYPE_PING => {
            if len != 4 {
                return Err(bad_length());
            }
            Ok(Frame::Ping { id: be32(&p, 0) })
        }
        TYPE_GOAWAY => {
            if len != 8 {
                return Err(bad_length());
            }
            Ok(Frame::GoAway {
                last_good_stream_id: be32(&p, 0) & STREAM_ID_MASK,
                status: be32(&p, 4),
            })
        }
        TYPE_WINDOW_UPDATE => {
            if len != 8 {
                return Err(bad_length());
            }
            let delta = be32(&p, 4) & 0x7fff_ffff;
            if delta == 0 {
                return Err(FrameError::ZeroDelta);
            }
            Ok(Frame::WindowUpdate {
                stream_id: be32(&p, 0) & STREAM_ID_MASK,
                delta,
            })
        }
        frame_type => Ok(Frame::Unknown {
            frame_type,
            flags: h.flags,
            length: len,
        }),
    }
}

fn control_head(
    out: &mut BytesMut,
    frame_type: u16,
    flags: u8,
    length: usize,
) -> Result<(), FrameError> {
    if length > MAX_LENGTH {
        let frame = control_name(frame_type);
        return Err(FrameError::TooLarge {
            frame,
            length,
            max: MAX_LENGTH,
        });
    }
    out.reserve(HEADER_LEN + length);
    out.put_u16(0x8000 | VERSION);
    out.put_u16(frame_type);
    out.put_u32(u32::from(flags) << 24 | length as u32);
    Ok(())
}

fn nonzero(frame: &'static str, id: u32) -> Result<u32, FrameError> {
    match id & STREAM_ID_MASK {
        0 => Err(FrameError::ZeroStreamId { frame }),
        id => Ok(id),
    }
}

/// Appends `frame` to `out`. Refuses what the parser would refuse (stream id 0 where it is not
/// allowed, a length the 24-bit field cannot carry) and writes nothing then.
pub fn encode(frame: &Frame, out: &mut BytesMut) -> Result<(), FrameError> {
    let name = frame.name();
    let fin_flag = |fin: bool| if fin { FLAG_FIN } else { 0 };
    match frame {
        Frame::SynStream {
            stream_id,
            associated_to,
            priority,
            slot,
            fin,
            unidirectional,
            header_block,
        } => {
            let id = nonzero(name, *stream_id)?;
            let flags = fin_flag(*fin)
                | if *unidirectional {
                    FLAG_UNIDIRECTIONAL
                } else {
                    0
                };
            control_head(out, TYPE_SYN_STREAM, flags, 10 + header_block.len())?;
            out.put_u32(id);
            out.put_u32(associated_to & STREAM_ID_MASK);
            out.put_u8((priority & 0x7) << 5);
            out.put_u8(*slot);
            out.put_slice(header_block);
        }
        Frame::SynReply {
            stream_id,
            fin,
            header_block,
        }
        | Frame::Headers {
            stream_id,
            fin,
            header_block,
        } => {
            let id = nonzero(name, *stream_id)?;
            let ty = if matches!(frame, Frame::SynReply { .. }) {
                TYPE_SYN_REPLY
            } else {
                TYPE_HEADERS
            };
            control_head(out, ty, fin_flag(*fin), 4 + header_block.len())?;
            out.put_u32(id);
            out.put_slice(header_block);
        }
        Frame::RstStream { stream_id, status } => {
            let id = nonzero(name, *stream_id)?;
            if *status == 0 {
                return Err(FrameError::ZeroStatus);
            }
            control_head(out, TYPE_RST_STREAM, 0, 8)?;
            out.put_u32(id);
            out.put_u32(*status);
        }
        Frame::Settings { clear, entries } => {
            let flags = if *clear { FLAG_SETTINGS_CLEAR } else { 0 };
            control_head(out, TYPE_SETTINGS, flags, 4 + 8 * entries.len())?;
            out.put_u32(entries.len() as u32);
            for e in entries {
                out.put_u32(u32::from(e.flags) << 24 | (e.id & 0x00ff_ffff));
                out.put_u32(e.value);
            }
        }
        Frame::Ping { id } => {
            control_head(out, TYPE_PING, 0, 4)?;
            out.put_u32(*id);
        }
        Frame::GoAway {
            last_good_stream_id,
            status,
        } => {
            control_head(out, TYPE_GOAWAY, 0, 8)?;
            out.put_u32(last_good_stream_id & STREAM_ID_MASK);
            out.put_u32(*status);
        }
        Frame::WindowUpdate { stream_id, delta } => {
            if delta & 0x7fff_ffff == 0 {
                return Err(FrameError::ZeroDelta);
            }
            control_head(out, TYPE_WINDOW_UPDATE, 0, 8)?;
            out.put_u32(stream_id & STREAM_ID_MASK);
            out.put_u32(delta & 0x7fff_ffff);
        }
        Frame::Data {
            stream_id,
            fin,
            data,
        } => {
            let id = nonzero(name, *stream_id)?;
            if data.len() > MAX_LENGTH {
                return Err(FrameError::TooLarge {
                    frame: name,
                    length: data.len(),
                    max: MAX_LENGTH,
                });
            }
            out.reserve(HEADER_LEN + data.len());
            out.put_u32(id);
            out.put_u32(u32::from(fin_flag(*fin)) << 24 | data.len() as u32);
            out.put_slice(data);
        }
        Frame::Unknown {
            frame_type,
            flags,
            length,
        } => {
            control_head(out, *frame_type, *flags, *length)?;
            out.put_bytes(0, *length);
        }
    }
    Ok(())
}
