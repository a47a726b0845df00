//! `crustctl stop`: stops running containers (`-a`: all of them).

use std::io::Write;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::StopContainerRequest;
use tonic::transport::Channel;

use super::containers::{self, ListOptions};
use crate::client::Ctx;

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Containers to stop
    #[arg(value_name = "CONTAINER-ID")]
    pub ids: Vec<String>,
    /// Seconds to wait to kill the container after a graceful stop is requested
    #[arg(short, long, default_value_t = 0)]
    pub timeout: i64,
    /// Stop all running containers
    #[arg(short, long)]
    pub all: bool,
}

pub async fn run(ctx: &Ctx, args: StopArgs, out: &mut dyn Write) -> Result<()> {
    let mut client = ctx.runtime().await?;
    if args.all && !args.ids.is_empty() {
        bail!("cannot specify CONTAINER-ID(s) when using --all");
    }
    let ids = if args.all {
        let opts = ListOptions {
            state: "running".into(),
            ..Default::default()
        };
        let found = containers::list(ctx, &mut client, &opts)
            .await
            .context("listing containers")?;
        if found.is_empty() {
            writeln!(out, "No running containers found.")?;
            return Ok(());
        }
        found.into_iter().map(|c| c.id).collect()
    } else {
        if args.ids.is_empty() {
            bail!("you must specify at least one CONTAINER-ID or use --all");
        }
        args.ids
    };
    for id in &ids {
        stop_container(ctx, &mut client, id, args.timeout)
            .await
            .with_context(|| format!("stopping the container {id:?}"))?;
        writeln!(out, "{id}")?;
    }
    Ok(())
}

/// StopContainer of one container, killing it `timeout` seconds after the stop signal.
/// The call's deadline is `-t` plus that grace period, as kubelet gives it.
pub async fn stop_container(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    id: &str,
    timeout: i64,
) -> Result<()> {
    if id.is_empty() {
        bail!("ID cannot be empty");
    }
    ctx.debug(format_args!(
        "Stopping container: {id} (timeout = {timeout})"
    ));
    let deadline = ctx.timeout + std::time::Duration::from_secs(timeout.max(0).unsigned_abs());
    let mut request = tonic::Request::new(StopContainerRequest {
        container_id: id.to_owned(),
        timeout,
    });
    request.set_timeout(deadline);
    ctx.call_with_timeout("StopContainer", Some(deadline), request, |req| {
        client.stop_container(req)
    })
    .await
    .map_err(|e| anyhow!(e))?;
    Ok(())
}
