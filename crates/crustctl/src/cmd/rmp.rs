//! `crustctl rmp`: removes pod sandboxes (`-f` stops ready ones first, `-a` takes all).

use std::io::Write;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use futures::future::join_all;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{ListPodSandboxRequest, PodSandboxState, PodSandboxStatusRequest};
use tonic::transport::Channel;

use super::stopp::{remove_pod_sandbox, stop_pod_sandbox};
use crate::client::Ctx;

#[derive(Args, Debug)]
pub struct RmpArgs {
    /// Pods to remove
    #[arg(value_name = "POD-ID", required_unless_present = "all")]
    pub ids: Vec<String>,
    /// Force removal of the pod sandbox, disregarding if running
    #[arg(short, long)]
    pub force: bool,
    /// Remove all pods
    #[arg(short, long)]
    pub all: bool,
}

pub async fn run(ctx: &Ctx, args: RmpArgs, out: &mut dyn Write) -> Result<()> {
    let mut client = ctx.runtime().await?;
    let mut ids = args.ids.clone();
    if args.all {
        let r = ctx
            .call(
                "ListPodSandbox",
                ListPodSandboxRequest { filter: None },
                |req| client.list_pod_sandbox(req),
            )
            .await
            .map_err(|e| anyhow!(e))
            .context("listing pod sandboxes")?;
        ids = r.items.into_iter().map(|p| p.id).collect();
        if ids.is_empty() {
            eprintln!("INFO No pods to remove");
            return Ok(());
        }
    }

    // One at a time per pod, all pods at once, as crictl does.
    let results = join_all(ids.iter().map(|id| {
        let client = client.clone();
        remove_one(ctx, client, id, args.force)
    }))
    .await;
    let mut errors = Vec::new();
    for (lines, result) in results {
        out.write_all(lines.as_bytes())?;
        if let Err(e) = result {
            errors.push(format!("{e:#}"));
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => bail!("{}", errors[0]),
        // k8s.io/apimachinery's errors.Aggregate
        _ => bail!("[{}]", errors.join(", ")),
    }
}

/// The status check, stop (with `-f`) and removal of one pod: the lines to print, and how it
/// ended.
async fn remove_one(
    ctx: &Ctx,
    mut client: RuntimeServiceClient<Channel>,
    id: &str,
    force: bool,
) -> (String, Result<()>) {
    let mut lines = String::new();
    let result = async {
        let request = PodSandboxStatusRequest {
            pod_sandbox_id: id.to_owned(),
            verbose: false,
        };
        let status = ctx
            .call("PodSandboxStatus", request, |req| {
                client.pod_sandbox_status(req)
            })
            .await
            .map_err(|e| anyhow!(e))
            .with_context(|| format!("getting sandbox status of pod {id:?}"))?;
        let ready = status
            .status
            .is_some_and(|s| s.state == PodSandboxState::SandboxReady as i32);
        if ready {
            if !force {
                bail!("pod sandbox {id:?} is running, please stop it first");
            }
            let line = stop_pod_sandbox(ctx, &mut client, id)
                .await
                .with_context(|| format!("stopping the pod sandbox {id:?} failed"))?;
            lines.push_str(&line);
        }
        let line = remove_pod_sandbox(ctx, &mut client, id)
            .await
            .with_context(|| format!("removing the pod sandbox {id:?}"))?;
        lines.push_str(&line);
        Ok(())
    }
    .await;
    (lines, result)
}
