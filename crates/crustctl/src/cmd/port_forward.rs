//! `crustctl port-forward POD [LOCAL:]REMOTE...`: local ports on 127.0.0.1 forwarded into the
//! pod through the PortForward RPC's streaming URL, until Ctrl-C, as crictl's port-forward.

use std::io::Write;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use futures::FutureExt;
use k8s_cri::v1::PortForwardRequest;

use crate::client::Ctx;
use crate::stream::portforward::{self, Dialer, Forward, UrlSource};
use crate::stream::{term, Transport};

#[derive(Args, Debug, Default)]
pub struct PortForwardArgs {
    /// Transport protocol to use, one of: spdy|websocket
    #[arg(short = 'r', long, default_value = "spdy",
          value_parser = clap::builder::PossibleValuesParser::new(["spdy", "websocket"]))]
    pub transport: String,
    /// The pod to forward to
    #[arg(value_name = "POD-ID")]
    pub id: String,
    /// [LOCAL_PORT:]REMOTE_PORT: LOCAL_PORT 0 or left out before the colon picks a free port
    #[arg(value_name = "[LOCAL_PORT:]REMOTE_PORT", required = true, num_args = 1..)]
    pub ports: Vec<String>,
}

pub async fn run(ctx: &Ctx, args: PortForwardArgs, out: &mut dyn Write) -> Result<()> {
    if args.id.is_empty() {
        bail!("ID cannot be empty");
    }
    let transport = Transport::parse(&args.transport)?;
    let forwards = args
        .ports
        .iter()
        .map(|p| portforward::parse_forward(p))
        .collect::<Result<Vec<Forward>>>()?;
    let client = ctx.runtime().await?;
    let request = PortForwardRequest {
        pod_sandbox_id: args.id.clone(),
        port: forwards.iter().map(|f| i32::from(f.remote)).collect(),
    };
    let url_for = {
        let ctx = ctx.clone();
        let client = client.clone();
        move || {
            let ctx = ctx.clone();
            let mut client = client.clone();
            let request = request.clone();
            async move {
                let response = ctx
                    .call("PortForward", request, |req| client.port_forward(req))
                    .await
                    .map_err(|e| anyhow!(e))?;
                ctx.debug(format_args!("PortForward URL: {}", response.url));
                Ok(response.url)
            }
            .boxed()
        }
    };
    let first = url_for().await.context("port forward")?;
    let urls: UrlSource = Arc::new(url_for);
    let dialer = Dialer::connect(transport, first, urls)
        .await
        .context("port forward: error upgrading connection")?;
    let listeners = portforward::bind(&forwards).await.context("port forward")?;
    for (_, forward) in &listeners {
        writeln!(
            out,
            "Forwarding from {} -> {}",
            portforward::listen_address(forward),
            forward.remote
        )?;
    }
    out.flush()?;
    let log = Arc::new(Mutex::new(term::dup_file(term::stdout_fd())?));
    let errors = Arc::new(Mutex::new(term::dup_file(rustix::stdio::stderr())?));
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    portforward::serve(dialer, listeners, stop, log, errors)
        .await
        .context("port forward")
}
