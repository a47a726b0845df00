//! Argument vectors for the runtime CLI. Pure: nothing here spawns a process.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// One OCI runtime handler: which binary to run and where it keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    /// Path of the runtime CLI (`runc`, `crun`).
    pub binary: PathBuf,
    /// The runtime's state directory, passed as the global `--root`. Absolute: crun resolves a
    /// relative one against the bundle directory on `create` and against the cwd otherwise.
    pub root: PathBuf,
    /// Pass `--systemd-cgroup`, so `linux.cgroupsPath` is read as `slice:prefix:name`.
    pub systemd_cgroup: bool,
}

/// What `create` needs besides the container id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOptions {
    /// The OCI bundle: the directory holding `config.json`.
    pub bundle: PathBuf,
    /// Where the runtime writes the container's init pid.
    pub pid_file: PathBuf,
    /// A unix socket receiving the pty master when `process.terminal` is set.
    pub console_socket: Option<PathBuf>,
    /// The runtime's JSON log (global `--log`); runc appends to it, see [`crate::last_error_after`].
    pub log: PathBuf,
}

impl Runtime {
    /// A runtime without systemd cgroup management.
    pub fn new(binary: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Self {
        Runtime {
            binary: binary.into(),
            root: root.into(),
            systemd_cgroup: false,
        }
    }

    /// The argv (argv\[0\] = binary) of `create`: the global flags, then
    /// `create --bundle B --pid-file P [--console-socket S] ID`.
    ///
    /// Sync on purpose: crust-monitor spawns it itself, with the container's stdio.
    pub fn create_argv(&self, id: &str, opts: &CreateOptions) -> Vec<OsString> {
        self.create_or_run(&["create"], id, opts)
    }

    /// The argv of `run --detach`: [`Runtime::create_argv`] and `start` in one runtime process
    /// (one exec and one Go or C runtime start-up fewer on the hot path). The container runs
    /// once it returns; its stdio is the caller's, as with `create`.
    pub fn run_detached_argv(&self, id: &str, opts: &CreateOptions) -> Vec<OsString> {
        self.create_or_run(&["run", "--detach"], id, opts)
    }

    /// The argv of `exec --detach --process P --pid-file F [--console-socket S] ID`: the
    /// runtime starts the process and exits, leaving it to its parent's subreaper (the pod
    /// monitor, which spawns this for an exec with a terminal: a runtime waiting in the
    /// foreground cannot hand the terminal over).
    pub fn exec_detached_argv(
        &self,
        id: &str,
        process: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        log: &Path,
    ) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "exec".into(),
            "--detach".into(),
            "--process".into(),
            process.into(),
            "--pid-file".into(),
            pid_file.into(),
        ];
        if let Some(socket) = console_socket {
            args.push("--console-socket".into());
            args.push(socket.into());
        }
        args.push(id.into());
        self.argv(log, args)
    }

    /// The argv of `restore --detach --image-path I --work-path W` plus `create`'s flags: the
    /// runtime recreates the container from `opts.bundle` and has CRIU restore its processes
    /// from the checkpoint images in `image_path`, then exits (the restored init is left to
    /// its parent's subreaper, as with [`Runtime::run_detached_argv`]).
    pub fn restore_detached_argv(
        &self,
        id: &str,
        opts: &CreateOptions,
        image_path: &Path,
        work_path: &Path,
    ) -> Vec<OsString> {
        let image = format!("--image-path={}", image_path.display());
        let work = format!("--work-path={}", work_path.display());
        self.create_or_run(&["restore", "--detach", &image, &work], id, opts)
    }

    fn create_or_run(&self, verb: &[&str], id: &str, opts: &CreateOptions) -> Vec<OsString> {
        let mut args: Vec<OsString> = verb.iter().map(OsString::from).collect();
        args.extend([
            "--bundle".into(),
            opts.bundle.clone().into(),
            "--pid-file".into(),
            opts.pid_file.clone().into(),
        ]);
        if let Some(socket) = &opts.console_socket {
            args.push("--console-socket".into());
            args.push(socket.clone().into());
        }
        args.push(id.into());
        self.argv(&opts.log, args)
    }

    /// `binary --root R --log LOG --log-format json [--systemd-cgroup] ARGS...`.
    ///
    /// Both runc and crun take `--log`/`--log-format` as global flags, before the verb.
    pub(crate) fn argv(
        &self,
        log: &Path,
        args: impl IntoIterator<Item = OsString>,
    ) -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec![
            self.binary.clone().into(),
            "--root".into(),
            self.root.clone().into(),
            "--log".into(),
            log.into(),
            "--log-format".into(),
            "json".into(),
        ];
        if self.systemd_cgroup {
            argv.push("--systemd-cgroup".into());
        }
        argv.extend(args);
        argv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(argv: &[OsString]) -> Vec<&str> {
        argv.iter().map(|a| a.to_str().unwrap()).collect()
    }

    fn opts(console_socket: Option<&str>) -> CreateOptions {
        CreateOptions {
            bundle: "/run/b".into(),
            pid_file: "/run/b/pid".into(),
            console_socket: console_socket.map(PathBuf::from),
            log: "/run/b/log.json".into(),
        }
    }

    #[test]
    fn create_without_console_or_systemd() {
        let rt = Runtime::new("/usr/bin/crun", "/run/crust/crun");
        assert_eq!(
            strings(&rt.create_argv("c1", &opts(None))),
            [
                "/usr/bin/crun",
                "--root",
                "/run/crust/crun",
                "--log",
                "/run/b/log.json",
                "--log-format",
                "json",
                "create",
                "--bundle",
                "/run/b",
                "--pid-file",
                "/run/b/pid",
                "c1"
            ]
        );
    }

    #[test]
    fn run_detached_is_create_with_another_verb() {
        let rt = Runtime::new("/usr/bin/runc", "/r");
        let o = opts(Some("/run/b/console.sock"));
        let (run, create) = (rt.run_detached_argv("c3", &o), rt.create_argv("c3", &o));
        let (run, create) = (strings(&run), strings(&create));
        let at = create.iter().position(|a| *a == "create").unwrap();
        assert_eq!(run[..at], create[..at]);
        assert_eq!(run[at..at + 2], ["run", "--detach"]);
        assert_eq!(run[at + 2..], create[at + 1..]);
    }

    #[test]
    fn restore_detached_is_create_with_checkpoint_paths() {
        let rt = Runtime::new("/usr/bin/runc", "/r");
        let o = opts(None);
        let argv = rt.restore_detached_argv("c5", &o, Path::new("/ck/img"), Path::new("/ck/w"));
        assert_eq!(
            strings(&argv)[7..],
            [
                "restore",
                "--detach",
                "--image-path=/ck/img",
                "--work-path=/ck/w",
                "--bundle",
                "/run/b",
                "--pid-file",
                "/run/b/pid",
                "c5"
            ]
        );
    }

    #[test]
    fn exec_detached() {
        let rt = Runtime::new("/usr/bin/crun", "/r");
        let argv = rt.exec_detached_argv(
            "c4",
            Path::new("/w/process.json"),
            Path::new("/w/exec.pid"),
            Some(Path::new("/cs/x")),
            Path::new("/w/exec.log"),
        );
        assert_eq!(
            strings(&argv)[7..],
            [
                "exec",
                "--detach",
                "--process",
                "/w/process.json",
                "--pid-file",
                "/w/exec.pid",
                "--console-socket",
                "/cs/x",
                "c4"
            ]
        );
    }

    #[test]
    fn create_with_console_and_systemd() {
        let rt = Runtime {
            systemd_cgroup: true,
            ..Runtime::new("runc", "/r")
        };
        assert_eq!(
            strings(&rt.create_argv("c2", &opts(Some("/run/b/console.sock")))),
            [
                "runc",
                "--root",
                "/r",
                "--log",
                "/run/b/log.json",
                "--log-format",
                "json",
                "--systemd-cgroup",
                "create",
                "--bundle",
                "/run/b",
                "--pid-file",
                "/run/b/pid",
                "--console-socket",
                "/run/b/console.sock",
                "c2"
            ]
        );
    }
}
