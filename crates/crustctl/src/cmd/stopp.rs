//! `crustctl stopp`: stops pod sandboxes.

use std::io::Write;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{RemovePodSandboxRequest, StopPodSandboxRequest};
use tonic::transport::Channel;

use crate::client::Ctx;

#[derive(Args, Debug)]
pub struct StoppArgs {
    /// Pods to stop
    #[arg(value_name = "POD-ID", required = true)]
    pub ids: Vec<String>,
}

pub async fn run(ctx: &Ctx, args: StoppArgs, out: &mut dyn Write) -> Result<()> {
    let mut client = ctx.runtime().await?;
    for id in &args.ids {
        let line = stop_pod_sandbox(ctx, &mut client, id)
            .await
            .with_context(|| format!("stopping the pod sandbox {id:?}"))?;
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// Stops one pod; returns the line crictl prints for it.
pub async fn stop_pod_sandbox(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    id: &str,
) -> Result<String> {
    if id.is_empty() {
        bail!("ID cannot be empty");
    }
    ctx.debug(format_args!("Stopping pod sandbox: {id}"));
    let request = StopPodSandboxRequest {
        pod_sandbox_id: id.to_owned(),
    };
    ctx.call("StopPodSandbox", request, |req| {
        client.stop_pod_sandbox(req)
    })
    .await
    .map_err(|e| anyhow!(e))?;
    Ok(format!("Stopped sandbox {id}\n"))
}

/// Removes one pod; returns the line crictl prints for it.
pub async fn remove_pod_sandbox(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    id: &str,
) -> Result<String> {
    if id.is_empty() {
        bail!("ID cannot be empty");
    }
    ctx.debug(format_args!("Removing pod sandbox: {id}"));
    let request = RemovePodSandboxRequest {
        pod_sandbox_id: id.to_owned(),
    };
    ctx.call("RemovePodSandbox", request, |req| {
        client.remove_pod_sandbox(req)
    })
    .await
    .map_err(|e| anyhow!(e))?;
    Ok(format!("Removed sandbox {id}\n"))
}
