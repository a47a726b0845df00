//! `crustctl rm`: removes containers (`-f` stops running ones first, `-a` takes all) and,
//! unless `-k`, their log files.

use std::io::Write;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use futures::future::join_all;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{ContainerState, ListContainersRequest, RemoveContainerRequest};
use tonic::transport::Channel;

use super::containers::{aggregate, container_status};
use super::stop::stop_container;
use crate::client::Ctx;

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Containers to remove
    #[arg(value_name = "CONTAINER-ID", required_unless_present = "all")]
    pub ids: Vec<String>,
    /// Force removal of the container, disregarding if running
    #[arg(short, long)]
    pub force: bool,
    /// Preserve the container log file and its rotations
    #[arg(short, long)]
    pub keep_logs: bool,
    /// Remove all containers
    #[arg(short, long)]
    pub all: bool,
}

pub async fn run(ctx: &Ctx, args: RmArgs, out: &mut dyn Write) -> Result<()> {
    let mut client = ctx.runtime().await?;
    let mut ids = args.ids.clone();
    if args.all {
        let r = ctx
            .call(
                "ListContainers",
                ListContainersRequest { filter: None },
                |req| client.list_containers(req),
            )
            .await
            .map_err(|e| anyhow!(e))
            .context("listing containers")?;
        ids = r.containers.into_iter().map(|c| c.id).collect();
        if ids.is_empty() {
            eprintln!("INFO No containers to remove");
            return Ok(());
        }
    }
    // All containers at once, as crictl does.
    let results = join_all(
        ids.iter()
            .map(|id| remove_one(ctx, client.clone(), id, args.force, args.keep_logs)),
    )
    .await;
    let mut errors = Vec::new();
    for (line, result) in results {
        out.write_all(line.as_bytes())?;
        if let Err(e) = result {
            errors.push(format!("{e:#}"));
        }
    }
    aggregate(errors)
}

/// The status check, stop (with `-f`), removal and log cleanup of one container: the line
/// to print, and how it ended.
async fn remove_one(
    ctx: &Ctx,
    mut client: RuntimeServiceClient<Channel>,
    id: &str,
    force: bool,
    keep_logs: bool,
) -> (String, Result<()>) {
    let mut line = String::new();
    let result = async {
        let status = container_status(ctx, &mut client, id, false)
            .await
            .with_context(|| format!("getting container status {id:?}"))?
            .status
            .unwrap_or_default();
        if status.state == ContainerState::ContainerRunning as i32 {
            if !force {
                bail!("container {id:?} is running, please stop it first");
            }
            stop_container(ctx, &mut client, id, 0)
                .await
                .with_context(|| format!("stopping the container {id:?}"))?;
        }
        remove_container(ctx, &mut client, id)
            .await
            .with_context(|| format!("removing container {id:?}"))?;
        line = format!("{id}\n");
        if !keep_logs && !status.log_path.is_empty() {
            remove_logs(&status.log_path, id);
        }
        Ok(())
    }
    .await;
    (line, result)
}

/// RemoveContainer of one container.
pub async fn remove_container(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    id: &str,
) -> Result<()> {
    if id.is_empty() {
        bail!("ID cannot be empty");
    }
    ctx.debug(format_args!("Removing container: {id}"));
    let request = RemoveContainerRequest {
        container_id: id.to_owned(),
    };
    ctx.call("RemoveContainer", request, |req| {
        client.remove_container(req)
    })
    .await
    .map_err(|e| anyhow!(e))?;
    Ok(())
}

/// Removes the log file and its rotations (`<path>.*`), as crictl does; failures are
/// reported, not fatal.
fn remove_logs(log_path: &str, id: &str) {
    let path = std::path::Path::new(log_path);
    let mut files = vec![path.to_path_buf()];
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
        let prefix = format!("{}.", name.to_string_lossy());
        if let Ok(entries) = std::fs::read_dir(dir) {
            files.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .map(|e| e.path()),
            );
        }
    }
    for file in files {
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => eprintln!(
                "ERRO removing log file {} for container {id:?} failed: {e}",
                file.display()
            ),
        }
    }
}
