//! Pod records as CRI sees them: PodSandbox (lists), PodSandboxStatus, filters.

use std::collections::HashMap;

use crust_store::{PodRecord, PodState};
use k8s_cri::v1::{
    LinuxPodSandboxStatus, Namespace, NamespaceOption, PodIp, PodSandbox, PodSandboxConfig,
    PodSandboxFilter, PodSandboxMetadata, PodSandboxNetworkStatus, PodSandboxState,
    PodSandboxStatus,
};

fn metadata(r: &PodRecord) -> PodSandboxMetadata {
    PodSandboxMetadata {
        name: r.name.clone(),
        uid: r.uid.clone(),
        namespace: r.namespace.clone(),
        attempt: r.attempt,
    }
}

fn state(r: &PodRecord) -> i32 {
    match r.state {
        PodState::Ready => PodSandboxState::SandboxReady as i32,
        PodState::NotReady => PodSandboxState::SandboxNotready as i32,
    }
}

fn map(m: &std::collections::BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub fn pod_sandbox(r: &PodRecord) -> PodSandbox {
    PodSandbox {
        id: r.id.clone(),
        metadata: Some(metadata(r)),
        state: state(r),
        created_at: r.created_at,
        labels: map(&r.labels),
        annotations: map(&r.annotations),
        runtime_handler: r.runtime_handler.clone(),
    }
}

pub fn pod_status(r: &PodRecord) -> PodSandboxStatus {
    let config: PodSandboxConfig = serde_json::from_value(r.config.clone()).unwrap_or_default();
    let options: NamespaceOption = config
        .linux
        .and_then(|l| l.security_context)
        .and_then(|s| s.namespace_options)
        .unwrap_or_default();
    // IPs are reported while the network is up, as containerd does.
    let ips: Vec<String> = match &r.network {
        Some(n) if !n.torn_down && r.state == PodState::Ready => n.ips.clone(),
        _ => Vec::new(),
    };
    PodSandboxStatus {
        id: r.id.clone(),
        metadata: Some(metadata(r)),
        state: state(r),
        created_at: r.created_at,
        network: Some(PodSandboxNetworkStatus {
            ip: ips.first().cloned().unwrap_or_default(),
            additional_ips: ips
                .iter()
                .skip(1)
                .map(|ip| PodIp { ip: ip.clone() })
                .collect(),
        }),
        linux: Some(LinuxPodSandboxStatus {
            namespaces: Some(Namespace {
                options: Some(options),
            }),
        }),
        labels: map(&r.labels),
        annotations: map(&r.annotations),
        runtime_handler: r.runtime_handler.clone(),
    }
}

/// The verbose info of PodSandboxStatus: one JSON document under "info", as crictl prints it.
pub fn pod_info(r: &PodRecord) -> String {
    serde_json::json!({
        "pid": r.monitor_pid,
        "monitorPid": r.monitor_pid,
        "runDir": r.run_dir,
        "stateDir": r.state_dir,
        "namespaces": r.namespaces,
        "netNamespacePath": r.namespaces.get("net").cloned().unwrap_or_default(),
        "shmPath": r.shm_path,
        "cgroupParent": r.cgroup_parent,
        "cniResult": r.network.as_ref().map(|n| &n.result),
        "cniConfigFile": r.network.as_ref().map(|n| &n.file),
        "cniTornDown": r.network.as_ref().map(|n| n.torn_down),
        "runtimeHandler": r.runtime_handler,
        "config": r.config,
    })
    .to_string()
}

/// ListPodSandbox's filter: ID prefix, state, and every label of the selector.
pub fn list_filter_matches(r: &PodRecord, filter: &PodSandboxFilter) -> bool {
    if !filter.id.is_empty() && !r.id.starts_with(&filter.id) {
        return false;
    }
    if let Some(s) = &filter.state {
        if s.state != state(r) {
            return false;
        }
    }
    filter
        .label_selector
        .iter()
        .all(|(k, v)| r.labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_cri::v1::PodSandboxStateValue;

    fn record() -> PodRecord {
        PodRecord {
            id: "abcdef".into(),
            name: "web".into(),
            namespace: "default".into(),
            uid: "u1".into(),
            attempt: 0,
            state: PodState::Ready,
            created_at: 1,
            runtime_handler: String::new(),
            labels: [("app".to_string(), "web".to_string())].into(),
            annotations: Default::default(),
            config: serde_json::Value::Null,
            namespaces: Default::default(),
            monitor_pid: 1,
            run_dir: String::new(),
            state_dir: String::new(),
            shm_path: String::new(),
            cgroups_created: vec![],
            cgroup_parent: String::new(),
            network: None,
        }
    }

    #[test]
    fn filters() {
        let r = record();
        let mut f = PodSandboxFilter::default();
        assert!(list_filter_matches(&r, &f));
        f.id = "abc".into();
        assert!(list_filter_matches(&r, &f));
        f.id = "abd".into();
        assert!(!list_filter_matches(&r, &f));
        f.id.clear();
        f.state = Some(PodSandboxStateValue {
            state: PodSandboxState::SandboxNotready as i32,
        });
        assert!(!list_filter_matches(&r, &f));
        f.state = None;
        f.label_selector = [("app".to_string(), "db".to_string())].into();
        assert!(!list_filter_matches(&r, &f));
        f.label_selector = [("app".to_string(), "web".to_string())].into();
        assert!(list_filter_matches(&r, &f));
    }

    #[test]
    fn status_of_a_stopped_pod_has_no_ip() {
        let mut r = record();
        r.network = Some(crust_store::PodNetwork {
            conflist: serde_json::Value::Null,
            file: String::new(),
            result: serde_json::Value::Null,
            ips: vec!["10.88.0.2".into(), "fd00::2".into()],
            torn_down: false,
            pod_cidrs: Vec::new(),
        });
        let s = pod_status(&r);
        let net = s.network.unwrap();
        assert_eq!(net.ip, "10.88.0.2");
        assert_eq!(net.additional_ips[0].ip, "fd00::2");
        r.state = PodState::NotReady;
        assert_eq!(pod_status(&r).network.unwrap().ip, "");
    }
}
