//! `crustctl bench pull`: the time PullImage takes for one image, N times.
//!
//! When the runtime has the image already it is removed first (untimed), so that every pull
//! is real: download, verification and unpacking. Then N times: PullImage (timed; no deadline
//! unless --pull-timeout), ImageStatus (untimed: the image must be there; its size is the
//! report's `bytes`), RemoveImage of the reference PullImage returned (timed), ImageStatus
//! (untimed: the image must be gone). The image is not left on the runtime.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::{Image, ImageSpec, ImageStatusRequest, PullImageRequest, RemoveImageRequest};
use serde::Serialize;
use tonic::transport::Channel;

use super::stats::{self, Summary};
use super::{pods, wall_seconds};
use crate::client::Ctx;
use crate::output::{format_parser, Format};

#[derive(Args, Debug)]
pub struct PullBenchArgs {
    /// The image to pull
    #[arg(long, value_name = "REF")]
    pub image: String,
    /// How many times to pull it (removing it in between)
    #[arg(short = 'c', long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub count: u32,
    /// Deadline of each PullImage, none if 0s
    #[arg(long, default_value = "0s", value_parser = crate::duration::parse)]
    pub pull_timeout: Duration,
    /// Output format
    #[arg(short, long, default_value = "table", value_parser = format_parser(&["json", "table"]))]
    pub output: Format,
}

/// What `-o json` prints.
#[derive(Debug, Serialize)]
pub struct PullReport {
    pub endpoint: String,
    pub image: String,
    pub count: u32,
    /// The image's size as ImageStatus reports it.
    pub bytes: u64,
    /// `bytes` over the median PullImage time, in MB (10^6 bytes) per second.
    pub mb_per_s_median: f64,
    /// Wall time of the whole run, checks included.
    pub wall_seconds: f64,
    pub rpcs: Vec<Summary>,
}

impl PullReport {
    fn new(
        endpoint: &str,
        image: &str,
        bytes: u64,
        wall_seconds: f64,
        pulls: &[Duration],
        removes: &[Duration],
    ) -> Self {
        let pull = Summary::new("PullImage", pulls);
        let mb_per_s_median = mb_per_s(bytes, pull.median_ms);
        Self {
            endpoint: endpoint.to_owned(),
            image: image.to_owned(),
            count: u32::try_from(pulls.len()).unwrap_or(u32::MAX),
            bytes,
            mb_per_s_median,
            wall_seconds,
            rpcs: vec![pull, Summary::new("RemoveImage", removes)],
        }
    }

    fn render(&self) -> String {
        let mut text = format!(
            "{} pulls of {} ({} bytes) on {}, {:.3} s in all; median {:.1} MB/s\n",
            self.count,
            self.image,
            self.bytes,
            self.endpoint,
            self.wall_seconds,
            self.mb_per_s_median
        );
        text.push_str(&stats::table(&self.rpcs));
        text
    }
}

/// `bytes` in `ms` milliseconds, in MB/s to 0.1; 0 when there is no time.
fn mb_per_s(bytes: u64, ms: f64) -> f64 {
    if ms <= 0.0 {
        return 0.0;
    }
    (bytes as f64 / 1e6 / (ms / 1e3) * 10.0).round() / 10.0
}

pub async fn run(ctx: &Ctx, args: PullBenchArgs, out: &mut dyn Write) -> Result<()> {
    if args.image.is_empty() {
        bail!("--image must name an image");
    }
    let mut client = ctx.image().await?;
    let started = Instant::now();
    if let Some(image) = status(ctx, &mut client, &args.image).await? {
        remove(ctx, &mut client, &image.id)
            .await
            .context("removing the image before the first pull")?;
    }
    let sandbox = pods::default_config();
    let timeout = (!args.pull_timeout.is_zero()).then_some(args.pull_timeout);
    let mut pulls = Vec::with_capacity(args.count as usize);
    let mut removes = Vec::with_capacity(args.count as usize);
    let mut bytes = 0;
    for i in 0..args.count {
        let request = PullImageRequest {
            image: Some(ImageSpec {
                image: args.image.clone(),
                user_specified_image: args.image.clone(),
                ..Default::default()
            }),
            auth: None,
            sandbox_config: Some(sandbox.clone()),
        };
        let mut request = ctx.request(request);
        if let Some(timeout) = timeout {
            request.set_timeout(timeout);
        }
        let t0 = Instant::now();
        let image_ref = ctx
            .call_with_timeout("PullImage", timeout, request, |req| client.pull_image(req))
            .await
            .map_err(|e| anyhow!(e))
            .with_context(|| format!("PullImage {i} of {}", args.image))?
            .image_ref;
        pulls.push(t0.elapsed());
        let image = status(ctx, &mut client, &args.image)
            .await?
            .ok_or_else(|| anyhow!("{} is not there after PullImage {i}", args.image))?;
        bytes = image.size;

        let t0 = Instant::now();
        remove(ctx, &mut client, &image_ref)
            .await
            .with_context(|| format!("RemoveImage {i} of {image_ref}"))?;
        removes.push(t0.elapsed());
        if status(ctx, &mut client, &args.image).await?.is_some() {
            bail!("{} is still there after RemoveImage {i}", args.image);
        }
    }
    let report = PullReport::new(
        &ctx.image_endpoint,
        &args.image,
        bytes,
        wall_seconds(started),
        &pulls,
        &removes,
    );
    match args.output {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
        _ => out.write_all(report.render().as_bytes())?,
    }
    Ok(())
}

/// ImageStatus of `image`: the image, or None when the runtime lacks it.
async fn status(
    ctx: &Ctx,
    client: &mut ImageServiceClient<Channel>,
    image: &str,
) -> Result<Option<Image>> {
    let request = ImageStatusRequest {
        image: Some(ImageSpec {
            image: image.to_owned(),
            ..Default::default()
        }),
        verbose: false,
    };
    let r = ctx
        .call("ImageStatus", request, |req| client.image_status(req))
        .await
        .map_err(|e| anyhow!(e))
        .with_context(|| format!("ImageStatus of {image}"))?;
    Ok(r.image)
}

async fn remove(ctx: &Ctx, client: &mut ImageServiceClient<Channel>, image: &str) -> Result<()> {
    let request = RemoveImageRequest {
        image: Some(ImageSpec {
            image: image.to_owned(),
            ..Default::default()
        }),
    };
    ctx.call("RemoveImage", request, |req| client.remove_image(req))
        .await
        .map_err(|e| anyhow!(e))
        .context("RemoveImage")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_of_the_median_pull() {
        assert_eq!(mb_per_s(250_000_000, 2_000.0), 125.0);
        assert_eq!(mb_per_s(1_000_000, 3_000.0), 0.3);
        assert_eq!(mb_per_s(1, 0.0), 0.0);
        let s = Duration::from_secs;
        let report = PullReport::new(
            "unix:///x.sock",
            "reg/big:latest",
            240_000_000,
            9.0,
            &[s(3), s(1), s(2)],
            &[Duration::from_millis(40); 3],
        );
        assert_eq!(report.count, 3);
        assert_eq!(report.mb_per_s_median, 120.0);
        assert_eq!(report.rpcs[0].rpc, "PullImage");
        assert_eq!(report.rpcs[0].median_ms, 2000.0);
        assert_eq!(report.rpcs[1].rpc, "RemoveImage");
        assert!(report.render().starts_with(
            "3 pulls of reg/big:latest (240000000 bytes) on unix:///x.sock, 9.000 s in all; \
             median 120.0 MB/s\nRPC"
        ));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["bytes"], 240_000_000);
        assert_eq!(json["rpcs"][0]["samples_ms"][0], 3000.0);
    }
}
