//! `crustctl inspecti`: the status of one or more images.

use std::io::Write;

use anyhow::{bail, Context, Result};
use clap::Args;
use k8s_cri::v1::{ImageSpec, ImageStatusRequest, ImageStatusResponse};

use crate::client::Ctx;
use crate::output::{
    format_parser, go_map, human_size_with_precision, print_status_data, Format, StatusData,
};

#[derive(Args, Debug)]
pub struct InspectiArgs {
    /// Images to inspect: IDs, NAME[:TAG] or NAME@DIGEST
    #[arg(value_name = "IMAGE-ID", required = true)]
    pub images: Vec<String>,
    /// Output format
    #[arg(short, long, default_value = "json",
          value_parser = format_parser(&["json", "yaml", "go-template", "table"]))]
    pub output: Format,
    /// Do not show verbose information
    #[arg(short, long)]
    pub quiet: bool,
    /// Go template to render with, used when the output is go-template
    #[arg(long)]
    pub template: Option<String>,
}

pub async fn run(ctx: &Ctx, args: InspectiArgs, out: &mut dyn Write) -> Result<()> {
    let mut client = ctx.image().await?;
    let verbose = !args.quiet;
    let mut statuses = Vec::new();
    for id in &args.images {
        let request = ImageStatusRequest {
            image: Some(ImageSpec {
                image: id.clone(),
                ..Default::default()
            }),
            verbose,
        };
        let r = ctx
            .call("ImageStatus", request, |req| client.image_status(req))
            .await
            .with_context(|| format!("image status for {id:?} request"))?;
        let Some(image) = &r.image else {
            bail!("no such image {id:?} present");
        };
        if args.output == Format::Table {
            out.write_all(render_table(&r, verbose).as_bytes())?;
        } else {
            statuses.push(StatusData::new(Some(image))?.with_info(r.info));
        }
    }
    print_status_data(out, statuses, args.output, args.template.as_deref())
}

/// crictl's `outputImageStatusTable`.
fn render_table(r: &ImageStatusResponse, verbose: bool) -> String {
    let image = r.image.clone().unwrap_or_default();
    let mut text = format!("ID: {}\n", image.id);
    for tag in &image.repo_tags {
        text.push_str(&format!("Tag: {tag}\n"));
    }
    for digest in &image.repo_digests {
        text.push_str(&format!("Digest: {digest}\n"));
    }
    text.push_str(&format!(
        "Size: {}\n",
        human_size_with_precision(image.size as f64, 3)
    ));
    if verbose {
        text.push_str(&format!("Info: {}\n", go_map(&r.info)));
    }
    text
}

#[cfg(test)]
mod tests {
    use k8s_cri::v1 as cri;
    use serde_json::{json, Value};

    use super::*;

    fn response() -> ImageStatusResponse {
        ImageStatusResponse {
            image: Some(cri::Image {
                id: "sha256:abc".into(),
                repo_tags: vec!["docker.io/library/busybox:latest".into()],
                repo_digests: vec!["docker.io/library/busybox@sha256:def".into()],
                size: 2_155_133,
                uid: Some(cri::Int64Value { value: 0 }),
                ..Default::default()
            }),
            info: [("info".to_owned(), "{\"chainID\":\"sha256:1\"}".to_owned())].into(),
        }
    }

    #[test]
    fn json_like_crictl() {
        let r = response();
        let data = StatusData::new(r.image.as_ref()).unwrap().with_info(r.info);
        let mut out = Vec::new();
        print_status_data(&mut out, vec![data], Format::Json, None).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!({
                "status": {
                    "id": "sha256:abc",
                    "repoTags": ["docker.io/library/busybox:latest"],
                    "repoDigests": ["docker.io/library/busybox@sha256:def"],
                    "size": "2155133",
                    "uid": {"value": "0"},
                    "username": "",
                    "pinned": false,
                },
                "info": {"chainID": "sha256:1"},
            })
        );
    }

    #[test]
    fn table() {
        assert_eq!(
            render_table(&response(), true),
            "ID: sha256:abc\nTag: docker.io/library/busybox:latest\n\
             Digest: docker.io/library/busybox@sha256:def\nSize: 2.16MB\n\
             Info: map[info:{\"chainID\":\"sha256:1\"}]\n"
        );
    }
}
