//! Containers: created through the OCI runtime with stdio the monitor owns, their output logged
//! in CRI format ([`super::log`]), their exit recorded.
//!
//! ```text
//! create_container ─> pipes (or a console socket) ─> spawn `<runtime> create` ─> wait for it
//!   ─> read pid_file ─> pidfd of the container init (reparented to us, the subreaper)
//! poll loop: stdout/stderr (or the pty master) readable ─> log and attach sessions;
//!   attach stdin queued ─> written to the stdin pipe (or pty master) when it takes it;
//!   pidfd readable ─> exited
//! exited: reap, drain what is left in the pipes, flush partial lines, close the log,
//!   write exit_file (tmp + rename), then the container_exited event; nothing is kept
//! ```
//!
//! Without a terminal the runtime passes its own stdio through to the container, so it is
//! spawned with the container's pipes as stdin/stdout/stderr. With one, the runtime gets
//! /dev/null and `--console-socket` (already in argv): we listen there and receive the pty
//! master over `SCM_RIGHTS`.

use std::{
    fs::File,
    io::{self, Read},
    os::{
        fd::{AsFd, OwnedFd},
        unix::{fs::PermissionsExt, net::UnixListener},
    },
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crust_sys::{ExitStatus, PidFd, Signal};
use rustix::event::{PollFd, PollFlags, Timespec};

use super::log::{LogWriter, Stream};
use crate::protocol::{ContainerExit, ContainerStatus, CreateContainer, Event};

/// Read at most this much from one output per loop turn, and log it before reading more, so a
/// burst never piles up in memory.
pub(super) const READ_PER_TURN: usize = 64 * 1024;
/// When the container has exited, what is left in a pipe is read up to this much (a process
/// outside the container's pid namespace could hold the pipe and write forever).
const DRAIN_AT_EXIT: usize = 16 * 1024 * 1024;
/// The read buffer (on the stack); [`READ_PER_TURN`] takes several reads.
const CHUNK: usize = 16 * 1024;
/// Stdin from attach sessions waiting for the container to read it, at most.
pub(super) const STDIN_QUEUE: usize = 64 * 1024;
/// How many times (5 ms apart) the monitor looks for the container init to become its child
/// after the runtime exited.
const REPARENT_TRIES: u32 = 400;

/// A running container.
#[derive(Debug)]
pub(super) struct Container {
    pub id: String,
    /// Its init, in our pid namespace.
    pub pid: i32,
    pub pidfd: PidFd,
    /// stdout and stderr read ends (non-blocking); with a terminal, the pty master in
    /// `outputs[0]` (it is stdin too) and nothing in `outputs[1]`. `None` once at EOF.
    outputs: [Option<OwnedFd>; 2],
    /// The write end of the container's stdin pipe, kept for attach (not with a terminal).
    stdin: Option<OwnedFd>,
    /// Attach sessions may write stdin: it was created with stdin, and it is not closed.
    stdin_open: bool,
    /// Stdin received from attach sessions and not yet taken by the container.
    stdin_queue: Vec<u8>,
    /// Close stdin once the queue is written.
    stdin_closing: bool,
    /// Close stdin when the first attach session with stdin ends.
    pub stdin_once: bool,
    /// `outputs[0]` is a pty master.
    pub terminal: bool,
    /// Output is not read until the first attach session (an exec session's process: what
    /// it prints before crustd attaches waits in the pipe or pty instead of being lost).
    pub hold_output: bool,
    /// With `hold_output`: the process was reaped before anyone attached; its exit is handled
    /// (output drained, exit frame) once the first session has attached.
    pub held_exit: Option<ExitStatus>,
    log: LogWriter,
    exit_file: PathBuf,
}

/// What happened to an output when it was read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ReadEnd {
    /// Read what there was (or the per-turn limit).
    More,
    /// At its end: it is closed and no longer polled.
    Closed,
}

impl Container {
    /// Runs `req.argv` (the runtime's `create`) with the container's stdio and waits for it,
    /// bounded by `req.timeout_ms`. This blocks the monitor's loop for the runtime's run (50 to
    /// 100 ms normally): nothing else needs serving meanwhile, and a create is rare.
    pub fn create(req: &CreateContainer) -> Result<Container, String> {
        if req.id.is_empty() {
            return Err("a container needs an id".into());
        }
        let Some((program, args)) = req.argv.split_first() else {
            return Err(format!("container {}: empty runtime command", req.id));
        };
        let console = match (&req.terminal, &req.console_socket) {
            (true, Some(path)) => Some(ConsoleSocket::bind(path)?),
            (true, None) => {
                return Err(format!(
                    "container {}: a terminal needs a console_socket",
                    req.id
                ))
            }
            (false, _) => None,
        };
        let log = LogWriter::open(&req.log_path, req.terminal)
            .map_err(|e| format!("opening the log {}: {e}", req.log_path.display()))?;

        let mut command = Command::new(program);
        command.args(args);
        // The container's stdio: its ends go to the runtime, ours stay here.
        let (mut outputs, mut stdin) = ([None, None], None);
        if console.is_some() {
            command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        } else {
            let pipe = || crust_sys::pipe().map_err(|e| e.to_string());
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            command
                .stdout(Stdio::from(out_w))
                .stderr(Stdio::from(err_w));
            if req.stdin {
                let (in_r, in_w) = pipe()?;
                command.stdin(Stdio::from(in_r));
                stdin = Some(in_w);
            } else {
                command.stdin(Stdio::null());
            }
            outputs = [Some(out_r), Some(err_r)];
        }
        let console = console.map(|c| (c, req.console_size));
        let (status, master) = run_runtime(command, console.as_ref(), req.timeout_ms)?;
        drop(console); // removes the socket file
        match status {
            ExitStatus::Exited(0) => {}
            ExitStatus::Exited(code) => {
                return Err(format!("runtime create exited with status {code}"))
            }
            ExitStatus::Signaled(sig) => {
                return Err(format!("runtime create was killed by signal {sig}"))
            }
        }
        if req.terminal {
            let Some(master) = master else {
                return Err("the runtime sent no terminal over the console socket".into());
            };
            outputs = [Some(master), None];
        }
        for fd in outputs.iter().flatten().chain(stdin.iter()) {
            crust_sys::set_nonblocking(fd).map_err(|e| e.to_string())?;
        }

        let pid = read_pid_file(&req.pid_file)?;
        let pidfd = PidFd::open(pid).map_err(|e| format!("watching the container init: {e}"))?;
        // The init was the runtime's child; with the runtime gone it is ours (subreaper). If it
        // is not, its exit would never reach us. `run --detach` may leave an intermediate
        // runtime process exiting just after the one we waited for (crun does): the init is
        // reparented to us a moment later, so look again for a while.
        let mut tries = 0;
        loop {
            match pidfd.is_child() {
                Ok(true) => break,
                Ok(false) if tries < REPARENT_TRIES => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Ok(false) => {
                    return Err(format!(
                        "the container init (pid {pid}) is not a child of the monitor"
                    ))
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(Container {
            id: req.id.clone(),
            pid,
            pidfd,
            outputs,
            stdin,
            stdin_open: req.stdin,
            stdin_queue: Vec::new(),
            stdin_closing: false,
            stdin_once: req.stdin_once,
            terminal: req.terminal,
            hold_output: req.hold_output,
            held_exit: None,
            log,
            exit_file: req.exit_file.clone(),
        })
    }

    pub fn status(&self) -> ContainerStatus {
        ContainerStatus {
            id: self.id.clone(),
            pid: self.pid,
        }
    }

    /// The outputs to poll: (index, fd).
    pub fn outputs(&self) -> impl Iterator<Item = (usize, &OwnedFd)> {
        self.outputs
            .iter()
            .enumerate()
            .filter_map(|(i, fd)| Some((i, fd.as_ref()?)))
    }

    /// Reads output `index` up to `limit` bytes (or until it would block), logs it and hands
    /// each piece (at most [`CHUNK`] bytes) to `sink` (the attach sessions).
    pub fn read_output(
        &mut self,
        index: usize,
        limit: usize,
        sink: &mut dyn FnMut(Stream, &[u8]),
    ) -> ReadEnd {
        let stream = if index == 0 {
            Stream::Stdout
        } else {
            Stream::Stderr
        };
        let mut buf = [0u8; CHUNK];
        let mut total = 0;
        while total < limit {
            let Some(fd) = &self.outputs[index] else {
                return ReadEnd::Closed;
            };
            let want = CHUNK.min(limit - total);
            match rustix::io::read(fd, &mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => {
                    total += n;
                    // A full disk loses output; the container goes on.
                    let _ = self.log.write(stream, &buf[..n]);
                    sink(stream, &buf[..n]);
                    continue;
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => return ReadEnd::More,
                // EIO: a pty master whose other side is all closed. Anything else: give up
                // on this output too.
                Err(_) => break,
            }
        }
        if total >= limit {
            return ReadEnd::More;
        }
        self.outputs[index] = None;
        let _ = self.log.finish(stream);
        ReadEnd::Closed
    }

    /// Whether attach sessions may write stdin.
    pub fn takes_stdin(&self) -> bool {
        self.stdin_open && !self.stdin_closing
    }

    /// Room left in the stdin queue.
    pub fn stdin_room(&self) -> usize {
        STDIN_QUEUE.saturating_sub(self.stdin_queue.len())
    }

    /// Queues stdin from an attach session (the caller checked [`Container::stdin_room`]) and
    /// writes what the container takes now.
    pub fn queue_stdin(&mut self, data: &[u8]) {
        if self.takes_stdin() {
            self.stdin_queue.extend_from_slice(data);
            self.flush_stdin();
        }
    }

    /// Closes stdin once what is queued is written (`stdin_once`).
    pub fn close_stdin(&mut self) {
        if self.stdin_open {
            self.stdin_closing = true;
            self.flush_stdin();
        }
    }

    /// Where stdin goes: the pipe, or the pty master.
    fn stdin_fd(&self) -> Option<&OwnedFd> {
        if !self.stdin_open {
            None
        } else if self.terminal {
            self.outputs[0].as_ref()
        } else {
            self.stdin.as_ref()
        }
    }

    /// The descriptor to poll for writing: there is queued stdin.
    pub fn stdin_to_poll(&self) -> Option<&OwnedFd> {
        self.stdin_fd().filter(|_| !self.stdin_queue.is_empty())
    }

    /// Writes queued stdin until the container stops taking it; closes stdin when asked to
    /// and the queue is empty, or when the container's side is gone (EPIPE).
    pub fn flush_stdin(&mut self) {
        let mut written = 0;
        let mut broken = false;
        if let Some(fd) = self.stdin_fd() {
            while written < self.stdin_queue.len() {
                match rustix::io::write(fd, &self.stdin_queue[written..]) {
                    Ok(0) => break,
                    Ok(n) => written += n,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(rustix::io::Errno::AGAIN) => break,
                    Err(_) => {
                        broken = true;
                        break;
                    }
                }
            }
        } else {
            broken = true;
        }
        self.stdin_queue.drain(..written);
        if broken || (self.stdin_closing && self.stdin_queue.is_empty()) {
            // A terminal's master is its output too: it stays; only the stdin ends.
            self.stdin = None;
            self.stdin_open = false;
            self.stdin_closing = false;
            self.stdin_queue = Vec::new();
        } else if self.stdin_queue.is_empty() && self.stdin_queue.capacity() > STDIN_QUEUE {
            self.stdin_queue = Vec::new();
        }
    }

    /// Sets a terminal's window size; nothing without a terminal.
    pub fn resize(&self, width: u16, height: u16) {
        if let (true, Some(master)) = (self.terminal, &self.outputs[0]) {
            set_window_size(master, width, height);
        }
    }

    /// Closes and reopens the log file (kubelet rotated it).
    pub fn reopen_log(&mut self) -> io::Result<()> {
        self.log.reopen()
    }

    /// Reaps the init if it has exited; its status then.
    pub fn try_reap(&self) -> Option<ExitStatus> {
        self.pidfd.try_wait().ok().flatten()
    }

    /// Kills the init and reaps it (at shutdown).
    pub fn kill(&self) -> Option<ExitStatus> {
        let _ = self.pidfd.send_signal(Signal::KILL);
        self.pidfd.wait().ok()
    }

    /// The end of a container whose init was reaped with `status`: logs what is still in its
    /// outputs (handing it to `sink` too), closes everything, writes the exit file; returns
    /// the event for the watchers.
    pub fn finish(
        mut self,
        status: ExitStatus,
        sink: &mut dyn FnMut(Stream, &[u8]),
    ) -> (Event, Result<(), String>) {
        let finished_at = unix_nanos(SystemTime::now());
        for index in 0..2 {
            // Everything readable now, then stop: at exit the writers are gone (unless
            // something outside the container holds the pipe, which may keep it open).
            self.read_output(index, DRAIN_AT_EXIT, sink);
            let stream = if index == 0 {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            let _ = self.log.finish(stream);
        }
        let exit = ContainerExit {
            exit_code: status.code(),
            signal: status.signal(),
            finished_at,
        };
        let written = write_exit_file(&self.exit_file, &exit)
            .map_err(|e| format!("writing {}: {e}", self.exit_file.display()));
        let event = Event::ContainerExited {
            id: std::mem::take(&mut self.id),
            exit_code: exit.exit_code,
            signal: exit.signal,
            finished_at,
        };
        (event, written)
    }
}

/// The unix socket a runtime sends a terminal's master to (`--console-socket`); removed on
/// drop.
struct ConsoleSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    fn bind(path: &Path) -> Result<Self, String> {
        let fail = |what: &str, e: io::Error| format!("{what} {}: {e}", path.display());
        // A stale one from a create that failed before (ours to replace: the path is ours).
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).map_err(|e| fail("listening on", e))?;
        let socket = ConsoleSocket {
            path: path.to_path_buf(),
            listener,
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| fail("setting the mode of", e))?;
        socket
            .listener
            .set_nonblocking(true)
            .map_err(|e| fail("setting non-blocking mode on", e))?;
        Ok(socket)
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Spawns the runtime and waits for it to exit, until `deadline` (then kills it). With a
/// console socket, takes the runtime's connection and the master it sends meanwhile.
// The child is reaped through its pidfd, never through `Child::wait`.
#[allow(clippy::zombie_processes)]
fn run_runtime(
    mut command: Command,
    console: Option<&(ConsoleSocket, Option<(u16, u16)>)>,
    timeout_ms: u64,
) -> Result<(ExitStatus, Option<OwnedFd>), String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let child = command
        .spawn()
        .map_err(|e| format!("running the runtime {program}: {e}"))?;
    // Our ends of the child's stdio close with the command (the runtime has its copies).
    drop(command);
    // Our own child, not reaped: its pid cannot have been reused.
    let runtime = PidFd::open(child.id() as i32).map_err(|e| e.to_string())?;
    drop(child);
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    let mut conn: Option<std::os::unix::net::UnixStream> = None;
    let mut master: Option<OwnedFd> = None;
    loop {
        if let Some(status) = runtime.try_wait().map_err(|e| e.to_string())? {
            // The runtime sent the master before exiting: it is queued on the socket.
            if let (Some(console), None) = (console, &master) {
                master = take_master(console, &mut conn)?;
            }
            return Ok((status, master));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = runtime.send_signal(Signal::KILL);
            let _ = runtime.wait();
            return Err(format!(
                "runtime create did not finish within {timeout_ms} ms (killed)"
            ));
        }
        let timeout = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let want_console = console.filter(|_| master.is_none());
        let mut fds = Vec::with_capacity(3);
        fds.push(PollFd::new(&runtime, PollFlags::IN));
        if let Some(console) = want_console {
            match &conn {
                Some(stream) => fds.push(PollFd::new(stream, PollFlags::IN)),
                None => fds.push(PollFd::new(&console.0.listener, PollFlags::IN)),
            }
        }
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(format!("waiting for the runtime: {e}")),
        }
        let console_ready = fds.get(1).is_some_and(|fd| !fd.revents().is_empty());
        drop(fds);
        if let (true, Some(console)) = (console_ready, want_console) {
            master = take_master(console, &mut conn)?;
        }
    }
}

/// TIOCSWINSZ on a pty master; a failure (the terminal is gone) changes nothing.
fn set_window_size(master: &OwnedFd, width: u16, height: u16) {
    let size = rustix::termios::Winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let _ = rustix::termios::tcsetwinsize(master, size);
}

/// Accepts the runtime's connection if there is one and receives the master if it was sent;
/// sets the window size on it at once when one is asked for.
fn take_master(
    (console, size): &(ConsoleSocket, Option<(u16, u16)>),
    conn: &mut Option<std::os::unix::net::UnixStream>,
) -> Result<Option<OwnedFd>, String> {
    if conn.is_none() {
        match console.listener.accept() {
            Ok((stream, _)) => {
                // Non-blocking: a runtime that connects and then hangs must not hang us; the
                // wait loop polls the connection until the message is there.
                stream
                    .set_nonblocking(true)
                    .map_err(|e| format!("accepting on the console socket: {e}"))?;
                *conn = Some(stream);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(None),
            Err(e) => return Err(format!("accepting on the console socket: {e}")),
        }
    }
    let Some(stream) = conn.as_ref() else {
        return Ok(None);
    };
    // The runtime sends the master in one message right after connecting.
    let received = match crust_sys::recv_fd(stream.as_fd()) {
        Ok(received) => received,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    *conn = None;
    match received {
        Some(master) => {
            if let Some((width, height)) = size {
                set_window_size(&master, *width, *height);
            }
            Ok(Some(master))
        }
        None => Err("the runtime sent no terminal over the console socket".into()),
    }
}

fn read_pid_file(path: &Path) -> Result<i32, String> {
    let mut text = String::new();
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|e| format!("reading the container's pid file {}: {e}", path.display()))?;
    text.trim()
        .parse::<i32>()
        .ok()
        .filter(|&pid| pid > 0)
        .ok_or_else(|| format!("{}: not a pid: {:?}", path.display(), text.trim()))
}

/// Writes `exit` to `path` atomically: a temporary file beside it, then a rename.
fn write_exit_file(path: &Path, exit: &ContainerExit) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)?;
        }
    }
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let json = serde_json::to_vec(exit).map_err(io::Error::other)?;
    // Root's only, like everything crustd keeps about its containers.
    let done = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&json))
        .and_then(|()| File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_files_are_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c1/exit.json");
        let exit = ContainerExit {
            exit_code: 137,
            signal: Some(9),
            finished_at: 42,
        };
        write_exit_file(&path, &exit).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            r#"{"exit_code":137,"signal":9,"finished_at":42}"#
        );
        assert_eq!(crate::protocol::read_exit_file(&path).unwrap(), Some(exit));
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["exit.json"]);
    }

    #[test]
    fn pid_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pid");
        std::fs::write(&path, "4321").unwrap();
        assert_eq!(read_pid_file(&path).unwrap(), 4321);
        std::fs::write(&path, "0\n").unwrap();
        assert!(read_pid_file(&path).unwrap_err().contains("not a pid"));
        assert!(read_pid_file(&dir.path().join("none"))
            .unwrap_err()
            .contains("pid file"));
    }

    #[test]
    fn a_failing_runtime_is_reported_and_a_slow_one_killed() {
        let dir = tempfile::tempdir().unwrap();
        let req = |argv: &[&str], timeout_ms| CreateContainer {
            id: "c1".into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            pid_file: dir.path().join("pid"),
            log_path: dir.path().join("log"),
            exit_file: dir.path().join("exit"),
            timeout_ms,
            ..CreateContainer::default()
        };
        let err = Container::create(&req(&["sh", "-c", "exit 3"], 10_000)).unwrap_err();
        assert_eq!(err, "runtime create exited with status 3");
        let start = Instant::now();
        let err = Container::create(&req(&["sleep", "100"], 200)).unwrap_err();
        assert!(err.contains("did not finish"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
        let err = Container::create(&req(&["/nonexistent/runc"], 1000)).unwrap_err();
        assert!(err.contains("/nonexistent/runc"), "{err}");
        // Exit 0 but no pid file.
        let err = Container::create(&req(&["true"], 1000)).unwrap_err();
        assert!(err.contains("pid file"), "{err}");

        // A runtime that connects to the console socket and then hangs is killed in time, and
        // the socket file is removed.
        let socket = dir.path().join("console.sock");
        let script = format!(
            "import socket, time\ns = socket.socket(socket.AF_UNIX)\ns.connect({:?})\ntime.sleep(100)",
            socket.to_str().unwrap()
        );
        let mut hung = req(&["python3", "-c", &script], 1000);
        hung.terminal = true;
        hung.console_socket = Some(socket.clone());
        let start = Instant::now();
        let err = Container::create(&hung).unwrap_err();
        assert!(err.contains("did not finish"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(!socket.exists());
        // A terminal without a console socket is refused before anything runs.
        hung.console_socket = None;
        assert!(Container::create(&hung)
            .unwrap_err()
            .contains("console_socket"));
    }
}
