//! ADD, DEL and CHECK of a network list, following libcni's `AddNetworkList`,
//! `DelNetworkList` and `CheckNetworkList`, with containerd's loopback attachment.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};
use tracing::Instrument as _;

use crate::config::{self, NetworkList, PluginConf, Version, DEFAULT_CONFLIST_NAME, VERSION_0_4_0};
use crate::error::CniError;
use crate::exec::{self, PluginEnv};
use crate::types::{AddResult, Attachment};

/// The loopback network containerd attaches before the pod's network (go-cni `WithLoNetwork`).
const LOOPBACK_NAME: &str = "cni-loopback";
const LOOPBACK_TYPE: &str = "loopback";
const LOOPBACK_VERSION: &str = "1.0.0";
const LOOPBACK_IFNAME: &str = "lo";

/// A CNI driver: where configurations and plugins live, and how long a plugin may run.
#[derive(Debug, Clone)]
pub struct Cni {
    conf_dir: PathBuf,
    bin_dirs: Vec<PathBuf>,
    exec_timeout: Duration,
}

#[derive(Clone, Copy)]
enum Verb {
    Add,
    Del,
    Check,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Add => "ADD",
            Verb::Del => "DEL",
            Verb::Check => "CHECK",
        }
    }
}

impl Cni {
    /// How long one plugin may run before it is killed, unless set otherwise.
    pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(60);

    pub fn new(conf_dir: PathBuf, bin_dirs: Vec<PathBuf>) -> Cni {
        Cni {
            conf_dir,
            bin_dirs,
            exec_timeout: Cni::DEFAULT_EXEC_TIMEOUT,
        }
    }

    /// Sets how long one plugin invocation may run before it (and its process group) is killed.
    pub fn with_exec_timeout(mut self, timeout: Duration) -> Cni {
        self.exec_timeout = timeout;
        self
    }

    pub fn conf_dir(&self) -> &Path {
        &self.conf_dir
    }

    pub fn bin_dirs(&self) -> &[PathBuf] {
        &self.bin_dirs
    }

    pub fn exec_timeout(&self) -> Duration {
        self.exec_timeout
    }

    /// The first valid network configuration in lexical file-name order (`.conflist`, `.conf`,
    /// `.json`, as libcni); a single-plugin `.conf`/`.json` is wrapped into a list. Invalid files
    /// are skipped; when nothing valid is left, [`CniError::NoConfig`] names each file and why.
    pub fn load(&self) -> Result<NetworkList, CniError> {
        config::load_dir(&self.conf_dir)
    }

    /// Writes crustd's default conflist ([`default_conflist`](crate::default_conflist), file
    /// `10-crust.conflist`) when the configuration directory holds no valid configuration.
    /// Returns the path written, or `None` when a valid configuration already exists.
    pub fn write_default_if_missing(&self) -> Result<Option<PathBuf>, CniError> {
        match self.load() {
            Ok(_) => Ok(None),
            Err(CniError::NoConfig { reasons, .. }) => {
                for (file, reason) in &reasons {
                    tracing::warn!(file = %file.display(), %reason, "invalid cni config ignored");
                }
                let path = config::write_atomic(
                    &self.conf_dir,
                    DEFAULT_CONFLIST_NAME,
                    &config::default_conflist(),
                )?;
                tracing::info!(path = %path.display(), "wrote default cni network config");
                Ok(Some(path))
            }
            Err(other) => Err(other),
        }
    }

    /// The path of plugin binary `plugin`: the first regular file of that name in `bin_dirs`.
    pub fn find_plugin(&self, plugin: &str) -> Result<PathBuf, CniError> {
        exec::find_plugin(plugin, &self.bin_dirs)
    }

    /// Checks that every plugin of `net`, and the loopback plugin, can be found (for the
    /// runtime's NetworkReady condition).
    pub fn validate(&self, net: &NetworkList) -> Result<(), CniError> {
        self.find_plugin(LOOPBACK_TYPE)?;
        for plugin in &net.plugins {
            self.find_plugin(&plugin.plugin_type)?;
        }
        Ok(())
    }

    /// Attaches the pod: the loopback plugin for `lo`, then every plugin of `net` in order, each
    /// given the previous plugin's result as `prevResult`. All binaries are looked up first, so
    /// [`CniError::PluginNotFound`] means nothing ran. Any other error may leave part of the
    /// attachment in place: the caller must DEL (as containerd tears down on a failed setup).
    pub async fn add(&self, net: &NetworkList, att: &Attachment) -> Result<AddResult, CniError> {
        validate_attachment(att)?;
        let span =
            tracing::debug_span!("cni_add", container_id = %att.container_id, network = %net.name);
        async {
            let lo_binary = self.find_plugin(LOOPBACK_TYPE)?;
            let binaries = net
                .plugins
                .iter()
                .map(|p| self.find_plugin(&p.plugin_type))
                .collect::<Result<Vec<_>, _>>()?;

            self.run_loopback(att, &lo_binary).await?;

            let mut prev: Option<Value> = None;
            for (plugin, binary) in net.plugins.iter().zip(&binaries) {
                let stdin = plugin_stdin(net, plugin, prev.as_ref(), att);
                let out = self
                    .invoke(
                        Verb::Add,
                        &plugin.plugin_type,
                        binary,
                        att,
                        &att.ifname,
                        &stdin,
                    )
                    .await?;
                let result: Value =
                    serde_json::from_slice(&out).map_err(|e| CniError::InvalidResult {
                        plugin: plugin.plugin_type.clone(),
                        command: Verb::Add.as_str().to_string(),
                        reason: format!("{e}: {:?}", String::from_utf8_lossy(&out)),
                    })?;
                if !result.is_object() {
                    return Err(CniError::InvalidResult {
                        plugin: plugin.plugin_type.clone(),
                        command: Verb::Add.as_str().to_string(),
                        reason: format!("not a json object: {result}"),
                    });
                }
                prev = Some(result);
            }
            let last = net
                .plugins
                .last()
                .map(|p| p.plugin_type.as_str())
                .unwrap_or("");
            let raw = prev.unwrap_or(Value::Null);
            AddResult::parse(raw, &att.ifname).map_err(|reason| CniError::InvalidResult {
                plugin: last.to_string(),
                command: Verb::Add.as_str().to_string(),
                reason,
            })
        }
        .instrument(span)
        .await
    }

    /// Detaches the pod: every plugin of `net` in reverse order with `prev` (the cached ADD
    /// result) as `prevResult` for lists of version 0.4.0 and later, as libcni. The loopback is
    /// not detached: it dies with the netns. The netns may already be gone; its path is passed
    /// as given so that IPAM still releases the address. A plugin that fails stops the DEL
    /// (libcni); a plugin that is missing is skipped so the others still release what they
    /// hold, and the DEL then fails with [`CniError::PluginNotFound`] so the caller retries.
    pub async fn del(
        &self,
        net: &NetworkList,
        att: &Attachment,
        prev: Option<&Value>,
    ) -> Result<(), CniError> {
        validate_attachment(att)?;
        let span =
            tracing::debug_span!("cni_del", container_id = %att.container_id, network = %net.name);
        async {
            let prev = prev.filter(|_| Version::at_least(&net.cni_version, VERSION_0_4_0));
            let mut missing = None;
            for plugin in net.plugins.iter().rev() {
                let binary = match self.find_plugin(&plugin.plugin_type) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(error = %e, "cni DEL skips a missing plugin");
                        missing.get_or_insert(e);
                        continue;
                    }
                };
                let stdin = plugin_stdin(net, plugin, prev, att);
                self.invoke(
                    Verb::Del,
                    &plugin.plugin_type,
                    &binary,
                    att,
                    &att.ifname,
                    &stdin,
                )
                .await?;
            }
            match missing {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
        .instrument(span)
        .await
    }

    /// Checks the attachment: every plugin of `net` in order with CHECK and `prev` (the ADD
    /// result) as `prevResult`. Lists older than 0.4.0 do not support CHECK; a list with
    /// `disableCheck` passes without running anything.
    pub async fn check(
        &self,
        net: &NetworkList,
        att: &Attachment,
        prev: &Value,
    ) -> Result<(), CniError> {
        validate_attachment(att)?;
        if !Version::at_least(&net.cni_version, VERSION_0_4_0) {
            return Err(CniError::Unsupported {
                network: net.name.clone(),
                version: net.cni_version.clone(),
                command: Verb::Check.as_str().to_string(),
            });
        }
        if net.disable_check {
            return Ok(());
        }
        for plugin in &net.plugins {
            let binary = self.find_plugin(&plugin.plugin_type)?;
            let stdin = plugin_stdin(net, plugin, Some(prev), att);
            self.invoke(
                Verb::Check,
                &plugin.plugin_type,
                &binary,
                att,
                &att.ifname,
                &stdin,
            )
            .await?;
        }
        Ok(())
    }

    async fn run_loopback(&self, att: &Attachment, binary: &Path) -> Result<(), CniError> {
        let conf = serde_json::json!({
            "cniVersion": LOOPBACK_VERSION,
            "name": LOOPBACK_NAME,
            "type": LOOPBACK_TYPE,
        });
        let stdin = serde_json::to_vec(&conf).unwrap_or_default();
        // The loopback's result (lo's addresses) is of no interest, as in containerd.
        self.invoke(
            Verb::Add,
            LOOPBACK_TYPE,
            binary,
            att,
            LOOPBACK_IFNAME,
            &stdin,
        )
        .await
        .map(drop)
    }

    async fn invoke(
        &self,
        verb: Verb,
        plugin: &str,
        binary: &Path,
        att: &Attachment,
        ifname: &str,
        stdin: &[u8],
    ) -> Result<Vec<u8>, CniError> {
        let env = PluginEnv {
            command: verb.as_str(),
            container_id: &att.container_id,
            netns: &att.netns,
            ifname,
            args: &att.args,
            path: &self.bin_dirs,
        };
        exec::run_plugin(plugin, binary, &env, stdin, self.exec_timeout).await
    }
}

/// libcni's `buildOneConfig`: the plugin's configuration with the list's `name` and
/// `cniVersion`, the previous result, and a `runtimeConfig` holding only the capability
/// arguments the plugin declares.
fn plugin_stdin(
    net: &NetworkList,
    plugin: &PluginConf,
    prev: Option<&Value>,
    att: &Attachment,
) -> Vec<u8> {
    let mut conf = plugin.conf.clone();
    conf.insert("name".to_string(), Value::String(net.name.clone()));
    conf.insert(
        "cniVersion".to_string(),
        Value::String(net.cni_version.clone()),
    );
    if let Some(prev) = prev {
        conf.insert("prevResult".to_string(), prev.clone());
    }
    let mut runtime_config = Map::new();
    for capability in &plugin.capabilities {
        if let Some(arg) = capability_arg(att, capability) {
            runtime_config.insert(capability.clone(), arg);
        }
    }
    if !runtime_config.is_empty() {
        conf.insert("runtimeConfig".to_string(), Value::Object(runtime_config));
    }
    // Serializing a map of JSON values cannot fail.
    serde_json::to_vec(&Value::Object(conf)).unwrap_or_default()
}

fn capability_arg(att: &Attachment, capability: &str) -> Option<Value> {
    match capability {
        "portMappings" => serde_json::to_value(&att.port_mappings).ok(),
        "bandwidth" => att
            .bandwidth
            .as_ref()
            .and_then(|b| serde_json::to_value(b).ok()),
        "ipRanges" if !att.ip_ranges.is_empty() => serde_json::to_value(&att.ip_ranges).ok(),
        "ipRanges" => None,
        other => att.extra_capabilities.get(other).cloned(),
    }
}

/// libcni's `ValidateContainerID` and `ValidateInterfaceName`.
fn validate_attachment(att: &Attachment) -> Result<(), CniError> {
    let invalid = |reason: String| CniError::InvalidAttachment {
        container_id: att.container_id.clone(),
        reason,
    };
    if !config::is_cni_identifier(&att.container_id) {
        return Err(invalid(
            "container id must start with a letter or digit and contain only letters, digits, '_', '.' and '-'"
                .to_string(),
        ));
    }
    let ifname = &att.ifname;
    if ifname.is_empty() {
        return Err(invalid("interface name is empty".to_string()));
    }
    if ifname.len() > 15 {
        return Err(invalid(format!(
            "interface name {ifname:?} is longer than 15 bytes"
        )));
    }
    if ifname == "." || ifname == ".." {
        return Err(invalid(format!("interface name {ifname:?} is not allowed")));
    }
    if ifname
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(invalid(format!(
            "interface name {ifname:?} contains '/', ':' or whitespace"
        )));
    }
    Ok(())
}
