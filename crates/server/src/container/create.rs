//! CreateContainer: validate, reserve the name, then mount the rootfs and write the bundle.
//! Nothing runs yet (the OCI runtime creates the container at StartContainer, as containerd
//! does); any step that fails undoes the ones before it.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crust_specgen as specgen;
use crust_store::{
    container_name_key, ContainerRecord, ContainerState, ContainerUser, ImageRecord, PodRecord,
    PodState,
};
use k8s_cri::v1::{ContainerConfig, ContainerEventType, NamespaceMode, PodSandboxConfig};
use tonic::Status;

use super::{files, host::HostFacts, restore, rootfs, Containers};
use crate::config::CgroupDriver;
use crate::sandbox::Lookup as PodLookup;
use crate::service::now_nanos;

fn invalid(msg: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("CreateContainer: {msg}"))
}

/// What CreateContainer decided from the request before touching anything.
struct Plan {
    pod: PodRecord,
    pod_config: PodSandboxConfig,
    config: ContainerConfig,
    name: String,
    attempt: u32,
    image: ImageRecord,
    log_path: String,
    /// A checkpoint archive extracted for this container to restore (restore.rs).
    restore: Option<restore::Extracted>,
}

impl Containers {
    /// CreateContainer; returns the new container's ID.
    pub async fn create(
        self: &Arc<Self>,
        pod_id: &str,
        config: Option<ContainerConfig>,
        pod_config: Option<PodSandboxConfig>,
    ) -> Result<String, Status> {
        let (config, restore) = self.import_checkpoint(config).await?;
        let mut plan = self.plan(pod_id, config, pod_config)?;
        plan.restore = restore;
        let key = container_name_key(&plan.pod.id, &plan.name, plan.attempt);
        let this = self.clone();
        self.names
            .create(
                &key,
                "container",
                async move { this.create_task(plan).await },
            )
            .await
            .map_err(|e| {
                if e.code() == tonic::Code::AlreadyExists {
                    Status::already_exists(format!("CreateContainer: {}", e.message()))
                } else {
                    e
                }
            })
    }

    fn plan(
        &self,
        pod_id: &str,
        config: Option<ContainerConfig>,
        pod_config: Option<PodSandboxConfig>,
    ) -> Result<Plan, Status> {
        let pod = match self.pods.lookup(pod_id) {
            PodLookup::Found(pod) => pod.snapshot(),
            PodLookup::NotFound => {
                return Err(Status::not_found(format!(
                    "CreateContainer: pod sandbox {pod_id:?} not found"
                )))
            }
            PodLookup::Ambiguous(ids) => {
                return Err(invalid(format!(
                    "pod sandbox ID prefix {pod_id:?} matches {} pods",
                    ids.len()
                )))
            }
        };
        if pod.state != PodState::Ready {
            return Err(Status::failed_precondition(format!(
                "CreateContainer: pod sandbox {} is not ready",
                pod.id
            )));
        }
        let config = config.ok_or_else(|| invalid("config is required"))?;
        let meta = config
            .metadata
            .clone()
            .ok_or_else(|| invalid("config.metadata is required"))?;
        validate_name(&meta.name).map_err(invalid)?;
        let image_name = config
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default();
        if image_name.is_empty() {
            return Err(invalid("config.image.image is required"));
        }
        let image = self
            .images
            .resolve(&image_name)
            .map_err(|e| crate::status::image_error("CreateContainer", &e))?
            .ok_or_else(|| {
                Status::not_found(format!("CreateContainer: image {image_name:?} not found"))
            })?;
        // The pod's config as it was created is the truth; the request's copy is informative.
        let stored: PodSandboxConfig =
            serde_json::from_value(pod.config.clone()).unwrap_or_default();
        let pod_config = if stored.metadata.is_some() {
            stored
        } else {
            pod_config.unwrap_or_default()
        };
        let log_path = log_path(&pod_config.log_directory, &config.log_path).map_err(invalid)?;
        Ok(Plan {
            name: meta.name,
            attempt: meta.attempt,
            pod,
            pod_config,
            config,
            image,
            log_path,
            restore: None,
        })
    }

    /// When the image is a checkpoint archive (restore.rs): the archive extracted under the
    /// root and the config with the image the checkpoint was taken of. Else as given.
    async fn import_checkpoint(
        &self,
        config: Option<ContainerConfig>,
    ) -> Result<(Option<ContainerConfig>, Option<restore::Extracted>), Status> {
        let Some(mut config) = config else {
            return Ok((None, None));
        };
        let named = config
            .image
            .as_ref()
            .map(|i| i.image.as_str())
            .unwrap_or("");
        let Some(archive) = restore::archive_path(named) else {
            return Ok((Some(config), None));
        };
        let dest = restore::Extracted(
            self.root
                .join("containers")
                .join(format!(".restore-{}", crate::sandbox::new_id())),
        );
        let dest2 = dest.0.clone();
        let imported = tokio::task::spawn_blocking(move || restore::import(&archive, &dest2))
            .await
            .map_err(|e| Status::internal(format!("CreateContainer: import task: {e}")))
            .and_then(|r| r);
        match imported {
            Ok(dump) => {
                tracing::info!(archive = %named, image = %restore::image_of(&dump), checkpointed = %dump.id, "CreateContainer restores a checkpoint");
                if let Some(image) = config.image.as_mut() {
                    image.image = restore::image_of(&dump).to_string();
                }
                Ok((Some(config), Some(dest)))
            }
            Err(e) => Err(e),
        }
    }

    async fn create_task(self: Arc<Self>, plan: Plan) -> Result<String, Status> {
        let id = crate::sandbox::new_id();
        let mut undo = Undo::default();
        // No image GC between mounting the layers and storing the record that names them.
        let _layers = self.images.hold_layers().await;
        // Mounting and spec generation touch the filesystem only: off the async threads.
        let this = self.clone();
        let (plan, id2) = (Arc::new(plan), id.clone());
        let plan2 = plan.clone();
        let made = tokio::task::spawn_blocking(move || {
            let mut undo = Undo::default();
            let result = this.create_steps(&id2, &plan2, &mut undo);
            (result, undo)
        })
        .await
        .map_err(|e| Status::internal(format!("CreateContainer: creation task failed: {e}")));
        let result = match made {
            Ok((result, steps)) => {
                undo = steps;
                result
            }
            Err(e) => Err(e),
        };
        match result.and_then(|record| {
            self.store.put_container(&record).map_err(|e| {
                Status::internal(format!("CreateContainer: saving the record of {id}: {e}"))
            })?;
            Ok(record)
        }) {
            Ok(record) => {
                tracing::info!(container = %id, name = %plan.name, pod = %plan.pod.id, "container created");
                let pod_id = record.pod_id.clone();
                let c = super::Container::new(record);
                // Visible and announced under the order lock: its STARTED cannot come first.
                let _order = c.announce.lock().unwrap_or_else(|e| e.into_inner());
                self.index().insert(id.clone(), c.clone());
                self.events
                    .container(ContainerEventType::ContainerCreatedEvent, &id, &pod_id);
                Ok(id)
            }
            Err(e) => {
                tracing::warn!(container = %id, error = %e.message(), "CreateContainer failed, rolling back");
                undo.run();
                Err(e)
            }
        }
    }

    /// The creation steps (blocking). Each step registers its undo before the next begins.
    fn create_steps(
        &self,
        id: &str,
        plan: &Plan,
        undo: &mut Undo,
    ) -> Result<ContainerRecord, Status> {
        let step = |what: &str, e: &dyn std::fmt::Display| {
            Status::internal(format!("CreateContainer {}: {what}: {e}", plan.name))
        };
        let bundle = self.runroot.join("containers").join(id);
        let state_dir = self.root.join("containers").join(id);
        for dir in [&bundle, &state_dir] {
            std::fs::create_dir_all(dir)
                .map_err(|e| step("creating the container directory", &e))?;
            undo.dirs.push(dir.clone());
        }

        // A restore: the extracted checkpoint moves in with the container, and its rootfs
        // changes become the writable layer's starting content.
        let mut restore_from = String::new();
        if let Some(imported) = &plan.restore {
            let dir = state_dir.join(restore::RESTORE_DIR);
            std::fs::rename(&imported.0, &dir)
                .map_err(|e| step("moving the extracted checkpoint", &e))?;
            restore::apply_rootfs_diff(&dir, &state_dir.join("upper"))
                .map_err(|e| step("applying the checkpoint's rootfs changes", &e))?;
            restore_from = dir.display().to_string();
        }

        // The rootfs: the image's layers under a private writable upper.
        let rootfs = bundle.join(files::ROOTFS);
        let layers = self.images.layer_dirs(&plan.image);
        rootfs::mount_layers(
            &layers,
            Some((&state_dir.join("upper"), &state_dir.join("work"))),
            &rootfs,
        )
        .map_err(|e| step("mounting the rootfs", &e))?;
        undo.mounts.push(rootfs.clone());

        let mut layer_ids: Vec<String> = plan
            .image
            .layers
            .iter()
            .map(|l| l.diff_id.clone())
            .collect();
        // Image volumes: each image mounted read-only once.
        let mut image_mounts = BTreeMap::new();
        for m in &plan.config.mounts {
            let Some(spec) = m.image.as_ref().filter(|i| !i.image.is_empty()) else {
                continue;
            };
            if image_mounts.contains_key(&spec.image) {
                continue;
            }
            let image = self
                .images
                .resolve(&spec.image)
                .map_err(|e| crate::status::image_error("CreateContainer", &e))?
                .ok_or_else(|| {
                    Status::not_found(format!(
                        "CreateContainer: image {:?} of the volume at {:?} not found",
                        spec.image, m.container_path
                    ))
                })?;
            let target = bundle
                .join(files::IMAGE_MOUNTS)
                .join(image_mounts.len().to_string());
            rootfs::mount_layers(&self.images.layer_dirs(&image), None, &target)
                .map_err(|e| step("mounting an image volume", &e))?;
            layer_ids.extend(image.layers.iter().map(|l| l.diff_id.clone()));
            undo.mounts.push(target.clone());
            image_mounts.insert(spec.image.clone(), target);
        }

        let image_config = image_config(
            self.images
                .config_json(&plan.image)
                .unwrap_or(serde_json::Value::Null),
        );
        let etc_passwd =
            rootfs::read_in_root(&rootfs, "/etc/passwd").map_err(|e| step("reading", &e))?;
        let etc_group =
            rootfs::read_in_root(&rootfs, "/etc/group").map_err(|e| step("reading", &e))?;
        let security = plan
            .config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.clone())
            .unwrap_or_default();
        let seccomp_localhost = localhost_profile(&plan.config).map_err(invalid)?;
        let target_pid_ns = self.target_pid_ns(&security)?;
        let host = self.spec_host(&plan.config, security.privileged)?;
        let sandbox = specgen::Sandbox {
            namespaces: plan
                .pod
                .namespaces
                .iter()
                .map(|(k, v)| (k.clone(), PathBuf::from(v)))
                .collect(),
            hostname: std::fs::read_to_string(Path::new(&plan.pod.state_dir).join("hostname"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            hostname_path: Path::new(&plan.pod.state_dir).join("hostname"),
            hosts_path: Path::new(&plan.pod.state_dir).join("hosts"),
            resolv_path: Path::new(&plan.pod.state_dir).join("resolv.conf"),
            shm_path: PathBuf::from(&plan.pod.shm_path),
            cgroup_parent: plan.pod.cgroup_parent.clone(),
        };
        let stop_signal = specgen::stop_signal(&image_config).map_err(invalid)?;
        let input = specgen::Input {
            container_id: id,
            config: &plan.config,
            sandbox_id: &plan.pod.id,
            sandbox_config: &plan.pod_config,
            sandbox,
            image: image_config,
            image_ref: plan
                .config
                .image
                .as_ref()
                .map(|i| i.image.clone())
                .unwrap_or_default(),
            rootfs: rootfs.clone(),
            etc_passwd,
            etc_group,
            image_mounts,
            target_pid_ns,
            seccomp_localhost,
            host,
        };
        let output = specgen::generate(&input).map_err(|e| invalid(&e))?;
        for w in &output.warnings {
            tracing::warn!(container = %id, warning = %w, "CreateContainer");
        }
        self.check_propagation(&plan.config)?;
        let cgroups_path = output
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().clone())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let spec_json =
            specgen::to_json(&output.spec).map_err(|e| step("encoding the runtime spec", &e))?;
        crate::sandbox::files::write_private_file(
            &bundle.join(files::CONFIG),
            spec_json.as_bytes(),
        )
        .map_err(|e| step("writing config.json", &e))?;
        if !plan.log_path.is_empty() {
            if let Some(dir) = Path::new(&plan.log_path).parent() {
                std::fs::create_dir_all(dir).map_err(|e| step("creating the log directory", &e))?;
            }
        }

        let resources = plan
            .config
            .linux
            .as_ref()
            .and_then(|l| l.resources.clone())
            .map(|r| serde_json::to_value(r).unwrap_or_default())
            .unwrap_or(serde_json::Value::Null);
        Ok(ContainerRecord {
            id: id.to_string(),
            pod_id: plan.pod.id.clone(),
            name: plan.name.clone(),
            attempt: plan.attempt,
            state: ContainerState::Created,
            created_at: now_nanos(),
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            image: plan
                .config
                .image
                .as_ref()
                .map(|i| i.image.clone())
                .unwrap_or_default(),
            image_id: plan.image.id.clone(),
            image_ref: plan
                .image
                .repo_digests
                .first()
                .cloned()
                .unwrap_or_else(|| plan.image.id.clone()),
            labels: plan.config.labels.clone().into_iter().collect(),
            annotations: plan.config.annotations.clone().into_iter().collect(),
            config: serde_json::to_value(&plan.config)
                .map_err(|e| step("recording the config", &e))?,
            resources,
            runtime_handler: plan.pod.runtime_handler.clone(),
            bundle_dir: bundle.display().to_string(),
            state_dir: state_dir.display().to_string(),
            mounts: undo
                .mounts
                .iter()
                .map(|m| m.display().to_string())
                .collect(),
            log_path: plan.log_path.clone(),
            pid: 0,
            stop_signal,
            cgroups_path,
            layers: layer_ids,
            user: ContainerUser {
                uid: output.user.uid,
                gid: output.user.gid,
                additional_gids: output.user.additional_gids.clone(),
                username: output.user.username.clone(),
            },
            restore_from,
        })
    }

    /// For pid namespace TARGET: the target container's pid namespace (it must be running).
    fn target_pid_ns(
        &self,
        security: &k8s_cri::v1::LinuxContainerSecurityContext,
    ) -> Result<Option<PathBuf>, Status> {
        let Some(ns) = &security.namespace_options else {
            return Ok(None);
        };
        if NamespaceMode::try_from(ns.pid) != Ok(NamespaceMode::Target) {
            return Ok(None);
        }
        if ns.target_id.is_empty() {
            return Err(invalid(
                "namespace_options.pid is TARGET but target_id is empty",
            ));
        }
        let target = match self.lookup(&ns.target_id) {
            super::Lookup::Found(c) => c.snapshot(),
            _ => {
                return Err(Status::not_found(format!(
                    "CreateContainer: target container {:?} not found",
                    ns.target_id
                )))
            }
        };
        if target.state != ContainerState::Running || target.pid <= 0 {
            return Err(Status::failed_precondition(format!(
                "CreateContainer: target container {} is not running",
                target.id
            )));
        }
        Ok(Some(PathBuf::from(format!("/proc/{}/ns/pid", target.pid))))
    }

    /// What specgen needs to know of the node for this container.
    fn spec_host(
        &self,
        config: &ContainerConfig,
        privileged: bool,
    ) -> Result<specgen::Host, Status> {
        let mut devices = Vec::new();
        for d in &config.devices {
            if !Path::new(&d.host_path).is_absolute() {
                return Err(invalid(format!(
                    "devices: host_path {:?} is not absolute",
                    d.host_path
                )));
            }
            let found = super::host::device(Path::new(&d.host_path))
                .map_err(|e| invalid(format!("devices: host device {:?}: {e}", d.host_path)))?;
            devices.push(found);
        }
        if privileged {
            devices.extend(super::host::devices_under(Path::new("/dev")));
        }
        Ok(host_for_spec(
            &self.host,
            self.config.runtime.cgroup_driver,
            devices,
        ))
    }

    /// Refuses a mount whose propagation the host mount under it cannot give.
    fn check_propagation(&self, config: &ContainerConfig) -> Result<(), Status> {
        let needs: Vec<_> = config
            .mounts
            .iter()
            .filter(|m| {
                m.propagation != k8s_cri::v1::MountPropagation::PropagationPrivate as i32
                    && m.image.as_ref().is_none_or(|i| i.image.is_empty())
            })
            .collect();
        if needs.is_empty() {
            return Ok(());
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| {
            Status::internal(format!(
                "CreateContainer: reading /proc/self/mountinfo: {e}"
            ))
        })?;
        for m in needs {
            let propagation = match k8s_cri::v1::MountPropagation::try_from(m.propagation) {
                Ok(k8s_cri::v1::MountPropagation::PropagationHostToContainer) => {
                    specgen::MountPropagation::HostToContainer
                }
                Ok(k8s_cri::v1::MountPropagation::PropagationBidirectional) => {
                    specgen::MountPropagation::Bidirectional
                }
                Ok(_) => continue,
                Err(_) => {
                    return Err(invalid(format!(
                        "mounts: unknown propagation {}",
                        m.propagation
                    )))
                }
            };
            specgen::check_propagation(&mountinfo, Path::new(&m.host_path), propagation)
                .map_err(|e| invalid(&e))?;
        }
        Ok(())
    }
}

fn host_for_spec(
    facts: &HostFacts,
    driver: CgroupDriver,
    devices: Vec<specgen::HostDevice>,
) -> specgen::Host {
    specgen::Host {
        cgroup_driver: match driver {
            CgroupDriver::Cgroupfs => specgen::CgroupDriver::Cgroupfs,
            CgroupDriver::Systemd => specgen::CgroupDriver::Systemd,
        },
        cgroup_v2: facts.cgroup_v2,
        swap_accounting: facts.swap_accounting,
        oom_score_adj: facts.oom_score_adj,
        apparmor: facts.apparmor,
        recursive_read_only: facts.recursive_read_only,
        devices,
        arch: specgen::seccomp::Arch::native(),
        x32_syscalls: facts.x32_syscalls,
        capabilities: facts.capabilities.clone(),
    }
}

/// The image config fields a container needs.
fn image_config(doc: serde_json::Value) -> specgen::ImageConfig {
    let c = &doc["config"];
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    specgen::ImageConfig {
        env: strings(&c["Env"]),
        entrypoint: strings(&c["Entrypoint"]),
        cmd: strings(&c["Cmd"]),
        working_dir: text(&c["WorkingDir"]),
        user: text(&c["User"]),
        stop_signal: text(&c["StopSignal"]),
    }
}

/// The contents of the Localhost seccomp profile the request names, if it names one.
fn localhost_profile(config: &ContainerConfig) -> Result<Option<Vec<u8>>, String> {
    let Some(path) = specgen::localhost_seccomp_path(config) else {
        return Ok(None);
    };
    if !path.is_absolute() {
        return Err(format!(
            "seccomp: localhost profile {} is not an absolute path",
            path.display()
        ));
    }
    std::fs::read(&path).map(Some).map_err(|e| {
        format!(
            "seccomp: reading the localhost profile {}: {e}",
            path.display()
        )
    })
}

/// Container names become parts of paths and keys: keep them to what Kubernetes allows.
fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("config.metadata.name is required".into());
    }
    if name.len() > 253
        || name == "."
        || name == ".."
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "config.metadata.name {name:?}: only letters, digits, '-', '_' and '.' (at most 253), not \".\" or \"..\""
        ));
    }
    Ok(())
}

/// The absolute log path: `log_path` (relative) inside the pod's log directory, never outside.
fn log_path(log_directory: &str, log_path: &str) -> Result<String, String> {
    if log_path.is_empty() {
        return Ok(String::new());
    }
    let rel = Path::new(log_path);
    if rel.is_absolute()
        || log_path.contains('\0')
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "config.log_path {log_path:?} must be relative to the pod's log directory, without '..'"
        ));
    }
    if log_directory.is_empty() {
        // No log directory: kubelet always sets one; without it there is nowhere to log.
        return Ok(String::new());
    }
    Ok(Path::new(log_directory).join(rel).display().to_string())
}

/// Steps of a CreateContainer to undo if a later one fails, in reverse order.
#[derive(Default)]
pub(super) struct Undo {
    dirs: Vec<PathBuf>,
    mounts: Vec<PathBuf>,
}

impl Undo {
    fn run(self) {
        for m in self.mounts.iter().rev() {
            if let Err(e) = rootfs::unmount(m) {
                tracing::warn!(path = %m.display(), error = %e, "rollback: unmount");
            }
        }
        for d in self.dirs.iter().rev() {
            if let Err(e) = std::fs::remove_dir_all(d) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %d.display(), error = %e, "rollback: remove dir");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_paths_stay_in_the_pod_directory() {
        assert_eq!(
            log_path("/var/log/pods/p", "web/0.log").unwrap(),
            "/var/log/pods/p/web/0.log"
        );
        assert!(log_path("/var/log/pods/p", "../escape.log").is_err());
        assert!(log_path("/var/log/pods/p", "web/../../x.log").is_err());
        assert!(log_path("/var/log/pods/p", "/etc/passwd").is_err());
        assert!(log_path("/var/log/pods/p", "web/0.log\0x").is_err());
        assert_eq!(log_path("", "web.log").unwrap(), "");
        assert_eq!(log_path("/d", "").unwrap(), "");
    }

    #[test]
    fn names() {
        assert!(validate_name("web-1.a_b").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("../x").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("..").is_err());
        assert!(validate_name(".").is_err());
        assert!(validate_name("a\0b").is_err());
    }

    #[test]
    fn image_config_fields() {
        let c = image_config(serde_json::json!({"config": {
            "Env": ["PATH=/bin", "A=1"], "Entrypoint": ["/bin/sh"], "Cmd": ["-c", "true"],
            "WorkingDir": "/w", "User": "1000:1000", "StopSignal": "SIGINT"
        }}));
        assert_eq!(c.env, vec!["PATH=/bin", "A=1"]);
        assert_eq!(c.entrypoint, vec!["/bin/sh"]);
        assert_eq!(c.cmd, vec!["-c", "true"]);
        assert_eq!(
            (c.working_dir.as_str(), c.user.as_str()),
            ("/w", "1000:1000")
        );
        assert_eq!(c.stop_signal, "SIGINT");
        let empty = image_config(serde_json::Value::Null);
        assert!(empty.cmd.is_empty() && empty.user.is_empty());
    }
}
