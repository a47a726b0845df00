//! The SPDY frame parser and header decoder on arbitrary bytes: no panic; `parse` and
//! `decode` agree; what parses re-encodes to the same frame.
#![no_main]

use bytes::BytesMut;
use crust_streaming::spdy::frame::{decode, encode, parse, Frame, Limits, Parsed};
use crust_streaming::spdy::headers::HeaderDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_data: 1 << 16, max_control: 1 << 16 };
    let mut buf = BytesMut::from(data);
    let mut at = 0;
    let mut headers = HeaderDecoder::new(1 << 16);
    loop {
        match (parse(&data[at..], &limits), decode(&mut buf, &limits)) {
            (Ok(Parsed::Frame(f, n)), Ok(Some(g))) => {
                assert_eq!(f, g);
                at += n;
                match &f {
                    Frame::SynStream { header_block, .. }
                    | Frame::SynReply { header_block, .. }
                    | Frame::Headers { header_block, .. } => {
                        let _ = headers.decode(header_block);
                    }
                    _ => {}
                }
                if !matches!(f, Frame::Unknown { .. }) {
                    let mut out = BytesMut::new();
                    encode(&f, &mut out).unwrap();
                    match parse(&out, &limits) {
                        Ok(Parsed::Frame(again, _)) => assert_eq!(again, f),
                        other => panic!("re-encoded {f:?} parses as {other:?}"),
                    }
                }
            }
            (Ok(Parsed::Incomplete { .. }), Ok(None)) | (Err(_), Err(_)) => return,
            (p, d) => panic!("parse {p:?} and decode {d:?} disagree"),
        }
    }
});
