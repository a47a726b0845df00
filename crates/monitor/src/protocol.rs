//! The wire protocol between crustd and a pod monitor.
//!
//! Newline-delimited JSON over the unix socket `RUNDIR/monitor.sock`. A request is an object
//! tagged by `"op"`; each request gets one reply line, `{"ok":true,...}` or
//! `{"ok":false,"error":"..."}`. After a successful `watch` the connection carries event lines,
//! objects tagged by `"event"`. Unknown fields are ignored on both sides so the protocol can grow.
//!
//! ```text
//! > {"op":"status"}
//! < {"ok":true,"pod_id":"p1","pid":4242,"init_pid":4243,"init_exited":null,"namespaces":{"net":"/run/crust/pods/p1/ns/net"}}
//! > {"op":"watch"}
//! < {"ok":true}
//! < {"event":"init_exited","exit_code":137,"signal":9}
//! > {"op":"shutdown"}
//! < {"ok":true}
//! ```
//!
//! The readiness line the monitor prints on its stdout at start is a reply too: `{"ok":true,
//! "pid":..,"init_pid":..,"namespaces":{..}}` ([`Ready`]) or `{"ok":false,"error":".."}`.

use std::{collections::BTreeMap, path::PathBuf};

use serde::{Deserialize, Serialize};

/// The monitor's socket, in its run directory.
pub const SOCKET_NAME: &str = "monitor.sock";
/// The file holding the monitor's pid, in its run directory.
pub const PID_FILE: &str = "monitor.pid";
/// The directory of namespace pins (`ns/net`, `ns/ipc`, `ns/uts`, `ns/pid`), in the run
/// directory.
pub const NS_DIR: &str = "ns";

/// A request to the monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Answered with a [`Status`].
    Status,
    /// Answered with `{"ok":true}`; then the connection receives [`Event`] lines. Events that
    /// already happened (the pod init's exit) are sent at once after the answer.
    Watch,
    /// Kill the pod init (and with it everything in the pod's pid namespace), unpin the
    /// namespaces, answer `{"ok":true}`, remove the socket and pid file, exit.
    Shutdown,
}

/// What the monitor reports once its namespaces are pinned (its readiness line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// The monitor's pid.
    pub pid: i32,
    /// The pod init's pid (in crustd's pid namespace), when the pod has its own pid namespace.
    pub init_pid: Option<i32>,
    /// Each namespace the pod has of its own (`net`, `ipc`, `uts`, `pid`) and its pin.
    pub namespaces: BTreeMap<String, PathBuf>,
}

/// How the pod init ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitExit {
    /// The exit code, or 128 + the signal number when a signal killed it.
    pub exit_code: i32,
    /// The signal that killed it, if one did.
    #[serde(default)]
    pub signal: Option<i32>,
}

/// The answer to [`Request::Status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The pod the monitor serves.
    pub pod_id: String,
    /// The monitor's pid.
    pub pid: i32,
    /// The pod init's pid, when the pod has its own pid namespace.
    pub init_pid: Option<i32>,
    /// Set once the pod init has exited.
    pub init_exited: Option<InitExit>,
    /// Each namespace the pod has of its own and its pin.
    pub namespaces: BTreeMap<String, PathBuf>,
}

/// Something that happened in the pod, sent to watchers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The pod init exited: everything in the pod's pid namespace is gone.
    InitExited {
        exit_code: i32,
        #[serde(default)]
        signal: Option<i32>,
    },
    /// An event this version does not know (sent by a newer monitor).
    #[serde(other)]
    Unknown,
}

/// A successful reply: `{"ok":true}` followed by the fields of `body`.
#[derive(Serialize)]
pub(crate) struct OkReply<'a, T: Serialize> {
    pub ok: bool,
    #[serde(flatten)]
    pub body: &'a T,
}

/// A failed reply.
#[derive(Serialize)]
pub(crate) struct ErrorReply<'a> {
    pub ok: bool,
    pub error: &'a str,
}

/// An empty body, for `{"ok":true}`.
#[derive(Serialize)]
pub(crate) struct Empty {}

/// `{"ok":true,...body}` and a newline.
pub(crate) fn ok_line<T: Serialize>(body: &T) -> Vec<u8> {
    let mut line = serde_json::to_vec(&OkReply { ok: true, body })
        .unwrap_or_else(|_| br#"{"ok":false,"error":"encoding the reply failed"}"#.to_vec());
    line.push(b'\n');
    line
}

/// `{"ok":false,"error":message}` and a newline.
pub(crate) fn error_line(message: &str) -> Vec<u8> {
    let mut line = serde_json::to_vec(&ErrorReply {
        ok: false,
        error: message,
    })
    .unwrap_or_else(|_| br#"{"ok":false,"error":"encoding the reply failed"}"#.to_vec());
    line.push(b'\n');
    line
}

/// An event and a newline.
pub(crate) fn event_line(event: &Event) -> Vec<u8> {
    let mut line = serde_json::to_vec(event).unwrap_or_default();
    line.push(b'\n');
    line
}

/// Longest unix socket path the kernel takes (sun_path holds 108 bytes with the NUL).
const SUN_PATH_MAX: usize = 107;

/// A path to use for bind(2)/connect(2) of the socket `path`, however deep the run root is:
/// the path itself when it fits sun_path, else `/proc/self/fd/N/<name>` through an open
/// handle of its directory (kept alive by the returned `File` while the call runs).
pub fn socket_address(
    path: &std::path::Path,
) -> std::io::Result<(Option<std::fs::File>, std::path::PathBuf)> {
    use std::os::fd::AsRawFd;
    if path.as_os_str().len() <= SUN_PATH_MAX {
        return Ok((None, path.to_path_buf()));
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok((None, path.to_path_buf()));
    };
    let handle = std::fs::File::open(dir)?;
    let short =
        std::path::PathBuf::from(format!("/proc/self/fd/{}", handle.as_raw_fd())).join(name);
    Ok((Some(handle), short))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_by_op() {
        assert_eq!(
            serde_json::to_string(&Request::Status).unwrap(),
            r#"{"op":"status"}"#
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"op":"shutdown","extra":1}"#).unwrap(),
            Request::Shutdown
        );
        let err = serde_json::from_str::<Request>(r#"{"op":"nope"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }

    #[test]
    fn replies_and_events_have_the_documented_shape() {
        let ready = Ready {
            pid: 10,
            init_pid: None,
            namespaces: [("net".to_string(), PathBuf::from("/r/ns/net"))].into(),
        };
        assert_eq!(
            String::from_utf8(ok_line(&ready)).unwrap(),
            "{\"ok\":true,\"pid\":10,\"init_pid\":null,\"namespaces\":{\"net\":\"/r/ns/net\"}}\n"
        );
        assert_eq!(ok_line(&Empty {}), b"{\"ok\":true}\n");
        assert_eq!(
            error_line("bad \"x\""),
            b"{\"ok\":false,\"error\":\"bad \\\"x\\\"\"}\n"
        );
        let event = Event::InitExited {
            exit_code: 137,
            signal: Some(9),
        };
        assert_eq!(
            event_line(&event),
            b"{\"event\":\"init_exited\",\"exit_code\":137,\"signal\":9}\n"
        );
        assert_eq!(
            serde_json::from_str::<Event>(r#"{"event":"container_exited","id":"x"}"#).unwrap(),
            Event::Unknown
        );
    }
}
