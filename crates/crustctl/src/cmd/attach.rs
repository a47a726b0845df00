//! `crustctl attach`: the container's own stdio through the Attach RPC's streaming URL
//! (SPDY or WebSocket), as crictl's attach.

use std::io::Write;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use k8s_cri::v1::AttachRequest;

use super::exec::{self, CommandExit};
use crate::client::Ctx;
use crate::stream::Transport;

#[derive(Args, Debug, Default)]
pub struct AttachArgs {
    /// Stdin is a TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Keep STDIN open
    #[arg(short = 'i', long = "stdin")]
    pub stdin: bool,
    /// Transport protocol to use, one of: spdy|websocket
    #[arg(short = 'r', long, default_value = "spdy",
          value_parser = clap::builder::PossibleValuesParser::new(["spdy", "websocket"]))]
    pub transport: String,
    /// The container to attach to
    #[arg(value_name = "CONTAINER-ID")]
    pub id: String,
}

pub async fn run(ctx: &Ctx, args: AttachArgs, out: &mut dyn Write) -> Result<()> {
    if args.id.is_empty() {
        bail!("ID cannot be empty");
    }
    let transport = Transport::parse(&args.transport)?;
    let mut client = ctx.runtime().await?;
    let request = AttachRequest {
        container_id: args.id.clone(),
        stdin: args.stdin,
        tty: args.tty,
        stdout: true,
        stderr: !args.tty,
    };
    let response = ctx
        .call("Attach", request, |req| client.attach(req))
        .await
        .map_err(|e| anyhow!(e))
        .with_context(|| format!("attaching to container {}", args.id))?;
    ctx.debug(format_args!("Attach URL: {}", response.url));
    out.flush()?;
    let code = exec::stream(&response.url, transport, args.stdin, args.tty)
        .await
        .with_context(|| format!("attaching to container {}", args.id))?;
    match code {
        0 => Ok(()),
        code => Err(CommandExit(code).into()),
    }
}
