//! The runtime's JSON log: one `{"level":...,"msg":...}` object per line, as runc (logrus) and
//! crun write them when given `--log FILE --log-format json`.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::Deserialize;

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    level: String,
    #[serde(default)]
    msg: String,
}

/// The last error message the runtime wrote to its JSON log, for error reports.
///
/// `None` when the file is missing, unreadable or holds no error entry. runc appends to its log
/// file; when a caller reuses one log for several calls, use [`last_error_after`] with the
/// file's length before the call.
pub fn last_error(log: &Path) -> Option<String> {
    last_error_after(log, 0)
}

/// Like [`last_error`], reading only what was written after byte `offset`.
pub fn last_error_after(log: &Path, offset: u64) -> Option<String> {
    let mut file = std::fs::File::open(log).ok()?;
    file.seek(SeekFrom::Start(offset)).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    last_error_in(&String::from_utf8_lossy(&bytes))
}

/// The last error entry in log text. Lines that are not JSON (a runtime that crashed mid-write,
/// a panic trace) are skipped; several objects on one line are read in turn.
pub(crate) fn last_error_in(text: &str) -> Option<String> {
    let mut last = None;
    for line in text.lines() {
        let entries = serde_json::Deserializer::from_str(line).into_iter::<Entry>();
        for entry in entries {
            let Ok(entry) = entry else { break };
            let is_error = matches!(entry.level.as_str(), "error" | "fatal" | "panic");
            let msg = entry.msg.trim();
            if is_error && !msg.is_empty() {
                last = Some(msg.to_owned());
            }
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    // Written by runc 1.1.5 and crun 1.8.1 for `state`/`delete` of an unknown id (temp root).
    const RUNC: &str = r#"{"level":"error","msg":"container does not exist","time":"2026-12-02T06:49:15Z"}
"#;
    const CRUN: &str = r#"{"msg":"error opening file `root-crun/bogus/status`: No such file or directory","level":"error","time":"2026-12-02T06:49:15.253481Z"}
"#;
    const CRUN_DELETE: &str = r#"{"msg":"cannot open directory 'root-crun/bogus': No such file or directory","level":"error","time":"2026-12-02T06:49:15.258674Z"}"#;

    #[test]
    fn runc_sample() {
        assert_eq!(
            last_error_in(RUNC).as_deref(),
            Some("container does not exist")
        );
    }

    #[test]
    fn crun_samples() {
        assert_eq!(
            last_error_in(CRUN).as_deref(),
            Some("error opening file `root-crun/bogus/status`: No such file or directory")
        );
        // No trailing newline, as crun leaves the last line.
        assert_eq!(
            last_error_in(CRUN_DELETE).as_deref(),
            Some("cannot open directory 'root-crun/bogus': No such file or directory")
        );
    }

    #[test]
    fn last_error_wins_and_other_levels_are_ignored() {
        let text = format!(
            "{RUNC}{{\"level\":\"warning\",\"msg\":\"cgroup v1 is deprecated\"}}\nnot json at all\n{CRUN_DELETE}{{\"level\":\"info\",\"msg\":\"x\"}}\n"
        );
        assert_eq!(
            last_error_in(&text).as_deref(),
            Some("cannot open directory 'root-crun/bogus': No such file or directory")
        );
        assert_eq!(
            last_error_in("{\"level\":\"warning\",\"msg\":\"w\"}\n"),
            None
        );
        assert_eq!(last_error_in(""), None);
    }

    #[test]
    fn reads_a_file_from_an_offset() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(RUNC.as_bytes()).unwrap();
        let offset = RUNC.len() as u64;
        assert_eq!(
            last_error(file.path()).as_deref(),
            Some("container does not exist")
        );
        assert_eq!(last_error_after(file.path(), offset), None);
        file.write_all(CRUN.as_bytes()).unwrap();
        assert!(last_error_after(file.path(), offset)
            .unwrap()
            .starts_with("error opening"));
        assert_eq!(last_error(Path::new("/nonexistent/log.json")), None);
    }

    /// The samples above come from the real binaries; check they still write the same shape.
    #[test]
    fn real_runtimes_log_json_errors() {
        for binary in ["runc", "crun"] {
            let root = tempfile::tempdir().unwrap();
            let log = root.path().join("log.json");
            let status = std::process::Command::new(binary)
                .arg("--root")
                .arg(root.path())
                .arg("--log")
                .arg(&log)
                .args(["--log-format", "json", "state", "crust-bogus-id"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
            let Ok(status) = status else {
                eprintln!("note: {binary} not installed, skipping");
                continue;
            };
            assert!(!status.success());
            let msg = last_error(&log).unwrap_or_else(|| panic!("{binary} logged no error"));
            assert!(
                msg.contains("does not exist") || msg.contains("No such file"),
                "{msg}"
            );
        }
    }
}
