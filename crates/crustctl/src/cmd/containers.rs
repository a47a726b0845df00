//! What the container verbs share: crictl's container listing (`ListContainers` and
//! `getContainersList`: filter, patterns, image match, newest first), state names, the
//! status as crictl prints it, the image pull before `create`/`run`, and error aggregation.
//!
//! IDs are passed to the runtime as given: crustd resolves unique prefixes, as crictl
//! relies on its runtimes to.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    Container, ContainerFilter, ContainerState, ContainerStateValue, ContainerStatus,
    ContainerStatusRequest, ContainerStatusResponse, ImageSpec, ImageStatusRequest,
    ListContainersRequest, PodSandboxConfig, PullImageRequest,
};
use serde_json::Value;
use tonic::transport::Channel;

use super::pods::{matches, truncate_count};
use super::pull;
use crate::client::Ctx;
use crate::gotime;
use crate::output::StatusData;
use crate::protojson;

/// kubelet's pod labels on containers (k8s.io/kubelet/pkg/types).
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";

/// crictl's `listOptions` as the container verbs use them.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub id: String,
    pub pod_id: String,
    pub name_regexp: String,
    pub namespace_regexp: String,
    pub image: String,
    pub state: String,
    pub labels: HashMap<String, String>,
    /// Without a state: all containers, not only running ones.
    pub all: bool,
    pub latest: bool,
    pub last: i64,
}

/// The server-side part of the listing: id, pod, state (running unless `all` or a state
/// is asked for; none with `--latest`/`--last`) and labels.
pub fn build_filter(opts: &ListOptions) -> Result<ContainerFilter> {
    let mut state = match opts.state.to_lowercase().as_str() {
        "" if opts.all => None,
        "" | "running" => Some(ContainerState::ContainerRunning),
        "created" => Some(ContainerState::ContainerCreated),
        "exited" => Some(ContainerState::ContainerExited),
        "unknown" => Some(ContainerState::ContainerUnknown),
        _ => bail!("--state should be one of created, running, exited or unknown"),
    };
    if opts.latest || opts.last > 0 {
        state = None;
    }
    Ok(ContainerFilter {
        id: opts.id.clone(),
        state: state.map(|s| ContainerStateValue { state: s as i32 }),
        pod_sandbox_id: opts.pod_id.clone(),
        label_selector: opts.labels.clone(),
    })
}

/// crictl's `ListContainers`: the filtered list, image-matched with `--image`, newest
/// first, cut by `--latest`/`--last`.
pub async fn list(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    opts: &ListOptions,
) -> Result<Vec<Container>> {
    let request = ListContainersRequest {
        filter: Some(build_filter(opts)?),
    };
    let r = ctx
        .call("ListContainers", request, |req| client.list_containers(req))
        .await
        .map_err(|e| anyhow!(e))
        .context("call list containers RPC")?;
    let mut containers = r.containers;
    if !opts.image.is_empty() {
        containers = filter_by_image(ctx, containers, &opts.image)
            .await
            .context("check image match")?;
    }
    Ok(select(containers, opts))
}

/// crictl's `matchesImage`: a container matches when its image and the asked-for one are
/// the same image on the node (by ImageStatus ID).
async fn filter_by_image(
    ctx: &Ctx,
    containers: Vec<Container>,
    image: &str,
) -> Result<Vec<Container>> {
    let images = ctx.image().await?;
    let mut ids: HashMap<String, Option<String>> = HashMap::new();
    let image_id = |name: String| {
        let mut images = images.clone();
        async move {
            let request = ImageStatusRequest {
                image: Some(ImageSpec {
                    image: name.clone(),
                    ..Default::default()
                }),
                verbose: false,
            };
            let r = ctx
                .call("ImageStatus", request, |req| images.image_status(req))
                .await
                .map_err(|e| anyhow!(e))
                .with_context(|| format!("image status of {name:?}"))?;
            Ok::<_, anyhow::Error>(r.image.map(|i| i.id))
        }
    };
    let Some(wanted) = image_id(image.to_owned()).await? else {
        return Ok(Vec::new());
    };
    let mut kept = Vec::new();
    for c in containers {
        let name = c
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default();
        let id = match ids.get(&name) {
            Some(id) => id.clone(),
            None => {
                let id = image_id(name.clone()).await?;
                ids.insert(name, id.clone());
                id
            }
        };
        if id.as_deref() == Some(wanted.as_str()) {
            kept.push(c);
        }
    }
    Ok(kept)
}

/// crictl's `getContainersList`: containers whose name and pod namespace match the
/// patterns (containers without metadata never do), newest first, the first 1 or n.
pub fn select(containers: Vec<Container>, opts: &ListOptions) -> Vec<Container> {
    let mut selected: Vec<Container> = containers
        .into_iter()
        .filter(|c| {
            c.metadata.as_ref().is_some_and(|m| {
                matches(&opts.name_regexp, &m.name)
                    && matches(&opts.namespace_regexp, pod_namespace(&c.labels))
            })
        })
        .collect();
    selected.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    selected.truncate(truncate_count(selected.len(), opts.latest, opts.last));
    selected
}

/// crictl's `getFromLabels`: the label's value, or "unknown".
fn from_labels<'a>(labels: &'a HashMap<String, String>, key: &str) -> &'a str {
    labels.get(key).map_or("unknown", String::as_str)
}

pub fn pod_name(labels: &HashMap<String, String>) -> &str {
    from_labels(labels, POD_NAME_LABEL)
}

pub fn pod_namespace(labels: &HashMap<String, String>) -> &str {
    from_labels(labels, POD_NAMESPACE_LABEL)
}

/// crictl's `convertContainerState`.
pub fn state_name(state: i32) -> Result<&'static str> {
    match ContainerState::try_from(state) {
        Ok(ContainerState::ContainerCreated) => Ok("Created"),
        Ok(ContainerState::ContainerRunning) => Ok("Running"),
        Ok(ContainerState::ContainerExited) => Ok("Exited"),
        Ok(ContainerState::ContainerUnknown) => Ok("Unknown"),
        Err(_) => bail!("unknown container state \"{state}\""),
    }
}

/// ContainerStatus of one container (`verbose`: with the runtime's info map).
pub async fn container_status(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    id: &str,
    verbose: bool,
) -> Result<ContainerStatusResponse> {
    if id.is_empty() {
        bail!("ID cannot be empty");
    }
    let request = ContainerStatusRequest {
        container_id: id.to_owned(),
        verbose,
    };
    ctx.call("ContainerStatus", request, |req| {
        client.container_status(req)
    })
    .await
    .map_err(|e| anyhow!(e))
}

/// Go's zero `time.Time` in RFC 3339, which crictl prints for times a container has not
/// reached.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// crictl's `marshalContainerStatus`: protojson with unset messages as `null`; createdAt,
/// startedAt (once started) and finishedAt (once exited) as RFC 3339 times.
pub fn status_value(status: &ContainerStatus) -> Result<Value> {
    let mut value = protojson::to_value_with_nulls(status)?;
    let state = ContainerState::try_from(status.state).ok();
    let started = state != Some(ContainerState::ContainerCreated);
    let finished = state == Some(ContainerState::ContainerExited)
        || (state == Some(ContainerState::ContainerUnknown) && status.finished_at > 0);
    let time = |reached: bool, nanos: i64| {
        Value::String(if reached {
            gotime::rfc3339_nano(nanos)
        } else {
            GO_ZERO_TIME.to_owned()
        })
    };
    if let Value::Object(map) = &mut value {
        map.insert("createdAt".into(), time(true, status.created_at));
        map.insert("startedAt".into(), time(started, status.started_at));
        map.insert("finishedAt".into(), time(finished, status.finished_at));
    }
    Ok(value)
}

/// The `{"status": ..., "info": ...}` object crictl's `inspect` prints for a reply.
pub fn status_data(r: ContainerStatusResponse) -> Result<StatusData> {
    let status = r.status.unwrap_or_default();
    Ok(StatusData {
        status: Some(status_value(&status)?),
        info: r.info,
        ..StatusData::default()
    })
}

/// crictl's image pull flags of `create` and `run`.
#[derive(Args, Debug, Default, Clone)]
pub struct PullFlags {
    /// Do not pull the image (by default it is pulled when the node does not have it)
    #[arg(long, conflicts_with = "with_pull")]
    pub no_pull: bool,
    /// Pull the image, even when the node has it
    #[arg(long)]
    pub with_pull: bool,
    /// Use USERNAME[:PASSWORD] for accessing the registry
    #[arg(
        long,
        env = "CRICTL_CREDS",
        value_name = "USERNAME[:PASSWORD]",
        hide_env_values = true
    )]
    pub creds: Option<String>,
    /// Use AUTH_STRING for accessing the registry. AUTH_STRING is a base64 encoded
    /// 'USERNAME[:PASSWORD]'
    #[arg(
        long,
        env = "CRICTL_AUTH",
        value_name = "AUTH_STRING",
        hide_env_values = true
    )]
    pub auth: Option<String>,
    /// Use USERNAME for accessing the registry. The password will be requested on the
    /// command line
    #[arg(short, long, value_name = "USERNAME")]
    pub username: Option<String>,
    /// Maximum time to be used for pulling the image, disabled if set to 0s
    #[arg(long, visible_alias = "pt", env = "CRICTL_PULL_TIMEOUT", default_value = "0s",
          value_parser = crate::duration::parse)]
    pub pull_timeout: Duration,
    /// Time to wait for a container create request to complete before cancelling the
    /// request (0: the global --timeout)
    #[arg(short = 'T', long, default_value = "0", value_parser = crate::duration::parse)]
    pub cancel_timeout: Duration,
}

impl PullFlags {
    /// The context for the runtime calls: `--cancel-timeout` in place of `-t` when set.
    pub fn ctx(&self, ctx: &Ctx) -> Ctx {
        let mut ctx = ctx.clone();
        if !self.cancel_timeout.is_zero() {
            ctx.timeout = self.cancel_timeout;
        }
        ctx
    }

    /// Pulls `image` (with the pod's config, as crictl's `PullImageWithSandbox`) when
    /// `--with-pull` says so, or unless `--no-pull` says not to when the node lacks it.
    pub async fn ensure_image(
        &self,
        ctx: &Ctx,
        image: &ImageSpec,
        sandbox_config: &PodSandboxConfig,
    ) -> Result<()> {
        if self.no_pull {
            return Ok(());
        }
        let mut images = ctx.image().await?;
        if !self.with_pull {
            let request = ImageStatusRequest {
                image: Some(image.clone()),
                verbose: false,
            };
            let r = ctx
                .call("ImageStatus", request, |req| images.image_status(req))
                .await
                .map_err(|e| anyhow!(e))
                .with_context(|| format!("image status of {:?}", image.image))?;
            if r.image.is_some() {
                return Ok(());
            }
        }
        let auth = pull::get_auth(
            self.creds.as_deref(),
            self.auth.as_deref(),
            self.username.as_deref(),
            None,
            pull::read_password,
        )?;
        eprintln!("INFO Pulling container image: {}", image.image);
        let timeout = (!self.pull_timeout.is_zero()).then_some(self.pull_timeout);
        let mut request = tonic::Request::new(PullImageRequest {
            image: Some(image.clone()),
            auth,
            sandbox_config: Some(sandbox_config.clone()),
        });
        if let Some(timeout) = timeout {
            request.set_timeout(timeout);
        }
        let shown = format!("image {:?}", image.image);
        ctx.invoke("PullImage", timeout, request, &shown, |req| {
            images.pull_image(req)
        })
        .await
        .map_err(|e| anyhow!(e))
        .with_context(|| format!("pulling image {:?}", image.image))?;
        Ok(())
    }
}

/// k8s.io/apimachinery's `errors.Aggregate` of the verbs that act on several IDs.
pub fn aggregate(errors: Vec<String>) -> Result<()> {
    match errors.len() {
        0 => Ok(()),
        1 => bail!("{}", errors[0]),
        _ => bail!("[{}]", errors.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use k8s_cri::v1::ContainerMetadata;

    use super::*;

    const T0: i64 = 1_700_000_000_000_000_000;
    const SEC: i64 = 1_000_000_000;

    pub fn container(id: &str, name: &str, namespace: &str, created_at: i64) -> Container {
        Container {
            id: id.into(),
            pod_sandbox_id: format!("pod-{id}"),
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            labels: [
                (POD_NAME_LABEL.to_owned(), format!("{name}-pod")),
                (POD_NAMESPACE_LABEL.to_owned(), namespace.to_owned()),
            ]
            .into(),
            state: ContainerState::ContainerRunning as i32,
            created_at,
            ..Default::default()
        }
    }

    #[test]
    fn filter_defaults_to_running() {
        let f = build_filter(&ListOptions::default()).unwrap();
        assert_eq!(
            f.state.unwrap().state,
            ContainerState::ContainerRunning as i32
        );
        let all = ListOptions {
            all: true,
            ..Default::default()
        };
        assert_eq!(build_filter(&all).unwrap().state, None);
        let exited = ListOptions {
            all: true,
            state: "Exited".into(),
            pod_id: "p1".into(),
            labels: [("a".to_owned(), "b".to_owned())].into(),
            ..Default::default()
        };
        let f = build_filter(&exited).unwrap();
        assert_eq!(
            f.state.unwrap().state,
            ContainerState::ContainerExited as i32
        );
        assert_eq!(f.pod_sandbox_id, "p1");
        assert_eq!(f.label_selector["a"], "b");
        let latest = ListOptions {
            latest: true,
            state: "created".into(),
            ..Default::default()
        };
        assert_eq!(build_filter(&latest).unwrap().state, None);
        let bad = ListOptions {
            state: "ready".into(),
            ..Default::default()
        };
        assert_eq!(
            build_filter(&bad).unwrap_err().to_string(),
            "--state should be one of created, running, exited or unknown"
        );
    }

    #[test]
    fn selection_by_name_and_namespace_newest_first() {
        let list = || {
            let mut no_meta = container("d", "x", "default", T0 + 9 * SEC);
            no_meta.metadata = None;
            vec![
                container("a", "web", "default", T0),
                container("b", "db", "kube-system", T0 + 2 * SEC),
                container("c", "web-sidecar", "default", T0 + SEC),
                no_meta,
            ]
        };
        let ids = |v: Vec<Container>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(
            ids(select(list(), &ListOptions::default())),
            ["b", "c", "a"]
        );
        let web = ListOptions {
            name_regexp: "^web".into(),
            ..Default::default()
        };
        assert_eq!(ids(select(list(), &web)), ["c", "a"]);
        let kube = ListOptions {
            namespace_regexp: "kube".into(),
            ..Default::default()
        };
        assert_eq!(ids(select(list(), &kube)), ["b"]);
        let latest = ListOptions {
            latest: true,
            ..Default::default()
        };
        assert_eq!(ids(select(list(), &latest)), ["b"]);
        let last = ListOptions {
            last: 2,
            ..Default::default()
        };
        assert_eq!(ids(select(list(), &last)), ["b", "c"]);
    }

    #[test]
    fn labels_and_states() {
        let c = container("a", "web", "default", T0);
        assert_eq!(pod_name(&c.labels), "web-pod");
        assert_eq!(pod_namespace(&HashMap::new()), "unknown");
        assert_eq!(
            state_name(ContainerState::ContainerExited as i32).unwrap(),
            "Exited"
        );
        assert_eq!(state_name(0).unwrap(), "Created");
        assert!(state_name(42).is_err());
    }

    #[test]
    fn status_like_crictl() {
        let mut status = ContainerStatus {
            id: "c1".into(),
            state: ContainerState::ContainerCreated as i32,
            created_at: T0,
            log_path: "/var/log/pods/x/c/0.log".into(),
            ..Default::default()
        };
        let v = status_value(&status).unwrap();
        assert_eq!(v["state"], "CONTAINER_CREATED");
        assert_eq!(v["createdAt"], "2023-11-14T22:13:20Z");
        assert_eq!(v["startedAt"], GO_ZERO_TIME);
        assert_eq!(v["finishedAt"], GO_ZERO_TIME);
        assert_eq!(v["logPath"], "/var/log/pods/x/c/0.log");
        assert_eq!(v["metadata"], Value::Null);
        assert_eq!(v["exitCode"], 0);
        status.state = ContainerState::ContainerExited as i32;
        status.started_at = T0 + SEC;
        status.finished_at = T0 + 2 * SEC;
        status.exit_code = 3;
        let v = status_value(&status).unwrap();
        assert_eq!(v["startedAt"], "2023-11-14T22:13:21Z");
        assert_eq!(v["finishedAt"], "2023-11-14T22:13:22Z");
        assert_eq!(v["exitCode"], 3);
    }

    #[test]
    fn errors_aggregate_like_apimachinery() {
        assert!(aggregate(vec![]).is_ok());
        assert_eq!(aggregate(vec!["a".into()]).unwrap_err().to_string(), "a");
        assert_eq!(
            aggregate(vec!["a".into(), "b".into()])
                .unwrap_err()
                .to_string(),
            "[a, b]"
        );
    }
}
