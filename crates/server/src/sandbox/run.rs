//! RunPodSandbox: validate, reserve the name, then create the pod step by step; any step that
//! fails undoes the ones before it, so a failed RunPodSandbox leaves nothing behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crust_network::{Attachment, Bandwidth, NetworkList, PortMapping};
use crust_store::{name_key, PodNetwork, PodRecord, PodState};
use k8s_cri::v1::{ContainerEventType, NamespaceMode, PodSandboxConfig, Protocol};
use tokio::sync::watch;
use tonic::Status;

use super::{cgroup, files, sysctl, NameSlot, Pod, Pods};
use crate::service::now_nanos;

/// Size of a pod's /dev/shm, as containerd's default.
const SHM_SIZE: &str = "65536k";

/// What RunPodSandbox decided from the request before touching anything.
pub(super) struct Plan {
    pub config: PodSandboxConfig,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub attempt: u32,
    pub handler: String,
    pub host_net: bool,
    pub host_ipc: bool,
    pub pid_mode: NamespaceMode,
    pub hostname: String,
    pub sysctls: Vec<(String, String)>,
    pub cgroup_path: Option<String>,
    pub bandwidth: Option<Bandwidth>,
}

fn invalid(msg: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("RunPodSandbox: {msg}"))
}

/// In a pod's run directory while it is being created: the cgroup directories crustd made for
/// it (JSON list), for the next start to remove if the creation never finished.
pub(super) const CGROUPS_CREATED: &str = "cgroups-created.json";

impl Pods {
    /// Checks the request; every refusal is InvalidArgument naming the field.
    pub(super) fn plan(
        &self,
        config: Option<PodSandboxConfig>,
        handler: &str,
    ) -> Result<Plan, Status> {
        let config = config.ok_or_else(|| invalid("config is required"))?;
        let meta = config
            .metadata
            .clone()
            .ok_or_else(|| invalid("config.metadata is required"))?;
        if meta.name.is_empty() || meta.namespace.is_empty() || meta.uid.is_empty() {
            return Err(invalid(
                "config.metadata needs a name, a namespace and a uid",
            ));
        }
        // Checked here, recorded as asked: "" means the default handler, as in containerd.
        self.handler(handler)?;
        let handler = handler.to_string();
        let linux = config.linux.clone().unwrap_or_default();
        let ns = linux
            .security_context
            .as_ref()
            .and_then(|s| s.namespace_options.clone())
            .unwrap_or_default();
        let mode = |v: i32, field: &str| {
            NamespaceMode::try_from(v)
                .map_err(|_| invalid(format!("namespace_options.{field}: unknown mode {v}")))
        };
        let net_mode = mode(ns.network, "network")?;
        let ipc_mode = mode(ns.ipc, "ipc")?;
        let pid_mode = mode(ns.pid, "pid")?;
        if matches!(net_mode, NamespaceMode::Container | NamespaceMode::Target)
            || matches!(ipc_mode, NamespaceMode::Container | NamespaceMode::Target)
        {
            return Err(invalid(
                "namespace_options: network and ipc must be POD or NODE",
            ));
        }
        if pid_mode == NamespaceMode::Target {
            return Err(invalid(
                "namespace_options.pid: TARGET is for containers, not pods",
            ));
        }
        let host_net = net_mode == NamespaceMode::Node;
        let host_ipc = ipc_mode == NamespaceMode::Node;
        let hostname = if host_net {
            String::new()
        } else if config.hostname.is_empty() {
            meta.name.chars().take(63).collect()
        } else {
            config.hostname.clone()
        };
        if !hostname.is_empty() {
            files::validate_hostname(&hostname).map_err(invalid)?;
        }
        // The directory is made at once and containers' logs go under it: never relative to
        // crustd's cwd or climbing out with "..".
        let log_dir = std::path::Path::new(&config.log_directory);
        if !config.log_directory.is_empty()
            && (!log_dir.is_absolute()
                || log_dir
                    .components()
                    .any(|c| c == std::path::Component::ParentDir)
                || config.log_directory.contains('\0'))
        {
            return Err(invalid(format!(
                "config.log_directory {:?} must be an absolute path without \"..\"",
                config.log_directory
            )));
        }
        if let Some(dns) = &config.dns_config {
            files::validate_dns(dns).map_err(invalid)?;
        }
        let mut sysctls: Vec<(String, String)> = Vec::new();
        let mut keys: Vec<&String> = linux.sysctls.keys().collect();
        keys.sort();
        for key in keys {
            let value = &linux.sysctls[key];
            let key = sysctl::validate(key, value, host_net, host_ipc).map_err(invalid)?;
            sysctls.push((key, value.clone()));
        }
        let cgroup_path = if linux.cgroup_parent.is_empty() {
            None
        } else {
            Some(
                cgroup::pod_cgroup_path(&linux.cgroup_parent, self.config.runtime.cgroup_driver)
                    .map_err(invalid)?,
            )
        };
        for pm in &config.port_mappings {
            Protocol::try_from(pm.protocol)
                .map_err(|_| invalid(format!("port_mappings: unknown protocol {}", pm.protocol)))?;
            if !(0..=65535).contains(&pm.host_port) || !(0..=65535).contains(&pm.container_port) {
                return Err(invalid(format!(
                    "port_mappings: port out of range in {}:{}",
                    pm.host_port, pm.container_port
                )));
            }
            if !pm.host_ip.is_empty() && pm.host_ip.parse::<std::net::IpAddr>().is_err() {
                return Err(invalid(format!(
                    "port_mappings: host_ip {:?} is not an IP address",
                    pm.host_ip
                )));
            }
        }
        let annotations: std::collections::HashMap<String, String> =
            config.annotations.clone().into_iter().collect();
        let bandwidth = Bandwidth::from_annotations(&annotations).map_err(invalid)?;
        Ok(Plan {
            name: meta.name,
            namespace: meta.namespace,
            uid: meta.uid,
            attempt: meta.attempt,
            handler,
            host_net,
            host_ipc,
            pid_mode,
            hostname,
            sysctls,
            cgroup_path,
            bandwidth,
            config,
        })
    }

    /// The runtime handler to use; unknown ones are refused listing the configured.
    pub(crate) fn handler(&self, requested: &str) -> Result<String, Status> {
        let name = if requested.is_empty() {
            self.config.runtime.default_handler.clone()
        } else {
            requested.to_string()
        };
        if self.config.runtimes.contains_key(&name) {
            Ok(name)
        } else {
            let known: Vec<&str> = self.config.runtimes.keys().map(|s| s.as_str()).collect();
            Err(Status::invalid_argument(format!(
                "runtime handler {name:?} is not configured (configured: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )))
        }
    }

    /// RunPodSandbox. The creation runs in its own task so that a caller that gives up (a
    /// kubelet deadline) does not abandon a half-made pod; the pod it makes is handed to the
    /// next RunPodSandbox with the same name instead of being duplicated.
    pub async fn run(
        self: &Arc<Self>,
        config: Option<PodSandboxConfig>,
        handler: &str,
    ) -> Result<String, Status> {
        let plan = self.plan(config, handler)?;
        let key = name_key(&plan.name, &plan.namespace, &plan.uid, plan.attempt);
        let mut waiting = {
            let mut index = self.index();
            match index.names.get_mut(&key) {
                Some(NameSlot::Creating(rx)) => Some(rx.clone()),
                Some(NameSlot::Created { id, claimed }) => {
                    if !*claimed {
                        *claimed = true;
                        tracing::info!(pod = %id, "returning the pod an abandoned RunPodSandbox made");
                        return Ok(id.clone());
                    }
                    return Err(Status::already_exists(format!(
                        "RunPodSandbox: pod sandbox name {key:?} is reserved for {id}"
                    )));
                }
                None => {
                    let (tx, rx) = watch::channel(None);
                    index
                        .names
                        .insert(key.clone(), NameSlot::Creating(rx.clone()));
                    let pods = self.clone();
                    let key = key.clone();
                    tokio::spawn(async move {
                        let outcome = pods.create(plan).await;
                        {
                            let mut index = pods.index();
                            match &outcome {
                                Ok(id) => {
                                    index.names.insert(
                                        key,
                                        NameSlot::Created {
                                            id: id.clone(),
                                            claimed: false,
                                        },
                                    );
                                }
                                Err(_) => {
                                    index.names.remove(&key);
                                }
                            }
                        }
                        let _ = tx.send(Some(outcome));
                    });
                    Some(rx)
                }
            }
        };
        let rx = waiting.as_mut().expect("set above");
        let outcome = rx
            .wait_for(|o| o.is_some())
            .await
            .map_err(|_| Status::internal("RunPodSandbox: the creating task vanished"))?
            .clone()
            .expect("waited for Some");
        let id = outcome?;
        if let Some(NameSlot::Created { claimed, .. }) = self.index().names.get_mut(&key) {
            *claimed = true;
        }
        Ok(id)
    }

    /// The creation steps. Each step registers its undo before the next begins.
    async fn create(self: &Arc<Self>, plan: Plan) -> Result<String, Status> {
        let id = super::new_id();
        let span = tracing::info_span!("create", pod = %id, name = %plan.name);
        let _enter = span.enter();
        drop(_enter);
        let mut undo = Undo::default();
        match self.create_steps(&id, &plan, &mut undo).await {
            Ok(record) => {
                let pod = Arc::new(Pod {
                    record: std::sync::Mutex::new(record),
                    op: tokio::sync::Mutex::new(()),
                });
                {
                    // Announced before a Stop, Remove or the watcher can change it.
                    let _op = pod.op.lock().await;
                    self.index().pods.insert(id.clone(), pod.clone());
                    self.events
                        .pod(ContainerEventType::ContainerCreatedEvent, &id);
                    self.events
                        .pod(ContainerEventType::ContainerStartedEvent, &id);
                }
                self.watch(pod);
                tracing::info!(pod = %id, name = %plan.name, "pod sandbox ready");
                Ok(id)
            }
            Err(e) => {
                tracing::warn!(pod = %id, error = %e.message(), "RunPodSandbox failed, rolling back");
                undo.run(self).await;
                Err(e)
            }
        }
    }

    async fn create_steps(
        &self,
        id: &str,
        plan: &Plan,
        undo: &mut Undo,
    ) -> Result<PodRecord, Status> {
        let step = |what: &str, e: &dyn std::fmt::Display| {
            Status::internal(format!("RunPodSandbox {}: {what}: {e}", plan.name))
        };
        let run_dir = self.runroot.join("pods").join(id);
        let state_dir = self.root.join("pods").join(id);
        for dir in [&run_dir, &state_dir] {
            std::fs::create_dir_all(dir).map_err(|e| step("creating the pod directory", &e))?;
            undo.dirs.push(dir.clone());
        }

        // Namespaces, held by the pod's monitor.
        let ready = crust_monitor::spawn(&crust_monitor::SpawnOptions {
            binary: self.monitor_binary.clone(),
            pod_id: id.to_string(),
            dir: run_dir.clone(),
            net: !plan.host_net,
            ipc: !plan.host_ipc,
            uts: !plan.host_net,
            pid: plan.pid_mode == NamespaceMode::Pod,
            hostname: (!plan.hostname.is_empty()).then(|| plan.hostname.clone()),
            sysctls: plan.sysctls.clone(),
        })
        .await
        .map_err(|e| step("starting the pod monitor", &e))?;
        undo.monitor = Some(run_dir.clone());
        let namespaces: BTreeMap<String, String> = ready
            .namespaces
            .iter()
            .map(|(k, v)| (k.clone(), v.display().to_string()))
            .collect();

        // The pod cgroup, and the pod init in it.
        let mut cgroups_created = Vec::new();
        if let Some(path) = &plan.cgroup_path {
            // What crustd makes is recorded before it is made: a crash before the pod's
            // record is stored leaves it to the next start to remove (a retry would find it
            // and not own it). Then again as made (a concurrent start may have made some).
            let record_file = run_dir.join(CGROUPS_CREATED);
            let recorded = std::cell::Cell::new(0);
            let record = |dirs: &[PathBuf]| {
                recorded.set(dirs.len());
                let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                files::write_private_file(
                    &record_file,
                    serde_json::to_string(&dirs).unwrap_or_default().as_bytes(),
                )
                .map_err(|source| cgroup::CgroupError::Io {
                    path: record_file.clone(),
                    source,
                })
            };
            cgroups_created = cgroup::ensure(&self.cgroups, path, record)
                .map_err(|e| step("creating the pod cgroup", &e))?;
            undo.cgroups = cgroups_created.clone();
            // What was made is what was recorded, less any another start made first.
            if recorded.get() != cgroups_created.len() {
                record(&cgroups_created).map_err(|e| step("recording the pod cgroups", &e))?;
            }
            if !cgroups_created.is_empty() {
                let limits = pod_limits(&plan.config);
                cgroup::apply(&self.cgroups, path, &limits)
                    .map_err(|e| step("limiting the pod cgroup", &e))?;
            }
            if let Some(init) = ready.init_pid {
                cgroup::add_process(&self.cgroups, path, init)
                    .map_err(|e| step("moving the pod init into its cgroup", &e))?;
            }
        }

        // /dev/shm: the pod's own tmpfs unless it shares the node's IPC namespace.
        let shm_path = if plan.host_ipc {
            PathBuf::from("/dev/shm")
        } else {
            let shm = run_dir.join("shm");
            std::fs::create_dir_all(&shm).map_err(|e| step("creating /dev/shm", &e))?;
            crust_sys::mount_tmpfs(&shm, &format!("mode=1777,size={SHM_SIZE}"))
                .map_err(|e| step("mounting /dev/shm", &e))?;
            undo.mounts.push(shm.clone());
            shm
        };

        // Files the containers will share.
        let hostname = if plan.host_net {
            host_hostname()
        } else {
            plan.hostname.clone()
        };
        files::write_file(
            &state_dir.join("hostname"),
            format!("{hostname}\n").as_bytes(),
        )
        .map_err(|e| step("writing hostname", &e))?;
        let resolv = match plan.config.dns_config.as_ref().and_then(files::resolv_conf) {
            Some(text) => text.into_bytes(),
            None => std::fs::read("/etc/resolv.conf").unwrap_or_default(),
        };
        files::write_file(&state_dir.join("resolv.conf"), &resolv)
            .map_err(|e| step("writing resolv.conf", &e))?;
        if !plan.config.log_directory.is_empty() {
            std::fs::create_dir_all(&plan.config.log_directory)
                .map_err(|e| step("creating the log directory", &e))?;
        }

        // The network.
        let mut network = None;
        let mut ips = Vec::new();
        if !plan.host_net {
            let netns = PathBuf::from(&namespaces["net"]);
            let list = self.cni.load().map_err(|e| {
                Status::failed_precondition(format!(
                    "RunPodSandbox {}: no usable CNI network: {e}",
                    plan.name
                ))
            })?;
            let pod_cidrs = self.pod_cidrs();
            let mut attachment = self.attachment(id, &netns, plan);
            attachment.ip_ranges = super::pod_cidr::ip_ranges(&pod_cidrs);
            // Written before ADD, so that a crash during ADD is undone at the next start.
            let intent = serde_json::json!({
                "conflist": list.raw,
                "file": list.file,
                "pod_cidrs": pod_cidrs,
            });
            files::write_private_file(
                &run_dir.join("cni-intent.json"),
                intent.to_string().as_bytes(),
            )
            .map_err(|e| step("recording the CNI attachment", &e))?;
            undo.network = Some((list.clone(), attachment.clone()));
            let result = self
                .cni
                .add(&list, &attachment)
                .await
                .map_err(|e| step("setting up the pod network", &e))?;
            undo.network_result = Some(result.raw.clone());
            ips = result.ips.iter().map(|ip| ip.to_string()).collect();
            network = Some(PodNetwork {
                conflist: list.raw.clone(),
                file: list.file.display().to_string(),
                result: result.raw.clone(),
                ips: ips.clone(),
                torn_down: false,
                pod_cidrs,
            });
        }
        let hosts = if plan.host_net {
            std::fs::read("/etc/hosts").unwrap_or_default()
        } else {
            files::hosts(&hostname, &ips).into_bytes()
        };
        files::write_file(&state_dir.join("hosts"), &hosts)
            .map_err(|e| step("writing hosts", &e))?;

        let record = PodRecord {
            id: id.to_string(),
            name: plan.name.clone(),
            namespace: plan.namespace.clone(),
            uid: plan.uid.clone(),
            attempt: plan.attempt,
            state: PodState::Ready,
            created_at: now_nanos(),
            runtime_handler: plan.handler.clone(),
            labels: plan.config.labels.clone().into_iter().collect(),
            annotations: plan.config.annotations.clone().into_iter().collect(),
            config: serde_json::to_value(&plan.config)
                .map_err(|e| step("recording the config", &e))?,
            namespaces,
            monitor_pid: ready.pid,
            run_dir: run_dir.display().to_string(),
            state_dir: state_dir.display().to_string(),
            shm_path: shm_path.display().to_string(),
            cgroups_created: cgroups_created
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            cgroup_parent: plan.cgroup_path.clone().unwrap_or_default(),
            network,
        };
        self.store
            .put_pod(&record)
            .map_err(|e| step("saving the pod record", &e))?;
        let _ = std::fs::remove_file(run_dir.join("cni-intent.json"));
        Ok(record)
    }

    /// The CNI attachment of a pod: eth0 in its netns, the Kubernetes CNI_ARGS, port mappings
    /// and bandwidth as capability arguments.
    pub(super) fn attachment(&self, id: &str, netns: &Path, plan: &Plan) -> Attachment {
        attachment_for(
            id,
            netns,
            &plan.namespace,
            &plan.name,
            &plan.uid,
            &plan.config,
            plan.bandwidth,
        )
    }
}

pub(super) fn attachment_for(
    id: &str,
    netns: &Path,
    namespace: &str,
    name: &str,
    uid: &str,
    config: &PodSandboxConfig,
    bandwidth: Option<Bandwidth>,
) -> Attachment {
    Attachment {
        container_id: id.to_string(),
        netns: netns.to_path_buf(),
        ifname: "eth0".into(),
        args: crust_network::k8s_pod_args(namespace, name, id, uid),
        port_mappings: config
            .port_mappings
            .iter()
            .filter(|pm| pm.host_port > 0)
            .map(|pm| PortMapping {
                host_port: pm.host_port,
                container_port: pm.container_port,
                protocol: match Protocol::try_from(pm.protocol) {
                    Ok(Protocol::Udp) => crust_network::Protocol::Udp,
                    Ok(Protocol::Sctp) => crust_network::Protocol::Sctp,
                    _ => crust_network::Protocol::Tcp,
                },
                host_ip: pm.host_ip.clone(),
            })
            .collect(),
        bandwidth,
        ip_ranges: Vec::new(),
        extra_capabilities: Default::default(),
    }
}

/// Limits for a pod cgroup crustd made itself: the pod's resources plus its overhead.
fn pod_limits(config: &PodSandboxConfig) -> cgroup::Limits {
    let linux = config.linux.clone().unwrap_or_default();
    let (r, o) = (
        linux.resources.unwrap_or_default(),
        linux.overhead.unwrap_or_default(),
    );
    let positive = |v: i64| (v > 0).then_some(v);
    let sum = |a: i64, b: i64| positive(a.max(0) + b.max(0));
    let period = positive(r.cpu_period).or(positive(o.cpu_period));
    cgroup::Limits {
        memory_bytes: if r.memory_limit_in_bytes > 0 {
            sum(r.memory_limit_in_bytes, o.memory_limit_in_bytes)
        } else {
            None
        },
        cpu_period: period.filter(|_| r.cpu_quota > 0),
        cpu_quota: if r.cpu_quota > 0 {
            sum(r.cpu_quota, o.cpu_quota)
        } else {
            None
        },
        cpu_shares: sum(r.cpu_shares, o.cpu_shares),
    }
}

fn host_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Steps of a RunPodSandbox to undo if a later one fails, in reverse order of creation.
#[derive(Default)]
pub(super) struct Undo {
    dirs: Vec<PathBuf>,
    monitor: Option<PathBuf>,
    cgroups: Vec<PathBuf>,
    mounts: Vec<PathBuf>,
    network: Option<(NetworkList, Attachment)>,
    network_result: Option<serde_json::Value>,
}

impl Undo {
    async fn run(self, pods: &Pods) {
        if let Some((list, attachment)) = &self.network {
            // DEL even when ADD failed midway: plugins free what they allocated (IPAM).
            if let Err(e) = pods
                .cni
                .del(list, attachment, self.network_result.as_ref())
                .await
            {
                tracing::warn!(error = %e, "rollback: CNI DEL");
            }
        }
        for m in self.mounts.iter().rev() {
            if let Err(e) = crust_sys::unmount_detach(m) {
                tracing::warn!(path = %m.display(), error = %e, "rollback: unmount");
            }
        }
        if let Some(dir) = &self.monitor {
            super::stop::shutdown_monitor(dir).await;
        }
        let cgroups = self.cgroups.clone();
        let failed = tokio::task::spawn_blocking(move || cgroup::remove(&cgroups))
            .await
            .unwrap_or_default();
        for (path, e) in failed {
            tracing::warn!(path = %path.display(), error = %e, "rollback: cgroup");
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
