//! CRI container log files: `RFC3339Nano stdout|stderr P|F message` records, one a line,
//! as the monitor writes them (lines longer than 16 KiB split into `P` records ended by an
//! `F` one). Parsing follows kubelet's `parseCRILog`, which crictl's `logs` uses: a record
//! that does not parse is skipped.

use std::fmt;

use crate::gotime;

/// Which of the container's output streams a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// One record of a log file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Nanoseconds since the Unix epoch.
    pub timestamp: i64,
    pub stream: Stream,
    /// `P`: the line goes on in the next record of this stream.
    pub partial: bool,
    pub content: &'a [u8],
}

/// Why a record was skipped; the texts are kubelet's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    NoTimestamp,
    BadTimestamp(String),
    NoStream,
    BadStream(String),
    NoTag,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::NoTimestamp => write!(f, "timestamp is not found"),
            ParseError::BadTimestamp(t) => write!(f, "unexpected timestamp format {t:?}"),
            ParseError::NoStream => write!(f, "stream type is not found"),
            ParseError::BadStream(s) => write!(f, "unexpected stream type {s:?}"),
            ParseError::NoTag => write!(f, "log tag is not found"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses one record; `line` may still end in its newline.
pub fn parse_record(line: &[u8]) -> Result<Record<'_>, ParseError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let (timestamp, rest) = split_field(line).ok_or(ParseError::NoTimestamp)?;
    let timestamp_text = String::from_utf8_lossy(timestamp);
    let timestamp = gotime::parse_rfc3339(&timestamp_text, false)
        .ok_or_else(|| ParseError::BadTimestamp(timestamp_text.into_owned()))?;
    let (stream, rest) = split_field(rest).ok_or(ParseError::NoStream)?;
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        other => return Err(ParseError::BadStream(String::from_utf8_lossy(other).into())),
    };
    let (tags, content) = split_field(rest).ok_or(ParseError::NoTag)?;
    // Tags are `:`-separated, the first says partial or full (forward compatible).
    let partial = tags.split(|&b| b == b':').next() == Some(b"P");
    Ok(Record {
        timestamp,
        stream,
        partial,
        content,
    })
}

fn split_field(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = text.iter().position(|&b| b == b' ')?;
    Some((&text[..space], &text[space + 1..]))
}

/// A log line as the container wrote it: its `P` records joined with the closing one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The time of its first record.
    pub timestamp: i64,
    pub stream: Stream,
    pub content: Vec<u8>,
    /// False for a line whose closing record was not (yet) written.
    pub complete: bool,
}

impl Line {
    /// The bytes printed for it: the RFC 3339 time and a space with `timestamps`, the
    /// content, a newline if the line is complete.
    pub fn render(&self, timestamps: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.content.len() + 40);
        if timestamps {
            out.extend_from_slice(gotime::rfc3339_nano(self.timestamp).as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&self.content);
        if self.complete {
            out.push(b'\n');
        }
        out
    }
}

/// Joins each stream's partial records with the records that follow them.
#[derive(Debug, Default)]
pub struct Joiner {
    pending: [Option<Line>; 2],
}

impl Joiner {
    /// Takes one record; a line when it completes one.
    pub fn push(&mut self, record: Record<'_>) -> Option<Line> {
        let slot = &mut self.pending[record.stream.index()];
        let line = slot.get_or_insert_with(|| Line {
            timestamp: record.timestamp,
            stream: record.stream,
            content: Vec::new(),
            complete: false,
        });
        line.content.extend_from_slice(record.content);
        if record.partial {
            return None;
        }
        let mut line = slot.take()?;
        line.complete = true;
        Some(line)
    }

    /// Parses `raw` and takes it; a record that does not parse is skipped.
    pub fn push_raw(&mut self, raw: &[u8]) -> Result<Option<Line>, ParseError> {
        parse_record(raw).map(|record| self.push(record))
    }

    /// The lines still waiting for their closing record, oldest first, incomplete.
    pub fn flush(&mut self) -> Vec<Line> {
        let mut lines: Vec<Line> = self.pending.iter_mut().filter_map(Option::take).collect();
        lines.sort_by_key(|l| l.timestamp);
        lines
    }
}

/// All lines of a log file's text: complete ones in order, then the partial ones left at
/// the end. Records that do not parse are skipped (and returned, for a warning).
#[cfg(test)]
pub fn parse_all(text: &[u8]) -> (Vec<Line>, Vec<ParseError>) {
    let mut joiner = Joiner::default();
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    for raw in text.split_inclusive(|&b| b == b'\n') {
        if raw == b"\n" {
            continue;
        }
        match joiner.push_raw(raw) {
            Ok(Some(line)) => lines.push(line),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    lines.extend(joiner.flush());
    (lines, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "2023-11-14T22:13:20.123456789Z";
    const T_NANOS: i64 = 1_700_000_000_123_456_789;

    fn text(lines: &[Line], timestamps: bool) -> String {
        let bytes: Vec<u8> = lines.iter().flat_map(|l| l.render(timestamps)).collect();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn records_parse_like_kubelet() {
        let raw = format!("{T} stdout F hello world\n");
        let r = parse_record(raw.as_bytes()).unwrap();
        assert_eq!(
            r,
            Record {
                timestamp: T_NANOS,
                stream: Stream::Stdout,
                partial: false,
                content: b"hello world",
            }
        );
        let raw = format!("{T} stderr P:x part");
        let r = parse_record(raw.as_bytes()).unwrap();
        assert_eq!(
            (r.stream, r.partial, r.content),
            (Stream::Stderr, true, &b"part"[..])
        );
        // An empty line is a record with empty content.
        let raw = format!("{T} stdout F \n");
        let r = parse_record(raw.as_bytes()).unwrap();
        assert_eq!(r.content, b"");
        // Offsets are fine; content keeps its spaces.
        let r = parse_record(b"2023-11-14T23:13:20+01:00 stdout F  a  b").unwrap();
        assert_eq!(
            (r.timestamp, r.content),
            (1_700_000_000_000_000_000, &b" a  b"[..])
        );

        assert_eq!(parse_record(b"garbage"), Err(ParseError::NoTimestamp));
        assert!(matches!(
            parse_record(b"yesterday stdout F x"),
            Err(ParseError::BadTimestamp(_))
        ));
        assert_eq!(
            parse_record(format!("{T} stdout").as_bytes()),
            Err(ParseError::NoStream)
        );
        assert_eq!(
            parse_record(format!("{T} stdin F x").as_bytes()),
            Err(ParseError::BadStream("stdin".into()))
        );
        assert_eq!(
            parse_record(format!("{T} stdout F").as_bytes()),
            Err(ParseError::NoTag)
        );
    }

    #[test]
    fn split_lines_are_joined_per_stream() {
        // A 40 KiB line split at 16 KiB, an stderr line between its parts.
        let long: String = (0..40 * 1024)
            .map(|i| (b'a' + (i % 26) as u8) as char)
            .collect();
        let (a, rest) = long.split_at(16 * 1024);
        let (b, c) = rest.split_at(16 * 1024);
        let file = format!(
            "{T} stdout P {a}\n{T} stderr F oops\n2023-11-14T22:13:21Z stdout P {b}\n\
             2023-11-14T22:13:22Z stdout F {c}\n{T} stdout F next\n"
        );
        let (lines, errors) = parse_all(file.as_bytes());
        assert!(errors.is_empty());
        assert_eq!(lines.len(), 3);
        assert_eq!(
            (lines[0].stream, &lines[0].content[..]),
            (Stream::Stderr, &b"oops"[..])
        );
        assert_eq!(lines[1].stream, Stream::Stdout);
        assert_eq!(lines[1].content, long.as_bytes());
        assert_eq!(lines[1].timestamp, T_NANOS, "the first part's time");
        assert!(lines[1].complete);
        assert_eq!(lines[2].content, b"next");
    }

    #[test]
    fn a_partial_line_at_the_end_is_printed_without_newline() {
        let file = format!("{T} stdout F one\n{T} stdout P tw\n{T} stdout P o");
        let (lines, _) = parse_all(file.as_bytes());
        assert_eq!(lines.len(), 2);
        assert!(!lines[1].complete);
        assert_eq!(text(&lines, false), "one\ntwo");
        assert_eq!(text(&lines, true), format!("{T} one\n{T} two"));
    }

    #[test]
    fn malformed_records_are_skipped() {
        let file =
            format!("{T} stdout F a\ngarbage\n\n{T} stdxxx F b\n{T} stderr F c\n{T} stdout\n");
        let (lines, errors) = parse_all(file.as_bytes());
        assert_eq!(text(&lines, false), "a\nc\n");
        assert_eq!(
            errors,
            [
                ParseError::NoTimestamp,
                ParseError::BadStream("stdxxx".into()),
                ParseError::NoStream
            ]
        );
    }

    #[test]
    fn timestamps_render_as_rfc3339_nano() {
        let (lines, _) = parse_all(b"2023-11-14T22:13:20.500000000Z stdout F x\n");
        assert_eq!(text(&lines, true), "2023-11-14T22:13:20.5Z x\n");
    }
}
