//! `crustctl run`: runs a pod, creates a container in it and starts it (crictl's
//! `RunContainer`); prints the container's ID.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use clap::Args;

use super::containers::PullFlags;
use super::create::create_container;
use super::runp::run_pod_sandbox;
use super::start::start_container;
use crate::client::Ctx;
use crate::config;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Container config, JSON or YAML (crictl's container-config files)
    #[arg(value_name = "container-config.[json|yaml]")]
    pub container_config: PathBuf,
    /// Pod sandbox config, JSON or YAML (crictl's pod-config files)
    #[arg(value_name = "pod-config.[json|yaml]")]
    pub pod_config: PathBuf,
    /// Runtime handler to use. Available options are defined by the container runtime
    #[arg(short, long, default_value = "")]
    pub runtime: String,
    #[command(flatten)]
    pub pull: PullFlags,
}

pub async fn run(ctx: &Ctx, args: RunArgs, out: &mut dyn Write) -> Result<()> {
    let ctx = args.pull.ctx(ctx);
    let mut client = ctx.runtime().await?;
    let result = async {
        let pod_config =
            config::load_pod_sandbox_config(&args.pod_config).context("load podSandboxConfig")?;
        let pod_id = run_pod_sandbox(&ctx, &mut client, pod_config.clone(), &args.runtime)
            .await
            .map_err(|e| anyhow!(e))
            .context("run pod sandbox")?;
        let id = create_container(
            &ctx,
            &mut client,
            &args.pull,
            &pod_id,
            &args.container_config,
            pod_config,
        )
        .await
        .context("creating container failed")?;
        start_container(&ctx, &mut client, &id)
            .await
            .with_context(|| format!("starting the container {id:?}"))?;
        Ok::<_, anyhow::Error>(id)
    }
    .await;
    let id = result.context("running container")?;
    writeln!(out, "{id}")?;
    Ok(())
}
