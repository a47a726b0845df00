//! The image store: pulls, lookups, removal and garbage collection over the directory layout
//!
//! ```text
//! <root>/content/sha256/<hex>        manifests, indexes and configs, as fetched
//! <root>/layers/sha256/<hex>/        one unpacked layer per diff ID (overlayfs whiteouts)
//! <root>/layers/.tmp-*               layers being unpacked; removed at start-up
//! ```
//! and the image and layer records in the shared [`crust_store::Store`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crust_store::{ImageRecord, Store};
use sha2::{Digest, Sha256};
use tokio::sync::{RwLock, Semaphore};

use crate::error::ImageError;
use crate::hosts::{hosts_for, RegistryHost};
use crate::inflight::Inflight;
use crate::reference::{looks_like_id, Reference};
use crate::registry::{error_chain, Credentials};

#[derive(Debug, Clone)]
pub struct ImageConfigOptions {
    /// `<root>` above: where content and layers live.
    pub root: PathBuf,
    /// The hosts.toml directory; `None` (or a missing directory) means registry defaults.
    pub registry_config_path: Option<PathBuf>,
    /// A transfer that receives nothing for this long is cancelled.
    pub progress_timeout: Duration,
    /// Layers downloaded at once, over all pulls.
    pub max_concurrent_downloads: usize,
}

pub struct ImageManager {
    pub(crate) opts: ImageConfigOptions,
    pub(crate) store: Arc<Store>,
    pub(crate) downloads: Arc<Semaphore>,
    pub(crate) pulls: Inflight<ImageRecord, ImageError>,
    pub(crate) layers: Inflight<(), ImageError>,
    /// Pulls hold it shared; garbage collection holds it alone, so it never deletes a layer
    /// that a pull has unpacked but not yet recorded in an image.
    pub(crate) gc_lock: Arc<RwLock<()>>,
    pub(crate) default_client: reqwest::Client,
}

/// Disk use of the image store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsUsage {
    pub bytes: u64,
    pub inodes: u64,
}

impl ImageManager {
    /// Opens the store at `opts.root`, creating its directories, and collects what an earlier
    /// run left half done.
    pub fn open(
        opts: ImageConfigOptions,
        store: Arc<Store>,
    ) -> Result<Arc<ImageManager>, ImageError> {
        for dir in [
            opts.root.join("content/sha256"),
            opts.root.join("layers/sha256"),
        ] {
            std::fs::create_dir_all(&dir).map_err(ImageError::io(&dir))?;
        }
        let default_client = http_client(false, &[]).map_err(|message| ImageError::BadContent {
            what: "registry client".into(),
            reason: message,
        })?;
        let manager = Arc::new(ImageManager {
            downloads: Arc::new(Semaphore::new(opts.max_concurrent_downloads.max(1))),
            opts,
            store,
            pulls: Inflight::default(),
            layers: Inflight::default(),
            gc_lock: Arc::new(RwLock::new(())),
            default_client,
        });
        let removed = manager.collect_garbage(true)?;
        if removed > 0 {
            tracing::info!(removed, "image store: removed leftovers of an earlier run");
        }
        Ok(manager)
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub(crate) fn content_path(&self, digest: &str) -> PathBuf {
        self.opts
            .root
            .join("content/sha256")
            .join(digest.strip_prefix("sha256:").unwrap_or(digest))
    }

    pub(crate) fn layer_path(&self, diff_id: &str) -> PathBuf {
        self.opts
            .root
            .join("layers/sha256")
            .join(diff_id.strip_prefix("sha256:").unwrap_or(diff_id))
    }

    pub(crate) fn layers_dir(&self) -> PathBuf {
        self.opts.root.join("layers")
    }

    /// The unpacked layer directories of an image, lowest first (for overlay lowerdirs).
    pub fn layer_dirs(&self, image: &ImageRecord) -> Vec<PathBuf> {
        image
            .layers
            .iter()
            .map(|l| self.layer_path(&l.diff_id))
            .collect()
    }

    /// The endpoints for a registry domain, each with the HTTP client its TLS settings need.
    pub(crate) fn endpoints(
        &self,
        domain: &str,
    ) -> Result<Vec<(RegistryHost, reqwest::Client)>, ImageError> {
        let hosts = hosts_for(self.opts.registry_config_path.as_deref(), domain)?;
        hosts
            .into_iter()
            .map(|h| {
                let client = if h.skip_verify || !h.ca.is_empty() {
                    http_client(h.skip_verify, &h.ca).map_err(|message| ImageError::BadContent {
                        what: format!("registry host {}", h.origin),
                        reason: message,
                    })?
                } else {
                    self.default_client.clone()
                };
                Ok((h, client))
            })
            .collect()
    }

    pub fn list(&self) -> Result<Vec<ImageRecord>, ImageError> {
        let mut images = self.store.list_images()?;
        images.sort_by(|a, b| a.repo_tags.cmp(&b.repo_tags).then(a.id.cmp(&b.id)));
        Ok(images)
    }

    /// Finds an image by ID (full, bare hex, or a unique hex prefix), by tag or by digest
    /// reference, as containerd's CRI resolves ImageSpec.image.
    pub fn resolve(&self, name: &str) -> Result<Option<ImageRecord>, ImageError> {
        let name = name.trim();
        if name.is_empty() {
            return Ok(None);
        }
        let images = self.store.list_images()?;
        if looks_like_id(name) {
            let id = if name.starts_with("sha256:") {
                name.to_string()
            } else {
                format!("sha256:{name}")
            };
            return Ok(images.into_iter().find(|i| i.id == id));
        }
        if let Ok(r) = Reference::parse(name) {
            let wanted = match (&r.tag, &r.digest) {
                (_, Some(d)) => r.with_digest(d),
                (Some(_), None) => r.tagged().unwrap_or_default(),
                (None, None) => String::new(),
            };
            if let Some(found) = images
                .iter()
                .find(|i| i.repo_tags.contains(&wanted) || i.repo_digests.contains(&wanted))
            {
                return Ok(Some(found.clone()));
            }
        }
        // A truncated ID, as `crictl images` prints them.
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 3 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut matches = images.into_iter().filter(|i| {
                i.id.strip_prefix("sha256:")
                    .unwrap_or(&i.id)
                    .starts_with(hex)
            });
            if let (Some(only), None) = (matches.next(), matches.next()) {
                return Ok(Some(only));
            }
        }
        Ok(None)
    }

    /// The image's config document as fetched, for verbose status.
    pub fn config_json(&self, image: &ImageRecord) -> Option<serde_json::Value> {
        let bytes = std::fs::read(self.content_path(&image.id)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Removes the image with every name it has. Unknown images are not an error (the call is
    /// idempotent); returns whether one was removed.
    pub async fn remove(self: &Arc<Self>, name: &str) -> Result<Option<ImageRecord>, ImageError> {
        let Some(image) = self.resolve(name)? else {
            return Ok(None);
        };
        self.store.delete_image(&image.id)?;
        self.collect_soon().await?;
        Ok(Some(image))
    }

    /// Collects garbage now if no pull is running, else once the running pulls are done.
    pub(crate) async fn collect_soon(self: &Arc<Self>) -> Result<(), ImageError> {
        match self.gc_lock.clone().try_write_owned() {
            Ok(guard) => {
                let me = self.clone();
                tokio::task::spawn_blocking(move || {
                    let _guard = guard;
                    me.collect_garbage(false)
                })
                .await
                .expect("gc task panicked")?;
            }
            Err(_) => {
                let me = self.clone();
                tokio::spawn(async move {
                    let guard = me.gc_lock.clone().write_owned().await;
                    let result = tokio::task::spawn_blocking(move || {
                        let _guard = guard;
                        me.collect_garbage(false)
                    })
                    .await;
                    if let Ok(Err(e)) = result {
                        tracing::warn!(error = %e, "image garbage collection failed");
                    }
                });
            }
        }
        Ok(())
    }

    /// Deletes layers and blobs that no image references; at start-up also temporary
    /// directories, layer directories without a record and records without a directory.
    /// Callers hold the GC lock exclusively (or run before serving). Returns the count removed.
    pub(crate) fn collect_garbage(&self, startup: bool) -> Result<usize, ImageError> {
        let mut removed = 0;
        let layers_dir = self.layers_dir();
        if startup {
            for entry in read_dir(&layers_dir)? {
                if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                    remove_all(&entry.path())?;
                    removed += 1;
                }
            }
            // Records whose directory is gone make their images unusable: drop both.
            for layer in self.store.list_layers()? {
                if !self.layer_path(&layer.diff_id).is_dir() {
                    self.store.delete_layer(&layer.diff_id)?;
                    removed += 1;
                }
            }
            let known: HashSet<String> = self
                .store
                .list_layers()?
                .into_iter()
                .map(|l| l.diff_id)
                .collect();
            for image in self.store.list_images()? {
                if image.layers.iter().any(|l| !known.contains(&l.diff_id)) {
                    tracing::warn!(image = %image.id, "image lost a layer directory; removing its record");
                    self.store.delete_image(&image.id)?;
                    removed += 1;
                }
            }
        }
        let images = self.store.list_images()?;
        let containers = self.store.list_containers()?;
        // Layers of existing containers stay, even when their image was removed.
        let wanted_layers: HashSet<&str> = images
            .iter()
            .flat_map(|i| i.layers.iter().map(|l| l.diff_id.as_str()))
            .chain(
                containers
                    .iter()
                    .flat_map(|c| c.layers.iter().map(String::as_str)),
            )
            .collect();
        for layer in self.store.list_layers()? {
            if !wanted_layers.contains(layer.diff_id.as_str()) {
                // Record first: a crash after this leaves a directory without a record, which
                // the next start-up removes.
                self.store.delete_layer(&layer.diff_id)?;
                self.remove_layer_dir(&layer.diff_id)?;
                removed += 1;
            }
        }
        let recorded: HashSet<String> = self
            .store
            .list_layers()?
            .into_iter()
            .map(|l| l.diff_id)
            .collect();
        for entry in read_dir(&layers_dir.join("sha256"))? {
            let diff_id = format!("sha256:{}", entry.file_name().to_string_lossy());
            if !recorded.contains(&diff_id) {
                self.remove_layer_dir(&diff_id)?;
                removed += 1;
            }
        }
        let mut wanted_blobs: HashSet<String> = HashSet::new();
        for image in &images {
            wanted_blobs.insert(image.id.clone());
            wanted_blobs.insert(image.manifest_digest.clone());
            for d in &image.repo_digests {
                if let Some((_, digest)) = d.split_once('@') {
                    wanted_blobs.insert(digest.to_string());
                }
            }
        }
        for entry in read_dir(&self.opts.root.join("content/sha256"))? {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with(".tmp-") && !startup {
                continue;
            }
            if !wanted_blobs.contains(&format!("sha256:{name}")) {
                std::fs::remove_file(entry.path()).map_err(ImageError::io(entry.path()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Renames the directory out of the way first, so a crash never leaves a half-deleted
    /// layer under its real name.
    fn remove_layer_dir(&self, diff_id: &str) -> Result<(), ImageError> {
        let path = self.layer_path(diff_id);
        if !path.exists() {
            return Ok(());
        }
        let doomed = self
            .layers_dir()
            .join(format!(".tmp-del-{}", random_suffix()));
        std::fs::rename(&path, &doomed).map_err(ImageError::io(&path))?;
        remove_all(&doomed)
    }

    /// Holds off garbage collection while the guard lives: a container being created takes it
    /// until its record (naming the layers it mounts) is stored.
    pub async fn hold_layers(&self) -> tokio::sync::OwnedRwLockReadGuard<()> {
        self.gc_lock.clone().read_owned().await
    }

    /// Bytes and inodes the image store holds: unpacked layers (as recorded when they were
    /// unpacked) plus the stored manifests and configs.
    pub fn usage(&self) -> Result<FsUsage, ImageError> {
        let mut usage = FsUsage::default();
        for layer in self.store.list_layers()? {
            usage.bytes += layer.unpacked_bytes;
            usage.inodes += layer.inodes;
        }
        for entry in read_dir(&self.opts.root.join("content/sha256"))? {
            if let Ok(meta) = entry.metadata() {
                usage.bytes += meta.len();
                usage.inodes += 1;
            }
        }
        Ok(usage)
    }

    /// The root under which the image store keeps its files (for ImageFsInfo's mountpoint).
    pub fn root(&self) -> &Path {
        &self.opts.root
    }

    /// Stores a small blob atomically under its digest.
    pub(crate) fn write_blob(&self, digest: &str, bytes: &[u8]) -> Result<(), ImageError> {
        let path = self.content_path(digest);
        if path.exists() {
            return Ok(());
        }
        let tmp = path.with_file_name(format!(".tmp-{}", random_suffix()));
        std::fs::write(&tmp, bytes).map_err(ImageError::io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(ImageError::io(&path))
    }

    /// Number of pulls under way (coalesced pulls count once).
    pub fn pulls_in_flight(&self) -> usize {
        self.pulls.len()
    }

    /// Key for coalescing pulls: the same reference with the same credentials.
    pub(crate) fn pull_key(reference: &Reference, creds: Option<&Credentials>) -> String {
        let mut h = Sha256::new();
        if let Some(c) = creds {
            for part in [
                &c.username,
                &c.password,
                &c.auth,
                &c.server_address,
                &c.identity_token,
                &c.registry_token,
            ] {
                h.update(part.as_bytes());
                h.update([0]);
            }
        }
        format!("{reference}#{}", hex::encode(&h.finalize()[..8]))
    }
}

pub(crate) fn http_client(skip_verify: bool, ca: &[PathBuf]) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .user_agent(concat!("crust/", env!("CARGO_PKG_VERSION")))
        .danger_accept_invalid_certs(skip_verify);
    for path in ca {
        let pem = std::fs::read(path).map_err(|e| format!("reading CA {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("parsing CA {}: {}", path.display(), error_chain(&e)))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| error_chain(&e))
}

pub(crate) fn random_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>, ImageError> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .collect::<Result<Vec<_>, _>>()
            .map_err(ImageError::io(dir)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(ImageError::io(dir)(e)),
    }
}

pub(crate) fn remove_all(path: &Path) -> Result<(), ImageError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ImageError::io(path)(e)),
    }
}
