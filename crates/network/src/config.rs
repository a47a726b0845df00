//! Network configuration: selecting and parsing the conflist as libcni and containerd's go-cni do.
//!
//! Candidates are the files in the configuration directory ending in `.conflist`, `.conf` or
//! `.json`, taken in lexical order of their names; the first valid one wins. A `.conf`/`.json`
//! file holds a single plugin configuration and is wrapped into a one-plugin list, exactly as
//! libcni's `ConfListFromConf` does. Unlike go-cni, an invalid file does not stop the search
//! (CRI-O's behaviour); every rejected file is named in the error when nothing valid is left.

use std::cmp::Ordering;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::CniError;

/// The file name crustd's default configuration is written to.
pub const DEFAULT_CONFLIST_NAME: &str = "10-crust.conflist";

/// Extensions libcni considers network configuration files.
const CONF_EXTENSIONS: [&str; 3] = ["conflist", "conf", "json"];

/// Files larger than this are not network configuration (go-cni uses a similar cap).
const MAX_CONF_SIZE: u64 = 1024 * 1024;

/// The newest CNI specification version this implementation knows (libcni's `version.Current()`);
/// `cniVersions` entries above it are ignored.
const CURRENT_SPEC_VERSION: Version = Version(1, 1, 0);

/// A loaded network configuration list.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkList {
    /// The network name (`name` of the list).
    pub name: String,
    /// The CNI version every plugin is called with (`cniVersion`, or the best of `cniVersions`).
    pub cni_version: String,
    /// The file the list came from (for messages; empty when built from stored JSON without one).
    pub file: PathBuf,
    /// The list as loaded (a `.conf` file already wrapped into a list). Store it with the pod
    /// and rebuild with [`NetworkList::from_raw`] to DEL with the configuration used at ADD.
    pub raw: Value,
    /// `disableCheck` of the list: CHECK is then a no-op.
    pub disable_check: bool,
    pub(crate) plugins: Vec<PluginConf>,
}

/// One plugin entry of a list.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PluginConf {
    /// The plugin's `type`: the binary name.
    pub(crate) plugin_type: String,
    /// The plugin's configuration object as written.
    pub(crate) conf: Map<String, Value>,
    /// Capabilities the plugin declares as enabled (`"capabilities": {"portMappings": true}`).
    pub(crate) capabilities: Vec<String>,
}

impl NetworkList {
    /// Parses a configuration list (`{"name", "cniVersion", "plugins": [...]}`). `file` is only
    /// used to name the source in errors.
    pub fn from_raw(raw: Value, file: PathBuf) -> Result<NetworkList, CniError> {
        let invalid = |reason: String| CniError::InvalidConfig {
            file: file.clone(),
            reason,
        };
        let obj = raw
            .as_object()
            .ok_or_else(|| invalid("not a json object".to_string()))?;

        let name = match obj.get("name") {
            Some(Value::String(n)) => n.clone(),
            Some(other) => return Err(invalid(format!("\"name\" is not a string: {other}"))),
            None => return Err(invalid("no \"name\"".to_string())),
        };
        validate_network_name(&name).map_err(&invalid)?;

        let mut cni_version = match obj.get("cniVersion") {
            None => String::new(),
            Some(Value::String(v)) => {
                Version::parse(v).map_err(&invalid)?;
                v.clone()
            }
            Some(other) => return Err(invalid(format!("\"cniVersion\" is not a string: {other}"))),
        };
        if let Some(versions) = obj.get("cniVersions") {
            let versions = versions
                .as_array()
                .ok_or_else(|| invalid("\"cniVersions\" is not an array".to_string()))?;
            let mut best: Option<(Version, String)> = None;
            let given = (!cni_version.is_empty()).then(|| Value::String(cni_version.clone()));
            for v in versions.iter().chain(given.as_ref()) {
                let s = v.as_str().ok_or_else(|| {
                    invalid(format!("\"cniVersions\" entry is not a string: {v}"))
                })?;
                let parsed = Version::parse(s).map_err(&invalid)?;
                if parsed > CURRENT_SPEC_VERSION {
                    continue;
                }
                if best.as_ref().is_none_or(|(b, _)| parsed > *b) {
                    best = Some((parsed, s.to_string()));
                }
            }
            if let Some((_, s)) = best {
                cni_version = s;
            }
        }

        let disable_check = match obj.get("disableCheck") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
            Some(other) => return Err(invalid(format!("invalid \"disableCheck\": {other}"))),
        };

        let plugins = match obj.get("plugins") {
            Some(Value::Array(p)) if p.is_empty() => {
                return Err(invalid("no plugins in list".to_string()))
            }
            Some(Value::Array(p)) => p,
            Some(other) => return Err(invalid(format!("\"plugins\" is not an array: {other}"))),
            None => return Err(invalid("no \"plugins\" list".to_string())),
        };
        let plugins = plugins
            .iter()
            .enumerate()
            .map(|(i, p)| PluginConf::parse(p).map_err(|e| invalid(format!("plugin {i}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;

        Ok(NetworkList {
            name,
            cni_version,
            file,
            raw,
            disable_check,
            plugins,
        })
    }

    /// The plugin types (binary names) of the list, in order.
    pub fn plugin_types(&self) -> impl Iterator<Item = &str> {
        self.plugins.iter().map(|p| p.plugin_type.as_str())
    }

    /// Reads one configuration file: a `.conflist` as a list, anything else as a single plugin
    /// configuration wrapped into a list.
    pub fn from_file(path: &Path) -> Result<NetworkList, CniError> {
        let meta = fs::metadata(path).map_err(CniError::io(path))?;
        if meta.len() > MAX_CONF_SIZE {
            return Err(CniError::InvalidConfig {
                file: path.to_path_buf(),
                reason: format!("file is larger than {MAX_CONF_SIZE} bytes"),
            });
        }
        let bytes = fs::read(path).map_err(CniError::io(path))?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| CniError::InvalidConfig {
            file: path.to_path_buf(),
            reason: format!("invalid json: {e}"),
        })?;
        if path.extension().is_some_and(|e| e == "conflist") {
            NetworkList::from_raw(value, path.to_path_buf())
        } else {
            NetworkList::from_raw(wrap_single_conf(value, path)?, path.to_path_buf())
        }
    }
}

impl PluginConf {
    fn parse(value: &Value) -> Result<PluginConf, String> {
        let conf = value
            .as_object()
            .ok_or_else(|| "not a json object".to_string())?
            .clone();
        let plugin_type = match conf.get("type") {
            Some(Value::String(t)) if !t.is_empty() => t.clone(),
            Some(Value::String(_)) | None => return Err("missing \"type\"".to_string()),
            Some(other) => return Err(format!("\"type\" is not a string: {other}")),
        };
        if plugin_type.contains('/') || plugin_type == "." || plugin_type == ".." {
            return Err(format!("invalid plugin type {plugin_type:?}"));
        }
        let capabilities = match conf.get("capabilities") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(caps)) => {
                let mut enabled = Vec::new();
                for (name, on) in caps {
                    match on {
                        Value::Bool(true) => enabled.push(name.clone()),
                        Value::Bool(false) => {}
                        other => {
                            return Err(format!("capability {name:?} is not a boolean: {other}"))
                        }
                    }
                }
                enabled
            }
            Some(other) => return Err(format!("\"capabilities\" is not an object: {other}")),
        };
        Ok(PluginConf {
            plugin_type,
            conf,
            capabilities,
        })
    }
}

/// libcni's `ConfListFromConf`: a single plugin configuration becomes a one-plugin list with the
/// plugin's own name and version.
fn wrap_single_conf(conf: Value, file: &Path) -> Result<Value, CniError> {
    let invalid = |reason: &str| CniError::InvalidConfig {
        file: file.to_path_buf(),
        reason: reason.to_string(),
    };
    let obj = conf
        .as_object()
        .ok_or_else(|| invalid("not a json object"))?;
    // A conflist saved with a .conf name has no "type"; go-cni rejects it the same way.
    match obj.get("type") {
        Some(Value::String(t)) if !t.is_empty() => {}
        _ if obj.contains_key("plugins") => {
            return Err(invalid(
                "missing \"type\" (a plugin list must be in a .conflist file)",
            ))
        }
        _ => return Err(invalid("missing \"type\"")),
    }
    let mut list = Map::new();
    if let Some(name) = obj.get("name") {
        list.insert("name".to_string(), name.clone());
    }
    if let Some(v) = obj.get("cniVersion") {
        list.insert("cniVersion".to_string(), v.clone());
    }
    list.insert("plugins".to_string(), Value::Array(vec![conf.clone()]));
    Ok(Value::Object(list))
}

/// Candidate configuration files in `dir`, sorted by name. A missing directory has none.
pub(crate) fn conf_files(dir: &Path) -> Result<Vec<PathBuf>, CniError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CniError::io(dir)(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(CniError::io(dir))?;
        let path = entry.path();
        let wanted = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| CONF_EXTENSIONS.contains(&e));
        if !wanted {
            continue;
        }
        // Follow symlinks: a link to a file counts, a directory never does.
        if fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        files.push(path);
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// The first valid list in `dir`, with the reasons every earlier file was skipped.
pub(crate) fn load_dir(dir: &Path) -> Result<NetworkList, CniError> {
    let mut reasons: Vec<(PathBuf, String)> = Vec::new();
    for file in conf_files(dir)? {
        match NetworkList::from_file(&file) {
            Ok(list) => {
                for (skipped, reason) in &reasons {
                    tracing::warn!(file = %skipped.display(), %reason, "skipped invalid cni config");
                }
                return Ok(list);
            }
            Err(CniError::InvalidConfig { reason, .. }) => reasons.push((file, reason)),
            Err(CniError::Io { source, .. }) => reasons.push((file, source.to_string())),
            Err(other) => reasons.push((file, other.to_string())),
        }
    }
    Err(CniError::NoConfig {
        dir: dir.to_path_buf(),
        reasons,
    })
}

/// crustd's default network: bridge `crust0` with host-local 10.88.0.0/16 and portmap.
pub fn default_conflist() -> Value {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "crust",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "crust0",
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": "10.88.0.0/16" }]],
                    "routes": [{ "dst": "0.0.0.0/0" }]
                }
            },
            {
                "type": "portmap",
                "capabilities": { "portMappings": true }
            }
        ]
    })
}

/// Writes `value` to `dir/name` atomically (temporary file, fsync, rename).
pub(crate) fn write_atomic(dir: &Path, name: &str, value: &Value) -> Result<PathBuf, CniError> {
    fs::create_dir_all(dir).map_err(CniError::io(dir))?;
    let path = dir.join(name);
    // The temporary name ends in neither .conf nor .conflist, so no reader ever picks it up.
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| CniError::InvalidConfig {
        file: path.clone(),
        reason: e.to_string(),
    })?;
    bytes.push(b'\n');
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(CniError::io(&path)(e));
    }
    Ok(path)
}

/// libcni's `utils.ValidateNetworkName`.
fn validate_network_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("network name is empty".to_string());
    }
    if !is_cni_identifier(name) {
        return Err(format!(
            "network name {name:?} must start with a letter or digit and contain only letters, digits, '_', '.' and '-'"
        ));
    }
    Ok(())
}

/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`, libcni's rule for network names and container IDs.
pub(crate) fn is_cni_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A CNI specification version (`major.minor.patch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Version(u64, u64, u64);

impl Version {
    pub(crate) fn parse(s: &str) -> Result<Version, String> {
        let bad = || format!("invalid cni version {s:?}");
        let mut parts = s.split('.');
        let mut next = |required: bool| -> Result<u64, String> {
            match parts.next() {
                Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                    p.parse().map_err(|_| bad())
                }
                None if !required => Ok(0),
                _ => Err(bad()),
            }
        };
        let v = Version(next(true)?, next(true)?, next(false)?);
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(v)
    }

    /// Compares a list's version string with `other`; an empty version means 0.1.0 as for
    /// plugins.
    pub(crate) fn at_least(version: &str, other: Version) -> bool {
        let v = if version.is_empty() {
            Version(0, 1, 0)
        } else {
            match Version::parse(version) {
                Ok(v) => v,
                Err(_) => return false,
            }
        };
        v.cmp(&other) != Ordering::Less
    }
}

pub(crate) const VERSION_0_4_0: Version = Version(0, 4, 0);
