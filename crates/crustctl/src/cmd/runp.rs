//! `crustctl runp`: runs a pod sandbox from a crictl pod config file.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{PodSandboxConfig, RunPodSandboxRequest};
use tonic::transport::Channel;

use crate::client::{Ctx, RpcError};
use crate::config;
use crate::duration;

#[derive(Args, Debug)]
pub struct RunpArgs {
    /// Pod sandbox config, JSON or YAML (crictl's pod-config files)
    #[arg(value_name = "POD-CONFIG.[json|yaml]")]
    pub config: PathBuf,
    /// Runtime handler to use. Available options are defined by the container runtime
    #[arg(short, long, default_value = "")]
    pub runtime: String,
    /// Time to wait for a run pod sandbox request to complete before cancelling the request
    /// (0: the global --timeout)
    #[arg(short = 'T', long, default_value = "0", value_parser = duration::parse)]
    pub cancel_timeout: Duration,
}

pub async fn run(ctx: &Ctx, args: RunpArgs, out: &mut dyn Write) -> Result<()> {
    // crictl connects with --cancel-timeout in place of --timeout when it is set.
    let mut ctx = ctx.clone();
    if !args.cancel_timeout.is_zero() {
        ctx.timeout = args.cancel_timeout;
    }
    let mut client = ctx.runtime().await?;
    let config = config::load_pod_sandbox_config(&args.config).context("load podSandboxConfig")?;
    if config
        .linux
        .as_ref()
        .is_some_and(|l| l.cgroup_parent.is_empty())
    {
        eprintln!(
            "WARN cgroup_parent is not set. Use `runtime-config` to get the runtime cgroup driver"
        );
    }
    let id = run_pod_sandbox(&ctx, &mut client, config, &args.runtime)
        .await
        .map_err(|e| anyhow!(e))
        .context("run pod sandbox")?;
    writeln!(out, "{id}")?;
    Ok(())
}

/// RunPodSandbox under twice the `-t` deadline, as kubelet's and crictl's CRI client give
/// sandbox creation (it may pull an image and set up the network).
pub async fn run_pod_sandbox(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    config: PodSandboxConfig,
    runtime_handler: &str,
) -> Result<String, RpcError> {
    let timeout = ctx.timeout.saturating_mul(2);
    let request = RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: runtime_handler.to_owned(),
    };
    let mut request = ctx.request(request);
    request.set_timeout(timeout);
    let r = ctx
        .call_with_timeout("RunPodSandbox", Some(timeout), request, |req| {
            client.run_pod_sandbox(req)
        })
        .await?;
    Ok(r.pod_sandbox_id)
}
