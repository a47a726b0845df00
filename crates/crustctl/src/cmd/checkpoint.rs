//! `crustctl checkpoint`: CheckpointContainer of running containers into a tar archive
//! (crictl's `checkpoint --export PATH`). The containers keep running.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use k8s_cri::v1::CheckpointContainerRequest;

use crate::client::Ctx;

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    /// The tar archive to write the checkpoint to (/path/to/checkpoint.tar); made absolute
    #[arg(short = 'e', long = "export", value_name = "PATH", required = true)]
    pub export: String,
    /// Seconds the runtime may take (0: its default); the call waits that long plus 10 s
    #[arg(
        long = "checkpoint-timeout",
        default_value_t = 0,
        value_name = "SECONDS"
    )]
    pub checkpoint_timeout: i64,
    /// Containers to checkpoint (with several, each gets `<export>.<ID>`)
    #[arg(value_name = "CONTAINER-ID", required = true)]
    pub ids: Vec<String>,
}

pub async fn run(ctx: &Ctx, args: CheckpointArgs, out: &mut dyn Write) -> Result<()> {
    if args.export.is_empty() {
        bail!("--export cannot be empty");
    }
    let export = std::path::absolute(Path::new(&args.export))
        .with_context(|| format!("making {:?} absolute", args.export))?;
    let mut client = ctx.runtime().await?;
    // Dumping a big process takes time: the call waits for the runtime, not for `-t`.
    let wait = match args.checkpoint_timeout {
        s if s > 0 => Some(Duration::from_secs(s as u64 + 10)),
        _ => None,
    };
    for id in &args.ids {
        if id.is_empty() {
            bail!("ID cannot be empty");
        }
        let location = if args.ids.len() == 1 {
            export.clone()
        } else {
            let mut name = export.clone().into_os_string();
            name.push(format!(".{id}"));
            name.into()
        };
        let request = CheckpointContainerRequest {
            container_id: id.clone(),
            location: location.display().to_string(),
            timeout: args.checkpoint_timeout,
        };
        ctx.call_with_timeout(
            "CheckpointContainer",
            wait,
            tonic::Request::new(request),
            |req| client.checkpoint_container(req),
        )
        .await
        .map_err(|e| anyhow!(e))
        .with_context(|| format!("checkpointing the container {id:?}"))?;
        writeln!(out, "{id}")?;
    }
    Ok(())
}
