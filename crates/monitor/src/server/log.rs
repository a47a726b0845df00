//! CRI container logs: what kubelet and `crictl logs` read.
//!
//! Each record is `<timestamp> <stream> <tag> <content>\n`: the time the monitor read the output
//! (RFC 3339 with nanoseconds, UTC, as Go's `time.RFC3339Nano` prints it), `stdout` or `stderr`,
//! `F` for a full line or `P` for a part of one, and the line without its newline. A line longer
//! than [`MAX_LINE`] bytes becomes `P` records of that size and a final `F` (containerd's
//! limit). Output left without a newline when its stream ends is written as an `F` record.
//!
//! Records are written whole, each batch with one `write(2)` on a file opened `O_APPEND`, so a
//! reader (or a rename by kubelet's rotation) never sees half a record. Only the unfinished line
//! of each stream is buffered, at most [`MAX_LINE`] bytes.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

/// The longest content of one record; longer lines are split.
pub const MAX_LINE: usize = 16 * 1024;

/// Which output a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static [u8] {
        match self {
            Stream::Stdout => b"stdout",
            Stream::Stderr => b"stderr",
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// A container's CRI log file and the unfinished line of each stream.
#[derive(Debug)]
pub struct LogWriter {
    /// Empty: output is read and discarded.
    path: PathBuf,
    file: Option<File>,
    /// Output from a terminal: a `\r` before a newline is dropped.
    tty: bool,
    /// The unfinished line of stdout and of stderr.
    pending: [Vec<u8>; 2],
    /// Records being assembled for one write (kept to reuse its allocation).
    out: Vec<u8>,
}

impl LogWriter {
    /// Opens (creating it and its parent directories) the log at `path`, or, when `path` is
    /// empty, a writer that discards everything.
    pub fn open(path: &Path, tty: bool) -> io::Result<Self> {
        let file = if path.as_os_str().is_empty() {
            None
        } else {
            Some(open_log(path)?)
        };
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            tty,
            pending: [Vec::new(), Vec::new()],
            out: Vec::new(),
        })
    }

    /// Closes the file and opens `path` again (kubelet renamed it away to rotate it). Nothing
    /// is lost: complete records are already written, and the unfinished lines stay buffered
    /// for the new file.
    pub fn reopen(&mut self) -> io::Result<()> {
        if self.path.as_os_str().is_empty() {
            return Ok(());
        }
        self.file = None;
        self.file = Some(open_log(&self.path)?);
        Ok(())
    }

    /// Logs `data` read from `stream` just now.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        self.write_at(stream, data, SystemTime::now())
    }

    /// Writes what `stream` left without a newline as a full line (the stream ended).
    pub fn finish(&mut self, stream: Stream) -> io::Result<()> {
        self.finish_at(stream, SystemTime::now())
    }

    fn write_at(&mut self, stream: Stream, mut data: &[u8], now: SystemTime) -> io::Result<()> {
        if self.file.is_none() {
            return Ok(());
        }
        let mut ts = [0u8; TIMESTAMP_MAX];
        let ts_len = format_timestamp(now, &mut ts);
        let ts = &ts[..ts_len];
        let i = stream.index();
        self.out.clear();
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    let line = &data[..end];
                    data = &data[end + 1..];
                    if self.pending[i].is_empty() {
                        full_line(&mut self.out, ts, stream, self.tty, line);
                    } else {
                        let mut joined = std::mem::take(&mut self.pending[i]);
                        joined.extend_from_slice(line);
                        full_line(&mut self.out, ts, stream, self.tty, &joined);
                        joined.clear();
                        self.pending[i] = joined;
                    }
                }
                None => {
                    let pending = &mut self.pending[i];
                    pending.extend_from_slice(data);
                    data = &[];
                    // Keep at most MAX_LINE: whole parts go out as P records. A line of exactly
                    // MAX_LINE bytes stays whole (its newline may come next).
                    let mut start = 0;
                    while pending.len() - start > MAX_LINE {
                        record(
                            &mut self.out,
                            ts,
                            stream,
                            b'P',
                            &pending[start..start + MAX_LINE],
                        );
                        start += MAX_LINE;
                    }
                    pending.drain(..start);
                }
            }
        }
        self.flush_out()
    }

    fn finish_at(&mut self, stream: Stream, now: SystemTime) -> io::Result<()> {
        let i = stream.index();
        if self.pending[i].is_empty() || self.file.is_none() {
            self.pending[i] = Vec::new();
            return Ok(());
        }
        let mut ts = [0u8; TIMESTAMP_MAX];
        let ts_len = format_timestamp(now, &mut ts);
        let pending = std::mem::take(&mut self.pending[i]);
        self.out.clear();
        full_line(&mut self.out, &ts[..ts_len], stream, false, &pending);
        self.flush_out()
    }

    fn flush_out(&mut self) -> io::Result<()> {
        let result = match &mut self.file {
            Some(file) if !self.out.is_empty() => file.write_all(&self.out),
            _ => Ok(()),
        };
        self.out.clear();
        // A burst of long lines should not pin its buffer for the container's lifetime.
        if self.out.capacity() > 4 * MAX_LINE {
            self.out = Vec::new();
        }
        result
    }
}

fn open_log(path: &Path) -> io::Result<File> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)?;
        }
    }
    // O_CLOEXEC is std's default.
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

/// Appends the records of one complete line: `P` parts while over [`MAX_LINE`], then `F`.
fn full_line(out: &mut Vec<u8>, ts: &[u8], stream: Stream, tty: bool, mut line: &[u8]) {
    if tty {
        line = line.strip_suffix(b"\r").unwrap_or(line);
    }
    while line.len() > MAX_LINE {
        record(out, ts, stream, b'P', &line[..MAX_LINE]);
        line = &line[MAX_LINE..];
    }
    record(out, ts, stream, b'F', line);
}

fn record(out: &mut Vec<u8>, ts: &[u8], stream: Stream, tag: u8, content: &[u8]) {
    out.reserve(ts.len() + 10 + content.len());
    out.extend_from_slice(ts);
    out.push(b' ');
    out.extend_from_slice(stream.name());
    out.push(b' ');
    out.push(tag);
    out.push(b' ');
    out.extend_from_slice(content);
    out.push(b'\n');
}

/// `2006-01-02T15:04:05.999999999Z` is 30 bytes; years past 9999 are not ours to log.
const TIMESTAMP_MAX: usize = 32;

/// Formats `time` as Go's RFC3339Nano in UTC: nanoseconds with trailing zeros trimmed, no
/// fraction at all on a whole second. Returns the length written.
pub fn format_timestamp(time: SystemTime, buf: &mut [u8; TIMESTAMP_MAX]) -> usize {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let nanos = since.subsec_nanos();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let (hour, min, sec) = (rem / 3600, rem / 60 % 60, rem % 60);
    let mut out = Cursor { buf, n: 0 };
    out.digits(year.clamp(0, 9999) as u64, 4);
    out.byte(b'-');
    out.digits(month, 2);
    out.byte(b'-');
    out.digits(day, 2);
    out.byte(b'T');
    out.digits(hour, 2);
    out.byte(b':');
    out.digits(min, 2);
    out.byte(b':');
    out.digits(sec, 2);
    if nanos != 0 {
        out.byte(b'.');
        let (mut frac, mut width) = (nanos, 9);
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        out.digits(u64::from(frac), width);
    }
    out.byte(b'Z');
    out.n
}

struct Cursor<'a> {
    buf: &'a mut [u8; TIMESTAMP_MAX],
    n: usize,
}

impl Cursor<'_> {
    fn byte(&mut self, b: u8) {
        self.buf[self.n] = b;
        self.n += 1;
    }

    /// `value` in decimal, zero-padded to `width` digits.
    fn digits(&mut self, mut value: u64, width: usize) {
        for k in (0..width).rev() {
            self.buf[self.n + k] = b'0' + (value % 10) as u8;
            value /= 10;
        }
        self.n += width;
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u64, u64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097) as u64; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe as i64 + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    fn ts(time: SystemTime) -> String {
        let mut buf = [0u8; TIMESTAMP_MAX];
        let n = format_timestamp(time, &mut buf);
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    /// (stream, tag, content) of each record in `path`, checking each timestamp parses.
    fn records(path: &Path) -> Vec<(String, String, String)> {
        std::fs::read_to_string(path)
            .unwrap()
            .split_terminator('\n')
            .map(|line| {
                let mut parts = line.splitn(4, ' ');
                let ts = parts.next().unwrap();
                assert!(ts.ends_with('Z') && ts.len() >= 20, "{ts}");
                (
                    parts.next().unwrap().to_string(),
                    parts.next().unwrap().to_string(),
                    parts.next().unwrap().to_string(),
                )
            })
            .collect()
    }

    fn rec(stream: &str, tag: &str, content: &str) -> (String, String, String) {
        (stream.into(), tag.into(), content.into())
    }

    #[test]
    fn timestamps_are_go_rfc3339nano_in_utc() {
        assert_eq!(ts(at(0, 0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            ts(at(1_733_130_000, 123_456_789)),
            "2024-12-02T09:00:00.123456789Z"
        );
        // Trailing zeros trimmed, not padded.
        assert_eq!(
            ts(at(1_733_130_000, 120_000_000)),
            "2024-12-02T09:00:00.12Z"
        );
        assert_eq!(ts(at(1_733_130_000, 1)), "2024-12-02T09:00:00.000000001Z");
        // A leap day and the end of a year.
        assert_eq!(ts(at(951_782_400, 500_000_000)), "2000-02-29T00:00:00.5Z");
        assert_eq!(ts(at(1_704_067_199, 0)), "2023-12-31T23:59:59Z");
    }

    #[test]
    fn lines_become_full_records_and_partial_output_waits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/0.log");
        let mut log = LogWriter::open(&path, false).unwrap();
        log.write(Stream::Stdout, b"hello\nwor").unwrap();
        log.write(Stream::Stderr, b"oops\n").unwrap();
        log.write(Stream::Stdout, b"ld\n\n").unwrap();
        assert_eq!(
            records(&path),
            [
                rec("stdout", "F", "hello"),
                rec("stderr", "F", "oops"),
                rec("stdout", "F", "world"),
                rec("stdout", "F", ""),
            ]
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
    }

    #[test]
    fn no_trailing_newline_at_the_end_is_a_full_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut log = LogWriter::open(&path, false).unwrap();
        log.write(Stream::Stdout, b"last words").unwrap();
        assert_eq!(records(&path), []);
        log.finish(Stream::Stdout).unwrap();
        log.finish(Stream::Stderr).unwrap();
        assert_eq!(records(&path), [rec("stdout", "F", "last words")]);
    }

    #[test]
    fn lines_over_16k_are_split_into_partial_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut log = LogWriter::open(&path, false).unwrap();
        // Exactly 16 KiB: one full record.
        let exact = "x".repeat(MAX_LINE);
        log.write(Stream::Stdout, format!("{exact}\n").as_bytes())
            .unwrap();
        // 16 KiB + 1 in one read: P then F.
        log.write(Stream::Stdout, format!("{exact}y\n").as_bytes())
            .unwrap();
        // 40 KiB arriving in small pieces: P, P, F (with 8 KiB).
        let long = "z".repeat(40 * 1024);
        for piece in long.as_bytes().chunks(1000) {
            log.write(Stream::Stderr, piece).unwrap();
        }
        log.write(Stream::Stderr, b"\n").unwrap();
        let got = records(&path);
        let tags: Vec<(&str, &str, usize)> = got
            .iter()
            .map(|(s, t, c)| (s.as_str(), t.as_str(), c.len()))
            .collect();
        assert_eq!(
            tags,
            [
                ("stdout", "F", MAX_LINE),
                ("stdout", "P", MAX_LINE),
                ("stdout", "F", 1),
                ("stderr", "P", MAX_LINE),
                ("stderr", "P", MAX_LINE),
                ("stderr", "F", 8 * 1024),
            ]
        );
        assert_eq!(got[2].2, "y");
        let joined: String = got[3..].iter().map(|r| r.2.as_str()).collect();
        assert_eq!(joined, long);
    }

    #[test]
    fn terminal_output_loses_one_carriage_return_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut log = LogWriter::open(&path, true).unwrap();
        log.write(Stream::Stdout, b"hello\r\nbye\r").unwrap();
        log.write(Stream::Stdout, b"\nx\r\r\n").unwrap();
        assert_eq!(
            records(&path),
            [
                rec("stdout", "F", "hello"),
                rec("stdout", "F", "bye"),
                rec("stdout", "F", "x\r"),
            ]
        );
        // Without a terminal a carriage return is content.
        let plain = dir.path().join("1.log");
        let mut log = LogWriter::open(&plain, false).unwrap();
        log.write(Stream::Stdout, b"a\r\n").unwrap();
        assert_eq!(records(&plain), [rec("stdout", "F", "a\r")]);
    }

    #[test]
    fn reopen_continues_in_a_new_file_keeping_the_unfinished_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let rotated = dir.path().join("0.log.1");
        let mut log = LogWriter::open(&path, false).unwrap();
        log.write(Stream::Stdout, b"one\ntw").unwrap();
        std::fs::rename(&path, &rotated).unwrap();
        log.write(Stream::Stdout, b"o\n").unwrap();
        log.reopen().unwrap();
        log.write(Stream::Stdout, b"three\n").unwrap();
        assert_eq!(
            records(&rotated),
            [rec("stdout", "F", "one"), rec("stdout", "F", "two")]
        );
        assert_eq!(records(&path), [rec("stdout", "F", "three")]);
    }

    #[test]
    fn an_empty_path_discards_output() {
        let mut log = LogWriter::open(Path::new(""), false).unwrap();
        log.write(Stream::Stdout, b"nothing\npartial").unwrap();
        log.finish(Stream::Stdout).unwrap();
        log.reopen().unwrap();
        assert!(log.pending.iter().all(Vec::is_empty));
    }
}
