//! Container records as CRI sees them: Container (lists), ContainerStatus, filters.

use std::collections::{BTreeMap, HashMap};

use crust_store::{ContainerRecord, ContainerState as State};
use k8s_cri::v1::{
    Container, ContainerConfig, ContainerFilter, ContainerMetadata, ContainerResources,
    ContainerState, ContainerStatus, ContainerUser, ImageSpec, LinuxContainerResources,
    LinuxContainerUser,
};

fn map(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub(super) fn cri_state(s: State) -> i32 {
    (match s {
        State::Created => ContainerState::ContainerCreated,
        State::Running => ContainerState::ContainerRunning,
        State::Exited => ContainerState::ContainerExited,
        State::Unknown => ContainerState::ContainerUnknown,
    }) as i32
}

fn config(r: &ContainerRecord) -> ContainerConfig {
    serde_json::from_value(r.config.clone()).unwrap_or_default()
}

fn metadata(r: &ContainerRecord) -> ContainerMetadata {
    ContainerMetadata {
        name: r.name.clone(),
        attempt: r.attempt,
    }
}

fn image_spec(r: &ContainerRecord, config: &ContainerConfig) -> ImageSpec {
    let mut spec = config.image.clone().unwrap_or_default();
    spec.image = r.image.clone();
    spec
}

pub fn to_cri_container(r: &ContainerRecord) -> Container {
    let config = config(r);
    Container {
        id: r.id.clone(),
        pod_sandbox_id: r.pod_id.clone(),
        metadata: Some(metadata(r)),
        image: Some(image_spec(r, &config)),
        image_ref: r.image_ref.clone(),
        state: cri_state(r.state),
        created_at: r.created_at,
        labels: map(&r.labels),
        annotations: map(&r.annotations),
        image_id: r.image_id.clone(),
    }
}

pub fn container_status(r: &ContainerRecord) -> ContainerStatus {
    let config = config(r);
    let resources: Option<LinuxContainerResources> = serde_json::from_value(r.resources.clone())
        .ok()
        .or_else(|| config.linux.as_ref().and_then(|l| l.resources.clone()));
    ContainerStatus {
        id: r.id.clone(),
        metadata: Some(metadata(r)),
        state: cri_state(r.state),
        created_at: r.created_at,
        started_at: r.started_at,
        finished_at: r.finished_at,
        exit_code: r.exit_code,
        image: Some(image_spec(r, &config)),
        image_ref: r.image_ref.clone(),
        reason: r.reason.clone(),
        message: r.message.clone(),
        labels: map(&r.labels),
        annotations: map(&r.annotations),
        mounts: config.mounts.clone(),
        log_path: r.log_path.clone(),
        resources: resources.map(|linux| ContainerResources {
            linux: Some(linux),
            windows: None,
        }),
        image_id: r.image_id.clone(),
        user: Some(ContainerUser {
            linux: Some(LinuxContainerUser {
                uid: r.user.uid as i64,
                gid: r.user.gid as i64,
                supplemental_groups: r.user.additional_gids.iter().map(|g| *g as i64).collect(),
            }),
        }),
    }
}

/// The verbose info of ContainerStatus: one JSON document under "info", as crictl prints it
/// (containerd's keys where they apply).
pub fn container_info(r: &ContainerRecord, runtime_spec: Option<serde_json::Value>) -> String {
    serde_json::json!({
        "sandboxID": r.pod_id,
        "pid": r.pid,
        "bundle": r.bundle_dir,
        "rootfs": std::path::Path::new(&r.bundle_dir).join(super::files::ROOTFS),
        "writableLayer": r.state_dir,
        "runtimeHandler": r.runtime_handler,
        "cgroupsPath": r.cgroups_path,
        "stopSignal": r.stop_signal,
        "config": r.config,
        "runtimeSpec": runtime_spec,
    })
    .to_string()
}

/// ListContainers' filter: ID prefix, state, pod ID (or prefix), every label of the selector.
pub fn list_filter_matches(r: &ContainerRecord, filter: &ContainerFilter) -> bool {
    if !filter.id.is_empty() && !r.id.starts_with(&filter.id) {
        return false;
    }
    if let Some(s) = &filter.state {
        if s.state != cri_state(r.state) {
            return false;
        }
    }
    if !filter.pod_sandbox_id.is_empty() && !r.pod_id.starts_with(&filter.pod_sandbox_id) {
        return false;
    }
    filter
        .label_selector
        .iter()
        .all(|(k, v)| r.labels.get(k) == Some(v))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use k8s_cri::v1::ContainerStateValue;

    pub fn record() -> ContainerRecord {
        ContainerRecord {
            id: "c0ffee".into(),
            pod_id: "p1234".into(),
            name: "web".into(),
            attempt: 1,
            state: State::Running,
            created_at: 1,
            started_at: 2,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            image: "busybox".into(),
            image_id: "sha256:abc".into(),
            image_ref: "r@sha256:def".into(),
            labels: [("app".to_string(), "web".to_string())].into(),
            annotations: Default::default(),
            config: serde_json::Value::Null,
            resources: serde_json::Value::Null,
            runtime_handler: "runc".into(),
            bundle_dir: "/run/crust/containers/c0ffee".into(),
            state_dir: "/var/lib/crust/containers/c0ffee".into(),
            mounts: vec![],
            log_path: "/var/log/pods/x/web/1.log".into(),
            pid: 42,
            stop_signal: 15,
            cgroups_path: "/crust/crust-c0ffee".into(),
            layers: vec![],
            user: Default::default(),
            restore_from: String::new(),
        }
    }

    #[test]
    fn filters() {
        let r = record();
        let mut f = ContainerFilter::default();
        assert!(list_filter_matches(&r, &f));
        f.id = "c0f".into();
        assert!(list_filter_matches(&r, &f));
        f.id = "c1".into();
        assert!(!list_filter_matches(&r, &f));
        f.id.clear();
        f.pod_sandbox_id = "p12".into();
        assert!(list_filter_matches(&r, &f));
        f.pod_sandbox_id = "p2".into();
        assert!(!list_filter_matches(&r, &f));
        f.pod_sandbox_id.clear();
        f.state = Some(ContainerStateValue {
            state: ContainerState::ContainerExited as i32,
        });
        assert!(!list_filter_matches(&r, &f));
        f.state = Some(ContainerStateValue {
            state: ContainerState::ContainerRunning as i32,
        });
        assert!(list_filter_matches(&r, &f));
        f.label_selector = [("app".to_string(), "db".to_string())].into();
        assert!(!list_filter_matches(&r, &f));
    }

    #[test]
    fn status_reports_the_record() {
        let mut r = record();
        r.state = State::Exited;
        r.exit_code = 137;
        r.reason = "OOMKilled".into();
        r.user.uid = 1000;
        r.user.additional_gids = vec![5, 6];
        let s = container_status(&r);
        assert_eq!(s.state, ContainerState::ContainerExited as i32);
        assert_eq!(s.exit_code, 137);
        assert_eq!(s.reason, "OOMKilled");
        assert_eq!(s.image.unwrap().image, "busybox");
        let user = s.user.unwrap().linux.unwrap();
        assert_eq!((user.uid, user.supplemental_groups), (1000, vec![5, 6]));
    }
}
