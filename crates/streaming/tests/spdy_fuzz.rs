//! A bounded, seeded fuzz run (so CI exercises it without nightly): random bytes and mutated
//! valid frames through the frame parser, the header decoder and a whole session. Nothing may
//! panic; what parses must encode back to the same frame. The cargo-fuzz target
//! `fuzz/fuzz_targets/spdy_frame.rs` runs the same checks unbounded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use crust_fuzzing::Rng;
use crust_streaming::spdy::frame::{decode, encode, parse, Frame, Limits, Parsed, Setting};
use crust_streaming::spdy::headers::{HeaderDecoder, HeaderEncoder};
use crust_streaming::spdy::{Config, Headers, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn corpus(rng: &mut Rng) -> Vec<u8> {
    let mut enc = HeaderEncoder::new();
    let h: Headers = [("streamtype", "stdin"), ("port", "80")]
        .into_iter()
        .collect();
    let frames = vec![
        Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 2,
            slot: 0,
            fin: false,
            unidirectional: false,
            header_block: enc.encode(&h).unwrap(),
        },
        Frame::SynReply {
            stream_id: 1,
            fin: false,
            header_block: enc.encode(&Headers::new()).unwrap(),
        },
        Frame::Headers {
            stream_id: 1,
            fin: false,
            header_block: enc.encode(&h).unwrap(),
        },
        Frame::RstStream {
            stream_id: 3,
            status: 5,
        },
        Frame::Settings {
            clear: false,
            entries: vec![
                Setting {
                    flags: 0,
                    id: 7,
                    value: 1000,
                },
                Setting {
                    flags: 1,
                    id: 4,
                    value: 10,
                },
            ],
        },
        Frame::Ping { id: 1 },
        Frame::GoAway {
            last_good_stream_id: 1,
            status: 0,
        },
        Frame::WindowUpdate {
            stream_id: 1,
            delta: 100,
        },
        Frame::WindowUpdate {
            stream_id: 0,
            delta: 100,
        },
        Frame::Data {
            stream_id: 1,
            fin: false,
            data: Bytes::from(rng.bytes(40)),
        },
        Frame::Data {
            stream_id: 1,
            fin: true,
            data: Bytes::new(),
        },
    ];
    let mut out = BytesMut::new();
    for _ in 0..3 {
        encode(&frames[rng.below(frames.len())], &mut out).unwrap();
    }
    out.to_vec()
}

fn mutate(rng: &mut Rng, mut v: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(4) {
        if v.is_empty() {
            break;
        }
        let i = rng.below(v.len());
        match rng.below(5) {
            0 => v[i] ^= 1 << rng.below(8),
            1 => v[i] = rng.next_u64() as u8,
            2 => v.truncate(i),
            3 => {
                let n = rng.below(8);
                let extra = rng.bytes(n);
                v.splice(i..i, extra);
            }
            _ => v[i] = [0x00, 0x80, 0xff, 0x7f, 0x03][rng.below(5)],
        }
    }
    v
}

/// Every check one input gets: `parse` and `decode` agree, never panic, and what they parse
/// re-encodes to the same frame.
fn check_frames(input: &[u8]) {
    let limits = Limits {
        max_data: 1 << 12,
        max_control: 1 << 12,
    };
    let mut buf = BytesMut::from(input);
    let mut at = 0;
    loop {
        let parsed = parse(&input[at..], &limits);
        let decoded = decode(&mut buf, &limits);
        match (parsed, decoded) {
            (Ok(Parsed::Frame(f, n)), Ok(Some(g))) => {
                assert_eq!(f, g);
                at += n;
                if !matches!(f, Frame::Unknown { .. }) {
                    let mut out = BytesMut::new();
                    encode(&f, &mut out).unwrap();
                    match parse(&out, &limits) {
                        Ok(Parsed::Frame(again, m)) => {
                            assert_eq!(again, f);
                            assert_eq!(m, out.len());
                        }
                        other => panic!("re-encoded {f:?} parses as {other:?}"),
                    }
                }
            }
            (Ok(Parsed::Incomplete { needed }), Ok(None)) => {
                assert!(needed > input.len() - at);
                return;
            }
            (Err(a), Err(b)) => {
                assert_eq!(a, b);
                return;
            }
            (p, d) => panic!("parse {p:?} and decode {d:?} disagree"),
        }
    }
}

#[test]
fn frame_parser_survives_random_and_mutated_input() {
    let mut rng = Rng(0x5eed_0001);
    for _ in 0..20_000 {
        let n = rng.below(48);
        check_frames(&rng.bytes(n));
    }
    for _ in 0..20_000 {
        let c = corpus(&mut rng);
        check_frames(&mutate(&mut rng, c));
    }
}

#[test]
fn header_decoder_survives_mutated_blocks() {
    let mut rng = Rng(0x5eed_0002);
    for _ in 0..3_000 {
        let mut enc = HeaderEncoder::new();
        let mut dec = HeaderDecoder::new(1 << 12);
        for _ in 0..3 {
            let h: Headers = (0..rng.below(5))
                .map(|i| (format!("h{i}"), "v".repeat(rng.below(100))))
                .collect();
            let block = enc.encode(&h).unwrap().to_vec();
            let block = if rng.below(2) == 0 {
                mutate(&mut rng, block)
            } else {
                block
            };
            if let Ok(got) = dec.decode(&block) {
                // A block that decodes is well-formed, whatever it says.
                let _ = got.len();
            }
        }
    }
}

static PANICKED: AtomicBool = AtomicBool::new(false);

#[tokio::test]
async fn session_survives_mutated_frame_streams() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, Ordering::SeqCst);
        default_hook(info);
    }));
    let mut rng = Rng(0x5eed_0003);
    for _ in 0..300 {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let (session, mut incoming) = Session::server(
            a,
            Config {
                max_frame: 1 << 12,
                ..Config::default()
            },
        );
        tokio::spawn(async move {
            while let Some(mut s) = incoming.recv().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(b"reply").await;
                });
            }
        });
        let mut input = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let c = corpus(&mut rng);
            input.extend(if rng.below(3) == 0 {
                mutate(&mut rng, c)
            } else {
                c
            });
        }
        let _ = b.write_all(&input).await;
        drop(b);
        tokio::time::timeout(Duration::from_secs(10), session.closed())
            .await
            .expect("the session did not end");
    }
    assert!(!PANICKED.load(Ordering::SeqCst), "a session task panicked");
}
