//! `crustctl imagefsinfo`: usage of the filesystems holding images and containers.

use std::io::Write;

use anyhow::{Context, Result};
use clap::Args;
use k8s_cri::v1::{FilesystemUsage, ImageFsInfoRequest, ImageFsInfoResponse};

use crate::client::Ctx;
use crate::output::{format_parser, human_size, print_status_data, Format, StatusData};

#[derive(Args, Debug)]
pub struct ImagefsinfoArgs {
    /// Output format
    #[arg(short, long, default_value = "json",
          value_parser = format_parser(&["json", "yaml", "go-template", "table"]))]
    pub output: Format,
    /// Go template to render with, used when the output is go-template
    #[arg(long)]
    pub template: Option<String>,
}

pub async fn run(ctx: &Ctx, args: ImagefsinfoArgs, out: &mut dyn Write) -> Result<()> {
    let mut client = ctx.image().await?;
    let r = ctx
        .call("ImageFsInfo", ImageFsInfoRequest {}, |req| {
            client.image_fs_info(req)
        })
        .await
        .context("image filesystem info request")?;
    if args.output == Format::Table {
        out.write_all(render_table(&r).as_bytes())?;
        return Ok(());
    }
    let data = StatusData::new(Some(&r))?;
    print_status_data(out, vec![data], args.output, args.template.as_deref())
}

/// crictl's `ouputImageFsInfoTable`.
fn render_table(r: &ImageFsInfoResponse) -> String {
    let mut text = String::new();
    let mut section = |label: &str, filesystems: &[FilesystemUsage]| {
        text.push_str(&format!("{label} Filesystem \n"));
        for (i, fs) in filesystems.iter().enumerate() {
            let used = fs.used_bytes.map_or(0, |v| v.value);
            let inodes = fs.inodes_used.map_or(0, |v| v.value);
            let mountpoint = fs.fs_id.as_ref().map_or("", |id| id.mountpoint.as_str());
            text.push_str(&format!("TimeStamp[{i}]: {}\n", fs.timestamp));
            text.push_str(&format!("Disk[{i}]: {}\n", human_size(used as f64)));
            text.push_str(&format!("Inodes[{i}]: {inodes}\n"));
            text.push_str(&format!("Mountpoint[{i}]: {mountpoint}\n"));
        }
    };
    section("Container", &r.container_filesystems);
    section("Image", &r.image_filesystems);
    text
}

#[cfg(test)]
mod tests {
    use k8s_cri::v1 as cri;

    use super::*;

    fn response() -> ImageFsInfoResponse {
        ImageFsInfoResponse {
            image_filesystems: vec![cri::FilesystemUsage {
                timestamp: 1_700_000_000_000_000_000,
                fs_id: Some(cri::FilesystemIdentifier {
                    mountpoint: "/var/lib/crust/images".into(),
                }),
                used_bytes: Some(cri::UInt64Value { value: 123_456_789 }),
                inodes_used: Some(cri::UInt64Value { value: 4321 }),
            }],
            container_filesystems: vec![],
        }
    }

    #[test]
    fn json_like_crictl() {
        let mut out = Vec::new();
        print_status_data(
            &mut out,
            vec![StatusData::new(Some(&response())).unwrap()],
            Format::Json,
            None,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{
  "status": {
    "containerFilesystems": [],
    "imageFilesystems": [
      {
        "fsId": {
          "mountpoint": "/var/lib/crust/images"
        },
        "inodesUsed": {
          "value": "4321"
        },
        "timestamp": "1700000000000000000",
        "usedBytes": {
          "value": "123456789"
        }
      }
    ]
  }
}
"#
        );
    }

    #[test]
    fn table() {
        assert_eq!(
            render_table(&response()),
            "Container Filesystem \nImage Filesystem \nTimeStamp[0]: 1700000000000000000\n\
             Disk[0]: 123.5MB\nInodes[0]: 4321\nMountpoint[0]: /var/lib/crust/images\n"
        );
    }
}
