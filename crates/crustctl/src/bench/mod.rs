//! `crustctl bench`: timed CRI workloads against whatever runtime `-r` names (crustd,
//! containerd…), for the side-by-side scripts in `bench/`.

mod pods;
mod stats;

use std::io::Write;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::client::Ctx;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Run N pod sandboxes one after another, then stop and remove each; time every RPC
    Pods(pods::PodsBenchArgs),
}

pub async fn run(ctx: &Ctx, args: BenchArgs, out: &mut dyn Write) -> Result<()> {
    match args.command {
        BenchCommand::Pods(args) => pods::run(ctx, args, out).await,
    }
}
