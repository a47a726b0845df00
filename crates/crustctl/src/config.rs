//! crictl's JSON/YAML config files (pod sandbox and container configs), read as crictl
//! reads them: YAML or JSON, the generated structs' snake_case keys, numeric enums.

use std::path::Path;

use anyhow::{bail, Context, Result};
use k8s_cri::v1::{ContainerConfig, PodSandboxConfig};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::protojson;

/// Parses a config file's text (YAML, of which JSON is a subset) into a CRI message.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T> {
    let value: Value = serde_yaml::from_str(text).context("parse JSON/YAML")?;
    protojson::from_value(value)
}

fn read<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("config at {} not found", path.display())
        }
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    parse(&text).with_context(|| format!("load {}", path.display()))
}

/// crictl's `loadPodSandboxConfig`: metadata with name and namespace required; a
/// missing uid is generated.
pub fn load_pod_sandbox_config(path: &Path) -> Result<PodSandboxConfig> {
    let mut config: PodSandboxConfig = read(path)?;
    validate_pod_sandbox_config(&mut config)?;
    Ok(config)
}

pub fn validate_pod_sandbox_config(config: &mut PodSandboxConfig) -> Result<()> {
    let Some(metadata) = config.metadata.as_mut() else {
        bail!("metadata is not set");
    };
    if metadata.uid.is_empty() {
        metadata.uid = new_uuid()?;
    }
    if metadata.name.is_empty() || metadata.namespace.is_empty() {
        bail!("name or namespace is not in metadata {metadata:?}");
    }
    Ok(())
}

/// crictl's `loadContainerConfig` (for `create`/`run`, which come later): metadata with a name and an image are required.
#[allow(dead_code)] // until `create` and `run` land
pub fn load_container_config(path: &Path) -> Result<ContainerConfig> {
    let config: ContainerConfig = read(path)?;
    validate_container_config(&config)?;
    Ok(config)
}

#[allow(dead_code)] // until `create` and `run` land
pub fn validate_container_config(config: &ContainerConfig) -> Result<()> {
    match &config.metadata {
        None => bail!("metadata is not set"),
        Some(m) if m.name.is_empty() => bail!("name is not in metadata {m:?}"),
        Some(_) => {}
    }
    match &config.image {
        None => bail!("image is not set"),
        Some(i) if i.image.is_empty() => bail!("image field is not set in image {i:?}"),
        Some(_) => Ok(()),
    }
}

/// A random (v4) UUID from the kernel.
pub fn new_uuid() -> Result<String> {
    let uuid =
        std::fs::read_to_string("/proc/sys/kernel/random/uuid").context("generate a uuid")?;
    Ok(uuid.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crictl_pod_config_yaml() {
        let mut config: PodSandboxConfig = parse(
            "metadata:\n  name: nginx-sandbox\n  namespace: default\n  attempt: 1\n\
             log_directory: /tmp\nlinux: {}\n",
        )
        .unwrap();
        validate_pod_sandbox_config(&mut config).unwrap();
        let metadata = config.metadata.unwrap();
        assert_eq!(metadata.name, "nginx-sandbox");
        assert_eq!(metadata.uid.len(), 36, "uid generated");
        assert!(config.linux.is_some());
    }

    #[test]
    fn crictl_container_config_json() {
        let config: ContainerConfig = parse(
            r#"{"metadata": {"name": "busybox"}, "image": {"image": "busybox"},
                "command": ["top"], "linux": {"resources": {"memory_limit_in_bytes": 1048576}}}"#,
        )
        .unwrap();
        validate_container_config(&config).unwrap();
        assert_eq!(config.command, ["top"]);
        assert_eq!(
            config
                .linux
                .unwrap()
                .resources
                .unwrap()
                .memory_limit_in_bytes,
            1_048_576
        );
    }

    #[test]
    fn missing_metadata_is_an_error() {
        let mut config: PodSandboxConfig = parse("{}").unwrap();
        assert!(validate_pod_sandbox_config(&mut config).is_err());
        assert!(load_pod_sandbox_config(Path::new("/nonexistent.json")).is_err());
    }
}
