//! Running one plugin binary the way libcni's `invoke` package does.

use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::error::{CniError, PluginFailure};

/// How often a spawn that fails with ETXTBSY is retried (libcni retries "text file busy" too:
/// a plugin binary being replaced, or another thread's fork holding the file open for writing).
const TEXT_BUSY_RETRIES: u32 = 5;

/// libcni's `FindInPath`: the first regular file named `plugin` in `dirs`.
pub(crate) fn find_plugin(plugin: &str, dirs: &[PathBuf]) -> Result<PathBuf, CniError> {
    let not_found = || CniError::PluginNotFound {
        plugin: plugin.to_string(),
        dirs: dirs.to_vec(),
    };
    if plugin.is_empty() || plugin.contains('/') {
        return Err(not_found());
    }
    dirs.iter()
        .map(|d| d.join(plugin))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
        .ok_or_else(not_found)
}

/// The CNI_* environment of one call.
pub(crate) struct PluginEnv<'a> {
    pub command: &'a str,
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
    pub args: &'a [(String, String)],
    pub path: &'a [PathBuf],
}

impl PluginEnv<'_> {
    fn vars(&self) -> [(&'static str, std::ffi::OsString); 6] {
        let args = self
            .args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";");
        let path = std::env::join_paths(self.path).unwrap_or_else(|_| {
            // A directory containing ':' cannot be expressed in CNI_PATH; keep the others.
            std::env::join_paths(
                self.path
                    .iter()
                    .filter(|p| !p.as_os_str().as_encoded_bytes().contains(&b':')),
            )
            .unwrap_or_default()
        });
        [
            ("CNI_COMMAND", self.command.into()),
            ("CNI_CONTAINERID", self.container_id.into()),
            ("CNI_NETNS", self.netns.as_os_str().to_owned()),
            ("CNI_ARGS", args.into()),
            ("CNI_IFNAME", self.ifname.into()),
            ("CNI_PATH", path),
        ]
    }
}

/// Runs the plugin at `binary` with `stdin`, killing it (and its process group) after `timeout`.
/// Returns stdout on success; a non-zero exit becomes [`CniError::PluginFailed`] with the CNI
/// error JSON from stdout parsed and stderr attached.
pub(crate) async fn run_plugin(
    plugin: &str,
    binary: &Path,
    env: &PluginEnv<'_>,
    stdin: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, CniError> {
    let started = Instant::now();
    let mut cmd = Command::new(binary);
    cmd.envs(env.vars())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills whatever the plugin started as well.
        .process_group(0);

    let mut attempt = 0;
    let mut child = loop {
        match cmd.spawn() {
            Ok(child) => break child,
            Err(e) if e.kind() == ErrorKind::ExecutableFileBusy && attempt < TEXT_BUSY_RETRIES => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            Err(e) => return Err(CniError::io(binary)(e)),
        }
    };
    let pid = child.id();

    let mut child_stdin = child.stdin.take();
    let mut child_stdout = child.stdout.take();
    let mut child_stderr = child.stderr.take();
    let io = async {
        let write = async {
            if let Some(mut w) = child_stdin.take() {
                // A plugin may exit without reading all of its input; that is its business.
                let _ = w.write_all(stdin).await;
                let _ = w.shutdown().await;
            }
        };
        let (_, out, err, status) = tokio::join!(
            write,
            read_all(child_stdout.as_mut()),
            read_all(child_stderr.as_mut()),
            child.wait()
        );
        (out, err, status)
    };
    let (stdout, stderr, status) = match tokio::time::timeout(timeout, io).await {
        Ok(done) => done,
        Err(_) => {
            if let Some(pgid) = pid
                .and_then(|p| i32::try_from(p).ok())
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
            }
            let _ = child.kill().await;
            tracing::warn!(
                plugin,
                command = env.command,
                ?timeout,
                "cni plugin timed out, killed"
            );
            return Err(CniError::Timeout {
                plugin: plugin.to_string(),
                command: env.command.to_string(),
                timeout,
            });
        }
    };
    let status = status.map_err(CniError::io(binary))?;
    let stdout = stdout.map_err(CniError::io(binary))?;
    let stderr = stderr.map_err(CniError::io(binary))?;
    tracing::debug!(
        plugin,
        command = env.command,
        container_id = env.container_id,
        ifname = env.ifname,
        elapsed_ms = started.elapsed().as_millis() as u64,
        success = status.success(),
        "cni plugin ran"
    );
    if status.success() {
        if !stderr.is_empty() {
            tracing::debug!(plugin, stderr = %String::from_utf8_lossy(&stderr).trim(), "cni plugin stderr");
        }
        return Ok(stdout);
    }
    Err(plugin_error(plugin, env.command, status, &stdout, &stderr))
}

async fn read_all<R: tokio::io::AsyncRead + Unpin>(r: Option<&mut R>) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Some(r) = r {
        r.read_to_end(&mut buf).await?;
    }
    Ok(buf)
}

/// libcni's `pluginErr`: stdout should hold `{"code": N, "msg": "...", "details": "..."}`.
fn plugin_error(
    plugin: &str,
    command: &str,
    status: ExitStatus,
    stdout: &[u8],
    stderr: &[u8],
) -> CniError {
    let status_text = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => status.to_string(),
    };
    let mut code = None;
    let mut msg = String::new();
    let mut details = String::new();
    let out = String::from_utf8_lossy(stdout);
    if !out.trim().is_empty() {
        match serde_json::from_str::<Value>(&out) {
            Ok(Value::Object(obj)) => {
                code = obj.get("code").and_then(Value::as_u64);
                msg = obj
                    .get("msg")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                details = obj
                    .get("details")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if code.is_none() && msg.is_empty() {
                    msg = format!("unrecognised error output {:?}", out.trim());
                }
            }
            _ => msg = format!("unparseable error output {:?}", out.trim()),
        }
    }
    CniError::PluginFailed(Box::new(PluginFailure {
        plugin: plugin.to_string(),
        command: command.to_string(),
        status: status_text,
        code,
        msg,
        details,
        stderr: String::from_utf8_lossy(stderr).trim().to_string(),
    }))
}

/// Kills the plugins still running for `container_id`, and whatever they started: a crustd
/// that died during an ADD leaves its plugins running, and one finishing after the pod was
/// undone would leave a veth or an address behind. They are found by the `CNI_CONTAINERID`
/// every plugin has in its environment (libcni and plugins delegating to IPAM pass theirs on).
/// Waits up to two seconds for them to exit; returns their pids.
pub fn kill_orphaned_plugins(container_id: &str) -> Vec<u32> {
    let needle = format!("CNI_CONTAINERID={container_id}");
    let own = std::process::id();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
            if let Some(p) = i32::try_from(pid)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                pids.push(pid);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while pids.iter().any(|p| running(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    pids
}

/// Whether `pid` exists and is neither a zombie nor dead (states Z and X).
pub(crate) fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| !matches!(state, "Z" | "X"))
    })
}
