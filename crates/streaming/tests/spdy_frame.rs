//! The SPDY/3.1 frame codec against byte vectors written by hand from the spec.

use bytes::{Bytes, BytesMut};
use crust_streaming::spdy::frame::{
    self, decode, encode, parse, Frame, FrameError, Limits, Parsed, Setting,
};

fn limits() -> Limits {
    Limits::default()
}

/// Parses `bytes` as exactly one frame, checks `decode` agrees and that encoding gives the same
/// bytes back.
fn roundtrip(bytes: &[u8], want: Frame) {
    match parse(bytes, &limits()).unwrap() {
        Parsed::Frame(f, n) => {
            assert_eq!(f, want);
            assert_eq!(n, bytes.len());
        }
        other => panic!("incomplete: {other:?}"),
    }
    let mut buf = BytesMut::from(bytes);
    assert_eq!(decode(&mut buf, &limits()).unwrap(), Some(want.clone()));
    assert!(buf.is_empty());
    let mut out = BytesMut::new();
    encode(&want, &mut out).unwrap();
    assert_eq!(&out[..], bytes, "encoding {}", want.name());
}

#[test]
fn syn_stream() {
    let block = [0xde, 0xad];
    #[rustfmt::skip]
    let bytes = [
        0x80, 0x03, 0x00, 0x01, // control, version 3, type 1
        0x01, 0x00, 0x00, 0x0c, // FIN, length 12
        0x00, 0x00, 0x00, 0x03, // stream 3
        0x00, 0x00, 0x00, 0x01, // associated to 1
        0x60, 0x00,             // priority 3, slot 0
        0xde, 0xad,             // header block
    ];
    roundtrip(
        &bytes,
        Frame::SynStream {
            stream_id: 3,
            associated_to: 1,
            priority: 3,
            slot: 0,
            fin: true,
            unidirectional: false,
            header_block: Bytes::copy_from_slice(&block),
        },
    );
}

#[test]
fn syn_stream_unidirectional() {
    let bytes = [
        0x80, 0x03, 0x00, 0x01, 0x02, 0x00, 0x00, 0x0a, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0,
    ];
    roundtrip(
        &bytes,
        Frame::SynStream {
            stream_id: 5,
            associated_to: 0,
            priority: 0,
            slot: 0,
            fin: false,
            unidirectional: true,
            header_block: Bytes::new(),
        },
    );
}

#[test]
fn syn_reply() {
    let bytes = [
        0x80, 0x03, 0x00, 0x02, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x01, 0x61, 0x62, 0x63,
    ];
    roundtrip(
        &bytes,
        Frame::SynReply {
            stream_id: 1,
            fin: false,
            header_block: Bytes::from_static(b"abc"),
        },
    );
}

#[test]
fn rst_stream() {
    let bytes = [
        0x80, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00,
        0x05,
    ];
    roundtrip(
        &bytes,
        Frame::RstStream {
            stream_id: 5,
            status: frame::rst::CANCEL,
        },
    );
}

#[test]
fn settings() {
    #[rustfmt::skip]
    let bytes = [
        0x80, 0x03, 0x00, 0x04, 0x01, 0x00, 0x00, 0x14, // CLEAR_SETTINGS, length 20
        0x00, 0x00, 0x00, 0x02,                         // 2 entries
        0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x64, // MAX_CONCURRENT_STREAMS 100
        0x01, 0x00, 0x00, 0x07, 0x00, 0x01, 0x00, 0x00, // PERSIST_VALUE, INITIAL_WINDOW_SIZE 65536
    ];
    roundtrip(
        &bytes,
        Frame::Settings {
            clear: true,
            entries: vec![
                Setting {
                    flags: 0,
                    id: 4,
                    value: 100,
                },
                Setting {
                    flags: 1,
                    id: 7,
                    value: 65536,
                },
            ],
        },
    );
}

#[test]
fn ping() {
    roundtrip(
        &[
            0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x07,
        ],
        Frame::Ping { id: 7 },
    );
}

#[test]
fn goaway() {
    let bytes = [
        0x80, 0x03, 0x00, 0x07, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,
        0x01,
    ];
    roundtrip(
        &bytes,
        Frame::GoAway {
            last_good_stream_id: 3,
            status: frame::goaway::PROTOCOL_ERROR,
        },
    );
}

#[test]
fn headers() {
    let bytes = [
        0x80, 0x03, 0x00, 0x08, 0x01, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x03,
    ];
    roundtrip(
        &bytes,
        Frame::Headers {
            stream_id: 3,
            fin: true,
            header_block: Bytes::new(),
        },
    );
}

#[test]
fn window_update() {
    let bytes = [
        0x80, 0x03, 0x00, 0x09, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
        0x00,
    ];
    roundtrip(
        &bytes,
        Frame::WindowUpdate {
            stream_id: 0,
            delta: 65536,
        },
    );
}

#[test]
fn data() {
    let bytes = [
        0x00, 0x00, 0x00, 0x05, 0x01, 0x00, 0x00, 0x03, 0x61, 0x62, 0x63,
    ];
    roundtrip(
        &bytes,
        Frame::Data {
            stream_id: 5,
            fin: true,
            data: Bytes::from_static(b"abc"),
        },
    );
    let empty_fin = [0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00];
    roundtrip(
        &empty_fin,
        Frame::Data {
            stream_id: 1,
            fin: true,
            data: Bytes::new(),
        },
    );
}

#[test]
fn unknown_control_frames_are_skipped() {
    // NOOP (type 5, SPDY/2) with a 3-byte payload, then a PING.
    let bytes = [
        0x80, 0x03, 0x00, 0x05, 0x00, 0x00, 0x00, 0x03, 1, 2, 3, 0x80, 0x03, 0x00, 0x06, 0x00,
        0x00, 0x00, 0x04, 0, 0, 0, 1,
    ];
    let mut buf = BytesMut::from(&bytes[..]);
    assert_eq!(
        decode(&mut buf, &limits()).unwrap(),
        Some(Frame::Unknown {
            frame_type: 5,
            flags: 0,
            length: 3
        })
    );
    assert_eq!(
        decode(&mut buf, &limits()).unwrap(),
        Some(Frame::Ping { id: 1 })
    );
    assert_eq!(decode(&mut buf, &limits()).unwrap(), None);
}

#[test]
fn incremental_parsing_across_split_buffers() {
    let frames = vec![
        Frame::Ping { id: 9 },
        Frame::Data {
            stream_id: 3,
            fin: false,
            data: Bytes::from(vec![7u8; 1000]),
        },
        Frame::SynReply {
            stream_id: 3,
            fin: true,
            header_block: Bytes::from_static(b"xyz"),
        },
        Frame::WindowUpdate {
            stream_id: 3,
            delta: 12,
        },
    ];
    let mut wire = BytesMut::new();
    for f in &frames {
        encode(f, &mut wire).unwrap();
    }
    // Every split size, one byte at a time included.
    for step in [1, 2, 3, 7, 8, 9, 100, 4096] {
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for chunk in wire.chunks(step) {
            buf.extend_from_slice(chunk);
            while let Some(f) = decode(&mut buf, &limits()).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames, "step {step}");
        assert!(buf.is_empty());
    }
    // `parse` says how much it needs.
    assert_eq!(
        parse(&wire[..3], &limits()).unwrap(),
        Parsed::Incomplete { needed: 8 }
    );
    assert_eq!(
        parse(&wire[12..20], &limits()).unwrap(),
        Parsed::Incomplete { needed: 1008 }
    );
}

fn parse_err(bytes: &[u8], limits: &Limits) -> FrameError {
    match parse(bytes, limits) {
        Err(e) => e,
        Ok(p) => panic!("parsed {p:?}"),
    }
}

#[test]
fn validation_errors() {
    let l = limits();
    // Version 2.
    let e = parse_err(&[0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1], &l);
    assert_eq!(
        e,
        FrameError::UnsupportedVersion {
            frame: "PING",
            version: 2
        }
    );
    assert_eq!(
        e.to_string(),
        "PING frame: unsupported version 2 (only 3 is spoken)"
    );
    // Too large, refused from the header alone.
    let small = Limits {
        max_data: 100,
        max_control: 50,
    };
    assert_eq!(
        parse_err(&[0x80, 0x03, 0x00, 0x01, 0, 0, 0, 51], &small),
        FrameError::TooLarge {
            frame: "SYN_STREAM",
            length: 51,
            max: 50
        }
    );
    assert_eq!(
        parse_err(&[0, 0, 0, 1, 0, 0, 0, 101], &small),
        FrameError::TooLarge {
            frame: "DATA",
            length: 101,
            max: 100
        }
    );
    assert_eq!(
        parse_err(&[0x80, 0x03, 0x00, 0x08, 0xff, 0xff, 0xff, 0xff], &l),
        FrameError::TooLarge {
            frame: "HEADERS",
            length: 0xffffff,
            max: 1 << 20
        }
    );
    // Stream id 0.
    assert_eq!(
        parse_err(&[0, 0, 0, 0, 0, 0, 0, 0], &l),
        FrameError::ZeroStreamId { frame: "DATA" }
    );
    assert_eq!(
        parse_err(
            &[0x80, 3, 0, 1, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &l
        ),
        FrameError::ZeroStreamId {
            frame: "SYN_STREAM"
        }
    );
    assert_eq!(
        parse_err(&[0x80, 3, 0, 2, 0, 0, 0, 4, 0, 0, 0, 0], &l),
        FrameError::ZeroStreamId { frame: "SYN_REPLY" }
    );
    assert_eq!(
        parse_err(&[0x80, 3, 0, 8, 0, 0, 0, 4, 0x80, 0, 0, 0], &l),
        FrameError::ZeroStreamId { frame: "HEADERS" }
    );
    assert_eq!(
        parse_err(&[0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1], &l),
        FrameError::ZeroStreamId {
            frame: "RST_STREAM"
        }
    );
    // Lengths.
    assert_eq!(
        parse_err(&[0x80, 3, 0, 1, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0], &l),
        FrameError::BadLength {
            frame: "SYN_STREAM",
            length: 9
        }
    );
    assert_eq!(
        parse_err(&[0x80, 3, 0, 2, 0, 0, 0, 3, 0, 0, 1], &l),
        FrameError::BadLength {
            frame: "SYN_REPLY",
            length: 3
        }
    );
    assert_eq!(
        parse_err(&[0x80, 3, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1], &l),
        FrameError::BadLength {
            frame: "RST_STREAM",
            length: 4
        }
    );
    assert_eq!(
        parse_err(&[0x80, 3, 0, 4, 0, 0, 0, 2, 0, 0], &l),
        FrameError::BadLength {
            frame: "SETTINGS",
            length: 2
        }
    );
    assert_eq!(
        parse_err(&[0x80, 3, 0, 6, 0, 0, 0, 5, 0, 0, 0, 1, 0], &l),
        FrameError::BadLength {
            frame: "PING",
            length: 5
        }
    );
    assert_eq!(
        parse_err(&[0x80, 3, 0, 7, 0, 0, 0, 4, 0, 0, 0, 1], &l),
        FrameError::BadLength {
            frame: "GOAWAY",
            length: 4
        }
    );
    assert_eq!(
        parse_err(&[0x80, 3, 0, 9, 0, 0, 0, 4, 0, 0, 0, 1], &l),
        FrameError::BadLength {
            frame: "WINDOW_UPDATE",
            length: 4
        }
    );
    // Values.
    assert_eq!(
        parse_err(&[0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0], &l),
        FrameError::ZeroStatus
    );
    assert_eq!(
        parse_err(&[0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 1, 0x80, 0, 0, 0], &l),
        FrameError::ZeroDelta
    );
    assert_eq!(
        parse_err(
            &[0x80, 3, 0, 4, 0, 0, 0, 12, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 1],
            &l
        ),
        FrameError::SettingsCount {
            count: 2,
            length: 12
        }
    );
    // Encoding refuses the same.
    let mut out = BytesMut::new();
    assert_eq!(
        encode(
            &Frame::Data {
                stream_id: 0,
                fin: false,
                data: Bytes::new()
            },
            &mut out
        ),
        Err(FrameError::ZeroStreamId { frame: "DATA" })
    );
    assert_eq!(
        encode(
            &Frame::RstStream {
                stream_id: 1,
                status: 0
            },
            &mut out
        ),
        Err(FrameError::ZeroStatus)
    );
    assert_eq!(
        encode(
            &Frame::WindowUpdate {
                stream_id: 1,
                delta: 0
            },
            &mut out
        ),
        Err(FrameError::ZeroDelta)
    );
    assert!(out.is_empty());
}
