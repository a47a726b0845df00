//! Registry host configuration, read from a containerd-style `hosts.toml` directory:
//! `<config_path>/<host>/hosts.toml` (or `<config_path>/_default/hosts.toml`).
//!
//! ```toml
//! server = "https://registry.example.com"      # the upstream, tried last
//! [host."http://127.0.0.1:5000"]               # mirrors, tried in file order
//!   capabilities = ["pull", "resolve"]
//!   skip_verify = true
//!   ca = "/etc/crust/certs.d/ca.pem"
//!   override_path = false
//!   [host."http://127.0.0.1:5000".header]
//!     x-custom = "value"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}: {message}")]
    Parse { path: String, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    Pull,
    Resolve,
    Push,
}

/// One endpoint to try, in order: mirrors first, then the upstream server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryHost {
    /// `scheme://host[:port]`.
    pub origin: String,
    /// URL path prefix to which `/<name>/manifests/...` is appended (normally `/v2`).
    pub path: String,
    pub capabilities: Vec<Capability>,
    pub skip_verify: bool,
    pub ca: Vec<PathBuf>,
    pub headers: BTreeMap<String, String>,
}

impl RegistryHost {
    pub fn can(&self, cap: Capability) -> bool {
        self.capabilities.contains(&cap)
    }

    /// `host[:port]` without the scheme, for messages.
    pub fn host(&self) -> &str {
        self.origin
            .split_once("://")
            .map(|(_, h)| h)
            .unwrap_or(&self.origin)
    }

    pub fn is_http(&self) -> bool {
        self.origin.starts_with("http://")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostsFile {
    server: Option<String>,
    #[serde(flatten)]
    defaults: HostFields,
    #[serde(default)]
    host: toml::Table,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostFields {
    capabilities: Option<Vec<Capability>>,
    skip_verify: Option<bool>,
    ca: Option<OneOrMany>,
    client: Option<toml::Value>,
    #[serde(default)]
    header: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    override_path: bool,
    dial_timeout: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// Whether a registry host is on this machine; such hosts default to plain HTTP, as docker
/// and containerd treat localhost registries as insecure.
pub fn is_local(domain: &str) -> bool {
    let host = match domain.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => domain,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

fn default_server(domain: &str) -> String {
    if domain == "docker.io" {
        "https://registry-1.docker.io".into()
    } else if is_local(domain) {
        format!("http://{domain}")
    } else {
        format!("https://{domain}")
    }
}

/// The endpoints for `domain`, in the order to try them. Without a hosts.toml, the registry's
/// own server with every capability.
pub fn hosts_for(
    config_path: Option<&Path>,
    domain: &str,
) -> Result<Vec<RegistryHost>, HostsError> {
    let file = config_path.and_then(|dir| {
        [host_dir_name(domain), "_default".to_string()]
            .into_iter()
            .map(|d| dir.join(d).join("hosts.toml"))
            .find(|p| p.exists())
    });
    let Some(file) = file else {
        let server = default_server(domain);
        let host =
            endpoint(&server, HostFields::default()).map_err(|message| HostsError::Parse {
                path: server.clone(),
                message,
            })?;
        return Ok(vec![host]);
    };
    let text = std::fs::read_to_string(&file).map_err(|source| HostsError::Read {
        path: file.display().to_string(),
        source,
    })?;
    parse_hosts(&text, domain).map_err(|message| HostsError::Parse {
        path: file.display().to_string(),
        message,
    })
}

/// containerd names directories by host, with `docker.io` for Docker Hub.
fn host_dir_name(domain: &str) -> String {
    domain.to_string()
}

fn parse_hosts(text: &str, domain: &str) -> Result<Vec<RegistryHost>, String> {
    let file: HostsFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (url, value) in file.host {
        let fields: HostFields = value
            .try_into()
            .map_err(|e: toml::de::Error| format!("host {url:?}: {}", e.message()))?;
        out.push(endpoint(&url, fields).map_err(|e| format!("host {url:?}: {e}"))?);
    }
    let server = file.server.unwrap_or_else(|| default_server(domain));
    out.push(endpoint(&server, file.defaults).map_err(|e| format!("server {server:?}: {e}"))?);
    Ok(out)
}

fn endpoint(url: &str, fields: HostFields) -> Result<RegistryHost, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} has no scheme (http:// or https://)"))?;
    if scheme != "http" && scheme != "https" {
        return Err(format!("unsupported scheme {scheme:?}"));
    }
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    let path = if fields.override_path {
        path.to_string()
    } else {
        format!("{path}/v2")
    };
    if let Some(t) = &fields.dial_timeout {
        humantime::parse_duration(t).map_err(|e| format!("dial_timeout: {e}"))?;
    }
    let _ = &fields.client;
    Ok(RegistryHost {
        origin: format!("{scheme}://{host}"),
        path,
        capabilities: fields
            .capabilities
            .unwrap_or_else(|| vec![Capability::Pull, Capability::Resolve, Capability::Push]),
        skip_verify: fields.skip_verify.unwrap_or(false),
        ca: fields
            .ca
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        headers: fields
            .header
            .into_iter()
            .map(|(k, v)| (k, v.into_vec().join(",")))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_config() {
        let h = hosts_for(None, "docker.io").unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].origin, "https://registry-1.docker.io");
        assert_eq!(h[0].path, "/v2");
        assert!(h[0].can(Capability::Resolve));
        assert_eq!(
            hosts_for(None, "127.0.0.1:5000").unwrap()[0].origin,
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            hosts_for(None, "quay.io").unwrap()[0].origin,
            "https://quay.io"
        );
    }

    #[test]
    fn mirrors_in_file_order_then_server() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("docker.io");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("hosts.toml"),
            r#"
server = "https://registry-1.docker.io"
[host."http://127.0.0.1:9"]
  capabilities = ["pull"]
[host."https://mirror.example/prefix"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
  ca = ["/a.pem"]
  [host."https://mirror.example/prefix".header]
    x-one = "1"
[host."https://other.example/v2/x"]
  override_path = true
"#,
        )
        .unwrap();
        let h = hosts_for(Some(dir.path()), "docker.io").unwrap();
        let origins: Vec<_> = h.iter().map(|h| h.origin.as_str()).collect();
        assert_eq!(
            origins,
            [
                "http://127.0.0.1:9",
                "https://mirror.example",
                "https://other.example",
                "https://registry-1.docker.io"
            ]
        );
        assert!(!h[0].can(Capability::Resolve));
        assert_eq!(h[1].path, "/prefix/v2");
        assert!(h[1].skip_verify);
        assert_eq!(h[1].headers["x-one"], "1");
        assert_eq!(h[2].path, "/v2/x");
        assert!(h[0].is_http());
        assert_eq!(h[0].host(), "127.0.0.1:9");
    }

    #[test]
    fn default_dir_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("_default");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("hosts.toml"), "bogus_key = 1\n").unwrap();
        let err = hosts_for(Some(dir.path()), "quay.io")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bogus_key") && err.contains("_default"),
            "{err}"
        );
        std::fs::write(d.join("hosts.toml"), "[host.\"ftp://x\"]\n").unwrap();
        let err = hosts_for(Some(dir.path()), "quay.io")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported scheme"), "{err}");
    }
}
