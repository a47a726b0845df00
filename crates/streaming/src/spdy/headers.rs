//! Name/value header blocks (SPDY/3 §2.6.10): `u32 count`, then per header `u32 length, name,
//! u32 length, value`, several values of one name joined by NUL; the block compressed with zlib
//! primed with [`DICTIONARY`], one compression context per direction of a connection that lives
//! across frames (each block ends with a sync flush).

use bytes::{BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dictionary::DICTIONARY;

/// Default limit on a decompressed header block.
pub const DEFAULT_MAX_BLOCK: usize = 256 << 10;
/// Limit on the number of headers (name/value pairs) in a block.
pub const MAX_HEADERS: usize = 1024;

/// Header names and values, names lower-case. Several values of one name are several entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    /// The first value of `name` (compared case-insensitively).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sets `name` (lower-cased) to `value`, replacing any values it had.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into().to_ascii_lowercase();
        self.0.retain(|(n, _)| *n != name);
        self.0.push((name, value.into()));
    }

    /// Adds a value of `name` (lower-cased), keeping the others.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0
            .push((name.into().to_ascii_lowercase(), value.into()));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The uncompressed wire form: one entry per distinct name, values joined by NUL.
    pub fn to_block(&self) -> Vec<u8> {
        let mut names: Vec<&str> = Vec::new();
        for (n, _) in &self.0 {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
        let mut out = Vec::new();
        out.put_u32(names.len() as u32);
        for name in names {
            let value = self.get_all(name).collect::<Vec<_>>().join("\0");
            out.put_u32(name.len() as u32);
            out.put_slice(name.as_bytes());
            out.put_u32(value.len() as u32);
            out.put_slice(value.as_bytes());
        }
        out
    }

    /// Parses the uncompressed wire form.
    pub fn from_block(block: &[u8], max_headers: usize) -> Result<Headers, HeaderError> {
        let mut r = Reader(block);
        let count = r.u32()? as usize;
        if count > max_headers {
            return Err(HeaderError::TooMany {
                count,
                max: max_headers,
            });
        }
        let mut h = Headers::new();
        let mut seen: Vec<&str> = Vec::with_capacity(count);
        for _ in 0..count {
            let name = r.string()?;
            if name.is_empty() {
                return Err(HeaderError::EmptyName);
            }
            if name.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(HeaderError::UpperCaseName(name.to_owned()));
            }
            if seen.contains(&name) {
                return Err(HeaderError::DuplicateName(name.to_owned()));
            }
            seen.push(name);
            let value = r.string()?;
            for v in value.split('\0') {
                h.0.push((name.to_owned(), v.to_owned()));
            }
        }
        if !r.0.is_empty() {
            return Err(HeaderError::Trailing(r.0.len()));
        }
        Ok(h)
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut h = Headers::new();
        for (n, v) in iter {
            h.append(n, v);
        }
        h
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HeaderError> {
        if self.0.len() < n {
            return Err(HeaderError::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32, HeaderError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Result<&'a str, HeaderError> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).map_err(|_| HeaderError::NotUtf8)
    }
}

/// Why a header block is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header block: {count} headers exceed the limit of {max}")]
    TooMany { count: usize, max: usize },
    #[error("header block: decompressed size exceeds the limit of {max} bytes")]
    TooLarge { max: usize },
    #[error("header block: truncated")]
    Truncated,
    #[error("header block: {0} bytes after the last header")]
    Trailing(usize),
    #[error("header block: empty header name")]
    EmptyName,
    #[error("header block: header name {0:?} is not lower-case")]
    UpperCaseName(String),
    #[error("header block: header name {0:?} appears twice")]
    DuplicateName(String),
    #[error("header block: a name or value is not UTF-8")]
    NotUtf8,
    #[error("header block: zlib: {0}")]
    Zlib(String),
}

/// Compresses the header blocks one direction of a connection sends.
pub struct HeaderEncoder {
    z: Compress,
}

impl std::fmt::Debug for HeaderEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeaderEncoder")
    }
}

impl Default for HeaderEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderEncoder {
    pub fn new() -> Self {
        let mut z = Compress::new(Compression::default(), true);
        // Cannot fail on a fresh stream.
        let _ = z.set_dictionary(DICTIONARY);
        HeaderEncoder { z }
    }

    /// The compressed block for `headers`, ending on a sync flush.
    pub fn encode(&mut self, headers: &Headers) -> Result<Bytes, HeaderError> {
        let raw = headers.to_block();
        let mut out = Vec::with_capacity(raw.len() / 2 + 64);
        let mut input = &raw[..];
        loop {
            if out.len() == out.capacity() {
                out.reserve(256);
            }
            let before = self.z.total_in();
            let status = self
                .z
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| HeaderError::Zlib(e.to_string()))?;
            let used = (self.z.total_in() - before) as usize;
            input = &input[used..];
            // Done when all input is in and zlib left room in the output (the flush completed).
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            if status == Status::StreamEnd {
                break;
            }
        }
        Ok(Bytes::from(out))
    }
}

/// Decompresses the header blocks one direction of a connection receives.
pub struct HeaderDecoder {
    z: Decompress,
    max_block: usize,
    max_headers: usize,
}

impl std::fmt::Debug for HeaderDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeaderDecoder")
    }
}

impl HeaderDecoder {
    /// A decoder refusing blocks that decompress to more than `max_block` bytes.
    pub fn new(max_block: usize) -> Self {
        HeaderDecoder {
            z: Decompress::new(true),
            max_block,
            max_headers: MAX_HEADERS,
        }
    }

    /// The headers of one compressed block; the context carries over to the next block, so an
    /// error leaves the decoder unusable (the connection must end).
    pub fn decode(&mut self, block: &[u8]) -> Result<Headers, HeaderError> {
        let raw = self.inflate(block)?;
        Headers::from_block(&raw, self.max_headers)
    }

    fn inflate(&mut self, block: &[u8]) -> Result<Vec<u8>, HeaderError> {
        let mut out = BytesMut::new();
        let mut input = block;
        let mut chunk = vec![0u8; 4096];
        loop {
            let (before_in, before_out) = (self.z.total_in(), self.z.total_out());
            let res = self.z.decompress(input, &mut chunk, FlushDecompress::Sync);
            let used = (self.z.total_in() - before_in) as usize;
            let made = (self.z.total_out() - before_out) as usize;
            input = &input[used.min(input.len())..];
            if out.len() + made > self.max_block {
                return Err(HeaderError::TooLarge {
                    max: self.max_block,
                });
            }
            out.extend_from_slice(&chunk[..made]);
            match res {
                Ok(Status::StreamEnd) => break,
                Ok(_) => {
                    // Finished once the input is used up and zlib had output room to spare.
                    if input.is_empty() && made < chunk.len() {
                        break;
                    }
                    if used == 0 && made == 0 {
                        return Err(HeaderError::Truncated);
                    }
                }
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z
                        .set_dictionary(DICTIONARY)
                        .map_err(|e| HeaderError::Zlib(e.to_string()))?;
                }
                Err(e) => return Err(HeaderError::Zlib(e.to_string())),
            }
        }
        Ok(out.to_vec())
    }
}
