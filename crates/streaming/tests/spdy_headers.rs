//! SPDY/3 header blocks: the wire format and zlib compression with the SPDY dictionary.

use crust_streaming::spdy::dictionary::{DICTIONARY, DICTIONARY_ID};
use crust_streaming::spdy::headers::{
    HeaderDecoder, HeaderEncoder, HeaderError, Headers, MAX_HEADERS,
};

/// Two blocks compressed one after the other on one context by Python's zlib (level 9, the
/// SPDY/3 dictionary, Z_SYNC_FLUSH after each): `streamtype: stdin`, then `streamtype: stdout`.
/// The first starts with the zlib header naming dictionary 0xe3c6a7c2.
const PY_BLOCK_1: &[u8] = &[
    0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2, 0x02, 0xa6, 0x23, 0x46, 0x70, 0x3a, 0x2b, 0x29, 0x4a, 0x4d,
    0xcc, 0x85, 0x16, 0x25, 0xac, 0xc5, 0x25, 0xc0, 0x3c, 0x01, 0x00, 0x00, 0x00, 0xff, 0xff,
];
const PY_BLOCK_2: &[u8] = &[
    0xc2, 0x2a, 0x05, 0x4c, 0xcc, 0x29, 0xf9, 0xa5, 0x25, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
];

#[test]
fn dictionary_is_the_spdy3_one() {
    assert_eq!(DICTIONARY.len(), 1423);
    assert!(DICTIONARY.starts_with(b"\x00\x00\x00\x07options\x00\x00\x00\x04head"));
    assert!(DICTIONARY.ends_with(b"charset=iso-8859-1,utf-,*,enq=0."));
    // zlib's own Adler-32 of it, as set_dictionary reports.
    let mut z = flate2::Compress::new(flate2::Compression::default(), true);
    assert_eq!(z.set_dictionary(DICTIONARY).unwrap(), DICTIONARY_ID);
}

#[test]
fn decodes_blocks_compressed_elsewhere_across_frames() {
    let mut d = HeaderDecoder::new(256 << 10);
    let h1 = d.decode(PY_BLOCK_1).unwrap();
    assert_eq!(h1.get("streamtype"), Some("stdin"));
    assert_eq!(h1.len(), 1);
    // The second block only makes sense with the first one's context.
    let h2 = d.decode(PY_BLOCK_2).unwrap();
    assert_eq!(h2.get("streamtype"), Some("stdout"));
    // Out of context, it does not decode.
    assert!(HeaderDecoder::new(256 << 10).decode(PY_BLOCK_2).is_err());
}

#[test]
fn wire_format_by_hand() {
    let h: Headers = [("StreamType", "error")].into_iter().collect();
    #[rustfmt::skip]
    let want = [
        0, 0, 0, 1,
        0, 0, 0, 10, b's', b't', b'r', b'e', b'a', b'm', b't', b'y', b'p', b'e',
        0, 0, 0, 5, b'e', b'r', b'r', b'o', b'r',
    ];
    assert_eq!(h.to_block(), want);
    assert_eq!(Headers::from_block(&want, MAX_HEADERS).unwrap(), h);
}

#[test]
fn several_values_are_joined_by_nul() {
    let mut h = Headers::new();
    h.append("x", "a");
    h.append("X", "b");
    h.insert("y", "1");
    h.insert("y", "2");
    let block = h.to_block();
    let back = Headers::from_block(&block, MAX_HEADERS).unwrap();
    assert_eq!(back.get_all("x").collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(back.get("y"), Some("2"));
    assert_eq!(back.get("Y"), Some("2"));
}

#[test]
fn compression_context_persists_across_many_blocks() {
    let mut e = HeaderEncoder::new();
    let mut d = HeaderDecoder::new(256 << 10);
    let kinds = ["stdin", "stdout", "stderr", "error", "resize"];
    let mut sizes = Vec::new();
    for round in 0..20 {
        for kind in kinds {
            let h: Headers = [
                ("streamtype", kind),
                ("port", "8080"),
                ("requestid", &round.to_string()),
            ]
            .into_iter()
            .collect();
            let block = e.encode(&h).unwrap();
            sizes.push(block.len());
            assert_eq!(d.decode(&block).unwrap(), h);
        }
    }
    // Repeated headers compress against the context: later blocks are small.
    assert!(sizes.last().unwrap() < &sizes[0], "{sizes:?}");
    // Our blocks decode with Python-made context? The reverse: ours starts with the dictionary id.
    let first = HeaderEncoder::new().encode(&Headers::new()).unwrap();
    assert_eq!(&first[2..6], &DICTIONARY_ID.to_be_bytes());
}

#[test]
fn limits_and_malformed_blocks() {
    // Decompressed size limit.
    let mut e = HeaderEncoder::new();
    let big: Headers = [("x", "a".repeat(10_000))].into_iter().collect();
    let block = e.encode(&big).unwrap();
    let err = HeaderDecoder::new(1000).decode(&block).unwrap_err();
    assert_eq!(err, HeaderError::TooLarge { max: 1000 });
    assert_eq!(
        err.to_string(),
        "header block: decompressed size exceeds the limit of 1000 bytes"
    );
    // Too many headers.
    let many: Headers = (0..MAX_HEADERS + 1)
        .map(|i| (format!("h{i}"), "v"))
        .collect();
    let err = Headers::from_block(&many.to_block(), MAX_HEADERS).unwrap_err();
    assert_eq!(
        err,
        HeaderError::TooMany {
            count: MAX_HEADERS + 1,
            max: MAX_HEADERS
        }
    );
    // A count far beyond the bytes present is refused without allocating for it.
    assert_eq!(
        Headers::from_block(&[0, 0, 0, 200, 0, 0], 1000),
        Err(HeaderError::Truncated)
    );
    // Name rules.
    let upper = [0, 0, 0, 1, 0, 0, 0, 1, b'A', 0, 0, 0, 0];
    assert_eq!(
        Headers::from_block(&upper, MAX_HEADERS),
        Err(HeaderError::UpperCaseName("A".into()))
    );
    let empty = [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        Headers::from_block(&empty, MAX_HEADERS),
        Err(HeaderError::EmptyName)
    );
    let dup = [
        0, 0, 0, 2, 0, 0, 0, 1, b'a', 0, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 0, 0,
    ];
    assert_eq!(
        Headers::from_block(&dup, MAX_HEADERS),
        Err(HeaderError::DuplicateName("a".into()))
    );
    let trailing = [0, 0, 0, 0, 9];
    assert_eq!(
        Headers::from_block(&trailing, MAX_HEADERS),
        Err(HeaderError::Trailing(1))
    );
    let not_utf8 = [0, 0, 0, 1, 0, 0, 0, 1, b'a', 0, 0, 0, 1, 0xff];
    assert_eq!(
        Headers::from_block(&not_utf8, MAX_HEADERS),
        Err(HeaderError::NotUtf8)
    );
    // Garbage and an empty block are refused by the decompressor or the parser.
    assert!(HeaderDecoder::new(1 << 16)
        .decode(b"not zlib at all")
        .is_err());
    assert!(HeaderDecoder::new(1 << 16).decode(b"").is_err());
    // A zlib stream primed with another dictionary.
    let mut other = flate2::Compress::new(flate2::Compression::default(), true);
    other.set_dictionary(b"some other dictionary").unwrap();
    let mut out = Vec::with_capacity(128);
    other
        .compress_vec(
            &Headers::new().to_block(),
            &mut out,
            flate2::FlushCompress::Sync,
        )
        .unwrap();
    assert!(matches!(
        HeaderDecoder::new(1 << 16).decode(&out),
        Err(HeaderError::Zlib(_))
    ));
}
