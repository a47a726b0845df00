//! crustd's configuration: TOML, every key optional, documented in docs/configuration.md.
//! Unknown keys and invalid values stop the start with an error naming the key and the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/crust/config.toml";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// tracing filter: error, warn, info, debug, trace, or a directive list.
    pub log_level: String,
    pub registry: RegistryConfig,
    pub network: NetworkConfig,
    pub runtime: RuntimeSection,
    /// OCI runtime handlers by name (RuntimeClass handler names).
    pub runtimes: BTreeMap<String, RuntimeHandler>,
    pub streaming: StreamingConfig,
    pub metrics: MetricsConfig,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Where crustd serves its Prometheus metrics (`IP:PORT`, port 0: any free one, written to
    /// `<runroot>/metrics.addr`); empty: no metrics server.
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamingConfig {
    /// Where the Exec/Attach/PortForward server listens (`IP:PORT`; port 0: any free one).
    pub address: String,
    /// A stream with no traffic for this long is closed.
    #[serde(with = "duration_text")]
    pub stream_idle_timeout: Duration,
    /// TLS for the streaming server: a PEM certificate chain and its key (both or neither).
    pub tls_cert_file: PathBuf,
    pub tls_key_file: PathBuf,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        StreamingConfig {
            address: "127.0.0.1:0".into(),
            stream_idle_timeout: Duration::from_secs(4 * 3600),
            tls_cert_file: PathBuf::new(),
            tls_key_file: PathBuf::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Directory of `<host>/hosts.toml` files (containerd's format).
    pub config_path: PathBuf,
    /// A pull whose transfer makes no progress for this long is cancelled.
    #[serde(with = "duration_text")]
    pub image_pull_progress_timeout: Duration,
    /// Layers downloaded at once.
    pub max_concurrent_downloads: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Where CNI network configuration lists are read from.
    pub conf_dir: PathBuf,
    /// Where CNI plugin binaries are looked up, in order.
    pub bin_dirs: Vec<PathBuf>,
    /// Write crust's default conflist into conf_dir at start when it holds no valid config.
    pub default_conflist: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSection {
    /// Handler used when a pod names none; empty means crun if configured, else runc.
    pub default_handler: String,
    pub cgroup_driver: CgroupDriver,
    /// The crust-monitor binary; empty means next to crustd, else found in PATH.
    pub monitor_path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupDriver {
    Cgroupfs,
    Systemd,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeHandler {
    /// The OCI runtime binary (runc or crun compatible).
    pub path: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            log_level: "info".into(),
            registry: RegistryConfig::default(),
            network: NetworkConfig::default(),
            runtime: RuntimeSection::default(),
            runtimes: BTreeMap::new(),
            streaming: StreamingConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            config_path: "/etc/crust/certs.d".into(),
            image_pull_progress_timeout: Duration::from_secs(300),
            max_concurrent_downloads: 3,
        }
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            conf_dir: "/etc/cni/net.d".into(),
            bin_dirs: vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()],
            default_conflist: true,
        }
    }
}

impl Default for RuntimeSection {
    fn default() -> Self {
        RuntimeSection {
            default_handler: String::new(),
            cgroup_driver: CgroupDriver::Cgroupfs,
            monitor_path: PathBuf::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Invalid { path: String, message: String },
}

impl Config {
    /// Reads `path`. A missing file is an error only when `required` (given explicitly);
    /// otherwise the embedded defaults serve.
    pub fn load(path: &Path, required: bool) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Config::default().finish(path)
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.display().to_string(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        config.finish(path)
    }

    /// Fills the runtime handlers found on this machine and checks values serde cannot.
    fn finish(mut self, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.display().to_string(),
            message,
        };
        if self.runtimes.is_empty() {
            for name in ["crun", "runc"] {
                if let Some(found) = find_in_path(name) {
                    self.runtimes
                        .insert(name.into(), RuntimeHandler { path: found });
                }
            }
        }
        if self.runtime.default_handler.is_empty() {
            self.runtime.default_handler = ["crun", "runc"]
                .into_iter()
                .find(|n| self.runtimes.contains_key(*n))
                .or_else(|| self.runtimes.keys().next().map(String::as_str))
                .unwrap_or("runc")
                .to_string();
        } else if !self.runtimes.contains_key(&self.runtime.default_handler) {
            return Err(invalid(format!(
                "runtime.default_handler: {:?} is not one of the configured [runtimes] ({})",
                self.runtime.default_handler,
                self.runtimes.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        if self.registry.max_concurrent_downloads == 0 {
            return Err(invalid(
                "registry.max_concurrent_downloads: must be at least 1".into(),
            ));
        }
        if self.registry.image_pull_progress_timeout.is_zero() {
            return Err(invalid(
                "registry.image_pull_progress_timeout: must be above zero".into(),
            ));
        }
        if self
            .streaming
            .address
            .parse::<std::net::SocketAddr>()
            .is_err()
        {
            return Err(invalid(format!(
                "streaming.address: {:?} is not IP:PORT",
                self.streaming.address
            )));
        }
        if !self.metrics.address.is_empty()
            && self
                .metrics
                .address
                .parse::<std::net::SocketAddr>()
                .is_err()
        {
            return Err(invalid(format!(
                "metrics.address: {:?} is not IP:PORT",
                self.metrics.address
            )));
        }
        if self.streaming.stream_idle_timeout.is_zero() {
            return Err(invalid(
                "streaming.stream_idle_timeout: must be above zero".into(),
            ));
        }
        if self.streaming.tls_cert_file.as_os_str().is_empty()
            != self.streaming.tls_key_file.as_os_str().is_empty()
        {
            return Err(invalid(
                "streaming: tls_cert_file and tls_key_file go together".into(),
            ));
        }
        if tracing_level_ok(&self.log_level).is_err() {
            return Err(invalid(format!(
                "log_level: invalid filter {:?}",
                self.log_level
            )));
        }
        for (name, handler) in &self.runtimes {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            {
                return Err(invalid(format!("runtimes.{name:?}: invalid handler name")));
            }
            if !handler.path.is_absolute() {
                return Err(invalid(format!(
                    "runtimes.{name}.path: {:?} must be absolute",
                    handler.path
                )));
            }
        }
        Ok(self)
    }
}

fn tracing_level_ok(level: &str) -> Result<(), ()> {
    let ok = level.split(',').all(|d| {
        let lvl = d.rsplit('=').next().unwrap_or("").trim();
        ["error", "warn", "info", "debug", "trace", "off"]
            .contains(&lvl.to_ascii_lowercase().as_str())
    });
    if ok && !level.trim().is_empty() {
        Ok(())
    } else {
        Err(())
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Durations as humantime text ("5m", "90s", "1h 30m").
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {text:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::parse("", Path::new("/x.toml")).unwrap();
        assert_eq!(
            c.registry.image_pull_progress_timeout,
            Duration::from_secs(300)
        );
        assert_eq!(c.network.conf_dir, PathBuf::from("/etc/cni/net.d"));
        assert_eq!(c.runtime.cgroup_driver, CgroupDriver::Cgroupfs);
        assert!(!c.runtime.default_handler.is_empty());
        assert_eq!(c.metrics.address, "", "metrics are off by default");
    }

    #[test]
    fn every_key_parses() {
        let c = Config::parse(
            r#"
log_level = "debug"
[registry]
config_path = "/tmp/certs.d"
image_pull_progress_timeout = "90s"
max_concurrent_downloads = 5
[network]
conf_dir = "/tmp/net.d"
bin_dirs = ["/tmp/bin"]
[runtime]
default_handler = "fast"
cgroup_driver = "systemd"
[runtimes.fast]
path = "/usr/bin/crun"
[streaming]
address = "0.0.0.0:10010"
stream_idle_timeout = "30m"
[metrics]
address = "127.0.0.1:9123"
"#,
            Path::new("/x.toml"),
        )
        .unwrap();
        assert_eq!(
            c.registry.image_pull_progress_timeout,
            Duration::from_secs(90)
        );
        assert_eq!(c.registry.max_concurrent_downloads, 5);
        assert_eq!(c.runtime.cgroup_driver, CgroupDriver::Systemd);
        assert_eq!(c.runtimes["fast"].path, PathBuf::from("/usr/bin/crun"));
        assert_eq!(c.runtime.default_handler, "fast");
        assert_eq!(c.streaming.address, "0.0.0.0:10010");
        assert_eq!(c.streaming.stream_idle_timeout, Duration::from_secs(1800));
        assert_eq!(c.metrics.address, "127.0.0.1:9123");
    }

    #[test]
    fn errors_name_key_and_file() {
        let cases = [
            ("bogus = 1", "bogus"),
            ("[registry]\nmirror = 1", "mirror"),
            ("[registry]\nimage_pull_progress_timeout = \"soon\"", "soon"),
            ("[runtime]\ncgroup_driver = \"cgroupv3\"", "cgroupv3"),
            (
                "[runtime]\ndefault_handler = \"nope\"\n[runtimes.runc]\npath = \"/usr/bin/runc\"",
                "runtime.default_handler",
            ),
            (
                "[registry]\nmax_concurrent_downloads = 0",
                "registry.max_concurrent_downloads",
            ),
            ("log_level = \"loud\"", "log_level"),
            ("[runtimes.x]\npath = \"rel\"", "runtimes.x.path"),
            ("[streaming]\naddress = \"localhost\"", "streaming.address"),
            ("[streaming]\ntls_cert_file = \"/c.pem\"", "tls_key_file"),
            ("[metrics]\naddress = \":9123\"", "metrics.address"),
            ("[metrics]\nport = 9123", "port"),
        ];
        for (text, key) in cases {
            let err = Config::parse(text, Path::new("/etc/crust/c.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{text:?}: {err}");
            assert!(err.contains("/etc/crust/c.toml"), "{text:?}: {err}");
        }
    }

    #[test]
    fn missing_file() {
        assert!(Config::load(Path::new("/nonexistent/crust.toml"), false).is_ok());
        assert!(Config::load(Path::new("/nonexistent/crust.toml"), true).is_err());
    }
}
