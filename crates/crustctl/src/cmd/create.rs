//! `crustctl create`: creates a container in a pod from crictl's container and pod config
//! files, pulling its image first when the node lacks it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use clap::Args;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{CreateContainerRequest, PodSandboxConfig};
use tonic::transport::Channel;

use super::containers::PullFlags;
use crate::client::Ctx;
use crate::config;

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The pod to create the container in
    #[arg(value_name = "POD")]
    pub pod_id: String,
    /// Container config, JSON or YAML (crictl's container-config files)
    #[arg(value_name = "container-config.[json|yaml]")]
    pub container_config: PathBuf,
    /// The pod's sandbox config, JSON or YAML (crictl's pod-config files)
    #[arg(value_name = "pod-config.[json|yaml]")]
    pub pod_config: PathBuf,
    #[command(flatten)]
    pub pull: PullFlags,
}

pub async fn run(ctx: &Ctx, args: CreateArgs, out: &mut dyn Write) -> Result<()> {
    let ctx = args.pull.ctx(ctx);
    let mut client = ctx.runtime().await?;
    let pod_config =
        config::load_pod_sandbox_config(&args.pod_config).context("load podSandboxConfig")?;
    let id = create_container(
        &ctx,
        &mut client,
        &args.pull,
        &args.pod_id,
        &args.container_config,
        pod_config,
    )
    .await
    .context("creating container")?;
    writeln!(out, "{id}")?;
    Ok(())
}

/// crictl's `CreateContainer`: loads the container config, pulls its image as `pull`
/// says, and creates it in `pod_id`.
pub async fn create_container(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    pull: &PullFlags,
    pod_id: &str,
    container_config: &Path,
    pod_config: PodSandboxConfig,
) -> Result<String> {
    let mut config = config::load_container_config(container_config)?;
    if let Some(image) = config.image.as_mut() {
        if image.user_specified_image.is_empty() {
            image.user_specified_image = image.image.clone();
        }
        pull.ensure_image(ctx, image, &pod_config).await?;
    }
    for mount in &config.mounts {
        if let Some(image) = mount.image.as_ref().filter(|i| !i.image.is_empty()) {
            pull.ensure_image(ctx, image, &pod_config).await?;
        }
    }
    let request = CreateContainerRequest {
        pod_sandbox_id: pod_id.to_owned(),
        config: Some(config),
        sandbox_config: Some(pod_config),
    };
    let r = ctx
        .call("CreateContainer", request, |req| {
            client.create_container(req)
        })
        .await
        .map_err(|e| anyhow!(e))?;
    Ok(r.container_id)
}
