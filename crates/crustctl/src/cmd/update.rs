//! `crustctl update`: updates the resources of running containers.

use std::io::Write;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use k8s_cri::v1::{LinuxContainerResources, UpdateContainerResourcesRequest};

use crate::client::Ctx;

#[derive(Args, Debug, Default)]
pub struct UpdateArgs {
    /// Containers to update
    #[arg(value_name = "CONTAINER-ID", required = true)]
    pub ids: Vec<String>,
    /// (Windows only) Number of CPUs available to the container
    #[arg(long, default_value_t = 0)]
    pub cpu_count: i64,
    /// (Windows only) Portion of CPU cycles specified as a percentage * 100
    #[arg(long, default_value_t = 0)]
    pub cpu_maximum: i64,
    /// CPU CFS period to be used for hardcapping (in usecs). 0 to use system default
    #[arg(long, default_value_t = 0)]
    pub cpu_period: i64,
    /// CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub cpu_quota: i64,
    /// CPU shares (relative weight vs. other containers)
    #[arg(long, default_value_t = 0)]
    pub cpu_share: i64,
    /// Memory limit (in bytes, or with a unit: 64m, 1g)
    #[arg(long, default_value = "0", value_parser = parse_memory)]
    pub memory: i64,
    /// CPU(s) to use
    #[arg(long, default_value = "")]
    pub cpuset_cpus: String,
    /// Memory node(s) to use
    #[arg(long, default_value = "")]
    pub cpuset_mems: String,
    /// OOM Killer score to use
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub oom_score_adj: i64,
}

impl UpdateArgs {
    fn resources(&self) -> LinuxContainerResources {
        LinuxContainerResources {
            cpu_period: self.cpu_period,
            cpu_quota: self.cpu_quota,
            cpu_shares: self.cpu_share,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            memory_limit_in_bytes: self.memory,
            oom_score_adj: self.oom_score_adj,
            ..Default::default()
        }
    }
}

pub async fn run(ctx: &Ctx, args: UpdateArgs, out: &mut dyn Write) -> Result<()> {
    let mut client = ctx.runtime().await?;
    let resources = args.resources();
    for id in &args.ids {
        if id.is_empty() {
            bail!("ID cannot be empty");
        }
        let request = UpdateContainerResourcesRequest {
            container_id: id.clone(),
            linux: Some(resources.clone()),
            ..Default::default()
        };
        ctx.call("UpdateContainerResources", request, |req| {
            client.update_container_resources(req)
        })
        .await
        .map_err(|e| anyhow!(e))
        .with_context(|| format!("updating container resources for {id:?}"))?;
        writeln!(out, "{id}")?;
    }
    Ok(())
}

/// Bytes as crictl's integer flag takes them, or docker's `RAMInBytes` (`64m`, `1.5g`,
/// `512KiB`: binary multiples).
pub fn parse_memory(text: &str) -> Result<i64> {
    let invalid = || anyhow!("invalid size: {text:?}");
    let t = text.trim();
    if let Ok(n) = t.parse::<i64>() {
        if n < 0 {
            bail!("invalid size: {text:?}");
        }
        return Ok(n);
    }
    let number_len = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(invalid)?;
    let number: f64 = t[..number_len].parse().map_err(|_| invalid())?;
    let unit = t[number_len..].trim_start().to_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(invalid()),
    };
    Ok((number * (1u64 << shift) as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("67108864").unwrap(), 64 << 20);
        assert_eq!(parse_memory("64m").unwrap(), 64 << 20);
        assert_eq!(parse_memory("64M").unwrap(), 64 << 20);
        assert_eq!(parse_memory("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_memory("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_memory("512 kb").unwrap(), 512 << 10);
        assert_eq!(parse_memory("10b").unwrap(), 10);
        for bad in ["", "m", "-1", "12x", "1.2.3m"] {
            assert!(parse_memory(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resources_carry_crictl_flags() {
        let args = UpdateArgs {
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_share: 512,
            memory: 64 << 20,
            cpuset_cpus: "0-1".into(),
            oom_score_adj: -10,
            ..Default::default()
        };
        let r = args.resources();
        assert_eq!(
            (
                r.cpu_period,
                r.cpu_quota,
                r.cpu_shares,
                r.memory_limit_in_bytes
            ),
            (100_000, 50_000, 512, 64 << 20)
        );
        assert_eq!((r.cpuset_cpus.as_str(), r.oom_score_adj), ("0-1", -10));
    }
}
