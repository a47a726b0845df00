//! Bad input and hostile registries: each gets a clear gRPC error with the right code and
//! leaves nothing behind.

use std::time::Duration;

use crust_testenv::{push_hostile_image, push_standard_images, Registry};
use crust_tests::{tree, Crustd, Proxy, ProxyMode};
use k8s_cri::v1::*;
use tonic::Code;

fn spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: image.to_string(),
        ..Default::default()
    })
}

fn pull_req(image: &str, auth: Option<AuthConfig>) -> PullImageRequest {
    PullImageRequest {
        image: spec(image),
        auth,
        ..Default::default()
    }
}

async fn crustd(extra: &str) -> Crustd {
    Crustd::start_local(extra).await.unwrap()
}

/// Nothing of a failed pull stays: no image, no layer directory, no temporary directory, no
/// stored manifest or config.
async fn assert_nothing_stored(crustd: &Crustd) {
    let mut client = crustd.images().await.unwrap();
    let listed = client
        .list_images(ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.images.is_empty(), "{:?}", listed.images);
    assert!(
        tree(&crustd.layers_dir()).iter().all(|p| p == "sha256"),
        "{:?}",
        tree(&crustd.layers_dir())
    );
    assert!(tree(&crustd.root.join("images/content/sha256")).is_empty());
}

#[tokio::test]
async fn malformed_reference_is_invalid_argument_naming_it() {
    let crustd = crustd("").await;
    let mut client = crustd.images().await.unwrap();
    for bad in [
        "UPPER/case",
        "busybox:",
        "a//b",
        "busybox@sha256:1234",
        "bad host/x",
    ] {
        let err = client.pull_image(pull_req(bad, None)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}: {err:?}");
        assert!(err.message().contains(bad), "{bad}: {}", err.message());
    }
    let err = client.pull_image(pull_req("", None)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn unreachable_registry_and_missing_tag_name_the_host() {
    let reg = Registry::start().await.unwrap();
    push_standard_images(&reg, None).await.unwrap();
    let crustd = crustd("").await;
    let mut client = crustd.images().await.unwrap();
    let err = client
        .pull_image(pull_req("127.0.0.1:1/crust/busybox:latest", None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("127.0.0.1:1"), "{}", err.message());
    assert!(
        err.message().to_lowercase().contains("connect"),
        "{}",
        err.message()
    );

    let missing = format!("{}/crust/busybox:no-such-tag", reg.host());
    let err = client
        .pull_image(pull_req(&missing, None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains(&reg.host()), "{}", err.message());
    assert!(
        err.message().contains("MANIFEST_UNKNOWN"),
        "registry's reason: {}",
        err.message()
    );
    assert_nothing_stored(&crustd).await;
}

#[tokio::test]
async fn corrupted_blob_or_manifest_is_refused_and_nothing_is_stored() {
    let reg = Registry::start().await.unwrap();
    let images = push_standard_images(&reg, None).await.unwrap();
    let crustd = crustd("").await;
    let mut client = crustd.images().await.unwrap();

    // A layer whose bytes no longer match its digest.
    reg.corrupt_blob(&images.zstd.layer_digests[0]).unwrap();
    let err = client
        .pull_image(pull_req(&images.zstd.reference, None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DataLoss, "{err:?}");
    assert!(
        err.message().contains("digest mismatch"),
        "{}",
        err.message()
    );
    assert_nothing_stored(&crustd).await;

    // A config.
    reg.corrupt_blob(&images.plain.config_digest).unwrap();
    let err = client
        .pull_image(pull_req(&images.plain.reference, None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DataLoss, "{err:?}");
    assert_nothing_stored(&crustd).await;

    // A manifest whose bytes do not match the digest the registry names (by tag) or the one
    // asked for (by digest). docker-registry refuses to serve a manifest corrupted in its
    // storage, so a proxy alters it on the way.
    let proxy = Proxy::start(&reg.host(), ProxyMode::TamperManifests)
        .await
        .unwrap();
    let by_tag = images.nonroot.reference.replace(&reg.host(), &proxy.host());
    let repo = by_tag.rsplit_once(':').unwrap().0.to_string();
    let by_digest = format!("{repo}@{}", images.nonroot.manifest_digest);
    for r in [by_tag, by_digest] {
        let err = client.pull_image(pull_req(&r, None)).await.unwrap_err();
        assert_eq!(err.code(), Code::DataLoss, "{r}: {err:?}");
        assert!(
            err.message().contains(&images.nonroot.manifest_digest),
            "{}",
            err.message()
        );
    }
    assert_nothing_stored(&crustd).await;
}

#[tokio::test]
async fn basic_auth_registry_credentials() {
    let reg = Registry::start_htpasswd("alice", "s3cret").await.unwrap();
    let images = push_standard_images(&reg, Some(("alice", "s3cret")))
        .await
        .unwrap();
    let crustd = crustd("").await;
    let mut client = crustd.images().await.unwrap();
    let r = &images.busybox.reference;

    let err = client.pull_image(pull_req(r, None)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let wrong = AuthConfig {
        username: "alice".into(),
        password: "nope".into(),
        ..Default::default()
    };
    let err = client
        .pull_image(pull_req(r, Some(wrong)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(
        err.message().contains("UNAUTHORIZED"),
        "registry's message: {}",
        err.message()
    );
    assert_nothing_stored(&crustd).await;

    let right = AuthConfig {
        username: "alice".into(),
        password: "s3cret".into(),
        ..Default::default()
    };
    let id = client
        .pull_image(pull_req(r, Some(right)))
        .await
        .unwrap()
        .into_inner()
        .image_ref;
    assert_eq!(id, images.busybox.config_digest);
    // The `auth` form (base64 user:pass) works too.
    let auth = AuthConfig {
        auth: "YWxpY2U6czNjcmV0".into(),
        ..Default::default()
    };
    client
        .pull_image(pull_req(&images.zstd.reference, Some(auth)))
        .await
        .unwrap();
    // Nothing was cached: without credentials the next pull is refused again.
    let err = client
        .pull_image(pull_req(&images.nonroot.reference, None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
}

#[tokio::test]
async fn bearer_token_registry_credentials() {
    let reg = Registry::start_token_auth("bob", "tok3n").await.unwrap();
    let images = push_standard_images(&reg, Some(("bob", "tok3n")))
        .await
        .unwrap();
    let crustd = crustd("").await;
    let mut client = crustd.images().await.unwrap();
    let r = &images.busybox_oci.reference;

    let err = client.pull_image(pull_req(r, None)).await.unwrap_err();
    assert!(
        matches!(err.code(), Code::Unauthenticated | Code::PermissionDenied),
        "{err:?}"
    );
    let wrong = AuthConfig {
        username: "bob".into(),
        password: "bad".into(),
        ..Default::default()
    };
    let err = client
        .pull_image(pull_req(r, Some(wrong)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert_nothing_stored(&crustd).await;

    let right = AuthConfig {
        username: "bob".into(),
        password: "tok3n".into(),
        ..Default::default()
    };
    let id = client
        .pull_image(pull_req(r, Some(right)))
        .await
        .unwrap()
        .into_inner()
        .image_ref;
    assert_eq!(id, images.busybox_oci.config_digest);

    // A registry token obtained elsewhere is sent as it is.
    let realm = reg.token_realm().unwrap();
    let token: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{realm}?service=crust-registry&scope=repository:crust/zstd:pull"
        ))
        .basic_auth("bob", Some("tok3n"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let registry_token = token["token"].as_str().unwrap().to_string();
    let auth = AuthConfig {
        registry_token,
        ..Default::default()
    };
    client
        .pull_image(pull_req(&images.zstd.reference, Some(auth)))
        .await
        .unwrap();
}

#[tokio::test]
async fn hostile_layer_never_writes_outside_its_directory() {
    let reg = Registry::start().await.unwrap();
    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("victim"), "original").unwrap();
    let pushed = push_hostile_image(&reg, "crust/hostile", target.path())
        .await
        .unwrap();
    let crustd = crustd("").await;
    let mut client = crustd.images().await.unwrap();
    let result = client.pull_image(pull_req(&pushed.reference, None)).await;
    // Whether the pull succeeds (entries confined to the layer) or fails, the host target is
    // untouched.
    assert_eq!(
        tree(target.path()),
        vec!["victim"],
        "nothing new appeared in the target"
    );
    assert_eq!(
        std::fs::read_to_string(target.path().join("victim")).unwrap(),
        "original"
    );
    let meta = std::fs::metadata(target.path().join("victim")).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::nlink(&meta),
        1,
        "no hard link to the victim"
    );
    if result.is_ok() {
        let layer = crustd.layer_dir(&pushed.diff_ids[0]);
        let files = tree(&layer);
        assert!(
            !files.iter().any(|f| f.contains("dev-null")),
            "device nodes are not created: {files:?}"
        );
        let suid = std::fs::metadata(layer.join("suid")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&suid.permissions()) & 0o4000,
            0o4000
        );
    }
}

#[tokio::test]
async fn a_stalled_transfer_is_cancelled_after_the_progress_timeout() {
    let reg = Registry::start().await.unwrap();
    let images = push_standard_images(&reg, None).await.unwrap();
    let mode = ProxyMode::Stall {
        blobs: images.busybox.layer_digests.clone(),
        after_bytes: 4096,
    };
    let proxy = Proxy::start(&reg.host(), mode).await.unwrap();
    let crustd = crustd("image_pull_progress_timeout = \"2s\"").await;
    let mut client = crustd.images().await.unwrap();
    let reference = images.busybox.reference.replace(&reg.host(), &proxy.host());
    let started = std::time::Instant::now();
    let err = client
        .pull_image(pull_req(&reference, None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(
        err.message().contains("no progress for 2s"),
        "{}",
        err.message()
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_nothing_stored(&crustd).await;
}

#[tokio::test]
async fn a_pull_killed_midway_leaves_nothing_listed_and_is_cleaned_at_start() {
    let reg = Registry::start().await.unwrap();
    let images = push_standard_images(&reg, None).await.unwrap();
    // Only the base layer stalls: the other layers complete and get recorded.
    let mode = ProxyMode::Stall {
        blobs: vec![images.busybox.layer_digests[0].clone()],
        after_bytes: 8192,
    };
    let proxy = Proxy::start(&reg.host(), mode).await.unwrap();
    let mut crustd = crustd("").await;
    let reference = images.busybox.reference.replace(&reg.host(), &proxy.host());
    let mut client = crustd.images().await.unwrap();
    let pull = tokio::spawn(async move { client.pull_image(pull_req(&reference, None)).await });
    // Wait until every other layer is finished and the stalled one is being unpacked into its
    // temporary directory (a `.tmp-` seen earlier could belong to a layer that completes).
    let others = images.busybox.layer_digests.len() - 1;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let entries = tree(&crustd.layers_dir());
        let unpacking = entries.iter().any(|p| p.starts_with(".tmp-"));
        let done = std::fs::read_dir(crustd.layers_dir().join("sha256"))
            .map(|rd| rd.count())
            .unwrap_or(0);
        if unpacking && done == others {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pull never started unpacking"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut listing = crustd.images().await.unwrap();
    let listed = listing
        .list_images(ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.images.is_empty(), "a pull under way lists nothing");
    crustd.kill();
    assert!(pull.await.unwrap().is_err());
    assert!(
        tree(&crustd.layers_dir())
            .iter()
            .any(|p| p.starts_with(".tmp-")),
        "the crash left a partial layer"
    );

    crustd.spawn().await.unwrap();
    assert_nothing_stored(&crustd).await;
    // And the same pull works afterwards, straight from the registry.
    let mut client = crustd.images().await.unwrap();
    client
        .pull_image(pull_req(&images.busybox.reference, None))
        .await
        .unwrap();
}
