//! `crustctl stats`: containers' resource usage, as crictl's `stats`: the table samples
//! ListContainerStats twice, `--seconds` apart, and shows the CPU share between the two;
//! JSON and YAML print one ListContainerStatsResponse. `--watch` repeats until Ctrl-C.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerStats, ContainerStatsFilter, ListContainerStatsRequest, ListContainerStatsResponse,
};
use tonic::transport::Channel;

use super::pods::parse_labels;
use crate::client::Ctx;
use crate::output::{format_parser, human_size, print_message, truncate_id, Format, Table};

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Container ID (or a prefix) to show, as --id
    #[arg(value_name = "ID")]
    pub container: Option<String>,
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Filter by container id
    #[arg(long, default_value = "")]
    pub id: String,
    /// Filter by pod id
    #[arg(short, long, default_value = "")]
    pub pod: String,
    /// Filter by key=value label
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Output format, One of: json|yaml|table
    #[arg(short, long, default_value = "table",
          value_parser = format_parser(&["json", "yaml", "table"]))]
    pub output: Format,
    /// Sample duration for CPU usage in seconds
    #[arg(short, long, default_value_t = 1)]
    pub seconds: u64,
    /// Watch container resources
    #[arg(short, long)]
    pub watch: bool,
}

pub async fn run(ctx: &Ctx, args: StatsArgs, out: &mut dyn Write) -> Result<()> {
    let id = if args.id.is_empty() {
        args.container.clone().unwrap_or_default()
    } else {
        args.id.clone()
    };
    let request = ListContainerStatsRequest {
        filter: Some(ContainerStatsFilter {
            id,
            pod_sandbox_id: args.pod.clone(),
            label_selector: parse_labels(&args.labels)?,
        }),
    };
    let mut client = ctx.runtime().await?;
    let sample = Duration::from_secs(args.seconds);
    let mut display = async |out: &mut dyn Write, watching: bool| -> Result<()> {
        let first = list(ctx, &mut client, request.clone()).await?;
        if args.output != Format::Table {
            let response = ListContainerStatsResponse { stats: first };
            return print_message(out, &response, args.output);
        }
        tokio::time::sleep(sample).await;
        let second = list(ctx, &mut client, request.clone()).await?;
        let table = render(&first, &second, args.all)?;
        if watching {
            out.write_all(CLEAR_SCREEN.as_bytes())?;
        }
        out.write_all(table.as_bytes())?;
        Ok(out.flush()?)
    };
    if !args.watch {
        return display(out, false).await.context("get container stats");
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            shown = display(out, true) => shown.context("get container stats")?,
        }
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            () = tokio::time::sleep(WATCH_PAUSE) => {}
        }
    }
}

/// ANSI: clear the screen and go home, before each table of `--watch`.
pub const CLEAR_SCREEN: &str = "\x1b[2J\x1b[H";

/// crictl's `--watch` ticker: half a second between one display's end and the next.
pub const WATCH_PAUSE: Duration = Duration::from_millis(500);

/// One ListContainerStats call, sorted by container ID as crictl sorts.
async fn list(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    request: ListContainerStatsRequest,
) -> Result<Vec<ContainerStats>> {
    let mut stats = ctx
        .call("ListContainerStats", request, |req| {
            client.list_container_stats(req)
        })
        .await
        .map_err(|e| anyhow!(e))?
        .stats;
    stats.sort_by(|a, b| id(a).cmp(id(b)));
    Ok(stats)
}

fn id(s: &ContainerStats) -> &str {
    s.attributes.as_ref().map_or("", |a| a.id.as_str())
}

/// CPU % between two samples of a counter of core-nanoseconds, as crictl computes it.
pub fn cpu_percent(usage: u64, timestamp: i64, old_usage: u64, old_timestamp: i64) -> Result<f64> {
    if usage == 0 {
        return Ok(0.0);
    }
    let duration = timestamp - old_timestamp;
    if duration == 0 {
        bail!("cpu stat is not updated during sample");
    }
    Ok(usage.saturating_sub(old_usage) as f64 / duration as f64 * 100.0)
}

/// crictl's table: CONTAINER NAME CPU % MEM DISK INODES SWAP, the second sample's rows with
/// the CPU share since the first; containers without CPU and memory figures (not running)
/// only with `all`, containers new in the second sample not at all.
pub fn render(first: &[ContainerStats], second: &[ContainerStats], all: bool) -> Result<String> {
    let old: HashMap<&str, &ContainerStats> = first.iter().map(|s| (id(s), s)).collect();
    let mut table = Table::new();
    table.add_row([
        "CONTAINER",
        "NAME",
        "CPU %",
        "MEM",
        "DISK",
        "INODES",
        "SWAP",
    ]);
    for s in second {
        let cpu = s.cpu.as_ref();
        let usage = cpu
            .and_then(|c| c.usage_core_nano_seconds)
            .map_or(0, |v| v.value);
        let mem = s
            .memory
            .as_ref()
            .and_then(|m| m.working_set_bytes)
            .map_or(0, |v| v.value);
        let layer = s.writable_layer.as_ref();
        let disk = layer.and_then(|l| l.used_bytes).map_or(0, |v| v.value);
        let inodes = layer.and_then(|l| l.inodes_used).map_or(0, |v| v.value);
        let swap = s
            .swap
            .as_ref()
            .and_then(|s| s.swap_usage_bytes)
            .map_or(0, |v| v.value);
        if !all && usage == 0 && mem == 0 {
            continue;
        }
        let Some(previous) = old.get(id(s)) else {
            continue;
        };
        let old_cpu = previous.cpu.as_ref();
        let percent = cpu_percent(
            usage,
            cpu.map_or(0, |c| c.timestamp),
            old_cpu
                .and_then(|c| c.usage_core_nano_seconds)
                .map_or(0, |v| v.value),
            old_cpu.map_or(0, |c| c.timestamp),
        )?;
        let name = s
            .attributes
            .as_ref()
            .and_then(|a| a.metadata.as_ref())
            .map_or("", |m| m.name.as_str());
        table.add_row([
            truncate_id(id(s), ""),
            name.to_string(),
            format!("{percent:.2}"),
            human_size(mem as f64),
            human_size(disk as f64),
            inodes.to_string(),
            human_size(swap as f64),
        ]);
    }
    Ok(table.render())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use k8s_cri::v1::{
        ContainerAttributes, ContainerMetadata, CpuUsage, FilesystemUsage, MemoryUsage, SwapUsage,
        UInt64Value,
    };

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: StatsArgs,
    }

    fn v(value: u64) -> Option<UInt64Value> {
        Some(UInt64Value { value })
    }

    fn sample(id: &str, name: &str, cpu: u64, ts: i64, mem: u64) -> ContainerStats {
        ContainerStats {
            attributes: Some(ContainerAttributes {
                id: id.into(),
                metadata: Some(ContainerMetadata {
                    name: name.into(),
                    attempt: 0,
                }),
                ..Default::default()
            }),
            cpu: Some(CpuUsage {
                timestamp: ts,
                usage_core_nano_seconds: v(cpu),
                usage_nano_cores: None,
            }),
            memory: Some(MemoryUsage {
                timestamp: ts,
                working_set_bytes: v(mem),
                ..Default::default()
            }),
            writable_layer: Some(FilesystemUsage {
                timestamp: ts,
                used_bytes: v(10_485_760),
                inodes_used: v(12),
                ..Default::default()
            }),
            swap: Some(SwapUsage {
                timestamp: ts,
                swap_usage_bytes: v(0),
                swap_available_bytes: None,
            }),
        }
    }

    #[test]
    fn flags_like_crictl() {
        let cli = Cli::try_parse_from([
            "stats", "-a", "-p", "pod1", "-l", "a=b", "--label", "c=d", "-w", "-s", "3", "-o",
            "json", "abc",
        ])
        .unwrap();
        let a = cli.args;
        assert!(a.all && a.watch);
        assert_eq!(a.pod, "pod1");
        assert_eq!(a.labels, ["a=b", "c=d"]);
        assert_eq!(a.seconds, 3);
        assert_eq!(a.output, Format::Json);
        assert_eq!(a.container.as_deref(), Some("abc"));
        let a = Cli::try_parse_from(["stats", "--id", "x"]).unwrap().args;
        assert_eq!(
            (a.id.as_str(), a.seconds, a.output),
            ("x", 1, Format::Table)
        );
        assert!(Cli::try_parse_from(["stats", "-o", "go-template"]).is_err());
    }

    #[test]
    fn the_table_shows_the_cpu_share_between_samples() {
        let s = 1_000_000_000;
        let first = [
            sample(
                "aaaaaaaaaaaaaaaaaaaa",
                "busy",
                5 * s as u64,
                10 * s,
                1_000_000,
            ),
            sample("bbbbbbbbbbbbbbbbbbbb", "exited", 0, 10 * s, 0),
        ];
        let second = [
            // 0.75 s of CPU in a 1 s window.
            sample(
                "aaaaaaaaaaaaaaaaaaaa",
                "busy",
                5 * s as u64 + 750_000_000,
                11 * s,
                104_857_600,
            ),
            sample("bbbbbbbbbbbbbbbbbbbb", "exited", 0, 11 * s, 0),
            sample("cccccccccccccccccccc", "new", 1, 11 * s, 1),
        ];
        let table = render(&first, &second, false).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2, "{table}");
        let header: Vec<&str> = lines[0]
            .split("   ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(
            header,
            [
                "CONTAINER",
                "NAME",
                "CPU %",
                "MEM",
                "DISK",
                "INODES",
                "SWAP"
            ]
        );
        let row: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            row,
            [
                "aaaaaaaaaaaaa",
                "busy",
                "75.00",
                "104.9MB",
                "10.49MB",
                "12",
                "0B"
            ]
        );
        let all = render(&first, &second, true).unwrap();
        assert!(all.lines().any(|l| l.starts_with("bbbbbbbbbbbbb")), "{all}");
        assert!(
            !all.contains("ccccccccccccc"),
            "new containers are left out: {all}"
        );

        let stale = [sample("aaaaaaaaaaaaaaaaaaaa", "busy", 9, 10 * s, 1)];
        assert!(render(&first[..1], &stale, false).is_err());
    }

    #[test]
    fn json_is_the_list_response() {
        let mut out = Vec::new();
        let response = ListContainerStatsResponse {
            stats: vec![sample("abc", "busy", 5, 7, 9)],
        };
        print_message(&mut out, &response, Format::Json).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let stats = &value["stats"][0];
        assert_eq!(stats["attributes"]["id"], "abc");
        assert_eq!(stats["cpu"]["usageCoreNanoSeconds"]["value"], "5");
        assert_eq!(stats["memory"]["workingSetBytes"]["value"], "9");
        assert_eq!(stats["writableLayer"]["inodesUsed"]["value"], "12");
    }
}
