//! Real docker-registry tests: start each kind, push, read back.

use std::io::Read;
use std::time::Duration;

use crust_testenv::{
    get_blob, get_manifest, media_types, push_big_image, push_hostile_image, push_standard_images,
    sha256_digest, Pushed, Registry, StandardImages,
};

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `host/name:tag` or `host/name@digest` → (name, reference)
fn split_reference(host: &str, reference: &str) -> (String, String) {
    let rest = reference
        .strip_prefix(&format!("{host}/"))
        .expect("reference starts with host");
    if let Some((name, digest)) = rest.split_once('@') {
        return (name.into(), digest.into());
    }
    let (name, tag) = rest.rsplit_once(':').unwrap();
    (name.into(), tag.into())
}

async fn check_image(
    reg: &Registry,
    creds: Option<(&str, &str)>,
    p: &Pushed,
    manifest_type: &str,
    layer_type: &str,
) {
    let host = reg.host();
    let (name, reference) = split_reference(&host, &p.reference);
    let m = get_manifest(&host, &name, &reference, creds).await.unwrap();
    assert_eq!(m.media_type, manifest_type, "{}", p.reference);
    assert_eq!(m.digest, p.manifest_digest, "{}", p.reference);
    assert_eq!(m.computed_digest, p.manifest_digest, "{}", p.reference);
    let json = m.json().unwrap();
    assert_eq!(json["mediaType"], manifest_type);
    assert_eq!(json["config"]["digest"], p.config_digest.as_str());
    let layers: Vec<&str> = json["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            assert_eq!(l["mediaType"], layer_type, "{}", p.reference);
            l["digest"].as_str().unwrap()
        })
        .collect();
    assert_eq!(layers, p.layer_digests);

    let config = get_blob(&host, &name, &p.config_digest, creds)
        .await
        .unwrap();
    assert_eq!(sha256_digest(&config), p.config_digest);
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    let diff_ids: Vec<&str> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(diff_ids, p.diff_ids);
    let mut size = json["config"]["size"].as_u64().unwrap();
    for l in json["layers"].as_array().unwrap() {
        size += l["size"].as_u64().unwrap();
    }
    assert_eq!(size, p.size);
}

async fn check_standard(reg: &Registry, creds: Option<(&str, &str)>, s: &StandardImages) {
    use media_types::*;
    check_image(reg, creds, &s.busybox, DOCKER_MANIFEST, DOCKER_LAYER_GZIP).await;
    check_image(reg, creds, &s.busybox_oci, OCI_MANIFEST, OCI_LAYER_GZIP).await;
    check_image(reg, creds, &s.zstd, OCI_MANIFEST, OCI_LAYER_ZSTD).await;
    check_image(reg, creds, &s.plain, OCI_MANIFEST, OCI_LAYER_TAR).await;
    check_image(reg, creds, &s.nonroot, OCI_MANIFEST, OCI_LAYER_GZIP).await;
    check_image(reg, creds, &s.multiarch_amd64, OCI_MANIFEST, OCI_LAYER_GZIP).await;
    check_image(reg, creds, &s.multiarch_arm64, OCI_MANIFEST, OCI_LAYER_GZIP).await;

    // same content, same diff IDs, whatever the compression
    assert_eq!(s.busybox.diff_ids.len(), 3);
    assert_eq!(s.busybox.diff_ids, s.busybox_oci.diff_ids);
    assert_eq!(s.busybox.diff_ids, s.zstd.diff_ids);
    assert_eq!(s.busybox.diff_ids, s.plain.diff_ids);
    assert_eq!(s.busybox.layer_digests, s.busybox_oci.layer_digests);
    assert_ne!(s.busybox.layer_digests, s.zstd.layer_digests);
    assert_ne!(
        s.multiarch_amd64.config_digest,
        s.multiarch_arm64.config_digest
    );

    let host = reg.host();
    let index = get_manifest(&host, "crust/multiarch", "latest", creds)
        .await
        .unwrap();
    assert_eq!(index.media_type, OCI_INDEX);
    assert_eq!(index.digest, s.multiarch.manifest_digest);
    let json = index.json().unwrap();
    let children: Vec<(String, String)> = json["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["platform"]["architecture"].as_str().unwrap().to_string(),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        children,
        vec![
            (
                "amd64".to_string(),
                s.multiarch_amd64.manifest_digest.clone()
            ),
            (
                "arm64".to_string(),
                s.multiarch_arm64.manifest_digest.clone()
            ),
        ]
    );
    assert_eq!(s.multiarch.config_digest, s.multiarch_amd64.config_digest);

    let config = get_blob(&host, "crust/nonroot", &s.nonroot.config_digest, creds)
        .await
        .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config["config"]["User"], "crustuser");
}

/// Entries (path, link, type) of a gzip layer.
fn gzip_entries(data: &[u8]) -> Vec<(String, Option<String>, tar::EntryType, u32)> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut tar)
        .unwrap();
    let mut ar = tar::Archive::new(&tar[..]);
    ar.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                e.link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned()),
                e.header().entry_type(),
                e.header().mode().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn anonymous_registry_serves_standard_images() {
    let reg = Registry::start().await.unwrap();
    assert!(reg.host().starts_with("127.0.0.1:"));
    let resp = http()
        .get(format!("{}/v2/", reg.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let s = push_standard_images(&reg, None).await.unwrap();
    assert_eq!(
        s.busybox.reference,
        format!("{}/crust/busybox:latest", reg.host())
    );
    check_standard(&reg, None, &s).await;

    // pushing again is a no-op with the same digests
    let again = push_standard_images(&reg, None).await.unwrap();
    assert_eq!(again.busybox, s.busybox);
    assert_eq!(again.multiarch, s.multiarch);

    // the base layer holds busybox and its applets, the top one the whiteouts
    let host = reg.host();
    let base = get_blob(&host, "crust/busybox", &s.busybox.layer_digests[0], None)
        .await
        .unwrap();
    let entries = gzip_entries(&base);
    let find = |p: &str| entries.iter().find(|e| e.0 == p).cloned();
    assert_eq!(find("bin/busybox").unwrap().2, tar::EntryType::Regular);
    for applet in ["sh", "ls", "cat", "echo", "sleep", "id", "true", "env"] {
        let e = find(&format!("bin/{applet}")).unwrap_or_else(|| panic!("bin/{applet}"));
        assert_eq!(e.2, tar::EntryType::Link);
        assert_eq!(e.1.as_deref(), Some("bin/busybox"));
    }
    assert_eq!(find("tmp").unwrap().3, 0o1777);
    let top = get_blob(&host, "crust/busybox", &s.busybox.layer_digests[2], None)
        .await
        .unwrap();
    let top: Vec<String> = gzip_entries(&top).into_iter().map(|e| e.0).collect();
    assert!(top.contains(&"etc/.wh.removed-file".to_string()));
    assert!(top.contains(&"data/dir/.wh..wh..opq".to_string()));
    assert!(top.contains(&"data/dir/new.txt".to_string()));
}

#[tokio::test]
async fn corrupt_blob_keeps_length_and_breaks_digest() {
    let reg = Registry::start().await.unwrap();
    let s = push_standard_images(&reg, None).await.unwrap();
    let digest = &s.busybox_oci.layer_digests[1];
    let good = get_blob(&reg.host(), "crust/busybox-oci", digest, None)
        .await
        .unwrap();
    reg.corrupt_blob(digest).unwrap();
    let bad = get_blob(&reg.host(), "crust/busybox-oci", digest, None)
        .await
        .unwrap();
    assert_eq!(good.len(), bad.len());
    assert_ne!(&sha256_digest(&bad), digest);
    assert!(reg.corrupt_blob("sha256:nothex").is_err());
}

#[tokio::test]
async fn htpasswd_registry_requires_credentials() {
    let reg = Registry::start_htpasswd("alice", "s3cret").await.unwrap();
    let url = format!("{}/v2/", reg.url());
    let c = http();
    let anon = c.get(&url).send().await.unwrap();
    assert_eq!(anon.status(), 401);
    let challenge = anon.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Basic"), "{challenge}");
    let wrong = c
        .get(&url)
        .basic_auth("alice", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = c
        .get(&url)
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);

    assert!(push_standard_images_anonymously_fails(&reg).await);
    let s = push_standard_images(&reg, Some(("alice", "s3cret")))
        .await
        .unwrap();
    check_standard(&reg, Some(("alice", "s3cret")), &s).await;
    assert!(get_manifest(&reg.host(), "crust/busybox", "latest", None)
        .await
        .is_err());
    assert!(
        get_manifest(&reg.host(), "crust/busybox", "latest", Some(("alice", "x")))
            .await
            .is_err()
    );
}

async fn push_standard_images_anonymously_fails(reg: &Registry) -> bool {
    crust_testenv::push_standard_images_to(&reg.host(), None)
        .await
        .is_err()
}

#[tokio::test]
async fn token_registry_issues_and_checks_tokens() {
    let reg = Registry::start_token_auth("bob", "hunter2").await.unwrap();
    let realm = reg.token_realm().unwrap();
    let c = http();
    let anon = c.get(format!("{}/v2/", reg.url())).send().await.unwrap();
    assert_eq!(anon.status(), 401);
    let challenge = anon.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(challenge.contains(&realm), "{challenge}");
    assert!(
        challenge.contains("service=\"crust-registry\""),
        "{challenge}"
    );

    let scope = [
        ("service", "crust-registry"),
        ("scope", "repository:crust/busybox:pull"),
    ];
    let no_creds = c.get(&realm).query(&scope).send().await.unwrap();
    assert_eq!(no_creds.status(), 401);
    let wrong = c
        .get(&realm)
        .query(&scope)
        .basic_auth("bob", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(reg.tokens_issued(), 0);

    // a forged token is refused by the registry
    let forged = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJjcnVzdC10ZXN0In0.c2ln";
    let resp = c
        .get(format!("{}/v2/", reg.url()))
        .bearer_auth(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let s = push_standard_images(&reg, Some(("bob", "hunter2")))
        .await
        .unwrap();
    check_standard(&reg, Some(("bob", "hunter2")), &s).await;
    assert!(reg.tokens_issued() > 0);

    // a pull token, GET form, as oci-client asks for it
    let right: serde_json::Value = c
        .get(&realm)
        .query(&scope)
        .basic_auth("bob", Some("hunter2"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = right["token"].as_str().unwrap();
    assert_eq!(right["access_token"], token);
    let m = c
        .get(format!("{}/v2/crust/busybox/manifests/latest", reg.url()))
        .header("accept", media_types::DOCKER_MANIFEST)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(m.status(), 200);
    // the scope was for busybox only
    let other = c
        .get(format!("{}/v2/crust/zstd/manifests/latest", reg.url()))
        .header("accept", media_types::OCI_MANIFEST)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 401);

    // the OAuth2 password grant containerd tries first
    let form: serde_json::Value = c
        .post(&realm)
        .form(&[
            ("grant_type", "password"),
            ("username", "bob"),
            ("password", "hunter2"),
            ("service", "crust-registry"),
            ("scope", "repository:crust/zstd:pull"),
            ("client_id", "containerd-client"),
        ])
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let m = c
        .get(format!("{}/v2/crust/zstd/manifests/latest", reg.url()))
        .header("accept", media_types::OCI_MANIFEST)
        .bearer_auth(form["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(m.status(), 200);
    let bad_form = c
        .post(&realm)
        .form(&[
            ("grant_type", "password"),
            ("username", "bob"),
            ("password", "nope"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bad_form.status(), 401);
}

#[tokio::test]
async fn hostile_image_contains_hostile_entries() {
    let reg = Registry::start().await.unwrap();
    let target = tempfile::tempdir().unwrap();
    let t = target.path().to_str().unwrap().to_string();
    let p = push_hostile_image(&reg, "crust/hostile", target.path())
        .await
        .unwrap();
    check_image(
        &reg,
        None,
        &p,
        media_types::OCI_MANIFEST,
        media_types::OCI_LAYER_GZIP,
    )
    .await;
    assert_eq!(p.layer_digests.len(), 1);
    let layer = get_blob(&reg.host(), "crust/hostile", &p.layer_digests[0], None)
        .await
        .unwrap();
    let entries = gzip_entries(&layer);
    let find = |p: &str| {
        entries
            .iter()
            .find(|e| e.0 == p)
            .cloned()
            .unwrap_or_else(|| panic!("no entry {p} in {entries:?}"))
    };
    let rel = t.trim_start_matches('/');
    use tar::EntryType;
    assert_eq!(
        find(&format!("../../../../../../{rel}/dotdot")).2,
        EntryType::Regular
    );
    assert_eq!(find(&format!("{t}/absolute")).2, EntryType::Regular);
    let link = find("evil-link");
    assert_eq!(link.2, EntryType::Symlink);
    assert_eq!(link.1.as_deref(), Some(t.as_str()));
    find("evil-link/via-symlink");
    let hl = find("hl");
    assert_eq!(hl.2, EntryType::Link);
    assert_eq!(
        hl.1.as_deref(),
        Some(format!("../../../../{rel}/victim").as_str())
    );
    assert_eq!(
        find("hl-abs").1.as_deref(),
        Some(format!("{t}/victim").as_str())
    );
    assert_eq!(find("dev-null").2, EntryType::Char);
    assert_eq!(find("dev-block").2, EntryType::Block);
    assert_eq!(find("suid").3, 0o4755);
    // nothing was written to the host
    assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn big_image_is_incompressible_and_deterministic() {
    let reg = Registry::start().await.unwrap();
    let p = push_big_image(&reg, "crust/big", 3, 1 << 20).await.unwrap();
    check_image(
        &reg,
        None,
        &p,
        media_types::OCI_MANIFEST,
        media_types::OCI_LAYER_GZIP,
    )
    .await;
    assert_eq!(p.layer_digests.len(), 3);
    assert!(p.size > 3 << 20, "size {}", p.size);
    let mut distinct = p.layer_digests.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3);

    let again = push_big_image(&reg, "crust/big:v2", 3, 1 << 20)
        .await
        .unwrap();
    assert_ne!(again.layer_digests, p.layer_digests); // seeded by name
    let same = crust_testenv::push_big_image_to(&reg.host(), "crust/big", 3, 1 << 20, None)
        .await
        .unwrap();
    assert_eq!(same, p);

    let layer = get_blob(&reg.host(), "crust/big", &p.layer_digests[0], None)
        .await
        .unwrap();
    let entries = gzip_entries(&layer);
    let files = entries
        .iter()
        .filter(|e| e.2 == tar::EntryType::Regular)
        .count();
    assert_eq!(files, 4);
}

#[tokio::test]
async fn drop_kills_registry_and_removes_storage() {
    let reg = Registry::start().await.unwrap();
    let pid = reg.pid();
    let dir = reg.storage_dir().to_path_buf();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(reg);
    assert!(!dir.exists());
    // reaped, so the pid is gone (or reused by something that is not our registry)
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(!cmdline.contains(&dir.to_string_lossy().to_string()));
}

#[tokio::test]
async fn fixed_port_in_use_fails_clearly() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let err = Registry::start_with(crust_testenv::RegistryOptions {
        port: Some(port),
        auth: crust_testenv::Auth::None,
    })
    .await
    .err()
    .expect("port is taken");
    let msg = format!("{err:#}");
    assert!(msg.contains("address already in use"), "{msg}");
}

#[test]
fn registry_can_be_shared_between_tests() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Registry>();
    shareable::<StandardImages>();
}
