//! The test images and pushing them.

use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tar::EntryType;

use crate::client::{split_name, Client};
use crate::image::{index, BuiltImage, Platform};
use crate::layer::{
    Blob, Compression, Flavor, HashWriter, Layer, NoiseReader, RawEntry, TarBuilder,
};
use crate::Registry;

/// What was pushed, as a runtime should report it after pulling.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pushed {
    /// `host/name:tag` (children of an index: `host/name@digest`).
    pub reference: String,
    pub manifest_digest: String,
    /// The image ID. For an index: that of the linux/amd64 child (what a pull on this host
    /// resolves to).
    pub config_digest: String,
    pub layer_digests: Vec<String>,
    pub diff_ids: Vec<String>,
    /// Compressed layers plus config, as containerd reports image size.
    pub size: u64,
}

impl Pushed {
    fn new(reference: String, manifest_digest: &str, img: &BuiltImage) -> Pushed {
        Pushed {
            reference,
            manifest_digest: manifest_digest.to_string(),
            config_digest: img.config.digest.clone(),
            layer_digests: img.layers.iter().map(|l| l.blob.digest.clone()).collect(),
            diff_ids: img.layers.iter().map(|l| l.diff_id.clone()).collect(),
            size: img.size(),
        }
    }
}

/// The standard images, all under `crust/…:latest`.
#[derive(Clone, Debug, Serialize)]
pub struct StandardImages {
    /// Docker schema 2, three gzip layers (base, additions, whiteouts).
    pub busybox: Pushed,
    /// The same content with OCI media types.
    pub busybox_oci: Pushed,
    /// OCI index over linux/amd64 and linux/arm64 (`/arch.txt` and label `arch` differ).
    pub multiarch: Pushed,
    pub multiarch_amd64: Pushed,
    pub multiarch_arm64: Pushed,
    /// busybox content, OCI, zstd layers.
    pub zstd: Pushed,
    /// busybox content, OCI, uncompressed layers.
    pub plain: Pushed,
    /// Runs as `crustuser` (1234:1234).
    pub nonroot: Pushed,
}

impl StandardImages {
    /// Every image with a short name (busybox, busybox-oci, multiarch, …), index children last.
    pub fn all(&self) -> Vec<(&'static str, &Pushed)> {
        vec![
            ("busybox", &self.busybox),
            ("busybox-oci", &self.busybox_oci),
            ("multiarch", &self.multiarch),
            ("zstd", &self.zstd),
            ("plain", &self.plain),
            ("nonroot", &self.nonroot),
            ("multiarch-amd64", &self.multiarch_amd64),
            ("multiarch-arm64", &self.multiarch_arm64),
        ]
    }
}

pub const BUSYBOX_PATH: &str = "/bin/busybox";
const ENV_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Applets linked when `busybox --list` cannot be run.
const FALLBACK_APPLETS: &[&str] = &[
    "[", "awk", "basename", "cat", "chmod", "chown", "cp", "cut", "date", "dd", "df", "dirname",
    "du", "echo", "env", "expr", "false", "find", "grep", "head", "hostname", "id", "ip", "kill",
    "ln", "ls", "mkdir", "mktemp", "mount", "mv", "nc", "nproc", "printf", "ps", "pwd", "readlink",
    "rm", "rmdir", "sed", "seq", "sh", "sleep", "sort", "stat", "sync", "tail", "tee", "test",
    "timeout", "top", "touch", "tr", "true", "uname", "uniq", "wc", "wget", "whoami", "xargs",
    "yes",
];

struct Standard {
    busybox: BuiltImage,
    busybox_oci: BuiltImage,
    amd64: BuiltImage,
    arm64: BuiltImage,
    index: Blob,
    zstd: BuiltImage,
    plain: BuiltImage,
    nonroot: BuiltImage,
}

/// Built once per process: the images are deterministic.
static STANDARD: Mutex<Option<Arc<Standard>>> = Mutex::new(None);

async fn standard() -> Result<Arc<Standard>> {
    tokio::task::spawn_blocking(|| {
        let mut cached = STANDARD.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = cached.as_ref() {
            return Ok(s.clone());
        }
        let s = Arc::new(build_standard()?);
        *cached = Some(s.clone());
        Ok(s)
    })
    .await
    .context("build images")?
}

fn applets() -> Vec<String> {
    let listed = std::process::Command::new(BUSYBOX_PATH)
        .arg("--list")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::trim)
                .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|l| !l.is_empty());
    let mut list =
        listed.unwrap_or_else(|| FALLBACK_APPLETS.iter().map(|a| a.to_string()).collect());
    list.sort();
    list.dedup();
    list
}

const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// bin/busybox with its applets, /etc/passwd and group, the usual top-level directories.
fn base_tar() -> Result<Vec<u8>> {
    let busybox = std::fs::read(BUSYBOX_PATH)
        .with_context(|| format!("read {BUSYBOX_PATH} (install busybox-static)"))?;
    let mut t = TarBuilder::new();
    for (dir, mode) in [
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("home", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("run", 0o755),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("var", 0o755),
        ("var/tmp", 0o1777),
    ] {
        t.dir(dir, mode)?;
    }
    t.file("bin/busybox", 0o755, &busybox)?;
    for applet in applets() {
        t.hardlink(&format!("bin/{applet}"), "bin/busybox")?;
    }
    t.hardlink("usr/bin/env", "bin/busybox")?;
    t.file("etc/passwd", 0o644, PASSWD.as_bytes())?;
    t.file("etc/group", 0o644, GROUP.as_bytes())?;
    t.file("etc/hostname", 0o644, b"crust\n")?;
    t.into_tar()
}

/// Files that the next layer deletes.
fn additions_tar() -> Result<Vec<u8>> {
    let mut t = TarBuilder::new();
    t.dir("data", 0o755)?;
    t.dir("data/dir", 0o755)?;
    t.file("data/dir/old.txt", 0o644, b"old\n")?;
    t.file("data/keep.txt", 0o644, b"keep\n")?;
    t.dir("etc", 0o755)?;
    t.file("etc/removed-file", 0o644, b"removed in the next layer\n")?;
    t.into_tar()
}

/// A whiteout for etc/removed-file and an opaque data/dir with a new file.
fn whiteouts_tar() -> Result<Vec<u8>> {
    let mut t = TarBuilder::new();
    t.dir("data", 0o755)?;
    t.dir("data/dir", 0o755)?;
    t.file("data/dir/.wh..wh..opq", 0o644, b"")?;
    t.file("data/dir/new.txt", 0o644, b"new\n")?;
    t.dir("etc", 0o755)?;
    t.file("etc/.wh.removed-file", 0o644, b"")?;
    t.into_tar()
}

fn arch_tar(arch: &str) -> Result<Vec<u8>> {
    let mut t = TarBuilder::new();
    t.file("arch.txt", 0o644, format!("{arch}\n").as_bytes())?;
    t.into_tar()
}

fn nonroot_tar() -> Result<Vec<u8>> {
    let mut t = TarBuilder::new();
    t.dir("etc", 0o755)?;
    t.file(
        "etc/passwd",
        0o644,
        format!("{PASSWD}crustuser:x:1234:1234:crust user:/home/crustuser:/bin/sh\n").as_bytes(),
    )?;
    t.file(
        "etc/group",
        0o644,
        format!("{GROUP}crustuser:x:1234:\nstaff:x:50:crustuser\n").as_bytes(),
    )?;
    t.dir("home", 0o755)?;
    t.dir_owned("home/crustuser", 0o755, 1234, 1234)?;
    t.file_owned("home/crustuser/hello.txt", 0o644, 1234, 1234, b"hello\n")?;
    t.into_tar()
}

fn container_config(labels: Value, user: Option<&str>) -> Value {
    let mut c = json!({
        "Env": [ENV_PATH],
        "Cmd": ["sh"],
        "WorkingDir": "/",
        "Labels": labels,
    });
    if let Some(user) = user {
        c["User"] = json!(user);
    }
    c
}

const BUSYBOX_HISTORY: &[&str] = &[
    "ADD busybox-static /bin (crust-testenv base)",
    "ADD etc/removed-file data/ (crust-testenv)",
    "RUN rm /etc/removed-file && rm -r /data/dir/* && echo new > /data/dir/new.txt",
];

fn build_standard() -> Result<Standard> {
    let tars = [base_tar()?, additions_tar()?, whiteouts_tar()?];
    let layers = |flavor: Flavor, c: Compression| -> Result<Vec<Layer>> {
        tars.iter().map(|t| Layer::from_tar(t, flavor, c)).collect()
    };
    let busybox_labels = json!({ "org.crust.test.image": "busybox", "org.crust.test.layers": "3" });

    let docker_layers = layers(Flavor::Docker, Compression::Gzip)?;
    // The OCI gzip layers are the very same bytes with another media type.
    let oci_layers: Vec<Layer> = docker_layers
        .iter()
        .map(|l| Layer {
            blob: Blob::new(
                Flavor::Oci.layer_type(Compression::Gzip),
                l.blob.data.clone(),
            ),
            diff_id: l.diff_id.clone(),
        })
        .collect();
    let base_oci = oci_layers[0].clone();

    let busybox = BuiltImage::new(
        Flavor::Docker,
        Platform::AMD64,
        container_config(busybox_labels.clone(), None),
        docker_layers,
        BUSYBOX_HISTORY,
    )?;
    let busybox_oci = BuiltImage::new(
        Flavor::Oci,
        Platform::AMD64,
        container_config(busybox_labels.clone(), None),
        oci_layers,
        BUSYBOX_HISTORY,
    )?;

    let arch_image = |p: Platform| -> Result<BuiltImage> {
        BuiltImage::new(
            Flavor::Oci,
            p,
            container_config(
                json!({ "org.crust.test.image": "multiarch", "arch": p.architecture }),
                None,
            ),
            vec![
                base_oci.clone(),
                Layer::from_tar(&arch_tar(p.architecture)?, Flavor::Oci, Compression::Gzip)?,
            ],
            &[BUSYBOX_HISTORY[0], "ADD arch.txt /"],
        )
    };
    let amd64 = arch_image(Platform::AMD64)?;
    let arm64 = arch_image(Platform::ARM64)?;
    let index = index(&[(&amd64, Platform::AMD64), (&arm64, Platform::ARM64)])?;

    let zstd = BuiltImage::new(
        Flavor::Oci,
        Platform::AMD64,
        container_config(json!({ "org.crust.test.image": "zstd" }), None),
        layers(Flavor::Oci, Compression::Zstd)?,
        BUSYBOX_HISTORY,
    )?;
    let plain = BuiltImage::new(
        Flavor::Oci,
        Platform::AMD64,
        container_config(json!({ "org.crust.test.image": "plain" }), None),
        layers(Flavor::Oci, Compression::None)?,
        BUSYBOX_HISTORY,
    )?;
    let nonroot = BuiltImage::new(
        Flavor::Oci,
        Platform::AMD64,
        container_config(
            json!({ "org.crust.test.image": "nonroot" }),
            Some("crustuser"),
        ),
        vec![
            base_oci,
            Layer::from_tar(&nonroot_tar()?, Flavor::Oci, Compression::Gzip)?,
        ],
        &[BUSYBOX_HISTORY[0], "RUN adduser -u 1234 crustuser"],
    )?;
    Ok(Standard {
        busybox,
        busybox_oci,
        amd64,
        arm64,
        index,
        zstd,
        plain,
        nonroot,
    })
}

fn creds_for<'a>(
    reg: &'a Registry,
    user_pass: Option<(&'a str, &'a str)>,
) -> Option<(&'a str, &'a str)> {
    user_pass.or_else(|| reg.credentials())
}

/// Pushes the standard images. Credentials: `user_pass`, else the registry's own.
pub async fn push_standard_images(
    reg: &Registry,
    user_pass: Option<(&str, &str)>,
) -> Result<StandardImages> {
    push_standard_images_to(&reg.host(), creds_for(reg, user_pass)).await
}

/// [`push_standard_images`] into any registry at `host` (`127.0.0.1:PORT`).
pub async fn push_standard_images_to(
    host: &str,
    user_pass: Option<(&str, &str)>,
) -> Result<StandardImages> {
    let s = standard().await?;
    let client = Client::new(host, user_pass)?;
    let c = &client;
    let simple = |name: &'static str, built: &BuiltImage| {
        let built = built.clone();
        async move {
            let repo = format!("crust/{name}");
            c.push_image(&repo, "latest", &built)
                .await
                .with_context(|| format!("push {repo}:latest"))?;
            Ok::<_, anyhow::Error>(Pushed::new(
                format!("{host}/{repo}:latest"),
                &built.manifest.digest,
                &built,
            ))
        }
    };
    let multiarch = async {
        let repo = "crust/multiarch";
        for child in [&s.amd64, &s.arm64] {
            c.push_image(repo, &child.manifest.digest, child)
                .await
                .with_context(|| format!("push {repo}@{}", child.manifest.digest))?;
        }
        c.push_manifest(repo, "latest", &s.index)
            .await
            .context("push crust/multiarch:latest")?;
        let child = |img: &BuiltImage| {
            Pushed::new(
                format!("{host}/{repo}@{}", img.manifest.digest),
                &img.manifest.digest,
                img,
            )
        };
        Ok::<_, anyhow::Error>((
            Pushed::new(format!("{host}/{repo}:latest"), &s.index.digest, &s.amd64),
            child(&s.amd64),
            child(&s.arm64),
        ))
    };
    let (busybox, busybox_oci, (multiarch, multiarch_amd64, multiarch_arm64), zstd, plain, nonroot) =
        tokio::try_join!(
            simple("busybox", &s.busybox),
            simple("busybox-oci", &s.busybox_oci),
            multiarch,
            simple("zstd", &s.zstd),
            simple("plain", &s.plain),
            simple("nonroot", &s.nonroot),
        )?;
    Ok(StandardImages {
        busybox,
        busybox_oci,
        multiarch,
        multiarch_amd64,
        multiarch_arm64,
        zstd,
        plain,
        nonroot,
    })
}

/// The test images' container config, labelled with `name`, with `patch`'s keys set (null
/// removes a key).
fn patched_config(name: &str, patch: &Value) -> Value {
    let mut c = container_config(json!({ "org.crust.test.image": name }), None);
    if let (Some(target), Some(patch)) = (c.as_object_mut(), patch.as_object()) {
        for (k, v) in patch {
            if v.is_null() {
                target.remove(k);
            } else {
                target.insert(k.clone(), v.clone());
            }
        }
    }
    c
}

/// The busybox image's layers under a config whose container part is patched with `config`
/// (keys as in an image config's `config`: `Entrypoint`, `Cmd`, `Env`, `WorkingDir`, `User`,
/// `StopSignal`…; null removes a key), pushed as `name:latest`. For tests of how a runtime
/// applies an image's config.
pub async fn push_configured_image(reg: &Registry, name: &str, config: Value) -> Result<Pushed> {
    let s = standard().await?;
    let c = patched_config(name, &config);
    let img = BuiltImage::new(
        Flavor::Oci,
        Platform::AMD64,
        c,
        s.busybox_oci.layers.clone(),
        BUSYBOX_HISTORY,
    )?;
    push_single(&reg.host(), name, &img, reg.credentials()).await
}

/// An entry of the layer [`push_image_with_layer`] adds on top of busybox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerEntry {
    /// A directory (0755, root).
    Dir(String),
    /// A regular file (0644, root).
    File(String, Vec<u8>),
    /// A symlink at the first path with the second as its target, written as given (absolute
    /// or with `..`: for images whose links aim out of their rootfs).
    Symlink(String, String),
}

/// The busybox image with one more layer of `entries` on top, its container config patched
/// with `config` as in [`push_configured_image`] (an image config's `Volumes` too), pushed as
/// `name:latest`. For hostile images: links out of the rootfs, a crafted /etc/group.
pub async fn push_image_with_layer(
    reg: &Registry,
    name: &str,
    config: Value,
    entries: &[LayerEntry],
) -> Result<Pushed> {
    let s = standard().await?;
    let mut t = TarBuilder::new();
    for e in entries {
        match e {
            LayerEntry::Dir(path) => t.dir(path, 0o755)?,
            LayerEntry::File(path, data) => t.file(path, 0o644, data)?,
            LayerEntry::Symlink(path, target) => t.raw(RawEntry {
                link: Some(target.as_bytes()),
                mode: 0o777,
                ..RawEntry::new(EntryType::Symlink, path.as_bytes())
            })?,
        }
    }
    let layer = Layer::from_tar(&t.into_tar()?, Flavor::Oci, Compression::Gzip)?;
    let c = patched_config(name, &config);
    let mut layers = s.busybox_oci.layers.clone();
    layers.push(layer);
    let mut history = BUSYBOX_HISTORY.to_vec();
    history.push("ADD test entries");
    let img = BuiltImage::new(Flavor::Oci, Platform::AMD64, c, layers, &history)?;
    push_single(&reg.host(), name, &img, reg.credentials()).await
}

/// One OCI gzip layer whose entries all aim at `target_dir` (an absolute host path): `..`
/// escapes, absolute paths, a symlink followed by a file through it, hard links out of the
/// rootfs, device nodes and a set-uid file.
pub async fn push_hostile_image(
    reg: &Registry,
    name: &str,
    target_dir: &std::path::Path,
) -> Result<Pushed> {
    push_hostile_image_to(&reg.host(), name, target_dir, reg.credentials()).await
}

/// [`push_hostile_image`] into any registry at `host`.
pub async fn push_hostile_image_to(
    host: &str,
    name: &str,
    target_dir: &std::path::Path,
    user_pass: Option<(&str, &str)>,
) -> Result<Pushed> {
    let target = target_dir
        .to_string_lossy()
        .trim_end_matches('/')
        .to_string();
    if !target.starts_with('/') {
        bail!("hostile image target {target:?} must be an absolute path");
    }
    let tar = hostile_tar(&target)?;
    let layer = Layer::from_tar(&tar, Flavor::Oci, Compression::Gzip)?;
    let img = BuiltImage::new(
        Flavor::Oci,
        Platform::AMD64,
        container_config(json!({ "org.crust.test.image": "hostile" }), None),
        vec![layer],
        &["ADD hostile entries aiming at the host"],
    )?;
    push_single(host, name, &img, user_pass).await
}

/// The entries of the hostile layer; `target` is absolute without a trailing slash.
pub(crate) fn hostile_tar(target: &str) -> Result<Vec<u8>> {
    let relative = target.trim_start_matches('/');
    let dotdot = format!("../../../../../../{relative}/dotdot");
    let absolute = format!("{target}/absolute");
    let hl_target = format!("../../../../{relative}/victim");
    let hl_abs_target = format!("{target}/victim");
    let mut t = TarBuilder::new();
    t.file("ok.txt", 0o644, b"the only harmless entry\n")?;
    t.raw(RawEntry {
        data: b"escaped via ..\n",
        ..RawEntry::new(EntryType::Regular, dotdot.as_bytes())
    })?;
    t.raw(RawEntry {
        data: b"escaped via an absolute path\n",
        ..RawEntry::new(EntryType::Regular, absolute.as_bytes())
    })?;
    t.raw(RawEntry {
        link: Some(target.as_bytes()),
        mode: 0o777,
        ..RawEntry::new(EntryType::Symlink, b"evil-link")
    })?;
    t.raw(RawEntry {
        data: b"escaped via a symlink\n",
        ..RawEntry::new(EntryType::Regular, b"evil-link/via-symlink")
    })?;
    t.raw(RawEntry {
        link: Some(hl_target.as_bytes()),
        ..RawEntry::new(EntryType::Link, b"hl")
    })?;
    t.raw(RawEntry {
        link: Some(hl_abs_target.as_bytes()),
        ..RawEntry::new(EntryType::Link, b"hl-abs")
    })?;
    t.raw(RawEntry {
        mode: 0o666,
        device: Some((1, 3)),
        ..RawEntry::new(EntryType::Char, b"dev-null")
    })?;
    t.raw(RawEntry {
        mode: 0o660,
        device: Some((8, 0)),
        ..RawEntry::new(EntryType::Block, b"dev-block")
    })?;
    t.raw(RawEntry {
        mode: 0o4755,
        data: b"#!/bin/sh\nid\n",
        ..RawEntry::new(EntryType::Regular, b"suid")
    })?;
    t.into_tar()
}

/// `layers` layers of `bytes_per_layer` incompressible bytes each (seeded by `name`, so the
/// same name gives the same image), gzip level 1, OCI.
pub async fn push_big_image(
    reg: &Registry,
    name: &str,
    layers: usize,
    bytes_per_layer: usize,
) -> Result<Pushed> {
    push_big_image_to(
        &reg.host(),
        name,
        layers,
        bytes_per_layer,
        reg.credentials(),
    )
    .await
}

/// [`push_big_image`] into any registry at `host`. Layers are built on a blocking thread one
/// ahead of the upload, so only about two of them are in memory at a time.
pub async fn push_big_image_to(
    host: &str,
    name: &str,
    layers: usize,
    bytes_per_layer: usize,
    user_pass: Option<(&str, &str)>,
) -> Result<Pushed> {
    if layers == 0 {
        bail!("a big image needs at least one layer");
    }
    let (repo, tag) = split_name(name);
    let client = Client::new(host, user_pass)?;
    let seed = u64::from_le_bytes(
        Sha256::digest(name.as_bytes())[..8]
            .try_into()
            .expect("8 bytes"),
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Layer>>(1);
    let producer = tokio::task::spawn_blocking(move || {
        for i in 0..layers {
            let layer = big_layer(seed, i, bytes_per_layer);
            let failed = layer.is_err();
            if tx.blocking_send(layer).is_err() || failed {
                break;
            }
        }
    });
    let mut pushed_layers = Vec::with_capacity(layers);
    while let Some(layer) = rx.recv().await {
        let mut layer = layer?;
        client
            .push_blob(repo, &layer.blob)
            .await
            .with_context(|| format!("push layer {} of {repo}", pushed_layers.len()))?;
        // keep the digest and size, not the bytes
        layer.blob.data = bytes::Bytes::new();
        pushed_layers.push(layer);
    }
    producer.await.context("big layer builder")?;
    if pushed_layers.len() != layers {
        bail!("built {} of {layers} layers", pushed_layers.len());
    }
    let history: Vec<String> = (0..layers).map(|i| format!("ADD big layer {i}")).collect();
    let history: Vec<&str> = history.iter().map(String::as_str).collect();
    let img = BuiltImage::new(
        Flavor::Oci,
        Platform::AMD64,
        container_config(json!({ "org.crust.test.image": "big" }), None),
        pushed_layers,
        &history,
    )?;
    client.push_blob(repo, &img.config).await?;
    client
        .push_manifest(repo, tag, &img.manifest)
        .await
        .with_context(|| format!("push {repo}:{tag}"))?;
    Ok(Pushed::new(
        format!("{host}/{repo}:{tag}"),
        &img.manifest.digest,
        &img,
    ))
}

/// A pause image for runtimes that run one per pod (containerd's `sandbox_image`): the busybox
/// base layer, running `sleep infinity` as its long-lived process.
pub async fn push_pause_image_to(
    host: &str,
    name: &str,
    user_pass: Option<(&str, &str)>,
) -> Result<Pushed> {
    let img = tokio::task::spawn_blocking(|| {
        let base = Layer::from_tar(&base_tar()?, Flavor::Oci, Compression::Gzip)?;
        let mut config = container_config(json!({ "org.crust.test.image": "pause" }), None);
        config["Cmd"] = json!(["sleep", "infinity"]);
        BuiltImage::new(
            Flavor::Oci,
            Platform::AMD64,
            config,
            vec![base],
            &[BUSYBOX_HISTORY[0]],
        )
    })
    .await
    .context("build pause image")??;
    push_single(host, name, &img, user_pass).await
}

/// Files per big layer.
const BIG_FILES: usize = 4;

fn big_layer(seed: u64, index: usize, bytes: usize) -> Result<Layer> {
    let enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes + bytes / 64 + 1024),
        flate2::Compression::new(1),
    );
    let mut t = TarBuilder::on(HashWriter::new(enc));
    t.dir("big", 0o755)?;
    let dir = format!("big/layer-{index}");
    t.dir(&dir, 0o755)?;
    let files = if bytes < BIG_FILES { 1 } else { BIG_FILES };
    let per_file = bytes / files;
    for f in 0..files {
        let size = if f + 1 == files {
            bytes - per_file * (files - 1)
        } else {
            per_file
        };
        let file_seed =
            seed ^ ((index as u64) << 32 | f as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        t.file_from(
            &format!("{dir}/file-{f}.bin"),
            0o644,
            0,
            0,
            size as u64,
            NoiseReader::new(file_seed, size as u64),
        )?;
    }
    let (enc, diff_id) = t.finish()?.finish();
    let data = enc.finish().context("gzip big layer")?;
    Ok(Layer {
        blob: Blob::new(Flavor::Oci.layer_type(Compression::GzipFast), data),
        diff_id,
    })
}

async fn push_single(
    host: &str,
    name: &str,
    img: &BuiltImage,
    user_pass: Option<(&str, &str)>,
) -> Result<Pushed> {
    let (repo, tag) = split_name(name);
    let client = Client::new(host, user_pass)?;
    client
        .push_image(repo, tag, img)
        .await
        .with_context(|| format!("push {repo}:{tag}"))?;
    Ok(Pushed::new(
        format!("{host}/{repo}:{tag}"),
        &img.manifest.digest,
        img,
    ))
}

/// An image with no layers whose config blob is `config` as given (any bytes, however large
/// or absurd), pushed as `name`. The manifest's config descriptor declares `declared_size`
/// bytes when given (a lie about the size: the registry does not check it), else the true
/// size. For tests of the limits a puller puts on image configs.
pub async fn push_raw_config_image(
    reg: &Registry,
    name: &str,
    config: Vec<u8>,
    declared_size: Option<u64>,
) -> Result<Pushed> {
    let config = Blob::new(Flavor::Oci.config_type(), config);
    let mut descriptor = config.descriptor();
    if let Some(size) = declared_size {
        descriptor["size"] = json!(size);
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": Flavor::Oci.manifest_type(),
        "config": descriptor,
        "layers": [],
    });
    let manifest = Blob::new(Flavor::Oci.manifest_type(), serde_json::to_vec(&manifest)?);
    let img = BuiltImage {
        manifest,
        config,
        layers: Vec::new(),
    };
    push_single(&reg.host(), name, &img, reg.credentials()).await
}

/// An image of one gzip layer holding `zeros.bin`, `bytes` zero bytes: a few KiB to
/// download that expand to `bytes` on disk (a "zip bomb" layer), pushed as `name`.
pub async fn push_zeros_image(reg: &Registry, name: &str, bytes: u64) -> Result<Pushed> {
    let img = tokio::task::spawn_blocking(move || {
        let enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let mut t = TarBuilder::on(HashWriter::new(enc));
        t.file_from(
            "zeros.bin",
            0o644,
            0,
            0,
            bytes,
            std::io::Read::take(std::io::repeat(0), bytes),
        )?;
        let (enc, diff_id) = t.finish()?.finish();
        let data = enc.finish().context("gzip zeros layer")?;
        let layer = Layer {
            blob: Blob::new(Flavor::Oci.layer_type(Compression::Gzip), data),
            diff_id,
        };
        BuiltImage::new(
            Flavor::Oci,
            Platform::AMD64,
            container_config(json!({ "org.crust.test.image": "zeros" }), None),
            vec![layer],
            &["ADD zeros.bin"],
        )
    })
    .await
    .context("build zeros image")??;
    push_single(&reg.host(), name, &img, reg.credentials()).await
}
