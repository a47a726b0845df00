//! A typical pod and container to build test inputs from.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use crust_specgen::{DeviceKind, Host, HostDevice, ImageConfig, Input, Sandbox};
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ImageSpec, KeyValue, LinuxContainerConfig,
    LinuxContainerResources, LinuxContainerSecurityContext, PodSandboxConfig, PodSandboxMetadata,
};

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
    nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
    app:x:1000:1000:app:/home/app:/bin/sh\n";
pub const GROUP: &str =
    "root:x:0:\nwheel:x:10:root,app\napp:x:1000:\nvideo:x:44:app\nnogroup:x:65534:\n";

/// Owned parts of an [`Input`].
pub struct Case {
    pub config: ContainerConfig,
    pub sandbox_config: PodSandboxConfig,
    pub sandbox: Sandbox,
    pub image: ImageConfig,
    pub image_mounts: BTreeMap<String, PathBuf>,
    pub target_pid_ns: Option<PathBuf>,
    pub seccomp_localhost: Option<Vec<u8>>,
    pub etc_passwd: Option<String>,
    pub host: Host,
}

pub fn host_devices() -> Vec<HostDevice> {
    let d = |path: &str, kind, major, minor, file_mode| HostDevice {
        path: PathBuf::from(path),
        kind,
        major,
        minor,
        file_mode,
        uid: 0,
        gid: 0,
    };
    vec![
        d("/dev/null", DeviceKind::Char, 1, 3, 0o666),
        d("/dev/fuse", DeviceKind::Char, 10, 229, 0o666),
        d("/dev/sda", DeviceKind::Block, 8, 0, 0o660),
    ]
}

impl Case {
    pub fn new() -> Case {
        let pods = PathBuf::from("/run/crust/pods/pod0123");
        let mut namespaces = BTreeMap::new();
        for k in ["net", "ipc", "uts"] {
            namespaces.insert(k.to_string(), pods.join("ns").join(k));
        }
        Case {
            config: ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: "web".into(),
                    attempt: 0,
                }),
                image: Some(ImageSpec {
                    image: "docker.io/library/busybox:latest".into(),
                    ..Default::default()
                }),
                envs: vec![KeyValue {
                    key: "MODE".into(),
                    value: "test".into(),
                }],
                annotations: [("team".to_string(), "infra".to_string())].into(),
                linux: Some(LinuxContainerConfig {
                    resources: Some(LinuxContainerResources {
                        cpu_period: 100000,
                        cpu_shares: 2,
                        oom_score_adj: 1000,
                        ..Default::default()
                    }),
                    security_context: Some(LinuxContainerSecurityContext::default()),
                }),
                ..Default::default()
            },
            sandbox_config: PodSandboxConfig {
                metadata: Some(PodSandboxMetadata {
                    name: "web-7d4b9".into(),
                    uid: "0b5f-uid".into(),
                    namespace: "default".into(),
                    attempt: 0,
                }),
                hostname: "web-7d4b9".into(),
                ..Default::default()
            },
            sandbox: Sandbox {
                namespaces,
                hostname: "web-7d4b9".into(),
                hostname_path: pods.join("hostname"),
                hosts_path: pods.join("hosts"),
                resolv_path: pods.join("resolv.conf"),
                shm_path: pods.join("shm"),
                cgroup_parent: "/kubepods/besteffort/pod0b5f".into(),
            },
            image: ImageConfig {
                env: vec!["PATH=/usr/bin:/bin".into(), "MODE=image".into()],
                entrypoint: vec![],
                cmd: vec!["sh".into()],
                working_dir: String::new(),
                user: String::new(),
                stop_signal: String::new(),
            },
            image_mounts: BTreeMap::new(),
            target_pid_ns: None,
            seccomp_localhost: None,
            etc_passwd: Some(PASSWD.to_string()),
            host: Host {
                devices: host_devices(),
                arch: crust_specgen::Arch::X86_64,
                ..Host::default()
            },
        }
    }

    pub fn sc(&mut self) -> &mut LinuxContainerSecurityContext {
        self.config
            .linux
            .get_or_insert_with(Default::default)
            .security_context
            .get_or_insert_with(Default::default)
    }

    pub fn resources(&mut self) -> &mut LinuxContainerResources {
        self.config
            .linux
            .get_or_insert_with(Default::default)
            .resources
            .get_or_insert_with(Default::default)
    }

    pub fn input(&self) -> Input<'_> {
        Input {
            container_id: "c0ffee",
            config: &self.config,
            sandbox_id: "pod0123",
            sandbox_config: &self.sandbox_config,
            sandbox: self.sandbox.clone(),
            image: self.image.clone(),
            image_ref: "docker.io/library/busybox:latest".into(),
            rootfs: PathBuf::from("/run/crust/containers/c0ffee/rootfs"),
            etc_passwd: self.etc_passwd.clone(),
            etc_group: Some(GROUP.to_string()),
            image_mounts: self.image_mounts.clone(),
            target_pid_ns: self.target_pid_ns.clone(),
            seccomp_localhost: self.seccomp_localhost.clone(),
            host: self.host.clone(),
        }
    }
}
