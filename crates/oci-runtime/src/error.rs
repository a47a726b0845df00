//! The one error type of the driver.

use std::io;
use std::path::PathBuf;

/// A runtime call that did not do what was asked.
///
/// Display names the subject and never repeats the source, so `{:#}` (anyhow) or walking
/// [`std::error::Error::source`] reads as one chain: `spawn /usr/bin/crun start: No such file or
/// directory (os error 2)`.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The binary could not be started (or waited for).
    #[error("spawn {} {verb}", binary.display())]
    Spawn {
        binary: PathBuf,
        verb: &'static str,
        #[source]
        source: io::Error,
    },
    /// The runtime ran and exited unsuccessfully.
    #[error("{} {verb} {id} failed ({status}): {message}", binary.display())]
    Failed {
        binary: PathBuf,
        verb: &'static str,
        id: String,
        /// How the runtime exited, e.g. `exit status: 1`.
        status: String,
        /// The last error the runtime logged, else its stderr trimmed, else its stdout.
        message: String,
    },
    /// The runtime does not know the container.
    #[error("container {id} does not exist")]
    NotFound { id: String },
    /// A file the driver reads or writes itself (log, process.json, resources).
    #[error("access {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The runtime's output was not the JSON expected.
    #[error("decode {verb} output for container {id}")]
    Decode {
        verb: &'static str,
        id: String,
        #[source]
        source: serde_json::Error,
    },
}

impl RuntimeError {
    /// Whether this is [`RuntimeError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, RuntimeError::NotFound { .. })
    }
}

/// Whether a runtime's error message says the container is unknown: runc says `container does
/// not exist`; crun fails to open the container's state dir, `<root>/<id>`, with `No such file
/// or directory`.
#[cfg_attr(not(feature = "async"), allow(dead_code))]
pub(crate) fn says_not_found(message: &str, id: &str) -> bool {
    message.contains("does not exist") || (message.contains("No such file") && message.contains(id))
}

/// The message of a [`RuntimeError::Failed`]: the logged error, else stderr, else stdout.
#[cfg_attr(not(feature = "async"), allow(dead_code))]
pub(crate) fn failure_message(logged: Option<String>, stderr: &[u8], stdout: &[u8]) -> String {
    if let Some(msg) = logged {
        return msg;
    }
    for stream in [stderr, stdout] {
        let text = String::from_utf8_lossy(stream);
        let text = text.trim();
        if !text.is_empty() {
            return text.to_owned();
        }
    }
    "no error message".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_subject() {
        let err = RuntimeError::Failed {
            binary: "/usr/sbin/runc".into(),
            verb: "start",
            id: "c1".into(),
            status: "exit status: 1".into(),
            message: "container does not exist".into(),
        };
        assert_eq!(
            err.to_string(),
            "/usr/sbin/runc start c1 failed (exit status: 1): container does not exist"
        );
        let err = RuntimeError::Spawn {
            binary: "/nope/crun".into(),
            verb: "kill",
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert_eq!(err.to_string(), "spawn /nope/crun kill");
        assert!(std::error::Error::source(&err).is_some());
        assert_eq!(
            RuntimeError::NotFound { id: "c9".into() }.to_string(),
            "container c9 does not exist"
        );
    }

    #[test]
    fn not_found_messages() {
        assert!(says_not_found("container does not exist", "c1"));
        assert!(says_not_found(
            "error opening file `/run/crun/c1/status`: No such file or directory",
            "c1"
        ));
        assert!(!says_not_found(
            "executable file `nope` not found in $PATH: No such file or directory",
            "c1"
        ));
    }

    #[test]
    fn message_prefers_log_then_stderr_then_stdout() {
        assert_eq!(failure_message(Some("logged".into()), b"e", b"o"), "logged");
        assert_eq!(failure_message(None, b"  err\n", b"o"), "err");
        assert_eq!(failure_message(None, b" \n", b"out\n"), "out");
        assert_eq!(failure_message(None, b"", b""), "no error message");
    }
}
