//! `crustctl logs`: prints a container's log file (the CRI format; see `crilog`), stdout
//! lines to stdout and stderr lines to stderr, as crictl (kubelet's `ReadLogs`) does; `-f`
//! follows the file, across rotations, until the container stops running.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{ContainerState, ReopenContainerLogRequest};
use tonic::transport::Channel;

use super::containers::container_status;
use crate::client::Ctx;
use crate::crilog::{Joiner, Line, Stream};
use crate::{duration, gotime};

#[derive(Args, Debug, Default)]
pub struct LogsArgs {
    /// The container whose logs to print
    #[arg(value_name = "CONTAINER-ID")]
    pub id: String,
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Print the logs for the previous instance of the container in a pod if it exists
    #[arg(short, long)]
    pub previous: bool,
    /// Reopen the container logs for the provided container
    #[arg(short, long)]
    pub reopen: bool,
    /// Number of lines to show from the end of the logs. Defaults to all
    #[arg(long, allow_negative_numbers = true, conflicts_with = "stream")]
    pub tail: Option<i64>,
    /// Maximum bytes of logs to return. Defaults to no limit
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub limit_bytes: i64,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37) or relative (e.g. 42m for 42
    /// minutes)
    #[arg(long, default_value = "")]
    pub since: String,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show specified stream (stdout or stderr). Defaults to both.
    #[arg(short, long, value_parser = clap::builder::PossibleValuesParser::new(["stdout", "stderr"]))]
    pub stream: Option<String>,
}

/// How often `-f` looks for new records, and how often it asks whether the container
/// still runs.
const POLL: Duration = Duration::from_millis(100);
const STATE_CHECK: Duration = Duration::from_millis(500);

pub async fn run(ctx: &Ctx, args: LogsArgs, out: &mut dyn Write) -> Result<()> {
    if args.id.is_empty() {
        bail!("ID cannot be empty");
    }
    let since = parse_since(&args.since, gotime::now_nanos())?;
    let mut client = ctx.runtime().await?;
    if args.reopen {
        let request = ReopenContainerLogRequest {
            container_id: args.id.clone(),
        };
        ctx.call("ReopenContainerLog", request, |req| {
            client.reopen_container_log(req)
        })
        .await
        .map_err(|e| anyhow!(e))
        .context("reopen container logs")?;
        eprintln!("INFO Container logs reopened");
    }
    let status = container_status(ctx, &mut client, &args.id, false)
        .await?
        .status
        .unwrap_or_default();
    if status.log_path.is_empty() {
        bail!("the container has not set log path");
    }
    let mut path = PathBuf::from(&status.log_path);
    if args.previous {
        let metadata = status.metadata.clone().unwrap_or_default();
        path = previous_log_path(&status.log_path, metadata.attempt)
            .ok_or_else(|| anyhow!("previous terminated container {} not found", metadata.name))?;
    }
    let mut printer = Printer {
        out,
        stream: match args.stream.as_deref() {
            Some("stdout") => Some(Stream::Stdout),
            Some("stderr") => Some(Stream::Stderr),
            _ => None,
        },
        timestamps: args.timestamps,
        since,
        remaining: u64::try_from(args.limit_bytes).ok(),
    };
    let tail = args.tail.and_then(|n| usize::try_from(n).ok());
    let mut reader = LogReader::open(&path)?;
    let mut joiner = Joiner::default();
    let mut lines = Vec::new();
    reader.read_lines(&mut joiner, &mut lines, !args.follow, ctx)?;
    if !args.follow {
        lines.extend(joiner.flush());
    }
    if let Some(n) = tail {
        lines.drain(..lines.len().saturating_sub(n));
    }
    if !printer.print(&lines)? || !args.follow {
        return Ok(());
    }
    // -f: go on until the container is no longer running.
    let container_id = status.id.clone();
    let mut last_check = Instant::now();
    loop {
        let mut lines = Vec::new();
        let got = reader.read_lines(&mut joiner, &mut lines, false, ctx)?;
        if !printer.print(&lines)? {
            return Ok(());
        }
        if got {
            continue;
        }
        if reader.rotated(&path) {
            // Drain what the old file still holds, then start on the new one.
            lines.clear();
            reader.read_lines(&mut joiner, &mut lines, true, ctx)?;
            if !printer.print(&lines)? {
                return Ok(());
            }
            match LogReader::open(&path) {
                Ok(new) => reader = new,
                Err(_) => tokio::time::sleep(POLL).await,
            }
            continue;
        }
        if last_check.elapsed() >= STATE_CHECK {
            last_check = Instant::now();
            if !running(ctx, &mut client, &container_id).await? {
                let mut lines = Vec::new();
                reader.read_lines(&mut joiner, &mut lines, true, ctx)?;
                lines.extend(joiner.flush());
                printer.print(&lines)?;
                return Ok(());
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn running(ctx: &Ctx, client: &mut RuntimeServiceClient<Channel>, id: &str) -> Result<bool> {
    let request = k8s_cri::v1::ContainerStatusRequest {
        container_id: id.to_owned(),
        verbose: false,
    };
    match ctx
        .call("ContainerStatus", request, |req| {
            client.container_status(req)
        })
        .await
    {
        Ok(r) => Ok(r
            .status
            .is_some_and(|s| s.state == ContainerState::ContainerRunning as i32)),
        Err(e) if e.code() == tonic::Code::NotFound => Ok(false),
        Err(e) => Err(anyhow!(e)).context("get container status"),
    }
}

/// crictl's `--previous`: the log of attempt n-1 beside the current one (`.../<n>.log`).
fn previous_log_path(log_path: &str, attempt: u32) -> Option<PathBuf> {
    if attempt == 0 {
        return None;
    }
    let dir_end = log_path.rfind('/').map_or(0, |i| i + 1);
    let ext = log_path.rfind('.').map_or("", |i| &log_path[i..]);
    Some(PathBuf::from(format!(
        "{}{}{ext}",
        &log_path[..dir_end],
        attempt - 1
    )))
}

/// docker's `GetTimestamp` as crictl's `--since` uses it: a Go duration before `now`, an
/// RFC 3339 time (zone optional, UTC without), or Unix seconds with an optional fraction.
pub fn parse_since(value: &str, now_nanos: i64) -> Result<Option<i64>> {
    if value.is_empty() {
        return Ok(None);
    }
    if let Ok(d) = duration::parse(value) {
        let nanos = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        return Ok(Some(now_nanos.saturating_sub(nanos)));
    }
    if let Some(t) = gotime::parse_rfc3339(value, true) {
        return Ok(Some(t));
    }
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    if let Ok(secs) = secs.parse::<i64>() {
        if frac.len() <= 9 && frac.bytes().all(|b| b.is_ascii_digit()) {
            let frac_nanos = if frac.is_empty() {
                0
            } else {
                frac.parse::<i64>()? * 10i64.pow(9 - frac.len() as u32)
            };
            return Ok(Some(secs * 1_000_000_000 + frac_nanos));
        }
    }
    bail!("failed to parse value as time or duration: {value:?}")
}

/// A log file being read: the open file, its identity (to notice rotation) and the bytes
/// of a record whose newline has not been written yet.
struct LogReader {
    file: File,
    ino: (u64, u64),
    position: u64,
    incomplete: Vec<u8>,
}

impl LogReader {
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path)
            .with_context(|| format!("failed to open log file {:?}", path.display()))?;
        let meta = file.metadata()?;
        Ok(Self {
            file,
            ino: (meta.dev(), meta.ino()),
            position: 0,
            incomplete: Vec::new(),
        })
    }

    /// Reads what the file holds now; each complete record goes to `joiner`, the lines
    /// it completes to `lines`. With `at_end`, a last record without newline is taken too.
    /// True when anything was read.
    fn read_lines(
        &mut self,
        joiner: &mut Joiner,
        lines: &mut Vec<Line>,
        at_end: bool,
        ctx: &Ctx,
    ) -> Result<bool> {
        let mut buf = std::mem::take(&mut self.incomplete);
        let before = buf.len();
        let n = self
            .file
            .read_to_end(&mut buf)
            .context("failed to read log file")?;
        self.position += n as u64;
        let split = if at_end {
            buf.len()
        } else {
            buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
        };
        self.incomplete = buf.split_off(split);
        for raw in buf.split_inclusive(|&b| b == b'\n') {
            if raw == b"\n" {
                continue;
            }
            match joiner.push_raw(raw) {
                Ok(Some(line)) => lines.push(line),
                Ok(None) => {}
                Err(e) => ctx.debug(format_args!(
                    "failed when parsing line in log file: {e}: {:?}",
                    String::from_utf8_lossy(raw)
                )),
            }
        }
        Ok(buf.len() + self.incomplete.len() > before)
    }

    /// Whether the path now names another file (rotated) or a shorter one (truncated).
    fn rotated(&self, path: &Path) -> bool {
        match std::fs::metadata(path) {
            Ok(meta) => (meta.dev(), meta.ino()) != self.ino || meta.len() < self.position,
            Err(_) => true,
        }
    }
}

/// Writes lines to stdout or stderr by their stream, with the `--stream`, `--since`,
/// `--timestamps` and `--limit-bytes` options.
struct Printer<'a> {
    out: &'a mut dyn Write,
    stream: Option<Stream>,
    timestamps: bool,
    since: Option<i64>,
    remaining: Option<u64>,
}

impl Printer<'_> {
    /// False once `--limit-bytes` is used up.
    fn print(&mut self, lines: &[Line]) -> Result<bool> {
        for line in lines {
            if self.stream.is_some_and(|s| s != line.stream)
                || self.since.is_some_and(|since| line.timestamp < since)
            {
                continue;
            }
            let mut bytes = line.render(self.timestamps);
            if let Some(remaining) = self.remaining.as_mut() {
                let keep = bytes
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                bytes.truncate(keep);
                *remaining -= keep as u64;
            }
            match line.stream {
                Stream::Stdout => self.out.write_all(&bytes)?,
                Stream::Stderr => std::io::stderr().write_all(&bytes)?,
            }
            if self.remaining == Some(0) {
                self.out.flush()?;
                return Ok(false);
            }
        }
        self.out.flush()?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000_000_000;

    #[test]
    fn since_values() {
        assert_eq!(parse_since("", NOW).unwrap(), None);
        assert_eq!(parse_since("5s", NOW).unwrap(), Some(NOW - 5_000_000_000));
        assert_eq!(
            parse_since("1m30s", NOW).unwrap(),
            Some(NOW - 90_000_000_000)
        );
        assert_eq!(parse_since("2023-11-14T22:13:20Z", 0).unwrap(), Some(NOW));
        assert_eq!(parse_since("2023-11-14T22:13:20", 0).unwrap(), Some(NOW));
        assert_eq!(parse_since("1700000000", 0).unwrap(), Some(NOW));
        assert_eq!(
            parse_since("1700000000.25", 0).unwrap(),
            Some(NOW + 250_000_000)
        );
        assert!(parse_since("yesterday", NOW).is_err());
    }

    #[test]
    fn previous_attempt_path() {
        assert_eq!(previous_log_path("/var/log/pods/p/c/3.log", 0), None);
        assert_eq!(
            previous_log_path("/var/log/pods/p/c/3.log", 3),
            Some(PathBuf::from("/var/log/pods/p/c/2.log"))
        );
    }

    fn line(stream: Stream, t: i64, text: &str) -> Line {
        Line {
            timestamp: t,
            stream,
            content: text.as_bytes().to_vec(),
            complete: true,
        }
    }

    #[test]
    fn printer_filters_and_limits() {
        let lines = [
            line(Stream::Stdout, 1, "old"),
            line(Stream::Stderr, 5, "err"),
            line(Stream::Stdout, 6, "new"),
            line(Stream::Stdout, 7, "newer"),
        ];
        let mut out = Vec::new();
        let mut p = Printer {
            out: &mut out,
            stream: Some(Stream::Stdout),
            timestamps: false,
            since: Some(5),
            remaining: Some(6),
        };
        assert!(!p.print(&lines).unwrap(), "the limit is used up");
        assert_eq!(out, b"new\nne");
    }

    #[test]
    fn reader_keeps_an_unterminated_record_until_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let ctx = Ctx {
            runtime_endpoint: String::new(),
            image_endpoint: String::new(),
            timeout: Duration::from_secs(1),
            debug: false,
        };
        std::fs::write(
            &path,
            "2023-11-14T22:13:20Z stdout F one\n2023-11-14T22:13:20Z stdout F tw",
        )
        .unwrap();
        let mut reader = LogReader::open(&path).unwrap();
        let mut joiner = Joiner::default();
        let mut lines = Vec::new();
        assert!(reader
            .read_lines(&mut joiner, &mut lines, false, &ctx)
            .unwrap());
        assert_eq!(lines.len(), 1);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"o\n").unwrap();
        assert!(reader
            .read_lines(&mut joiner, &mut lines, false, &ctx)
            .unwrap());
        assert_eq!(lines[1].content, b"two");
        assert!(!reader
            .read_lines(&mut joiner, &mut lines, false, &ctx)
            .unwrap());
        assert!(!reader.rotated(&path));
        std::fs::rename(&path, dir.path().join("0.log.1")).unwrap();
        std::fs::write(&path, "").unwrap();
        assert!(reader.rotated(&path));
    }
}
