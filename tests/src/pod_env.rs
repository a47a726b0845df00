//! The set-up the container tests share: a real registry with the standard images pushed, a
//! CNI bridge of the test's own, a crustd with the OCI runtimes it names, the images pulled,
//! and (usually) one pod to put containers in, removed again when the test ends.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crust_testenv::{push_standard_images, Registry, StandardImages};
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::Channel;

use crate::{Crustd, PodNet};

/// Makes a pod's config from the env's log directory.
type MakePod = Box<dyn FnOnce(&Path) -> PodSandboxConfig + Send>;

/// What [`PodEnv::build`] sets up; made by [`PodEnv::builder`].
pub struct PodEnvBuilder {
    handler: &'static str,
    index: u8,
    runtimes: &'static [&'static str],
    extra_config: String,
    pull_nonroot: bool,
    exec_timeout: i64,
    pod: Option<MakePod>,
}

impl PodEnvBuilder {
    /// The OCI runtimes crustd gets as `[runtimes.<name>]` (each `/usr/bin/<name>`); runc and
    /// crun unless told.
    pub fn runtimes(mut self, names: &'static [&'static str]) -> Self {
        self.runtimes = names;
        self
    }

    /// TOML appended to crustd's config, after the runtimes.
    pub fn extra_config(mut self, toml: &str) -> Self {
        self.extra_config.push_str(toml);
        self
    }

    /// Pulls the nonroot image as well as busybox.
    pub fn pull_nonroot(mut self) -> Self {
        self.pull_nonroot = true;
        self
    }

    /// The timeout (seconds) of [`PodEnv::exec`]; 10 unless told.
    pub fn exec_timeout(mut self, seconds: i64) -> Self {
        self.exec_timeout = seconds;
        self
    }

    /// Runs the env's pod from the config `make` returns for the log directory (see
    /// [`pod_config`]). Without it the env has no pod until [`PodEnv::make_pod`].
    pub fn pod(mut self, make: impl FnOnce(&Path) -> PodSandboxConfig + Send + 'static) -> Self {
        self.pod = Some(Box::new(make));
        self
    }

    pub async fn build(self) -> PodEnv {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::start().await.unwrap();
        let images = push_standard_images(&reg, None).await.unwrap();
        let net = PodNet::new(dir.path(), self.index);
        let mut extra = String::from("\n");
        for name in self.runtimes {
            extra.push_str(&format!("[runtimes.{name}]\npath = \"/usr/bin/{name}\"\n"));
        }
        extra.push_str(&self.extra_config);
        let crustd = Crustd::start_on(&net, &[], &extra)
            .await
            .expect("crustd starts");
        let mut images_client = crustd.images().await.unwrap();
        let mut pull = vec![&images.busybox];
        if self.pull_nonroot {
            pull.push(&images.nonroot);
        }
        for pushed in pull {
            images_client
                .pull_image(PullImageRequest {
                    image: Some(ImageSpec {
                        image: pushed.reference.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .expect("pull");
        }
        let rt = crustd.runtime().await.unwrap();
        let logs = dir.path().join("logs");
        let mut env = PodEnv {
            reg,
            images,
            net,
            crustd,
            rt,
            images_client,
            handler: self.handler,
            index: self.index,
            exec_timeout: self.exec_timeout,
            pod: String::new(),
            pod_config: PodSandboxConfig::default(),
            logs,
            dir,
        };
        if let Some(make) = self.pod {
            let config = make(&env.logs);
            env.make_pod(config).await;
        }
        env
    }
}

/// A pod config of the usual shape: `name` in namespace crust-test (uid
/// `uid-<name>-<pid>`), `hostname`, logs in `<logs>`, and a cgroup parent of its own
/// (`/crust-test-<name>-<pid>`).
pub fn pod_config(name: &str, hostname: &str, logs: &Path) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}-{}", std::process::id()),
            namespace: "crust-test".into(),
            attempt: 0,
        }),
        hostname: hostname.into(),
        log_directory: logs.display().to_string(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: format!("/crust-test-{name}-{}", std::process::id()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A map of string pairs (labels, annotations).
pub fn kv(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every pod sandbox ListPodSandbox returns, unfiltered; the call must succeed.
pub async fn all_pods(rt: &mut RuntimeServiceClient<Channel>) -> Vec<PodSandbox> {
    rt.list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .expect("ListPodSandbox")
        .into_inner()
        .items
}

/// Every container ListContainers returns, unfiltered; the call must succeed.
pub async fn all_containers(rt: &mut RuntimeServiceClient<Channel>) -> Vec<Container> {
    rt.list_containers(ListContainersRequest::default())
        .await
        .expect("ListContainers")
        .into_inner()
        .containers
}

/// A GetContainerEvents subscription, read by a task of its own as fast as events come: each
/// event, then the stream's error if it fails (the channel ends with the stream).
pub async fn container_events(
    rt: &mut RuntimeServiceClient<Channel>,
) -> tokio::sync::mpsc::UnboundedReceiver<Result<ContainerEventResponse, tonic::Status>> {
    let mut stream = rt
        .get_container_events(GetEventsRequest {})
        .await
        .expect("GetContainerEvents")
        .into_inner();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match stream.message().await {
                Ok(Some(event)) => {
                    if tx.send(Ok(event)).is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(status) => {
                    let _ = tx.send(Err(status));
                    break;
                }
            }
        }
    });
    rx
}

/// StopPodSandbox, then RemovePodSandbox; both must succeed.
pub async fn stop_and_remove_pod(rt: &mut RuntimeServiceClient<Channel>, id: &str) {
    rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: id.into(),
    })
    .await
    .expect("StopPodSandbox");
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: id.into(),
    })
    .await
    .expect("RemovePodSandbox");
}

/// One crustd on a bridge of its own (`10.88.<index>.0/24`) with the standard images pushed
/// to a registry of its own and busybox pulled, and the env's pod. Dropping it removes the pod
/// (and its containers) through crustd, then stops the registry, the bridge and crustd.
pub struct PodEnv {
    pub reg: Registry,
    pub images: StandardImages,
    pub net: PodNet,
    pub crustd: Crustd,
    pub rt: RuntimeServiceClient<Channel>,
    pub images_client: ImageServiceClient<Channel>,
    /// The runtime handler the env's pods run with.
    pub handler: &'static str,
    /// The bridge index.
    pub index: u8,
    /// The timeout of [`PodEnv::exec`], in seconds.
    pub exec_timeout: i64,
    /// The env's pod; empty while there is none.
    pub pod: String,
    pub pod_config: PodSandboxConfig,
    /// `<dir>/logs`, for pods' log directories.
    pub logs: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Drop for PodEnv {
    fn drop(&mut self) {
        if self.pod.is_empty() {
            return;
        }
        // Remove the pod (and its containers) through crustd so nothing outlives the test.
        let mut rt = self.rt.clone();
        let pod = self.pod.clone();
        let done = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(async move {
                    let _ = rt
                        .remove_pod_sandbox(RemovePodSandboxRequest {
                            pod_sandbox_id: pod,
                        })
                        .await;
                })
        });
        let _ = done.join();
    }
}

impl PodEnv {
    /// Bridge `index` (each test its own), pods run with `handler`.
    pub fn builder(handler: &'static str, index: u8) -> PodEnvBuilder {
        PodEnvBuilder {
            handler,
            index,
            runtimes: &["runc", "crun"],
            extra_config: String::new(),
            pull_nonroot: false,
            exec_timeout: 10,
            pod: None,
        }
    }

    /// Runs a pod with the env's handler; the caller removes it.
    pub async fn run_pod(&mut self, config: PodSandboxConfig) -> String {
        self.rt
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: self.handler.into(),
            })
            .await
            .expect("RunPodSandbox")
            .into_inner()
            .pod_sandbox_id
    }

    /// Runs `config` as the env's pod: the one [`PodEnv::create`] puts containers in and
    /// dropping the env removes.
    pub async fn make_pod(&mut self, config: PodSandboxConfig) -> String {
        assert!(self.pod.is_empty(), "the env has a pod already");
        self.pod = self.run_pod(config.clone()).await;
        self.pod_config = config;
        self.pod.clone()
    }

    /// A busybox container running `cmd`, logging to `<name>/0.log`, with an (empty) Linux
    /// security context.
    pub fn config(&self, name: &str, cmd: &[&str]) -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: self.images.busybox.reference.clone(),
                ..Default::default()
            }),
            command: cmd.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}/0.log"),
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext::default()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The container's security context, made if it has none.
    pub fn security(config: &mut ContainerConfig) -> &mut LinuxContainerSecurityContext {
        config
            .linux
            .get_or_insert_with(Default::default)
            .security_context
            .get_or_insert_with(Default::default)
    }

    /// CreateContainer in the env's pod.
    pub async fn create(&mut self, config: ContainerConfig) -> Result<String, tonic::Status> {
        let (pod, pod_config) = (self.pod.clone(), self.pod_config.clone());
        self.create_in(&pod, &pod_config, config).await
    }

    /// CreateContainer in another pod.
    pub async fn create_in(
        &mut self,
        pod: &str,
        pod_config: &PodSandboxConfig,
        config: ContainerConfig,
    ) -> Result<String, tonic::Status> {
        self.rt
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod.into(),
                config: Some(config),
                sandbox_config: Some(pod_config.clone()),
            })
            .await
            .map(|r| r.into_inner().container_id)
    }

    pub async fn start(&mut self, id: &str) -> Result<(), tonic::Status> {
        self.rt
            .start_container(StartContainerRequest {
                container_id: id.into(),
            })
            .await
            .map(|_| ())
    }

    /// Creates and starts a container in the env's pod; both must succeed.
    pub async fn run(&mut self, config: ContainerConfig) -> String {
        let id = self.create(config).await.expect("CreateContainer");
        self.start(&id).await.expect("StartContainer");
        id
    }

    /// StopContainer with no grace: SIGKILL at once.
    pub async fn stop(&mut self, id: &str) {
        self.rt
            .stop_container(StopContainerRequest {
                container_id: id.into(),
                timeout: 0,
            })
            .await
            .expect("StopContainer");
    }

    pub async fn status(&mut self, id: &str) -> ContainerStatus {
        self.rt
            .container_status(ContainerStatusRequest {
                container_id: id.into(),
                verbose: false,
            })
            .await
            .expect("ContainerStatus")
            .into_inner()
            .status
            .unwrap()
    }

    /// Waits (30s at most) until the container has exited; returns its status.
    pub async fn wait_exited(&mut self, id: &str) -> ContainerStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.status(id).await;
            if s.state == ContainerState::ContainerExited as i32 {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "container {id} did not exit: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs the container to its end; returns its status and its CRI log.
    pub async fn run_to_end(&mut self, config: ContainerConfig) -> (ContainerStatus, String) {
        let id = self.run(config).await;
        let s = self.wait_exited(&id).await;
        let log = std::fs::read_to_string(&s.log_path).unwrap_or_default();
        (s, log)
    }

    /// ExecSync of `cmd` with the env's exec timeout.
    pub async fn exec(&mut self, id: &str, cmd: &[&str]) -> ExecSyncResponse {
        self.rt
            .exec_sync(ExecSyncRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                timeout: self.exec_timeout,
            })
            .await
            .expect("ExecSync")
            .into_inner()
    }

    /// The stdout of `sh -c script` in the container, which must exit 0.
    pub async fn sh_out(&mut self, id: &str, script: &str) -> String {
        let r = self.exec(id, &["sh", "-c", script]).await;
        assert_eq!(
            r.exit_code,
            0,
            "{script}: stderr {}",
            String::from_utf8_lossy(&r.stderr)
        );
        String::from_utf8_lossy(&r.stdout).into_owned()
    }

    /// Waits until `path` exists in the container (its script reached that point).
    pub async fn wait_for_file(&mut self, id: &str, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.exec(id, &["test", "-e", path]).await.exit_code != 0 {
            assert!(Instant::now() < deadline, "{path} never appeared in {id}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
