//! The process: args, environment, working directory, and the image's stop signal.

use std::path::PathBuf;

use k8s_cri::v1::ContainerConfig;

use crate::{ImageConfig, SpecError};

/// PATH for images that set none (the same default as Docker and containerd).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The command line as Kubernetes defines it: without `command`, the image's entrypoint
/// followed by `args` (or, when `args` is empty too, the image's cmd); with `command`,
/// `command` followed by `args`, the image's entrypoint and cmd both ignored.
pub fn args(config: &ContainerConfig, image: &ImageConfig) -> Result<Vec<String>, SpecError> {
    let mut out = if config.command.is_empty() {
        let mut v = image.entrypoint.clone();
        if config.args.is_empty() {
            v.extend(image.cmd.iter().cloned());
        } else {
            v.extend(config.args.iter().cloned());
        }
        v
    } else {
        let mut v = config.command.clone();
        v.extend(config.args.iter().cloned());
        v
    };
    if out.is_empty() {
        return Err(SpecError::NoCommand);
    }
    out.shrink_to_fit();
    Ok(out)
}

fn key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

fn set(env: &mut Vec<String>, k: &str, entry: String) {
    match env.iter_mut().find(|e| key(e) == k) {
        Some(slot) => *slot = entry,
        None => env.push(entry),
    }
}

/// The environment: the image's, `PATH` defaulted when the image has none, `HOSTNAME` set to
/// the pod's hostname, then the request's variables (each replacing the same key in place, new
/// ones appended in request order).
pub fn env(config: &ContainerConfig, image: &ImageConfig, hostname: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(image.env.len() + config.envs.len() + 2);
    if !image.env.iter().any(|e| key(e) == "PATH") {
        out.push(format!("PATH={DEFAULT_PATH}"));
    }
    for e in &image.env {
        let k = key(e).to_string();
        set(&mut out, &k, e.clone());
    }
    set(&mut out, "HOSTNAME", format!("HOSTNAME={hostname}"));
    for kv in &config.envs {
        set(&mut out, &kv.key, format!("{}={}", kv.key, kv.value));
    }
    out
}

/// The working directory: the request's, else the image's, else `/`. The OCI runtime creates
/// it when missing.
pub fn cwd(config: &ContainerConfig, image: &ImageConfig) -> Result<PathBuf, SpecError> {
    let dir = [config.working_dir.as_str(), image.working_dir.as_str()]
        .into_iter()
        .find(|d| !d.is_empty())
        .unwrap_or("/");
    if !dir.starts_with('/') {
        return Err(SpecError::RelativeWorkingDir(dir.to_string()));
    }
    Ok(PathBuf::from(dir))
}

const SIGNALS: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];

const SIGRTMIN: i32 = 34;
const SIGRTMAX: i32 = 64;

/// The image's stop signal as a number: `SIGTERM`, `TERM`, `15` (any case),
/// `SIGRTMIN+n`, `SIGRTMAX-n`; empty means SIGTERM.
pub fn stop_signal(image: &ImageConfig) -> Result<i32, SpecError> {
    parse_signal(&image.stop_signal)
}

fn parse_signal(raw: &str) -> Result<i32, SpecError> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(15);
    }
    let bad = || SpecError::UnknownSignal(raw.to_string());
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=SIGRTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = SIGNALS.iter().find(|(n, _)| *n == name) {
        return Ok(n);
    }
    let rt = |base: i32, rest: &str, sign: i32| -> Result<i32, SpecError> {
        let off = if rest.is_empty() {
            0
        } else {
            rest.parse::<i32>().map_err(|_| bad())?
        };
        let n = base + sign * off;
        if (SIGRTMIN..=SIGRTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        }
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return match rest.strip_prefix('+') {
            Some(r) => rt(SIGRTMIN, r, 1),
            None if rest.is_empty() => Ok(SIGRTMIN),
            None => Err(bad()),
        };
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return match rest.strip_prefix('-') {
            Some(r) => rt(SIGRTMAX, r, -1),
            None if rest.is_empty() => Ok(SIGRTMAX),
            None => Err(bad()),
        };
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use k8s_cri::v1::KeyValue;

    use super::*;

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageConfig {
        ImageConfig {
            entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn config(command: &[&str], args: &[&str]) -> ContainerConfig {
        ContainerConfig {
            command: command.iter().map(|s| s.to_string()).collect(),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn args_follow_kubernetes_rules() {
        let img = image(&["/entry"], &["cmd1", "cmd2"]);
        assert_eq!(
            args(&config(&[], &[]), &img).unwrap(),
            ["/entry", "cmd1", "cmd2"]
        );
        assert_eq!(args(&config(&[], &["a"]), &img).unwrap(), ["/entry", "a"]);
        assert_eq!(args(&config(&["/c"], &[]), &img).unwrap(), ["/c"]);
        assert_eq!(args(&config(&["/c"], &["a"]), &img).unwrap(), ["/c", "a"]);
        let no_entry = image(&[], &["sh"]);
        assert_eq!(args(&config(&[], &[]), &no_entry).unwrap(), ["sh"]);
        assert_eq!(args(&config(&[], &["x"]), &no_entry).unwrap(), ["x"]);
        assert_eq!(
            args(&config(&[], &[]), &image(&[], &[])),
            Err(SpecError::NoCommand)
        );
    }

    #[test]
    fn env_overrides_keep_order() {
        let img = ImageConfig {
            env: vec!["A=1".into(), "PATH=/bin".into(), "B=2".into()],
            ..Default::default()
        };
        let mut cfg = ContainerConfig {
            envs: vec![
                KeyValue {
                    key: "B".into(),
                    value: "3".into(),
                },
                KeyValue {
                    key: "C".into(),
                    value: "4".into(),
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            env(&cfg, &img, "pod"),
            ["A=1", "PATH=/bin", "B=3", "HOSTNAME=pod", "C=4"]
        );
        cfg.envs.push(KeyValue {
            key: "HOSTNAME".into(),
            value: "mine".into(),
        });
        let e = env(&cfg, &ImageConfig::default(), "pod");
        assert_eq!(
            e,
            [
                format!("PATH={DEFAULT_PATH}").as_str(),
                "HOSTNAME=mine",
                "B=3",
                "C=4"
            ]
        );
    }

    #[test]
    fn cwd_defaults_and_must_be_absolute() {
        let mut img = ImageConfig::default();
        let mut cfg = ContainerConfig::default();
        assert_eq!(cwd(&cfg, &img).unwrap(), PathBuf::from("/"));
        img.working_dir = "/app".into();
        assert_eq!(cwd(&cfg, &img).unwrap(), PathBuf::from("/app"));
        cfg.working_dir = "rel".into();
        assert_eq!(
            cwd(&cfg, &img),
            Err(SpecError::RelativeWorkingDir("rel".into()))
        );
    }

    #[test]
    fn signals() {
        for (s, n) in [
            ("", 15),
            ("SIGTERM", 15),
            ("TERM", 15),
            ("15", 15),
            ("sigkill", 9),
            ("SIGQUIT", 3),
            ("SIGRTMIN+3", 37),
            ("RTMAX", 64),
        ] {
            assert_eq!(parse_signal(s).unwrap(), n, "{s}");
        }
        for s in ["SIGFOO", "0", "65", "SIGRTMIN+40", "-1"] {
            assert_eq!(
                parse_signal(s),
                Err(SpecError::UnknownSignal(s.into())),
                "{s}"
            );
        }
    }
}
