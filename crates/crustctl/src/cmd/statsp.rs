//! `crustctl statsp`: pods' resource usage, as crictl's `statsp`: the table samples
//! ListPodSandboxStats twice, `--seconds` apart, and shows the CPU share between the two;
//! JSON and YAML print one ListPodSandboxStatsResponse. `--watch` repeats until Ctrl-C.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ListPodSandboxStatsRequest, ListPodSandboxStatsResponse, PodSandboxStats, PodSandboxStatsFilter,
};
use tonic::transport::Channel;

use super::pods::parse_labels;
use super::stats::{cpu_percent, CLEAR_SCREEN, WATCH_PAUSE};
use crate::client::Ctx;
use crate::output::{format_parser, human_size, print_message, truncate_id, Format, Table};

#[derive(Args, Debug)]
pub struct StatspArgs {
    /// Pod ID (or a prefix) to show, as --id
    #[arg(value_name = "ID")]
    pub pod: Option<String>,
    /// Filter by pod id
    #[arg(long, default_value = "")]
    pub id: String,
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
    /// Watch pod resources
    #[arg(short, long)]
    pub watch: bool,
}

pub async fn run(ctx: &Ctx, args: StatspArgs, out: &mut dyn Write) -> Result<()> {
    let id = if args.id.is_empty() {
        args.pod.clone().unwrap_or_default()
    } else {
        args.id.clone()
    };
    let request = ListPodSandboxStatsRequest {
        filter: Some(PodSandboxStatsFilter {
            id,
            label_selector: parse_labels(&args.labels).context("parse pod labels")?,
        }),
    };
    let mut client = ctx.runtime().await?;
    let sample = Duration::from_secs(args.seconds);
    let mut display = async |out: &mut dyn Write, watching: bool| -> Result<()> {
        let first = list(ctx, &mut client, request.clone()).await?;
        if args.output != Format::Table {
            let response = ListPodSandboxStatsResponse { stats: first };
            return print_message(out, &response, args.output);
        }
        tokio::time::sleep(sample).await;
        let second = list(ctx, &mut client, request.clone()).await?;
        let table = render(&first, &second)?;
        if watching {
            out.write_all(CLEAR_SCREEN.as_bytes())?;
        }
        out.write_all(table.as_bytes())?;
        Ok(out.flush()?)
    };
    if !args.watch {
        return display(out, false).await.context("get pod stats");
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            shown = display(out, true) => shown.context("get pod stats")?,
        }
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            () = tokio::time::sleep(WATCH_PAUSE) => {}
        }
    }
}

/// One ListPodSandboxStats call, sorted by pod ID as crictl sorts.
async fn list(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    request: ListPodSandboxStatsRequest,
) -> Result<Vec<PodSandboxStats>> {
    let mut stats = ctx
        .call("ListPodSandboxStats", request, |req| {
            client.list_pod_sandbox_stats(req)
        })
        .await
        .map_err(|e| anyhow!(e))
        .context("list pod sandbox stats")?
        .stats;
    stats.sort_by(|a, b| id(a).cmp(id(b)));
    Ok(stats)
}

fn id(s: &PodSandboxStats) -> &str {
    s.attributes.as_ref().map_or("", |a| a.id.as_str())
}

/// (CPU core-nanoseconds, its timestamp, working set) of a pod's Linux stats.
fn figures(s: &PodSandboxStats) -> (u64, i64, u64) {
    let linux = s.linux.as_ref();
    let cpu = linux.and_then(|l| l.cpu.as_ref());
    (
        cpu.and_then(|c| c.usage_core_nano_seconds)
            .map_or(0, |v| v.value),
        cpu.map_or(0, |c| c.timestamp),
        linux
            .and_then(|l| l.memory.as_ref())
            .and_then(|m| m.working_set_bytes)
            .map_or(0, |v| v.value),
    )
}

/// crictl's table: POD, POD ID, CPU %, MEM; pods without CPU and memory figures and pods new
/// in the second sample are left out.
pub fn render(first: &[PodSandboxStats], second: &[PodSandboxStats]) -> Result<String> {
    let old: HashMap<&str, &PodSandboxStats> = first.iter().map(|s| (id(s), s)).collect();
    let mut table = Table::new();
    table.add_row(["POD", "POD ID", "CPU %", "MEM"]);
    for s in second {
        let (cpu, timestamp, mem) = figures(s);
        if cpu == 0 && mem == 0 {
            continue;
        }
        let Some(previous) = old.get(id(s)) else {
            continue;
        };
        let (old_cpu, old_timestamp, _) = figures(previous);
        let percent = cpu_percent(cpu, timestamp, old_cpu, old_timestamp)?;
        let name = s
            .attributes
            .as_ref()
            .and_then(|a| a.metadata.as_ref())
            .map_or("", |m| m.name.as_str());
        table.add_row([
            name.to_string(),
            truncate_id(id(s), ""),
            format!("{percent:.2}"),
            human_size(mem as f64),
        ]);
    }
    Ok(table.render())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use k8s_cri::v1::{
        CpuUsage, LinuxPodSandboxStats, MemoryUsage, PodSandboxAttributes, PodSandboxMetadata,
        UInt64Value,
    };

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: StatspArgs,
    }

    fn sample(id: &str, name: &str, cpu: u64, ts: i64, mem: u64) -> PodSandboxStats {
        PodSandboxStats {
            attributes: Some(PodSandboxAttributes {
                id: id.into(),
                metadata: Some(PodSandboxMetadata {
                    name: name.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            linux: Some(LinuxPodSandboxStats {
                cpu: Some(CpuUsage {
                    timestamp: ts,
                    usage_core_nano_seconds: Some(UInt64Value { value: cpu }),
                    usage_nano_cores: None,
                }),
                memory: Some(MemoryUsage {
                    timestamp: ts,
                    working_set_bytes: Some(UInt64Value { value: mem }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            windows: None,
        }
    }

    #[test]
    fn flags_like_crictl() {
        let a = Cli::try_parse_from(["statsp", "-l", "a=b", "--id", "p", "-o", "yaml", "-w"])
            .unwrap()
            .args;
        assert_eq!(a.labels, ["a=b"]);
        assert_eq!(
            (a.id.as_str(), a.output, a.watch),
            ("p", Format::Yaml, true)
        );
        let a = Cli::try_parse_from(["statsp", "pod1"]).unwrap().args;
        assert_eq!(a.pod.as_deref(), Some("pod1"));
        assert_eq!(a.seconds, 1);
    }

    #[test]
    fn the_table_shows_the_cpu_share_between_samples() {
        let s = 1_000_000_000i64;
        let first = [sample("p1p1p1p1p1p1p1p1", "web", 1_000, s, 5)];
        let second = [
            sample(
                "p1p1p1p1p1p1p1p1",
                "web",
                1_000 + 250_000_000,
                2 * s,
                2_000_000,
            ),
            sample("p2p2p2p2p2p2p2p2", "new", 5, 2 * s, 5),
        ];
        let table = render(&first, &second).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2, "{table}");
        assert!(lines[0].starts_with("POD "), "{table}");
        assert!(
            lines[0].contains("POD ID") && lines[0].contains("CPU %"),
            "{table}"
        );
        let row: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(row, ["web", "p1p1p1p1p1p1p", "25.00", "2MB"]);
    }
}
