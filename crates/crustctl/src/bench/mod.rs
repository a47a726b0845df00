//! `crustctl bench`: timed CRI workloads against whatever runtime `-r` names (crustd,
//! containerd…), for the side-by-side scripts in `bench/`.

mod chart;
mod containers;
mod pods;
mod pods_parallel;
mod pull;
mod stats;
mod stats_rpcs;

use std::io::Write;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde::Serialize;

use self::stats::Summary;
use crate::client::Ctx;
use crate::output::Format;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Run N pod sandboxes (P at a time with --parallel, each with a container with
    /// --with-container), then stop and remove each; time every RPC
    Pods(pods::PodsBenchArgs),
    /// In one pod, create, start, exec in, stop and remove N containers one after another;
    /// time every RPC
    Containers(containers::ContainersBenchArgs),
    /// With N pods (and a container each), time ListPodSandboxStats and ListContainerStats
    Stats(stats_rpcs::StatsBenchArgs),
    /// Pull one image N times, removing it in between; time PullImage (and RemoveImage)
    Pull(pull::PullBenchArgs),
    /// Draw bench/compare.sh's results (latency per RPC, crustd vs containerd) as an SVG
    Chart(chart::ChartArgs),
}

pub async fn run(ctx: &Ctx, args: BenchArgs, out: &mut dyn Write) -> Result<()> {
    match args.command {
        BenchCommand::Pods(args) => pods::run(ctx, args, out).await,
        BenchCommand::Containers(args) => containers::run(ctx, args, out).await,
        BenchCommand::Stats(args) => stats_rpcs::run(ctx, args, out).await,
        BenchCommand::Pull(args) => pull::run(ctx, args, out).await,
        BenchCommand::Chart(args) => chart::run(args),
    }
}

/// What `-o json` prints.
#[derive(Debug, Serialize)]
pub struct Report {
    pub endpoint: String,
    pub runtime_handler: String,
    /// The containers' image (`bench containers` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub count: u32,
    /// How many pods were set up at a time (`bench pods --parallel`/`--with-container`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel: Option<u32>,
    /// Seconds from the first RunPodSandbox to the last pod running: the last StartContainer
    /// (or RunPodSandbox without containers) returning (`bench pods --parallel` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all_running_seconds: Option<f64>,
    /// Wall time of the whole run, checks included.
    pub wall_seconds: f64,
    pub rpcs: Vec<Summary>,
}

impl Report {
    /// The table: a title line (`count` `what` on the endpoint…), then one line per RPC.
    fn render(&self, what: &str) -> String {
        let handler = if self.runtime_handler.is_empty() {
            "(default)"
        } else {
            &self.runtime_handler
        };
        let image = match &self.image {
            Some(image) => format!(", image {image}"),
            None => String::new(),
        };
        let parallel = match self.parallel {
            Some(p) => format!(", {p} at a time"),
            None => String::new(),
        };
        let mut text = format!(
            "{} {what} on {} (runtime handler {handler}{image}{parallel}), {:.3} s in all\n",
            self.count, self.endpoint, self.wall_seconds
        );
        if let Some(s) = self.all_running_seconds {
            text.push_str(&format!("all running after {s:.3} s\n"));
        }
        text.push_str(&stats::table(&self.rpcs));
        text
    }

    /// Prints the report as `format` says: JSON, else the table.
    fn print(&self, what: &str, format: Format, out: &mut dyn Write) -> Result<()> {
        match format {
            Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(self)?)?,
            _ => out.write_all(self.render(what).as_bytes())?,
        }
        Ok(())
    }
}

/// Wall seconds since `started`, to the millisecond.
fn wall_seconds(started: std::time::Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1e3).round() / 1e3
}
