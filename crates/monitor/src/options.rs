//! The monitor's command line, built by crustd ([`SpawnOptions::args`]) and parsed by the
//! monitor ([`Args::parse`]).
//!
//! ```text
//! crust-monitor --pod-id ID --dir RUNDIR [--net] [--ipc] [--uts] [--pid]
//!               [--hostname NAME] [--sysctl KEY=VALUE]...
//! ```

use std::{ffi::OsString, path::PathBuf};

/// How crustd starts a pod's monitor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpawnOptions {
    /// The `crust-monitor` binary.
    pub binary: PathBuf,
    pub pod_id: String,
    /// The pod's run directory: the socket, the pid file and the namespace pins go there.
    pub dir: PathBuf,
    /// A network namespace of the pod's own (else the host's).
    pub net: bool,
    /// An ipc namespace of the pod's own.
    pub ipc: bool,
    /// A uts namespace of the pod's own (needed for `hostname`).
    pub uts: bool,
    /// A pid namespace of the pod's own, with a pod init as its pid 1.
    pub pid: bool,
    /// The hostname to set in the pod's uts namespace.
    pub hostname: Option<String>,
    /// Sysctls to apply in the pod's namespaces (`net.*` needs `net`; `kernel.shm*`,
    /// `kernel.msg*`, `kernel.sem`, `fs.mqueue.*` need `ipc`).
    pub sysctls: Vec<(String, String)>,
}

impl SpawnOptions {
    /// The monitor's arguments (without the program name).
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--pod-id".into(),
            self.pod_id.clone().into(),
            "--dir".into(),
            self.dir.clone().into(),
        ];
        for (on, flag) in [
            (self.net, "--net"),
            (self.ipc, "--ipc"),
            (self.uts, "--uts"),
            (self.pid, "--pid"),
        ] {
            if on {
                args.push(flag.into());
            }
        }
        if let Some(hostname) = &self.hostname {
            args.push("--hostname".into());
            args.push(hostname.clone().into());
        }
        for (key, value) in &self.sysctls {
            args.push("--sysctl".into());
            args.push(format!("{key}={value}").into());
        }
        args
    }
}

/// The monitor's parsed command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    pub pod_id: String,
    /// Absolute (made so against the working directory at start).
    pub dir: PathBuf,
    pub net: bool,
    pub ipc: bool,
    pub uts: bool,
    pub pid: bool,
    pub hostname: Option<String>,
    pub sysctls: Vec<(String, String)>,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(Args),
    Help,
    Version,
}

/// The usage text for `--help`.
pub const USAGE: &str =
    "usage: crust-monitor --pod-id ID --dir RUNDIR [--net] [--ipc] [--uts] [--pid] \
[--hostname NAME] [--sysctl KEY=VALUE]...

Holds a pod's namespaces (pinned under RUNDIR/ns), reaps its processes, and serves crustd on
RUNDIR/monitor.sock. Prints one JSON readiness line on stdout, then detaches.
";

fn utf8(flag: &str, value: OsString) -> Result<String, String> {
    value
        .into_string()
        .map_err(|v| format!("{flag}: {v:?} is not valid UTF-8"))
}

impl Args {
    /// Parses the arguments after the program name. Flags take their value as the next
    /// argument or after `=` (`--dir=/run/x`).
    pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Command, String> {
        let mut out = Args::default();
        let mut dir: Option<PathBuf> = None;
        let mut pod_id: Option<String> = None;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let arg = utf8("argument", arg)?;
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_string(), Some(value.to_string()))
                }
                _ => (arg, None),
            };
            let mut value = |name: &str| -> Result<String, String> {
                match inline.clone() {
                    Some(v) => Ok(v),
                    None => utf8(
                        name,
                        args.next().ok_or_else(|| format!("{name} needs a value"))?,
                    ),
                }
            };
            match flag.as_str() {
                "--pod-id" => pod_id = Some(value("--pod-id")?),
                "--dir" => dir = Some(PathBuf::from(value("--dir")?)),
                "--hostname" => out.hostname = Some(value("--hostname")?),
                "--sysctl" => {
                    let kv = value("--sysctl")?;
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| format!("--sysctl {kv:?}: expected KEY=VALUE"))?;
                    out.sysctls.push((k.to_string(), v.to_string()));
                }
                "--net" | "--ipc" | "--uts" | "--pid" if inline.is_some() => {
                    return Err(format!("{flag} takes no value"));
                }
                "--net" => out.net = true,
                "--ipc" => out.ipc = true,
                "--uts" => out.uts = true,
                "--pid" => out.pid = true,
                "-h" | "--help" => return Ok(Command::Help),
                "-V" | "--version" => return Ok(Command::Version),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        out.pod_id = pod_id.ok_or("--pod-id is required")?;
        if out.pod_id.is_empty() {
            return Err("--pod-id must not be empty".into());
        }
        let dir = dir.ok_or("--dir is required")?;
        out.dir = if dir.is_absolute() {
            dir
        } else {
            std::env::current_dir()
                .map_err(|e| {
                    format!(
                        "--dir {}: resolving against the working directory: {e}",
                        dir.display()
                    )
                })?
                .join(dir)
        };
        if let Some(name) = &out.hostname {
            if !out.uts {
                return Err(format!(
                    "--hostname {name:?} needs --uts: it would rename the host"
                ));
            }
            if name.is_empty() || name.len() > 64 {
                return Err(format!("--hostname {name:?}: must be 1 to 64 bytes long"));
            }
        }
        Ok(Command::Run(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        Args::parse(args.iter().map(OsString::from))
    }

    #[test]
    fn spawn_options_round_trip() {
        let opts = SpawnOptions {
            binary: "/usr/bin/crust-monitor".into(),
            pod_id: "p1".into(),
            dir: "/run/crust/pods/p1".into(),
            net: true,
            ipc: false,
            uts: true,
            pid: true,
            hostname: Some("web-0".into()),
            sysctls: vec![
                ("net.ipv4.ip_unprivileged_port_start".into(), "80".into()),
                ("kernel.sem".into(), "250 32000 32 128".into()),
            ],
        };
        let Command::Run(args) = Args::parse(opts.args()).unwrap() else {
            panic!("not a run");
        };
        assert_eq!(
            args,
            Args {
                pod_id: "p1".into(),
                dir: "/run/crust/pods/p1".into(),
                net: true,
                ipc: false,
                uts: true,
                pid: true,
                hostname: Some("web-0".into()),
                sysctls: opts.sysctls.clone(),
            }
        );
    }

    #[test]
    fn inline_values_and_relative_dir() {
        let Command::Run(args) = parse(&["--pod-id=x", "--dir=rel", "--sysctl=a.b=c=d"]).unwrap()
        else {
            panic!("not a run");
        };
        assert_eq!(args.pod_id, "x");
        assert!(args.dir.is_absolute() && args.dir.ends_with("rel"));
        assert_eq!(args.sysctls, vec![("a.b".to_string(), "c=d".to_string())]);
    }

    #[test]
    fn errors() {
        assert_eq!(parse(&["--dir", "/x"]).unwrap_err(), "--pod-id is required");
        assert_eq!(parse(&["--pod-id", "x"]).unwrap_err(), "--dir is required");
        assert!(parse(&["--pod-id"]).unwrap_err().contains("needs a value"));
        assert!(parse(&["--bogus"])
            .unwrap_err()
            .contains("unknown argument"));
        assert!(parse(&["--net=1"]).unwrap_err().contains("takes no value"));
        assert!(
            parse(&["--pod-id", "x", "--dir", "/x", "--sysctl", "novalue"])
                .unwrap_err()
                .contains("KEY=VALUE")
        );
        let err = parse(&["--pod-id", "x", "--dir", "/x", "--hostname", "h"]).unwrap_err();
        assert!(err.contains("needs --uts"), "{err}");
        assert_eq!(parse(&["--help"]).unwrap(), Command::Help);
    }
}
