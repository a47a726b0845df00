//! `crustctl rmi`: removes images.

use std::collections::HashSet;
use std::io::Write;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::{
    Image, ImageSpec, ImageStatusRequest, ListContainersRequest, ListImagesRequest,
    RemoveImageRequest,
};
use tonic::transport::Channel;

use crate::client::Ctx;

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Images to remove: IDs, NAME[:TAG] or NAME@DIGEST
    #[arg(value_name = "IMAGE-ID", required_unless_present_any = ["all", "prune"])]
    pub images: Vec<String>,
    /// Remove all images
    #[arg(short, long)]
    pub all: bool,
    /// Remove all images not used by any container (pinned images are kept)
    #[arg(short = 'q', long)]
    pub prune: bool,
}

/// The images picked for removal, in order, each with whether to remove it (prune
/// marks in-use images `false`, as crictl's ID map does).
#[derive(Default)]
struct Selection(Vec<(String, bool)>);

impl Selection {
    fn set(&mut self, id: &str, remove: bool) {
        match self.0.iter_mut().find(|(i, _)| i == id) {
            Some(entry) => entry.1 = remove,
            None => self.0.push((id.to_owned(), remove)),
        }
    }
}

pub async fn run(ctx: &Ctx, args: RmiArgs, out: &mut dyn Write) -> Result<()> {
    let mut client = ctx.image().await?;
    let mut selection = Selection::default();
    for id in &args.images {
        selection.set(id, true);
    }

    if args.all || args.prune {
        let r = ctx
            .call("ListImages", ListImagesRequest { filter: None }, |req| {
                client.list_images(req)
            })
            .await
            .context("listing images")?;
        for image in r.images {
            if args.prune && image.pinned {
                ctx.debug(format_args!("excluding pinned image {}", image.id));
                continue;
            }
            selection.set(&image.id, true);
        }
    }

    if args.prune {
        for id in images_in_use(ctx, &mut client).await? {
            ctx.debug(format_args!("excluding in-use image {id}"));
            selection.set(&id, false);
        }
    }

    if selection.0.iter().all(|(_, remove)| !remove) {
        eprintln!("No images to remove");
        return Ok(());
    }

    let mut errored = false;
    let mut removed = HashSet::new();
    for (id, remove) in selection.0 {
        if !remove {
            continue;
        }
        let image = match image_status(ctx, &mut client, &id).await {
            Ok(Some(image)) => image,
            Ok(None) => {
                eprintln!("crustctl: no such image {id:?}");
                errored = true;
                continue;
            }
            Err(e) => {
                eprintln!("crustctl: image status request for {id:?} failed: {e:#}");
                errored = true;
                continue;
            }
        };
        // Two names of one image: it is gone after the first.
        if !removed.insert(image.id.clone()) {
            continue;
        }
        let request = RemoveImageRequest {
            image: Some(ImageSpec {
                image: image.id.clone(),
                ..Default::default()
            }),
        };
        if let Err(e) = ctx
            .call("RemoveImage", request, |req| client.remove_image(req))
            .await
        {
            // Prune ignores failures: a container may have started meanwhile.
            if !args.prune {
                eprintln!("crustctl: error of removing image {id:?}: {e}");
                errored = true;
            }
            continue;
        }
        for name in deleted_names(&image) {
            writeln!(out, "Deleted: {name}")?;
        }
    }
    if errored {
        bail!("unable to remove the image(s)");
    }
    Ok(())
}

async fn image_status(
    ctx: &Ctx,
    client: &mut ImageServiceClient<Channel>,
    id: &str,
) -> Result<Option<Image>> {
    let request = ImageStatusRequest {
        image: Some(ImageSpec {
            image: id.to_owned(),
            ..Default::default()
        }),
        verbose: false,
    };
    let r = ctx
        .call("ImageStatus", request, |req| client.image_status(req))
        .await?;
    Ok(r.image)
}

/// IDs of the images containers use. A runtime without ListContainers has none.
async fn images_in_use(ctx: &Ctx, images: &mut ImageServiceClient<Channel>) -> Result<Vec<String>> {
    let mut runtime = ctx.runtime().await?;
    let containers = match ctx
        .call(
            "ListContainers",
            ListContainersRequest { filter: None },
            |req| runtime.list_containers(req),
        )
        .await
    {
        Ok(r) => r.containers,
        Err(e) if e.code() == tonic::Code::Unimplemented => Vec::new(),
        Err(e) => return Err(anyhow!(e)).context("listing containers"),
    };
    let mut ids = Vec::new();
    for container in containers {
        if !container.image_ref.is_empty() {
            ids.push(container.image_ref.clone());
        }
        let Some(image) = container.image.map(|i| i.image).filter(|i| !i.is_empty()) else {
            continue;
        };
        match image_status(ctx, images, &image).await {
            Ok(Some(status)) => ids.push(status.id),
            Ok(None) => {}
            Err(e) => eprintln!("crustctl: image status request for {image:?} failed: {e:#}"),
        }
    }
    Ok(ids)
}

/// What crictl prints for a removed image: its repo tags, or its repo digests when it
/// has no tags.
fn deleted_names(image: &Image) -> &[String] {
    if image.repo_tags.is_empty() {
        &image.repo_digests
    } else {
        &image.repo_tags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_keeps_order_and_last_word() {
        let mut s = Selection::default();
        s.set("a", true);
        s.set("b", true);
        s.set("a", false);
        assert_eq!(s.0, [("a".to_owned(), false), ("b".to_owned(), true)]);
    }

    #[test]
    fn deleted_names_prefer_tags() {
        let image = Image {
            repo_tags: vec!["x:1".into()],
            repo_digests: vec!["x@sha256:1".into()],
            ..Default::default()
        };
        assert_eq!(deleted_names(&image), ["x:1"]);
        let image = Image {
            repo_digests: vec!["x@sha256:1".into()],
            ..Default::default()
        };
        assert_eq!(deleted_names(&image), ["x@sha256:1"]);
    }
}
