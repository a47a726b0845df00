//! P2's start: detach, create and pin the pod's namespaces, apply sysctls, open the socket,
//! report readiness; and the undo of all of it, on failure or at shutdown.

use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    io,
    os::{fd::AsFd, fd::OwnedFd, unix::fs::PermissionsExt, unix::net::UnixListener},
    path::{Path, PathBuf},
};

use crust_sys::{ExitStatus, Fork, Namespace, PidFd, Signal, SignalFd};

use super::{report, serve::Monitor, sysctl};
use crate::{
    options::Args,
    protocol::{self, Ready, NS_DIR, PID_FILE, SOCKET_NAME},
};

/// Everything P2 creates for the pod, so that it can all be undone.
#[derive(Debug, Default)]
pub(super) struct Pod {
    pub pod_id: String,
    pub dir: PathBuf,
    /// Namespace pins that are mounted.
    pins: Vec<PathBuf>,
    /// Pin files created (mounted or not).
    pin_files: Vec<PathBuf>,
    /// Whether RUNDIR/ns was created here.
    created_ns_dir: bool,
    /// The pod init, while it is not reaped.
    pub init: Option<PidFd>,
    pub init_pid: Option<i32>,
    pub socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
}

/// P2's body: set up, report, serve. Returns the exit code.
pub(super) fn run(args: Args, sync: OwnedFd) -> i32 {
    let mut pod = Pod {
        pod_id: args.pod_id.clone(),
        dir: args.dir.clone(),
        ..Pod::default()
    };
    match setup(&mut pod, &args) {
        Ok((ready, listener, signals)) => {
            if !report(&protocol::ok_line(&ready)) {
                // Nobody will ever know of this monitor: leave nothing behind.
                pod.kill_init();
                pod.release();
                return 1;
            }
            // Stdio goes to /dev/null before P1 is released, so once P1 has exited (crustd's
            // spawn returned) the monitor holds nothing of crustd's.
            let _ = crust_sys::redirect_stdio_to_null();
            let _ = rustix::io::write(&sync, b"1");
            drop(sync);
            Monitor::new(pod, listener, signals).run()
        }
        Err(message) => {
            pod.kill_init();
            pod.release();
            report(&protocol::error_line(&message));
            1
        }
    }
}

fn setup(pod: &mut Pod, args: &Args) -> Result<(Ready, UnixListener, SignalFd), String> {
    let fail = |what: &'static str| move |e: crust_sys::Error| format!("{what}: {e}");
    crust_sys::setsid().map_err(fail("detaching"))?;
    // Hold no directory of crustd's (it could be on a mount someone wants to unmount).
    std::env::set_current_dir("/").map_err(|e| format!("changing directory to /: {e}"))?;
    crust_sys::set_child_subreaper().map_err(fail("becoming subreaper"))?;
    // SIGCHLD is taken from a signalfd in the poll loop; blocked before the pod init is forked
    // so none is lost.
    crust_sys::block_signals(&[Signal::CHILD]).map_err(fail("blocking SIGCHLD"))?;
    let signals = SignalFd::new(&[Signal::CHILD]).map_err(fail("watching SIGCHLD"))?;

    let own: Vec<Namespace> = [
        (args.net, Namespace::Net),
        (args.ipc, Namespace::Ipc),
        (args.uts, Namespace::Uts),
    ]
    .into_iter()
    .filter_map(|(on, ns)| on.then_some(ns))
    .collect();
    let sysctls = args
        .sysctls
        .iter()
        .map(|(k, v)| sysctl::check(k, v, &own))
        .collect::<Result<Vec<_>, _>>()?;

    let ns_dir = pod.dir.join(NS_DIR);
    if !ns_dir.is_dir() {
        std::fs::create_dir_all(&ns_dir)
            .map_err(|e| format!("creating {}: {e}", ns_dir.display()))?;
        pod.created_ns_dir = true;
    }

    crust_sys::unshare(&own).map_err(fail("creating the pod's namespaces"))?;
    if let Some(hostname) = &args.hostname {
        crust_sys::sethostname(hostname).map_err(fail("setting the pod's hostname"))?;
    }
    let mut namespaces = BTreeMap::new();
    for ns in &own {
        let pin = pod.pin(*ns, &Path::new("/proc/self/ns").join(ns.name()))?;
        namespaces.insert(ns.name().to_string(), pin);
    }
    if args.pid {
        let pin = pod.start_init()?;
        namespaces.insert(Namespace::Pid.name().to_string(), pin);
    }

    for s in &sysctls {
        sysctl::apply(s)?;
    }

    let listener = pod.listen()?;
    pod.write_pid_file()?;
    let ready = Ready {
        pid: std::process::id() as i32,
        init_pid: pod.init_pid,
        namespaces,
    };
    Ok((ready, listener, signals))
}

impl Pod {
    /// Bind-mounts the namespace link `source` onto RUNDIR/ns/NAME; returns the pin.
    fn pin(&mut self, ns: Namespace, source: &Path) -> Result<PathBuf, String> {
        let pin = self.dir.join(NS_DIR).join(ns.name());
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&pin)
            .map_err(|e| format!("creating the {ns} namespace pin {}: {e}", pin.display()))?;
        self.pin_files.push(pin.clone());
        crust_sys::bind_mount(source, &pin)
            .map_err(|e| format!("pinning the {ns} namespace: {e}"))?;
        self.pins.push(pin.clone());
        Ok(pin)
    }

    /// Forks the pod init as pid 1 of a new pid namespace and pins that namespace.
    ///
    /// `unshare(CLONE_NEWPID)` only moves our future children; right after the fork we join our
    /// own pid namespace again, so children we start later (OCI runtimes) are created beside us,
    /// not in the pod (where they could not be created at all once its init is gone).
    fn start_init(&mut self) -> Result<PathBuf, String> {
        let own_pid_ns = File::open("/proc/self/ns/pid")
            .map_err(|e| format!("opening /proc/self/ns/pid: {e}"))?;
        let me = PidFd::open(std::process::id() as i32)
            .map_err(|e| format!("starting the pod init: {e}"))?;
        crust_sys::unshare(&[Namespace::Pid])
            .map_err(|e| format!("creating the pod's pid namespace: {e}"))?;
        let forked = crust_sys::fork();
        if let Ok(Fork::Child) = forked {
            crust_sys::init::run_pod_init(Some(me));
        }
        drop(me);
        let back = crust_sys::setns(own_pid_ns.as_fd(), Namespace::Pid);
        let child = match forked {
            Ok(Fork::Parent { child }) => child,
            Ok(Fork::Child) => unreachable!("the pod init never returns"),
            Err(e) => return Err(format!("starting the pod init: {e}")),
        };
        self.init_pid = Some(child);
        // Our own child, not reaped yet: its pid cannot have been reused.
        let pidfd = PidFd::open(child).map_err(|e| format!("watching the pod init: {e}"))?;
        self.init = Some(pidfd);
        back.map_err(|e| format!("returning to the monitor's pid namespace: {e}"))?;
        self.pin(
            Namespace::Pid,
            &PathBuf::from(format!("/proc/{child}/ns/pid")),
        )
    }

    /// Binds RUNDIR/monitor.sock (mode 0600) atomically: bind to a temporary name, chmod,
    /// rename over the final name, so no one ever connects to a half-made socket.
    fn listen(&mut self) -> Result<UnixListener, String> {
        let socket = self.dir.join(SOCKET_NAME);
        // No longer than the final name, so a directory whose socket path fits sun_path fits
        // here too.
        let tmp = self.dir.join(format!(".ms{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let fail =
            |what: &str, path: &Path, e: io::Error| format!("{what} {}: {e}", path.display());
        // A deep run root makes the path longer than sun_path: bind through the directory.
        let listener = crate::protocol::socket_address(&tmp)
            .and_then(|(_dir, addr)| UnixListener::bind(addr))
            .map_err(|e| fail("listening on", &tmp, e))?;
        let done = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| fail("setting the mode of", &tmp, e))
            .and_then(|()| {
                listener
                    .set_nonblocking(true)
                    .map_err(|e| fail("setting non-blocking mode on", &tmp, e))
            })
            .and_then(|()| {
                std::fs::rename(&tmp, &socket)
                    .map_err(|e| fail("renaming the socket to", &socket, e))
            });
        if let Err(e) = done {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        self.socket = Some(socket);
        Ok(listener)
    }

    fn write_pid_file(&mut self) -> Result<(), String> {
        let path = self.dir.join(PID_FILE);
        let tmp = self.dir.join(format!(".{PID_FILE}.tmp"));
        std::fs::write(&tmp, format!("{}\n", std::process::id()))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                format!("writing {}: {e}", path.display())
            })?;
        self.pid_file = Some(path);
        Ok(())
    }

    /// The pinned namespaces by name.
    pub fn namespaces(&self) -> BTreeMap<String, PathBuf> {
        self.pins
            .iter()
            .filter_map(|pin| Some((pin.file_name()?.to_str()?.to_string(), pin.clone())))
            .collect()
    }

    /// Kills the pod init (and so its whole pid namespace) and reaps it.
    pub fn kill_init(&mut self) -> Option<ExitStatus> {
        let init = self.init.take()?;
        let _ = init.send_signal(Signal::KILL);
        init.wait().ok()
    }

    /// Unpins the namespaces, removes the pins, the socket and the pid file. Returns what
    /// failed (nothing, normally).
    pub fn release(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        for pin in self.pins.drain(..).rev() {
            if let Err(e) = crust_sys::unmount_detach(&pin) {
                errors.push(e.to_string());
            }
        }
        for file in self.pin_files.drain(..).rev() {
            if let Err(e) = std::fs::remove_file(&file) {
                if e.kind() != io::ErrorKind::NotFound {
                    errors.push(format!("removing {}: {e}", file.display()));
                }
            }
        }
        if self.created_ns_dir {
            // Only if empty: someone else's files stay.
            let _ = std::fs::remove_dir(self.dir.join(NS_DIR));
            self.created_ns_dir = false;
        }
        for path in [self.socket.take(), self.pid_file.take()]
            .into_iter()
            .flatten()
        {
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    errors.push(format!("removing {}: {e}", path.display()));
                }
            }
        }
        errors
    }
}
