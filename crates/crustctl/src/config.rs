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

/// crictl's `loadContainerConfig` (for `create`/`run`): metadata with a name and an image are required.
pub fn load_container_config(path: &Path) -> Result<ContainerConfig> {
    let config: ContainerConfig = read(path)?;
    validate_container_config(&config)?;
    Ok(config)
}

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

    /// crictl's docs' pod-config.json, snake_case as crictl's examples write it.
    const CRICTL_POD_JSON: &str = r#"{
        "metadata": {"name": "nginx-sandbox", "namespace": "default", "attempt": 1,
                     "uid": "hdishd83djaidwnduwk28bcsb"},
        "log_directory": "/tmp",
        "dns_config": {"servers": ["10.96.0.10"], "searches": ["svc.cluster.local"]},
        "port_mappings": [{"protocol": 0, "container_port": 80, "host_port": 8080}],
        "labels": {"app": "nginx"},
        "linux": {"cgroup_parent": "/crust-test",
                  "security_context": {"namespace_options": {"network": 0, "pid": 1}}}
    }"#;

    fn check_full(config: &PodSandboxConfig) {
        let m = config.metadata.as_ref().unwrap();
        assert_eq!(
            (m.name.as_str(), m.namespace.as_str(), m.attempt),
            ("nginx-sandbox", "default", 1)
        );
        assert_eq!(m.uid, "hdishd83djaidwnduwk28bcsb");
        assert_eq!(config.log_directory, "/tmp");
        assert_eq!(config.dns_config.as_ref().unwrap().servers, ["10.96.0.10"]);
        assert_eq!(config.port_mappings[0].container_port, 80);
        assert_eq!(config.port_mappings[0].host_port, 8080);
        assert_eq!(config.labels["app"], "nginx");
        let linux = config.linux.as_ref().unwrap();
        assert_eq!(linux.cgroup_parent, "/crust-test");
        let ns = linux
            .security_context
            .as_ref()
            .unwrap()
            .namespace_options
            .as_ref()
            .unwrap();
        assert_eq!(ns.network, k8s_cri::v1::NamespaceMode::Pod as i32);
        assert_eq!(ns.pid, k8s_cri::v1::NamespaceMode::Container as i32);
    }

    #[test]
    fn pod_config_both_field_name_styles() {
        check_full(&parse::<PodSandboxConfig>(CRICTL_POD_JSON).unwrap());
        // protojson's lowerCamelCase, enums by name, 64-bit as strings
        let camel = r#"{
            "metadata": {"name": "nginx-sandbox", "namespace": "default", "attempt": 1,
                         "uid": "hdishd83djaidwnduwk28bcsb"},
            "logDirectory": "/tmp",
            "dnsConfig": {"servers": ["10.96.0.10"]},
            "portMappings": [{"protocol": "TCP", "containerPort": 80, "hostPort": 8080}],
            "labels": {"app": "nginx"},
            "linux": {"cgroupParent": "/crust-test",
                      "securityContext": {"namespaceOptions": {"network": "POD", "pid": "CONTAINER"}}}
        }"#;
        check_full(&parse::<PodSandboxConfig>(camel).unwrap());
        let yaml_snake = "metadata:\n  name: nginx-sandbox\n  namespace: default\n  attempt: 1\n  \
            uid: hdishd83djaidwnduwk28bcsb\nlog_directory: /tmp\ndns_config:\n  servers: [10.96.0.10]\n\
            port_mappings:\n- container_port: 80\n  host_port: 8080\nlabels:\n  app: nginx\nlinux:\n  \
            cgroup_parent: /crust-test\n  security_context:\n    namespace_options:\n      network: 0\n      pid: 1\n";
        check_full(&parse::<PodSandboxConfig>(yaml_snake).unwrap());
        let yaml_camel = yaml_snake
            .replace("log_directory", "logDirectory")
            .replace("dns_config", "dnsConfig")
            .replace("port_mappings", "portMappings")
            .replace("container_port", "containerPort")
            .replace("host_port", "hostPort")
            .replace("cgroup_parent", "cgroupParent")
            .replace("security_context", "securityContext")
            .replace("namespace_options", "namespaceOptions")
            .replace("network: 0", "network: POD")
            .replace("pid: 1", "pid: CONTAINER");
        check_full(&parse::<PodSandboxConfig>(&yaml_camel).unwrap());
    }

    #[test]
    fn pod_config_files_json_and_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("pod.json");
        std::fs::write(&json, CRICTL_POD_JSON).unwrap();
        check_full(&load_pod_sandbox_config(&json).unwrap());
        let yaml = dir.path().join("pod.yaml");
        std::fs::write(
            &yaml,
            "metadata: {name: web, namespace: default}\nlinux: {}\n",
        )
        .unwrap();
        let config = load_pod_sandbox_config(&yaml).unwrap();
        assert_eq!(config.metadata.unwrap().uid.len(), 36, "uid generated");
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "metadata: {name: web}\n").unwrap();
        let err = load_pod_sandbox_config(&bad).unwrap_err();
        assert!(
            format!("{err:#}").contains("name or namespace is not in metadata"),
            "{err:#}"
        );
        let err = load_pod_sandbox_config(&dir.path().join("missing.json")).unwrap_err();
        assert!(err.to_string().contains("not found"), "{err}");
        std::fs::write(&bad, "{\"metadata\": [1]}").unwrap();
        assert!(load_pod_sandbox_config(&bad).is_err());
    }

    #[test]
    fn missing_metadata_is_an_error() {
        let mut config: PodSandboxConfig = parse("{}").unwrap();
        assert!(validate_pod_sandbox_config(&mut config).is_err());
        assert!(load_pod_sandbox_config(Path::new("/nonexistent.json")).is_err());
    }
}
