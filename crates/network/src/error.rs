use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything that can go wrong loading CNI configuration or running CNI plugins.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// No usable network configuration in the configuration directory. `reasons` names every
    /// candidate file and why it was rejected (empty when there were no candidate files at all).
    #[error("{}", no_config_message(dir, reasons))]
    NoConfig {
        dir: PathBuf,
        reasons: Vec<(PathBuf, String)>,
    },
    #[error("invalid cni network config {}: {reason}", file.display())]
    InvalidConfig { file: PathBuf, reason: String },
    #[error("cni plugin {plugin:?} not found in {}", join_dirs(dirs))]
    PluginNotFound { plugin: String, dirs: Vec<PathBuf> },
    /// The plugin exited unsuccessfully (boxed: the details are large and errors are rare).
    #[error("{0}")]
    PluginFailed(Box<PluginFailure>),
    #[error("cni plugin {plugin:?} returned an invalid result ({command}): {reason}")]
    InvalidResult {
        plugin: String,
        command: String,
        reason: String,
    },
    #[error("cni plugin {plugin:?} timed out after {}s ({command}) and was killed", timeout.as_secs_f64())]
    Timeout {
        plugin: String,
        command: String,
        timeout: Duration,
    },
    #[error("invalid cni attachment for container {container_id:?}: {reason}")]
    InvalidAttachment {
        container_id: String,
        reason: String,
    },
    #[error("cni network {network:?} (version {version}) does not support the {command} command")]
    Unsupported {
        network: String,
        version: String,
        command: String,
    },
    #[error("invalid bandwidth annotation {annotation}={value:?}: {reason}")]
    InvalidBandwidth {
        annotation: String,
        value: String,
        reason: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl CniError {
    pub(crate) fn io(path: impl AsRef<Path>) -> impl FnOnce(std::io::Error) -> CniError {
        let path = path.as_ref().to_path_buf();
        move |source| CniError::Io { path, source }
    }

    /// The plugin type this error is about, when it is about one.
    pub fn plugin(&self) -> Option<&str> {
        match self {
            CniError::PluginNotFound { plugin, .. }
            | CniError::InvalidResult { plugin, .. }
            | CniError::Timeout { plugin, .. } => Some(plugin),
            CniError::PluginFailed(f) => Some(&f.plugin),
            _ => None,
        }
    }
}

fn join_dirs(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        return "(no plugin directories configured)".to_string();
    }
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

fn no_config_message(dir: &Path, reasons: &[(PathBuf, String)]) -> String {
    if reasons.is_empty() {
        return format!(
            "no cni network config found in {} (no .conflist, .conf or .json file)",
            dir.display()
        );
    }
    let mut out = format!("no valid cni network config in {}:", dir.display());
    for (i, (file, reason)) in reasons.iter().enumerate() {
        let sep = if i == 0 { " " } else { "; " };
        let name = file.file_name().map(Path::new).unwrap_or(file);
        let _ = write!(out, "{sep}{}: {reason}", name.display());
    }
    out
}

/// What a failed plugin reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginFailure {
    /// The plugin type (binary name).
    pub plugin: String,
    /// `ADD`, `DEL` or `CHECK`.
    pub command: String,
    /// How the process ended: `exit status N` or `killed by signal N`.
    pub status: String,
    /// `code` of the CNI error JSON the plugin printed on stdout, when it printed one.
    pub code: Option<u64>,
    /// `msg` of the CNI error JSON (or a note on unparseable output).
    pub msg: String,
    /// `details` of the CNI error JSON.
    pub details: String,
    /// What the plugin wrote to stderr, trimmed.
    pub stderr: String,
}

impl std::fmt::Display for PluginFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cni plugin {:?} failed ({}): {}",
            self.plugin, self.command, self.status
        )?;
        if let Some(code) = self.code {
            write!(f, " (cni error code {code})")?;
        }
        for part in [&self.msg, &self.details, &self.stderr] {
            let part = part.trim();
            if !part.is_empty() {
                write!(f, ": {part}")?;
            }
        }
        Ok(())
    }
}
