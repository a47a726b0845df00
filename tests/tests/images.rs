//! ImageService against a real crustd and a real docker-registry.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use crust_testenv::{push_standard_images, Registry};
use crust_tests::{config_with_hosts, tree, write_hosts_toml, Crustd};
use k8s_cri::v1::*;
use tonic::Code;

fn spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: image.to_string(),
        ..Default::default()
    })
}

fn pull_req(image: &str) -> PullImageRequest {
    PullImageRequest {
        image: spec(image),
        ..Default::default()
    }
}

async fn start_with_registry() -> (Registry, crust_testenv::StandardImages, Crustd) {
    let reg = Registry::start().await.unwrap();
    let images = push_standard_images(&reg, None).await.unwrap();
    let crustd = Crustd::start_local("").await.unwrap();
    (reg, images, crustd)
}

#[tokio::test]
async fn pulls_every_kind_of_image_and_reports_it() {
    let (_reg, images, crustd) = start_with_registry().await;
    let mut client = crustd.images().await.unwrap();
    for (name, pushed) in images.all() {
        if name.starts_with("multiarch-") {
            continue;
        }
        let resp = client
            .pull_image(pull_req(&pushed.reference))
            .await
            .unwrap_or_else(|e| panic!("pulling {name}: {e}"))
            .into_inner();
        // An index resolves to this host's platform: the amd64 child's config.
        assert_eq!(resp.image_ref, pushed.config_digest, "{name}");
        for diff_id in &pushed.diff_ids {
            assert!(
                crustd.layer_dir(diff_id).is_dir(),
                "{name}: layer {diff_id} unpacked"
            );
        }
        let status = client
            .image_status(ImageStatusRequest {
                image: spec(&pushed.reference),
                verbose: true,
            })
            .await
            .unwrap()
            .into_inner();
        let image = status.image.expect("image present");
        assert_eq!(image.id, pushed.config_digest);
        // Images with the same config (busybox in Docker and OCI form) are one image with
        // several names, as in containerd.
        assert!(
            image.repo_tags.contains(&pushed.reference),
            "{name}: {:?}",
            image.repo_tags
        );
        let repo = pushed.reference.rsplit_once(':').unwrap().0;
        assert!(image
            .repo_digests
            .contains(&format!("{repo}@{}", pushed.manifest_digest)));
        if name != "multiarch" {
            assert_eq!(image.size, pushed.size, "{name}");
        }
        let info: serde_json::Value = serde_json::from_str(&status.info["info"]).unwrap();
        assert_eq!(
            info["imageSpec"]["os"], "linux",
            "{name}: verbose info holds the config"
        );
    }
    assert_eq!(
        images.multiarch.config_digest,
        images.multiarch_amd64.config_digest
    );

    // The non-root image reports its user by name; busybox by nothing (root by default).
    let nonroot = client
        .image_status(ImageStatusRequest {
            image: spec(&images.nonroot.reference),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .image
        .unwrap();
    assert_eq!(nonroot.username, "crustuser");
    assert_eq!(nonroot.uid, None);

    // Layers shared between images (busybox, busybox-oci and plain have the same diff IDs) are
    // unpacked once.
    assert_eq!(images.busybox.diff_ids, images.busybox_oci.diff_ids);
    let listed = client
        .list_images(ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let distinct: std::collections::HashSet<_> = images
        .all()
        .iter()
        .filter(|(n, _)| !n.starts_with("multiarch-"))
        .map(|(_, p)| p.config_digest.clone())
        .collect();
    assert_eq!(listed.images.len(), distinct.len());

    // Filter by name.
    let filtered = client
        .list_images(ListImagesRequest {
            filter: Some(ImageFilter {
                image: spec(&images.zstd.reference),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(filtered.images.len(), 1);
    assert_eq!(filtered.images[0].id, images.zstd.config_digest);

    // Lookups by ID, short ID and digest reference.
    let hex = images.zstd.config_digest.trim_start_matches("sha256:");
    let repo = images.zstd.reference.rsplit_once(':').unwrap().0;
    for name in [
        images.zstd.config_digest.clone(),
        hex.to_string(),
        hex[..12].to_string(),
        format!("{repo}@{}", images.zstd.manifest_digest),
    ] {
        let got = client
            .image_status(ImageStatusRequest {
                image: spec(&name),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            got.image.map(|i| i.id),
            Some(images.zstd.config_digest.clone()),
            "{name}"
        );
    }

    // ImageFsInfo counts what is stored.
    let fs = client
        .image_fs_info(ImageFsInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    let usage = &fs.image_filesystems[0];
    assert!(
        usage.used_bytes.as_ref().unwrap().value > 1_000_000,
        "{usage:?}"
    );
    assert!(usage.inodes_used.as_ref().unwrap().value > 10, "{usage:?}");
    assert!(usage
        .fs_id
        .as_ref()
        .unwrap()
        .mountpoint
        .starts_with(crustd.root.to_str().unwrap()));
    assert_eq!(fs.container_filesystems.len(), 1);
}

#[tokio::test]
async fn unknown_image_status_is_empty_not_an_error() {
    let (_reg, _images, crustd) = start_with_registry().await;
    let mut client = crustd.images().await.unwrap();
    let resp = client
        .image_status(ImageStatusRequest {
            image: spec("example.com/not/here:1"),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(resp.image.is_none());
    assert!(resp.info.is_empty());
    let err = client
        .image_status(ImageStatusRequest {
            image: spec(""),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn whiteouts_become_overlay_whiteouts() {
    let (_reg, images, crustd) = start_with_registry().await;
    let mut client = crustd.images().await.unwrap();
    client
        .pull_image(pull_req(&images.busybox.reference))
        .await
        .unwrap();
    let top = crustd.layer_dir(&images.busybox.diff_ids[2]);
    let removed = std::fs::symlink_metadata(top.join("etc/removed-file")).unwrap();
    assert!(
        removed.file_type().is_char_device(),
        "whiteout is a 0/0 char device"
    );
    assert_eq!(removed.rdev(), 0);
    let opaque = top.join("data/dir");
    let value = opaque_xattr(&opaque);
    assert_eq!(value.as_deref(), Some(&b"y"[..]));
    assert!(top.join("data/dir/new.txt").is_file());
    assert!(
        !tree(&top).iter().any(|p| p.contains(".wh.")),
        "no .wh. files remain"
    );
    // The base layer holds the real busybox binary.
    let base = crustd.layer_dir(&images.busybox.diff_ids[0]);
    assert!(std::fs::metadata(base.join("bin/busybox")).unwrap().len() > 100_000);
}

fn opaque_xattr(path: &std::path::Path) -> Option<Vec<u8>> {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg("import os,sys; sys.stdout.buffer.write(os.getxattr(sys.argv[1], 'trusted.overlay.opaque'))")
        .arg(path)
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout)
}

#[tokio::test]
async fn pull_by_digest_names_the_image_by_digest_only() {
    let (_reg, images, crustd) = start_with_registry().await;
    let mut client = crustd.images().await.unwrap();
    let repo = images
        .busybox_oci
        .reference
        .rsplit_once(':')
        .unwrap()
        .0
        .to_string();
    let by_digest = format!("{repo}@{}", images.busybox_oci.manifest_digest);
    let resp = client
        .pull_image(pull_req(&by_digest))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.image_ref, images.busybox_oci.config_digest);
    let image = client
        .image_status(ImageStatusRequest {
            image: spec(&by_digest),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .image
        .unwrap();
    assert!(image.repo_tags.is_empty());
    assert_eq!(image.repo_digests, vec![by_digest.clone()]);
    // Then by tag: the same image gains the tag.
    client
        .pull_image(pull_req(&images.busybox_oci.reference))
        .await
        .unwrap();
    let image = client
        .image_status(ImageStatusRequest {
            image: spec(&by_digest),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .image
        .unwrap();
    assert_eq!(image.repo_tags, vec![images.busybox_oci.reference.clone()]);
}

#[tokio::test]
async fn remove_is_idempotent_and_collects_unshared_layers() {
    let (_reg, images, crustd) = start_with_registry().await;
    let mut client = crustd.images().await.unwrap();
    for r in [&images.busybox, &images.busybox_oci, &images.zstd] {
        client.pull_image(pull_req(&r.reference)).await.unwrap();
    }
    let before = client
        .image_fs_info(ImageFsInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    // busybox and busybox-oci have one config, so they are one image with two names; the
    // zstd image has another config but the same layers (diff IDs).
    assert_eq!(
        images.busybox.config_digest,
        images.busybox_oci.config_digest
    );
    assert_ne!(images.busybox.config_digest, images.zstd.config_digest);
    assert_eq!(images.busybox.diff_ids, images.zstd.diff_ids);
    // Removing by one name removes the image with all its names; shared layers stay.
    client
        .remove_image(RemoveImageRequest {
            image: spec(&images.busybox.reference),
        })
        .await
        .unwrap();
    let gone = client
        .image_status(ImageStatusRequest {
            image: spec(&images.busybox_oci.reference),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(gone.image.is_none(), "every name of the image is removed");
    for d in &images.busybox.diff_ids {
        assert!(crustd.layer_dir(d).is_dir(), "layer shared with zstd kept");
    }
    // By ID this time: the last user of the layers goes, and so do they.
    client
        .remove_image(RemoveImageRequest {
            image: spec(&images.zstd.config_digest),
        })
        .await
        .unwrap();
    for d in images.busybox.diff_ids.iter().chain(&images.zstd.diff_ids) {
        assert!(
            !crustd.layer_dir(d).exists(),
            "unreferenced layer {d} removed"
        );
    }
    // Idempotent: removing again, or something never pulled, succeeds.
    client
        .remove_image(RemoveImageRequest {
            image: spec(&images.zstd.reference),
        })
        .await
        .unwrap();
    client
        .remove_image(RemoveImageRequest {
            image: spec("never/pulled:1"),
        })
        .await
        .unwrap();
    let listed = client
        .list_images(ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.images.is_empty());
    let after = client
        .image_fs_info(ImageFsInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        after.image_filesystems[0]
            .used_bytes
            .as_ref()
            .unwrap()
            .value
            < before.image_filesystems[0]
                .used_bytes
                .as_ref()
                .unwrap()
                .value
                / 10
    );
    assert!(tree(&crustd.layers_dir().join("sha256")).is_empty());
    assert!(tree(&crustd.root.join("images/content/sha256")).is_empty());
    let err = client
        .remove_image(RemoveImageRequest { image: spec("") })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn concurrent_pulls_of_one_image_share_one_transfer() {
    let (reg, images, crustd) = start_with_registry().await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let mut client = crustd.images().await.unwrap();
        let r = images.busybox.reference.clone();
        tasks.push(tokio::spawn(async move {
            client.pull_image(pull_req(&r)).await
        }));
    }
    for t in tasks {
        let id = t.await.unwrap().unwrap().into_inner().image_ref;
        assert_eq!(id, images.busybox.config_digest);
    }
    // The registry's access log: each layer blob was fetched once.
    let log = reg.logs();
    for digest in &images.busybox.layer_digests {
        let gets = log
            .lines()
            .filter(|l| {
                l.contains(&format!("/blobs/{digest}"))
                    && l.contains("GET")
                    && l.contains("response completed")
            })
            .count();
        assert!(gets <= 1, "blob {digest} fetched {gets} times:\n{log}");
    }
    assert!(crustd.logs().contains("joined a pull already under way"));
}

#[tokio::test]
async fn hosts_toml_mirrors_are_tried_in_order_then_upstream() {
    let reg = Registry::start().await.unwrap();
    let images = push_standard_images(&reg, None).await.unwrap();
    // The same image under the name `library/busybox`, so that plain `busybox` (docker.io)
    // resolves through the mirror without any traffic leaving this machine.
    crust_tests::retag(
        &reg.host(),
        "crust/busybox",
        "latest",
        "library/busybox",
        "latest",
    )
    .await
    .unwrap();
    let certs = tempfile::tempdir().unwrap();
    write_hosts_toml(
        certs.path(),
        "docker.io",
        &format!(
            r#"server = "http://127.0.0.1:1"
[host."http://127.0.0.1:2"]
  capabilities = ["pull", "resolve"]
[host."http://{}"]
  capabilities = ["pull", "resolve"]
"#,
            reg.host()
        ),
    )
    .unwrap();
    let crustd = Crustd::start(&config_with_hosts(certs.path(), ""))
        .await
        .unwrap();
    let mut client = crustd.images().await.unwrap();
    let resp = client
        .pull_image(pull_req("busybox"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.image_ref, images.busybox.config_digest);
    let image = client
        .image_status(ImageStatusRequest {
            image: spec("docker.io/library/busybox:latest"),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .image
        .unwrap();
    assert_eq!(image.repo_tags, vec!["docker.io/library/busybox:latest"]);
    assert!(image.repo_digests[0].starts_with("docker.io/library/busybox@sha256:"));

    // A tag that no host has: NotFound, naming every host tried.
    let err = client
        .pull_image(pull_req("busybox:nope"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    for host in ["127.0.0.1:2", &reg.host(), "127.0.0.1:1"] {
        assert!(
            err.message().contains(host),
            "{host} named in {}",
            err.message()
        );
    }
}
