//! P2's poll(2) loop: the socket's clients, `SIGCHLD` (through a signalfd), the pod init's
//! pidfd, and each container's pidfd and outputs ([`super::container`]), on one thread.
//!
//! Reaping: the pod init and the container inits are watched through their pidfds and reaped
//! with `waitid(P_PIDFD)`. Other children (orphans reparented to us as subreaper) are reaped on
//! `SIGCHLD`, but only after peeking (`WNOWAIT`) at which child exited, so a `waitpid` of ours
//! never steals the status of a watched child.
//!
//! Each turn reads at most [`READ_PER_TURN`] bytes per container output and logs them (and
//! hands them to the container's attach sessions, [`super::attach`]) before polling again, so
//! a container's burst costs a bounded buffer, not memory without end.

use std::{
    io::{self, Read, Write},
    os::unix::net::{UnixListener, UnixStream},
    time::Duration,
};

use crust_sys::{ExitStatus, SignalFd};
use rustix::event::{PollFd, PollFlags};

use super::{
    attach::{self, Frames, Session},
    container::{Container, READ_PER_TURN},
    log::Stream,
    setup::Pod,
};
use crate::protocol::{
    self, frame, AttachRequest, Attached, CreateContainer, Created, Empty, Event, InitExit,
    Request, Status,
};

/// A request line longer than this is refused and the connection closed.
const MAX_LINE: usize = 64 * 1024;
/// A client that lets this much output pile up (a watcher or an attach session that does not
/// read) is dropped.
const MAX_OUTPUT: usize = 1024 * 1024;
/// An attach session's input buffer: one whole frame.
const FRAME_INPUT: usize = frame::HEADER + frame::MAX_PAYLOAD;
/// An output buffer this big is given back once it is written.
const KEEP_OUTPUT: usize = 64 * 1024;

struct Conn {
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    watcher: bool,
    /// The connection is an attach session: frames, not lines.
    attach: Option<Session>,
    /// The peer closed its side (or sent garbage we will not read past): close once `output`
    /// is written.
    closing: bool,
    dead: bool,
}

impl Conn {
    fn new(stream: UnixStream) -> Self {
        Conn {
            stream,
            input: Vec::new(),
            output: Vec::new(),
            watcher: false,
            attach: None,
            closing: false,
            dead: false,
        }
    }

    fn send(&mut self, line: &[u8]) {
        if self.dead {
            return;
        }
        self.output.extend_from_slice(line);
        if self.output.len() > MAX_OUTPUT {
            self.dead = true;
            return;
        }
        self.flush();
    }

    /// Queues a frame (an attach session's output); a session that lets more than
    /// [`MAX_OUTPUT`] pile up is dropped.
    fn send_frame(&mut self, kind: u8, payload: &[u8]) {
        if self.dead {
            return;
        }
        if self.output.len() + frame::HEADER + payload.len() > MAX_OUTPUT {
            self.dead = true;
            self.output = Vec::new();
            return;
        }
        self.output
            .extend_from_slice(&frame::header(kind, payload.len()));
        self.output.extend_from_slice(payload);
        self.flush();
    }

    /// Writes what it can without blocking.
    fn flush(&mut self) {
        while !self.output.is_empty() && !self.dead {
            match self.stream.write(&self.output) {
                Ok(0) => self.dead = true,
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => self.dead = true,
            }
        }
        if self.output.is_empty() && self.output.capacity() > KEEP_OUTPUT {
            self.output = Vec::new();
        }
        if self.closing && self.output.is_empty() {
            self.dead = true;
        }
    }

    /// Reads what is there while `input` holds less than `limit`; false at the end of the
    /// peer's data (it closed or half-closed the connection).
    fn read_input(&mut self, limit: usize) -> bool {
        let mut buf = [0u8; 4096];
        while self.input.len() < limit {
            let want = buf.len().min(limit - self.input.len());
            match self.stream.read(&mut buf[..want]) {
                Ok(0) => return false,
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.dead = true;
                    break;
                }
            }
        }
        true
    }

    /// The next complete line of `input`.
    fn next_line(&mut self) -> Option<Vec<u8>> {
        let end = self.input.iter().position(|&b| b == b'\n')?;
        Some(self.input.drain(..=end).collect())
    }

    /// What an attach session's connection waits for.
    fn attach_flags(&self, session: &Session) -> PollFlags {
        let mut flags = PollFlags::empty();
        if !self.closing && !session.input_done && self.input.len() < FRAME_INPUT {
            flags |= PollFlags::IN;
        }
        if !self.output.is_empty() {
            flags |= PollFlags::OUT;
        }
        flags
    }
}

/// Hands output of container `id` to its attach sessions that take `stream`.
fn fan_out(conns: &mut [Conn], id: &str, stream: Stream, data: &[u8]) {
    for conn in conns {
        let kind = match &conn.attach {
            Some(session) if session.id == id && !conn.closing => session.kind_for(stream),
            _ => None,
        };
        if let Some(kind) = kind {
            conn.send_frame(kind, data);
        }
    }
}

pub(super) struct Monitor {
    pod: Pod,
    listener: UnixListener,
    signals: SignalFd,
    init_exited: Option<ExitStatus>,
    conns: Vec<Conn>,
    /// The running containers (an exited one is dropped once its exit is recorded).
    containers: Vec<Container>,
}

/// What one poll(2) found ready.
struct Woken {
    signals: bool,
    listener: bool,
    init: bool,
    conns: Vec<PollFlags>,
    /// (container index, output index) of readable outputs.
    outputs: Vec<(usize, usize)>,
    /// Indices of containers whose stdin takes more (or failed).
    stdin: Vec<usize>,
    /// IDs of containers whose pidfd is readable (their init exited).
    exited: Vec<String>,
}

/// What a polled container descriptor is.
#[derive(Clone, Copy)]
enum Slot {
    /// Its init's pidfd.
    Exit,
    /// Output `n`.
    Output(usize),
    /// Its stdin (queued attach stdin).
    Stdin,
}

/// What a request asks of the loop.
enum Next {
    Continue,
    Shutdown,
}

impl Monitor {
    pub fn new(pod: Pod, listener: UnixListener, signals: SignalFd) -> Self {
        Monitor {
            pod,
            listener,
            signals,
            init_exited: None,
            conns: Vec::new(),
            containers: Vec::new(),
        }
    }

    /// Serves until a shutdown request; returns the exit code.
    pub fn run(mut self) -> i32 {
        loop {
            let Woken {
                signals: sig,
                listener: listen,
                init,
                conns,
                outputs,
                stdin,
                exited,
            } = match self.poll() {
                Ok(ready) => ready,
                Err(_) => {
                    // poll(2) itself failing (ENOMEM) is transient; do not spin.
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            // Output before exits: an exit drains what is left anyway.
            for (c, o) in outputs {
                let container = &mut self.containers[c];
                let id = container.id.clone();
                let conns = &mut self.conns;
                container.read_output(o, READ_PER_TURN, &mut |stream, data| {
                    fan_out(conns, &id, stream, data)
                });
            }
            for c in stdin {
                self.containers[c].flush_stdin();
            }
            for id in exited {
                if let Some(i) = self.container_index(&id) {
                    self.check_container(i);
                }
            }
            if sig {
                let _ = self.signals.drain();
                self.reap_children();
            }
            if init {
                self.check_init();
            }
            if listen {
                self.accept();
            }
            let mut shutdown_by = None;
            for (i, flags) in conns.into_iter().enumerate() {
                if flags.is_empty() {
                    continue;
                }
                if flags.contains(PollFlags::OUT) {
                    self.conns[i].flush();
                }
                // An error, or a hang-up of a peer we already saw leave: nothing more to do.
                if flags.contains(PollFlags::ERR)
                    || (self.conns[i].closing && flags.contains(PollFlags::HUP))
                {
                    self.conns[i].dead = true;
                    continue;
                }
                if let Some(session) = &mut self.conns[i].attach {
                    // HUP: the peer is gone; what it sent before is still handled.
                    session.hung_up |= flags.contains(PollFlags::HUP);
                    if flags.intersects(PollFlags::IN | PollFlags::HUP)
                        && !session.input_done
                        && !self.conns[i].closing
                    {
                        let more = self.conns[i].read_input(FRAME_INPUT);
                        if let Some(session) = &mut self.conns[i].attach {
                            session.input_done |= !more;
                        }
                    }
                    continue;
                }
                if !self.conns[i].closing && flags.intersects(PollFlags::IN | PollFlags::HUP) {
                    if let Next::Shutdown = self.serve_conn(i) {
                        shutdown_by = Some(i);
                        break;
                    }
                }
            }
            if let Some(i) = shutdown_by {
                return self.shutdown(i);
            }
            self.serve_sessions();
            self.conns.retain(|c| !c.dead);
        }
    }

    /// One poll(2): whether SIGCHLD came, whether the listener has clients, whether the init's
    /// pidfd is readable, each connection's events, the containers' readable outputs and exits.
    fn poll(&mut self) -> rustix::io::Result<Woken> {
        let init = self
            .pod
            .init
            .as_ref()
            .filter(|_| self.init_exited.is_none());
        let mut fds = Vec::with_capacity(3 + self.conns.len() + 3 * self.containers.len());
        fds.push(PollFd::new(&self.signals, PollFlags::IN));
        fds.push(PollFd::new(&self.listener, PollFlags::IN));
        for conn in &self.conns {
            // A peer that closed its side keeps reading as "readable": only wait to write.
            let flags = if let Some(session) = &conn.attach {
                conn.attach_flags(session)
            } else {
                let mut flags = if conn.closing {
                    PollFlags::empty()
                } else {
                    PollFlags::IN
                };
                if !conn.output.is_empty() {
                    flags |= PollFlags::OUT;
                }
                flags
            };
            fds.push(PollFd::new(&conn.stream, flags));
        }
        if let Some(init) = init {
            fds.push(PollFd::new(init, PollFlags::IN));
        }
        let first_container = fds.len();
        // (container, what) of each fd after `first_container`.
        let mut slots = Vec::with_capacity(3 * self.containers.len());
        for (c, container) in self.containers.iter().enumerate() {
            // A held exit is reaped already: its pidfd would read ready forever.
            if container.held_exit.is_none() {
                fds.push(PollFd::new(&container.pidfd, PollFlags::IN));
                slots.push((c, Slot::Exit));
            }
            for (o, fd) in container.outputs().filter(|_| !container.hold_output) {
                fds.push(PollFd::new(fd, PollFlags::IN));
                slots.push((c, Slot::Output(o)));
            }
            if let Some(fd) = container.stdin_to_poll() {
                fds.push(PollFd::new(fd, PollFlags::OUT));
                slots.push((c, Slot::Stdin));
            }
        }
        loop {
            match rustix::event::poll(&mut fds, None) {
                Ok(_) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e),
            }
        }
        let conns = fds[2..2 + self.conns.len()]
            .iter()
            .map(|fd| fd.revents())
            .collect();
        let init_ready = init.is_some()
            && fds[..first_container]
                .last()
                .is_some_and(|fd| !fd.revents().is_empty());
        let mut outputs = Vec::new();
        let mut stdin = Vec::new();
        let mut exited = Vec::new();
        for (fd, &(c, slot)) in fds[first_container..].iter().zip(&slots) {
            if fd.revents().is_empty() {
                continue;
            }
            match slot {
                // HUP or ERR on an output is its end: reading says so.
                Slot::Output(o) => outputs.push((c, o)),
                // ERR on stdin (the container closed it): writing says so.
                Slot::Stdin => stdin.push(c),
                Slot::Exit => exited.push(self.containers[c].id.clone()),
            }
        }
        Ok(Woken {
            signals: !fds[0].revents().is_empty(),
            listener: !fds[1].revents().is_empty(),
            init: init_ready,
            conns,
            outputs,
            stdin,
            exited,
        })
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_ok() {
                        self.conns.push(Conn::new(stream));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock: all taken. Anything else (EMFILE): try again on the next round.
                Err(_) => break,
            }
        }
    }

    /// Reaps every exited child: the pod init and container inits through their pidfds, others
    /// by pid.
    fn reap_children(&mut self) {
        while let Ok(Some(pid)) = crust_sys::peek_exited_child() {
            if self.init_exited.is_none() && self.pod.init_pid == Some(pid) {
                if !self.check_init() {
                    // Cannot happen (it is a zombie); never spin on it.
                    break;
                }
            } else if let Some(i) = self.containers.iter().position(|c| c.pid == pid) {
                if !self.check_container(i) {
                    break;
                }
            } else if crust_sys::reap(pid).is_err() {
                break;
            }
        }
    }

    /// Reaps the init if it exited; true if it did.
    fn check_init(&mut self) -> bool {
        let status = match &self.pod.init {
            Some(init) if self.init_exited.is_none() => init.try_wait(),
            _ => return false,
        };
        match status {
            Ok(Some(status)) => {
                self.on_init_exit(status);
                true
            }
            _ => false,
        }
    }

    fn container_index(&self, id: &str) -> Option<usize> {
        self.containers.iter().position(|c| c.id == id)
    }

    /// Reaps container `i`'s init if it exited, and ends the container; true if it did.
    fn check_container(&mut self, i: usize) -> bool {
        let status = self.containers[i]
            .held_exit
            .or_else(|| self.containers[i].try_reap());
        match status {
            // Reaped (so it cannot block the reaping of other children), its exit kept for
            // the first attach session.
            Some(status) if self.containers[i].hold_output => {
                self.containers[i].held_exit = Some(status);
                true
            }
            Some(status) => {
                let container = self.containers.remove(i);
                self.on_container_exit(container, status);
                true
            }
            None => false,
        }
    }

    /// Logs (and hands to its attach sessions) the rest of its output, writes its exit file,
    /// then tells the watchers, and the attach sessions with an exit frame before closing them.
    fn on_container_exit(&mut self, container: Container, status: ExitStatus) {
        let id = container.id.clone();
        let conns = &mut self.conns;
        // A failed exit file write cannot be answered to anyone; the event still carries the
        // status, and crustd's recovery finds no file (as if the monitor had died).
        let (event, _written) = container.finish(status, &mut |stream, data| {
            fan_out(conns, &id, stream, data)
        });
        let line = protocol::event_line(&event);
        for conn in self.conns.iter_mut().filter(|c| c.watcher) {
            conn.send(&line);
        }
        let payload = serde_json::to_vec(&event).unwrap_or_default();
        for conn in &mut self.conns {
            if conn.attach.as_ref().is_some_and(|s| s.id == id) && !conn.closing {
                conn.send_frame(frame::EXIT, &payload);
                conn.closing = true;
                conn.flush();
            }
        }
    }

    /// Turns connection `i` into an attach session of a running container; the answer line.
    fn attach(&mut self, i: usize, req: AttachRequest) -> Vec<u8> {
        let Some(container) = self.containers.iter_mut().find(|c| c.id == req.id) else {
            return protocol::error_line(&format!("container {} is not running", req.id));
        };
        let conn = &mut self.conns[i];
        if conn.watcher {
            return protocol::error_line("a watching connection cannot attach");
        }
        container.hold_output = false;
        conn.attach = Some(Session {
            stdin: req.stdin && container.takes_stdin(),
            stdout: req.stdout,
            stderr: req.stderr,
            input_done: false,
            hung_up: false,
            id: req.id,
        });
        protocol::ok_line(&Attached {
            tty: container.terminal,
        })
    }

    /// Each turn, for every attach session: the frames it sent (those waiting for stdin room
    /// too), and its end: a session whose peer closed or half-closed the connection, or that
    /// is dropped, ends its stdin (closing the container's with `stdin_once`).
    fn serve_sessions(&mut self) {
        for conn in &mut self.conns {
            let Some(session) = &mut conn.attach else {
                continue;
            };
            let mut container = self.containers.iter_mut().find(|c| c.id == session.id);
            let mut waiting = false;
            if !conn.dead && !conn.closing {
                match attach::handle_frames(session, &mut conn.input, container.as_deref_mut()) {
                    Frames::Done => {}
                    Frames::Waiting => waiting = true,
                    Frames::TooLong => conn.dead = true,
                }
            }
            if session.hung_up {
                conn.dead = true;
            }
            if conn.dead || (session.input_done && !waiting) {
                session.end_stdin(container);
            }
        }
    }

    fn create_container(&mut self, req: &CreateContainer) -> Vec<u8> {
        if self.container_index(&req.id).is_some() {
            return protocol::error_line(&format!("container {} already exists", req.id));
        }
        match Container::create(req) {
            Ok(container) => {
                let pid = container.pid;
                self.containers.push(container);
                protocol::ok_line(&Created { pid })
            }
            Err(message) => protocol::error_line(&message),
        }
    }

    fn reopen_log(&mut self, id: &str) -> Vec<u8> {
        let Some(i) = self.container_index(id) else {
            return protocol::error_line(&format!("container {id} is not running"));
        };
        match self.containers[i].reopen_log() {
            Ok(()) => protocol::ok_line(&Empty {}),
            Err(e) => protocol::error_line(&format!("reopening the log of container {id}: {e}")),
        }
    }

    fn on_init_exit(&mut self, status: ExitStatus) {
        self.init_exited = Some(status);
        self.pod.init = None;
        let line = protocol::event_line(&init_event(status));
        for conn in self.conns.iter_mut().filter(|c| c.watcher) {
            conn.send(&line);
        }
    }

    fn status(&self) -> Status {
        Status {
            pod_id: self.pod.pod_id.clone(),
            pid: std::process::id() as i32,
            init_pid: self.pod.init_pid,
            init_exited: self.init_exited.map(|s| InitExit {
                exit_code: s.code(),
                signal: s.signal(),
            }),
            namespaces: self.pod.namespaces(),
            containers: self.containers.iter().map(Container::status).collect(),
        }
    }

    fn serve_conn(&mut self, i: usize) -> Next {
        if !self.conns[i].read_input(MAX_LINE + 1) {
            self.conns[i].closing = true;
        }
        while let Some(line) = self.conns[i].next_line() {
            let text = line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            let request = match serde_json::from_slice::<Request>(text) {
                Ok(request) => request,
                Err(e) => {
                    self.conns[i].send(&protocol::error_line(&format!("invalid request: {e}")));
                    continue;
                }
            };
            match request {
                Request::Status => {
                    let line = protocol::ok_line(&self.status());
                    self.conns[i].send(&line);
                }
                Request::Watch => {
                    let conn = &mut self.conns[i];
                    conn.watcher = true;
                    conn.send(&protocol::ok_line(&Empty {}));
                    if let Some(status) = self.init_exited {
                        conn.send(&protocol::event_line(&init_event(status)));
                    }
                }
                Request::Shutdown => return Next::Shutdown,
                Request::CreateContainer(req) => {
                    let line = self.create_container(&req);
                    self.conns[i].send(&line);
                }
                Request::ReopenLog { id } => {
                    let line = self.reopen_log(&id);
                    self.conns[i].send(&line);
                }
                // Nothing of an exited container is kept: there is nothing to drop.
                Request::Forget { id: _ } => self.conns[i].send(&protocol::ok_line(&Empty {})),
                Request::Attach(req) => {
                    let id = req.id.clone();
                    let line = self.attach(i, req);
                    self.conns[i].send(&line);
                    // A held process that exited already: its output and exit follow the
                    // answer now.
                    if let Some(c) = self
                        .containers
                        .iter()
                        .position(|c| c.id == id && c.held_exit.is_some())
                    {
                        self.check_container(c);
                    }
                    if self.conns[i].attach.is_some() {
                        // What follows the request is frames.
                        if self.conns[i].closing {
                            self.conns[i].closing = false;
                            if let Some(session) = &mut self.conns[i].attach {
                                session.input_done = true;
                            }
                        }
                        break;
                    }
                }
            }
        }
        let conn = &mut self.conns[i];
        if conn.attach.is_none() && conn.input.len() > MAX_LINE {
            conn.input.clear();
            conn.send(&protocol::error_line(&format!(
                "request longer than {MAX_LINE} bytes"
            )));
            conn.closing = true;
        }
        conn.flush();
        Next::Continue
    }

    /// Kills the containers (they would be orphaned) and the pod init, unpins everything,
    /// answers the requester, exits.
    fn shutdown(mut self, requester: usize) -> i32 {
        for container in std::mem::take(&mut self.containers) {
            if let Some(status) = container.kill() {
                self.on_container_exit(container, status);
            }
        }
        if self.init_exited.is_none() {
            if let Some(status) = self.pod.kill_init() {
                self.on_init_exit(status);
            }
        }
        // Reap what else has exited; what runs is not ours to kill (yet).
        while let Ok(Some(pid)) = crust_sys::peek_exited_child() {
            if crust_sys::reap(pid).is_err() {
                break;
            }
        }
        let errors = self.pod.release();
        let reply = if errors.is_empty() {
            protocol::ok_line(&Empty {})
        } else {
            protocol::error_line(&format!("shutting down: {}", errors.join("; ")))
        };
        // Watchers get what is pending (the init's exit) on a best-effort basis; the requester
        // gets its answer even if it has to wait a little.
        for (i, conn) in self.conns.iter_mut().enumerate() {
            if i != requester {
                conn.flush();
            }
        }
        let conn = &mut self.conns[requester];
        conn.output.extend_from_slice(&reply);
        let _ = conn.stream.set_nonblocking(false);
        let _ = conn.stream.set_write_timeout(Some(Duration::from_secs(5)));
        let _ = conn.stream.write_all(&conn.output);
        if errors.is_empty() {
            0
        } else {
            1
        }
    }
}

fn init_event(status: ExitStatus) -> Event {
    Event::InitExited {
        exit_code: status.code(),
        signal: status.signal(),
    }
}
