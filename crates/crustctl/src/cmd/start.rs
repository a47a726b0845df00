//! `crustctl start`: starts created containers.

use std::io::Write;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::StartContainerRequest;
use tonic::transport::Channel;

use crate::client::Ctx;

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Containers to start
    #[arg(value_name = "CONTAINER-ID", required = true)]
    pub ids: Vec<String>,
}

pub async fn run(ctx: &Ctx, args: StartArgs, out: &mut dyn Write) -> Result<()> {
    let mut client = ctx.runtime().await?;
    for id in &args.ids {
        start_container(ctx, &mut client, id)
            .await
            .with_context(|| format!("starting the container {id:?}"))?;
        writeln!(out, "{id}")?;
    }
    Ok(())
}

/// StartContainer of one container.
pub async fn start_container(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    id: &str,
) -> Result<()> {
    if id.is_empty() {
        bail!("ID cannot be empty");
    }
    let request = StartContainerRequest {
        container_id: id.to_owned(),
    };
    ctx.call("StartContainer", request, |req| client.start_container(req))
        .await
        .map_err(|e| anyhow!(e))?;
    Ok(())
}
