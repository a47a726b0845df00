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
//! Containers ([`CreateContainer`]): the monitor runs the OCI runtime's `create` with stdio it
//! owns, logs the container's output in CRI format and records its exit.
//!
//! ```text
//! > {"op":"create_container","id":"c1","argv":["/usr/bin/runc","--root","/run/crust/runc",
//!    "--log","/run/crust/pods/p1/c1/runtime.log","--log-format","json","create",
//!    "--bundle","/run/crust/pods/p1/c1/bundle","--pid-file","/run/crust/pods/p1/c1/container.pid","c1"],
//!    "pid_file":"/run/crust/pods/p1/c1/container.pid","log_path":"/var/log/pods/ns_p_uid/c/0.log",
//!    "exit_file":"/run/crust/pods/p1/c1/exit.json","terminal":false,"console_socket":null,
//!    "stdin":false,"stdin_once":false,"timeout_ms":60000}
//! < {"ok":true,"pid":4321}
//! < {"ok":false,"error":"runtime create exited with status 1"}
//! > {"op":"reopen_log","id":"c1"}
//! < {"ok":true}
//! < {"ok":false,"error":"container c1 is not running"}
//! > {"op":"forget","id":"c1"}
//! < {"ok":true}
//! > {"op":"status"}
//! < {"ok":true,"pod_id":"p1",...,"containers":[{"id":"c1","pid":4321}]}
//! < {"event":"container_exited","id":"c1","exit_code":7,"signal":null,"finished_at":1733130000123456789}
//! ```
//!
//! `pid` is the container's init (read from `pid_file` once the runtime exited 0), in the
//! monitor's pid namespace. When the runtime fails, crustd reads the runtime's own log for the
//! reason. `status` lists the running containers only. The exit is written to `exit_file`
//! ([`ContainerExit`], atomically) before the event is sent; the monitor then keeps nothing of
//! the container, so `forget` has nothing to drop today and always succeeds.
//!
//! Attach ([`AttachRequest`]): the connection becomes an attach session to a running
//! container's stdio (CRI Attach). After the answer line the connection carries binary frames
//! both ways instead of JSON lines:
//!
//! ```text
//! > {"op":"attach","id":"c1","stdin":true,"stdout":true,"stderr":true}
//! < {"ok":true,"tty":false}
//! < {"ok":false,"error":"container c1 is not running"}
//!
//! frame = kind (1 byte) | length (4 bytes, big-endian) | payload (length bytes, <= 32 KiB)
//!
//! crustd -> monitor                         monitor -> crustd
//!   0 stdin data                              1 stdout data (all of a tty's output)
//!   4 resize {"width":W,"height":H}           2 stderr data
//!   5 stdin close (empty)                     3 exit: the container_exited event's JSON,
//!                                               after the last output; then the monitor
//!                                               closes the connection
//! ```
//!
//! - Output: each session gets a copy of the container's output from the moment it attached
//!   (kind 1 only if it asked for `stdout`, kind 2 only for `stderr`); the CRI log gets it as
//!   before. A session that lets more than 1 MiB of frames pile up (it does not read) is
//!   dropped: its connection is closed, the container and the other sessions go on.
//! - Stdin (kind 0) goes to the container's stdin pipe (or pty master), interleaved in arrival
//!   order between sessions; ignored when the session did not ask for `stdin` or the
//!   container was created without it. The monitor buffers at most 64 KiB of it per container
//!   and stops reading a session's frames while that is full.
//! - Resize (kind 4) sets a terminal container's window size (`TIOCSWINSZ`); ignored without a
//!   terminal.
//! - Stdin close (kind 5), or the end of a session that had stdin (its connection closed or
//!   half-closed): for a container created with `stdin_once`, its stdin is closed (after the
//!   stdin already received is written; the pipe's write end is closed, a terminal only stops
//!   taking stdin); without `stdin_once`, only this session's stdin ends.
//! - A frame longer than 32 KiB closes the session; frames of unknown kinds are ignored.
//!   Detaching (closing the connection) never stops the container.
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
    /// Kill the running containers (recording their exits as when they exit on their own),
    /// then the pod init (and with it everything in the pod's pid namespace), unpin the
    /// namespaces, answer `{"ok":true}`, remove the socket and pid file, exit.
    Shutdown,
    /// Run the OCI runtime's `create`; answered with a [`Created`].
    CreateContainer(CreateContainer),
    /// Close and reopen a running container's log file (it was rotated).
    ReopenLog { id: String },
    /// Drop what remains of an exited container (nothing, today); always `{"ok":true}`.
    Forget { id: String },
    /// Attach to a running container's stdio; answered with an [`Attached`], after which the
    /// connection carries frames (see the module's documentation).
    Attach(AttachRequest),
}

/// Which of a container's streams an attach session takes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachRequest {
    pub id: String,
    /// Send stdin (kind 0 frames are ignored without it).
    #[serde(default)]
    pub stdin: bool,
    /// Receive stdout (kind 1): for a terminal, all output.
    #[serde(default)]
    pub stdout: bool,
    /// Receive stderr (kind 2).
    #[serde(default)]
    pub stderr: bool,
}

/// The answer to [`Request::Attach`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attached {
    /// The container has a terminal: its output is all stdout, and resize applies.
    pub tty: bool,
}

/// The payload of a resize frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resize {
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
}

/// Attach frame kinds (the first byte of a frame).
pub mod frame {
    /// crustd -> monitor: stdin data.
    pub const STDIN: u8 = 0;
    /// monitor -> crustd: stdout data.
    pub const STDOUT: u8 = 1;
    /// monitor -> crustd: stderr data.
    pub const STDERR: u8 = 2;
    /// monitor -> crustd: the container exited (the `container_exited` event's JSON).
    pub const EXIT: u8 = 3;
    /// crustd -> monitor: a terminal's new size ([`super::Resize`]).
    pub const RESIZE: u8 = 4;
    /// crustd -> monitor: this session's stdin ended.
    pub const CLOSE_STDIN: u8 = 5;
    /// The header: kind and big-endian length.
    pub const HEADER: usize = 5;
    /// The longest payload either side sends or takes.
    pub const MAX_PAYLOAD: usize = 32 * 1024;

    /// The header of a frame of `kind` carrying `len` bytes.
    pub fn header(kind: u8, len: usize) -> [u8; HEADER] {
        let [a, b, c, d] = (len as u32).to_be_bytes();
        [kind, a, b, c, d]
    }

    /// (kind, payload length) of a header.
    pub fn parse_header(header: &[u8; HEADER]) -> (u8, usize) {
        let [kind, a, b, c, d] = *header;
        (kind, u32::from_be_bytes([a, b, c, d]) as usize)
    }
}

/// How to create a container: the runtime command crustd built and the stdio the monitor
/// makes for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateContainer {
    /// The container's ID (for the protocol and the events; the runtime gets it in `argv`).
    pub id: String,
    /// The full runtime command: `runc --root R --log L --log-format json create --bundle B
    /// --pid-file P [--console-socket S] ID`.
    pub argv: Vec<String>,
    /// Where the runtime writes the container init's pid (`--pid-file` in `argv`).
    pub pid_file: PathBuf,
    /// The CRI log file; empty: output is read and discarded.
    #[serde(default)]
    pub log_path: PathBuf,
    /// Where the exit status is written ([`ContainerExit`]) when the container exits.
    pub exit_file: PathBuf,
    /// The container has a terminal: `argv` carries `--console-socket <console_socket>`.
    #[serde(default)]
    pub terminal: bool,
    /// The socket the monitor listens on for the pty master (with `terminal`).
    #[serde(default)]
    pub console_socket: Option<PathBuf>,
    /// Keep a stdin pipe open for attach (else the container's stdin is /dev/null).
    #[serde(default)]
    pub stdin: bool,
    /// Close stdin once the first attach ends.
    #[serde(default)]
    pub stdin_once: bool,
    /// How long the runtime may take.
    #[serde(default = "default_create_timeout_ms")]
    pub timeout_ms: u64,
    /// Read no output until the first attach session: for an exec'd process (argv a runtime
    /// `exec --detach`), whose client attaches right after, nothing it prints first is lost.
    #[serde(default)]
    pub hold_output: bool,
    /// With `terminal`: the window size (width, height) set on the pty the moment the
    /// runtime hands it over. runc applies `process.consoleSize` itself before the process
    /// starts; crun 1.8 ignores it for exec, so this narrows the time a process can see 0x0.
    #[serde(default)]
    pub console_size: Option<(u16, u16)>,
}

fn default_create_timeout_ms() -> u64 {
    60_000
}

/// The answer to [`Request::CreateContainer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    /// The container init's pid, in the monitor's pid namespace.
    pub pid: i32,
}

/// A running container, in [`Status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub id: String,
    /// Its init's pid.
    pub pid: i32,
}

/// How a container ended: the content of its exit file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerExit {
    /// The exit code, or 128 + the signal number when a signal killed it.
    pub exit_code: i32,
    /// The signal that killed it, if one did.
    #[serde(default)]
    pub signal: Option<i32>,
    /// When the monitor reaped it, in nanoseconds since the Unix epoch.
    pub finished_at: u64,
}

/// Reads a container's exit file: `None` when there is none (the container has not exited, or
/// its monitor died before recording it). For crustd's recovery; synchronous.
pub fn read_exit_file(path: &std::path::Path) -> std::io::Result<Option<ContainerExit>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
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
    /// The running containers.
    #[serde(default)]
    pub containers: Vec<ContainerStatus>,
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
    /// A container's init exited (and its exit file is written).
    ContainerExited {
        id: String,
        exit_code: i32,
        #[serde(default)]
        signal: Option<i32>,
        /// Nanoseconds since the Unix epoch.
        finished_at: u64,
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
            serde_json::from_str::<Event>(r#"{"event":"oom","id":"x"}"#).unwrap(),
            Event::Unknown
        );
        let exited = Event::ContainerExited {
            id: "c1".into(),
            exit_code: 0,
            signal: None,
            finished_at: 1_733_130_000_123_456_789,
        };
        assert_eq!(
            event_line(&exited),
            b"{\"event\":\"container_exited\",\"id\":\"c1\",\"exit_code\":0,\"signal\":null,\"finished_at\":1733130000123456789}\n"
        );
    }

    #[test]
    fn container_requests_parse_with_defaults_and_ignore_unknown_fields() {
        let line = r#"{"op":"create_container","id":"c1","argv":["/usr/bin/runc","create","c1"],
            "pid_file":"/r/c1.pid","log_path":"","exit_file":"/r/exit.json","future":1}"#;
        let Request::CreateContainer(create) = serde_json::from_str(line).unwrap() else {
            panic!("a create_container request");
        };
        assert_eq!(create.id, "c1");
        assert_eq!(create.argv, ["/usr/bin/runc", "create", "c1"]);
        assert!(create.log_path.as_os_str().is_empty());
        assert!(!create.terminal && !create.stdin && create.console_socket.is_none());
        assert_eq!(create.timeout_ms, 60_000);
        let back: Request = serde_json::from_str(
            &serde_json::to_string(&Request::CreateContainer(create.clone())).unwrap(),
        )
        .unwrap();
        assert_eq!(back, Request::CreateContainer(create));
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"op":"reopen_log","id":"c1"}"#).unwrap(),
            Request::ReopenLog { id: "c1".into() }
        );
        assert_eq!(
            serde_json::to_string(&Request::Forget { id: "c1".into() }).unwrap(),
            r#"{"op":"forget","id":"c1"}"#
        );
        // A status from an older monitor has no containers.
        let status: Status = serde_json::from_str(
            r#"{"pod_id":"p","pid":1,"init_pid":null,"init_exited":null,"namespaces":{}}"#,
        )
        .unwrap();
        assert!(status.containers.is_empty());
    }

    #[test]
    fn attach_requests_and_frames() {
        let req: Request = serde_json::from_str(
            r#"{"op":"attach","id":"c1","stdin":true,"stdout":true,"stderr":false}"#,
        )
        .unwrap();
        assert_eq!(
            req,
            Request::Attach(AttachRequest {
                id: "c1".into(),
                stdin: true,
                stdout: true,
                stderr: false,
            })
        );
        // Streams not named are not taken.
        let Request::Attach(bare) = serde_json::from_str(r#"{"op":"attach","id":"c1"}"#).unwrap()
        else {
            panic!("an attach request");
        };
        assert!(!bare.stdin && !bare.stdout && !bare.stderr);
        assert_eq!(
            ok_line(&Attached { tty: false }),
            b"{\"ok\":true,\"tty\":false}\n"
        );
        assert_eq!(frame::header(frame::STDOUT, 258), [1, 0, 0, 1, 2]);
        assert_eq!(frame::parse_header(&[4, 0, 0, 0x80, 0]), (4, 32 * 1024));
        assert_eq!(
            serde_json::from_str::<Resize>(r#"{"width":100,"height":30}"#).unwrap(),
            Resize {
                width: 100,
                height: 30
            }
        );
        // The exit frame's payload (the event) reads as a ContainerExit.
        let event = Event::ContainerExited {
            id: "c1".into(),
            exit_code: 3,
            signal: None,
            finished_at: 9,
        };
        let exit: ContainerExit = serde_json::to_vec(&event)
            .and_then(|json| serde_json::from_slice(&json))
            .unwrap();
        assert_eq!(
            (exit.exit_code, exit.signal, exit.finished_at),
            (3, None, 9)
        );
    }

    #[test]
    fn exit_files_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exit.json");
        assert_eq!(read_exit_file(&path).unwrap(), None);
        std::fs::write(&path, r#"{"exit_code":137,"signal":9,"finished_at":5}"#).unwrap();
        assert_eq!(
            read_exit_file(&path).unwrap(),
            Some(ContainerExit {
                exit_code: 137,
                signal: Some(9),
                finished_at: 5
            })
        );
        std::fs::write(&path, "garbage").unwrap();
        let err = read_exit_file(&path).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }
}
