//! `crustctl version`: the runtime's name and versions.

use std::io::Write;

use anyhow::{Context, Result};
use clap::Args;
use k8s_cri::v1::VersionRequest;

use crate::client::Ctx;

/// The CRI API version crictl announces.
const CRI_VERSION: &str = "v1";

#[derive(Args, Debug)]
pub struct VersionArgs {}

pub async fn run(ctx: &Ctx, _args: VersionArgs, out: &mut dyn Write) -> Result<()> {
    let mut client = ctx.runtime().await?;
    let request = VersionRequest {
        version: CRI_VERSION.to_owned(),
    };
    let r = ctx
        .call("Version", request, |req| client.version(req))
        .await
        .context("getting the runtime version")?;
    // Go's fmt.Println("Version: ", v) puts two spaces between label and value.
    writeln!(out, "Version:  {}", r.version)?;
    writeln!(out, "RuntimeName:  {}", r.runtime_name)?;
    writeln!(out, "RuntimeVersion:  {}", r.runtime_version)?;
    writeln!(out, "RuntimeApiVersion:  {}", r.runtime_api_version)?;
    Ok(())
}
