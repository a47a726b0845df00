//! PullImage: resolve the reference, pick the platform manifest, fetch the config, then
//! download and unpack every missing layer in parallel (each layer once, however many pulls
//! want it), verifying every digest while the bytes stream.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use crust_store::{ImageLayer, ImageRecord, LayerRecord};
use futures::{Stream, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::error::ImageError;
use crate::manager::{random_suffix, remove_all, ImageManager};
use crate::manifest::{self, Descriptor, ImageConfig, ManifestDoc};
use crate::reference::Reference;
use crate::registry::{error_chain, Credentials, RegistryClient};
use crate::unpack::{unpack_layer, UnpackStats};

impl ImageManager {
    /// Pulls `reference` and returns the stored image. Identical concurrent pulls (same
    /// reference and credentials) share one transfer.
    pub async fn pull(
        self: &Arc<Self>,
        reference: &str,
        creds: Option<Credentials>,
    ) -> Result<ImageRecord, ImageError> {
        let reference = Reference::parse(reference)?;
        let key = ImageManager::pull_key(&reference, creds.as_ref());
        let me = self.clone();
        let (result, joined) = self
            .pulls
            .run(
                &key,
                move || async move { me.pull_now(reference, creds).await },
            )
            .await;
        if joined {
            tracing::debug!(key, "joined a pull already under way");
        }
        result.map_err(ImageError::Shared)
    }

    async fn pull_now(
        self: Arc<Self>,
        reference: Reference,
        creds: Option<Credentials>,
    ) -> Result<ImageRecord, ImageError> {
        let gc = self.gc_lock.clone().read_owned().await;
        let result = self.clone().pull_locked(reference, creds).await;
        drop(gc);
        match result {
            Ok((image, orphaned)) => {
                if orphaned {
                    self.collect_soon().await?;
                }
                Ok(image)
            }
            Err(e) => {
                // A failed pull keeps nothing: layers it finished belong to no image.
                if let Err(gc_err) = self.collect_soon().await {
                    tracing::warn!(error = %gc_err, "cleaning up after a failed pull");
                }
                Err(e)
            }
        }
    }

    /// The pull proper, under the shared GC lock. Returns the image and whether an older image
    /// lost its last name to it.
    async fn pull_locked(
        self: Arc<Self>,
        reference: Reference,
        creds: Option<Credentials>,
    ) -> Result<(ImageRecord, bool), ImageError> {
        let started = std::time::Instant::now();
        let endpoints = self.endpoints(&reference.domain)?;
        let client = Arc::new(RegistryClient::new(
            reference.clone(),
            endpoints,
            creds,
            self.opts.progress_timeout,
        ));

        let (top_digest, top_bytes, top_doc, top_kind) = self
            .fetch_manifest(
                &client,
                &reference,
                reference.object(),
                reference.digest.as_deref(),
            )
            .await?;
        let mut blobs = vec![(top_digest.clone(), top_bytes)];
        let (manifest_digest, manifest) = if manifest::is_index(&top_kind) {
            let want = manifest::host_platform();
            let entries = top_doc.manifests.clone().unwrap_or_default();
            let chosen = manifest::select_platform(&entries, &want).ok_or_else(|| {
                ImageError::NoPlatform {
                    reference: reference.to_string(),
                    platform: format!("{}/{}", want.os, want.architecture),
                    available: entries
                        .iter()
                        .filter_map(|e| e.platform.as_ref())
                        .map(|p| {
                            format!(
                                "{}/{}{}",
                                p.os,
                                p.architecture,
                                p.variant
                                    .as_ref()
                                    .map(|v| format!("/{v}"))
                                    .unwrap_or_default()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            })?;
            let (digest, bytes, doc, kind) = self
                .fetch_manifest(&client, &reference, &chosen.digest, Some(&chosen.digest))
                .await?;
            if manifest::is_index(&kind) {
                return Err(bad(&reference, "nested image index is not supported"));
            }
            blobs.push((digest.clone(), bytes));
            (digest, doc)
        } else {
            (top_digest.clone(), top_doc)
        };
        let kind = manifest.kind("");
        if kind == manifest::DOCKER_SCHEMA1 {
            return Err(bad(&reference, "Docker schema 1 manifests are not supported; push the image again with a current client"));
        }
        let config_desc = manifest
            .config
            .clone()
            .ok_or_else(|| bad(&reference, "manifest has no config"))?;
        if config_desc.size > manifest::MAX_CONFIG_BYTES {
            return Err(bad(
                &reference,
                &format!(
                    "image config of {} bytes exceeds the {} byte limit",
                    config_desc.size,
                    manifest::MAX_CONFIG_BYTES
                ),
            ));
        }
        let config_bytes = self
            .fetch_small_blob(
                &client,
                &config_desc.digest,
                manifest::MAX_CONFIG_BYTES,
                &format!("config of {reference}"),
            )
            .await?;
        let config: ImageConfig = serde_json::from_slice(&config_bytes)
            .map_err(|e| bad(&reference, &format!("image config: {e}")))?;
        let env_entries = config.config.as_ref().map_or(0, |c| c.env_entries);
        if env_entries > manifest::MAX_CONFIG_ENV {
            return Err(bad(
                &reference,
                &format!(
                    "image config sets {env_entries} environment variables, more than the limit of {}",
                    manifest::MAX_CONFIG_ENV
                ),
            ));
        }
        let diff_ids = config
            .rootfs
            .as_ref()
            .map(|r| r.diff_ids.clone())
            .unwrap_or_default();
        if diff_ids.len() != manifest.layers.len() {
            return Err(bad(
                &reference,
                &format!(
                    "manifest lists {} layers but the config lists {} diff IDs",
                    manifest.layers.len(),
                    diff_ids.len()
                ),
            ));
        }
        for id in &diff_ids {
            crate::reference::validate_digest(id)
                .map_err(|r| bad(&reference, &format!("config diff ID {id:?}: {r}")))?;
        }

        // Every missing layer at once; the download semaphore bounds the transfers.
        let mut tasks = Vec::new();
        for (desc, diff_id) in manifest.layers.iter().zip(&diff_ids) {
            if self.store.get_layer(diff_id)?.is_some() && self.layer_path(diff_id).is_dir() {
                continue;
            }
            let me = self.clone();
            let client = client.clone();
            let desc = desc.clone();
            let diff_id = diff_id.clone();
            let what = format!("layer {} of {reference}", desc.digest);
            tasks.push(async move {
                let me2 = me.clone();
                let (result, _) = me
                    .layers
                    .run(&diff_id.clone(), move || async move {
                        me2.fetch_layer(client, desc, diff_id, what).await
                    })
                    .await;
                result.map_err(ImageError::Shared)
            });
        }
        // Wait for every layer, even after one failed, so that nothing of this pull is still
        // writing when it reports.
        for result in futures::future::join_all(tasks).await {
            result?;
        }

        for (digest, bytes) in &blobs {
            self.write_blob(digest, bytes)?;
        }
        self.write_blob(&config_desc.digest, &config_bytes)?;

        let (uid, username) = manifest::image_user(&config);
        let mut record = ImageRecord {
            id: config_desc.digest.clone(),
            repo_tags: Vec::new(),
            repo_digests: vec![reference.with_digest(&top_digest)],
            size: config_desc.size + manifest.layers.iter().map(|l| l.size).sum::<u64>(),
            manifest_digest,
            layers: manifest
                .layers
                .iter()
                .zip(&diff_ids)
                .map(|(d, id)| ImageLayer {
                    diff_id: id.clone(),
                    digest: d.digest.clone(),
                    media_type: d.media_type.clone(),
                    size: d.size,
                })
                .collect(),
            uid,
            username,
            annotations: manifest.annotations.clone(),
            pinned: false,
            pulled_at: now_nanos(),
        };
        // A pull by digest names the image by digest only, as containerd does.
        if reference.digest.is_none() {
            if let Some(t) = reference.tagged() {
                record.repo_tags.push(t);
            }
        }
        let orphaned = self.store.put_image(&record)?;
        let stored = self.store.get_image(&record.id)?.unwrap_or(record);
        tracing::info!(
            image = %stored.id,
            reference = %reference,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "pulled image"
        );
        Ok((stored, !orphaned.is_empty()))
    }

    /// Fetches a manifest or index and checks its digest: against `expected` when pulling by
    /// digest, else against the registry's Docker-Content-Digest header when it sends one.
    async fn fetch_manifest(
        &self,
        client: &RegistryClient,
        reference: &Reference,
        object: &str,
        expected: Option<&str>,
    ) -> Result<(String, Vec<u8>, ManifestDoc, String), ImageError> {
        let fetched = client.fetch_manifest(object).await?;
        let what = format!("manifest {}", reference.repository());
        let content_type = header(&fetched.response, "content-type");
        let header_digest = header(&fetched.response, "docker-content-digest");
        let bytes = read_limited(
            fetched.response,
            manifest::MAX_MANIFEST_BYTES,
            &what,
            self.opts.progress_timeout,
        )
        .await?;
        let actual = sha256_digest(&bytes);
        let expected = expected
            .map(str::to_string)
            .or_else(|| header_digest.filter(|d| d.starts_with("sha256:")));
        if let Some(expected) = expected {
            if expected != actual {
                return Err(ImageError::DigestMismatch {
                    what,
                    expected,
                    actual,
                });
            }
        }
        let doc: ManifestDoc = serde_json::from_slice(&bytes)
            .map_err(|e| bad(reference, &format!("manifest: {e}")))?;
        let kind = doc.kind(&content_type.unwrap_or_default());
        manifest::check(&doc, &kind).map_err(|r| bad(reference, &format!("manifest: {r}")))?;
        Ok((actual, bytes, doc, kind))
    }

    async fn fetch_small_blob(
        &self,
        client: &RegistryClient,
        digest: &str,
        limit: u64,
        what: &str,
    ) -> Result<Vec<u8>, ImageError> {
        let fetched = client.fetch_blob(digest).await?;
        let bytes = read_limited(fetched.response, limit, what, self.opts.progress_timeout).await?;
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(ImageError::DigestMismatch {
                what: what.to_string(),
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Downloads one layer and unpacks it while it streams into a temporary directory; only
    /// when both the blob digest and the diff ID match is it renamed into place and recorded.
    async fn fetch_layer(
        self: Arc<Self>,
        client: Arc<RegistryClient>,
        desc: Descriptor,
        diff_id: String,
        what: String,
    ) -> Result<(), ImageError> {
        let _gc = self.gc_lock.clone().read_owned().await;
        if self.store.get_layer(&diff_id)?.is_some() && self.layer_path(&diff_id).is_dir() {
            return Ok(());
        }
        if !desc.digest.starts_with("sha256:") {
            return Err(ImageError::BadContent {
                what,
                reason: format!("unsupported digest {}", desc.digest),
            });
        }
        let _permit = self
            .downloads
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let started = std::time::Instant::now();
        let fetched = client.fetch_blob(&desc.digest).await?;
        let failure: Arc<Mutex<Option<ImageError>>> = Arc::default();
        let stream = watch_stream(
            fetched.response.bytes_stream(),
            self.opts.progress_timeout,
            what.clone(),
            failure.clone(),
        );
        let tmp = self.layers_dir().join(format!(".tmp-{}", random_suffix()));
        std::fs::create_dir(&tmp).map_err(ImageError::io(&tmp))?;
        let reader = SyncIoBridge::new(StreamReader::new(stream));
        let dest = tmp.clone();
        let unpacked = tokio::task::spawn_blocking(move || decompress_and_unpack(reader, &dest))
            .await
            .expect("unpack task panicked");
        // Which failure to report: a transfer that broke or stalled, then a blob that is not
        // what its digest says, then a tar that would not unpack, then a wrong diff ID.
        let transfer_failure = failure.lock().unwrap().take();
        let outcome = match (transfer_failure, unpacked.result) {
            (Some(e), _) => Err(e),
            (None, _) if unpacked.blob_digest != desc.digest => Err(ImageError::DigestMismatch {
                what: what.clone(),
                expected: desc.digest.clone(),
                actual: unpacked.blob_digest.clone(),
            }),
            (None, Err(UnpackFailure::Unpack(source))) => Err(ImageError::Unpack {
                diff_id: diff_id.clone(),
                source,
            }),
            (None, Err(UnpackFailure::Io(e))) => Err(ImageError::Transfer {
                what: what.clone(),
                message: e.to_string(),
            }),
            (None, Ok((_, actual))) if actual != diff_id => Err(ImageError::DigestMismatch {
                what: format!("uncompressed {what}"),
                expected: diff_id.clone(),
                actual,
            }),
            (None, Ok((stats, _))) => Ok(stats),
        };
        let stats = match outcome {
            Ok(stats) => stats,
            Err(e) => {
                remove_all(&tmp)?;
                return Err(e);
            }
        };
        let final_path = self.layer_path(&diff_id);
        if final_path.exists() {
            remove_all(&final_path)?;
        }
        std::fs::rename(&tmp, &final_path).map_err(ImageError::io(&final_path))?;
        self.store.put_layer(&LayerRecord {
            diff_id: diff_id.clone(),
            unpacked_bytes: stats.bytes,
            inodes: stats.inodes,
        })?;
        tracing::debug!(
            layer = %diff_id,
            bytes = unpacked.compressed_bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "layer unpacked"
        );
        Ok(())
    }
}

fn bad(reference: &Reference, reason: &str) -> ImageError {
    ImageError::BadContent {
        what: reference.to_string(),
        reason: reason.to_string(),
    }
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Reads a whole small response, refusing more than `limit` bytes and stalls.
async fn read_limited(
    response: reqwest::Response,
    limit: u64,
    what: &str,
    timeout: Duration,
) -> Result<Vec<u8>, ImageError> {
    if response.content_length().is_some_and(|l| l > limit) {
        return Err(ImageError::BadContent {
            what: what.into(),
            reason: format!("larger than the {limit} byte limit"),
        });
    }
    let failure: Arc<Mutex<Option<ImageError>>> = Arc::default();
    let mut stream = std::pin::pin!(watch_stream(
        response.bytes_stream(),
        timeout,
        what.into(),
        failure.clone()
    ));
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            failure
                .lock()
                .unwrap()
                .take()
                .unwrap_or(ImageError::Transfer {
                    what: what.into(),
                    message: e.to_string(),
                })
        })?;
        out.extend_from_slice(&chunk);
        if out.len() as u64 > limit {
            return Err(ImageError::BadContent {
                what: what.into(),
                reason: format!("larger than the {limit} byte limit"),
            });
        }
    }
    Ok(out)
}

/// The body as an io stream that fails when nothing arrives for `timeout`, recording the
/// precise cause in `failure` (the io error itself passes through the decompressor and tar
/// reader, which blur it).
fn watch_stream(
    body: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    timeout: Duration,
    what: String,
    failure: Arc<Mutex<Option<ImageError>>>,
) -> futures::stream::BoxStream<'static, std::io::Result<Bytes>> {
    let body = Box::pin(body);
    futures::stream::try_unfold(
        (body, what, failure),
        move |(mut body, what, failure)| async move {
            match tokio::time::timeout(timeout, body.next()).await {
                Ok(Some(Ok(bytes))) => Ok(Some((bytes, (body, what, failure)))),
                Ok(None) => Ok(None),
                Ok(Some(Err(e))) => {
                    let message = error_chain(&e);
                    *failure.lock().unwrap() = Some(ImageError::Transfer {
                        what,
                        message: message.clone(),
                    });
                    Err(std::io::Error::other(message))
                }
                Err(_) => {
                    let timeout_text = humantime::format_duration(timeout).to_string();
                    *failure.lock().unwrap() = Some(ImageError::Stalled {
                        what,
                        timeout: timeout_text,
                    });
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no progress",
                    ))
                }
            }
        },
    )
    .into_stream()
    .boxed()
}

struct Unpacked {
    blob_digest: String,
    compressed_bytes: u64,
    /// Stats and diff ID of the unpacked tar.
    result: Result<(UnpackStats, String), UnpackFailure>,
}

enum UnpackFailure {
    Unpack(crate::unpack::UnpackError),
    Io(std::io::Error),
}

/// Hashes every byte read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

impl<R> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.clone().finalize()))
    }
}

/// Detects the compression from the first bytes (gzip, zstd or none, whatever the media type
/// claims, as containerd does) and unpacks. The blob is always read to its end, even when
/// unpacking fails, so its digest is known: a corrupted blob is reported as such rather than
/// as the garbage it decompresses to.
fn decompress_and_unpack(reader: impl Read, dest: &std::path::Path) -> Unpacked {
    let mut blob = HashingReader::new(reader);
    let result = (|| {
        let mut buffered = BufReader::with_capacity(256 * 1024, &mut blob);
        let head = buffered.fill_buf().map_err(UnpackFailure::Io)?.to_vec();
        let decompressed: Box<dyn Read + '_> = if head.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(UnpackFailure::Io)?)
        } else {
            Box::new(buffered)
        };
        let mut tar = HashingReader::new(decompressed);
        let stats = unpack_layer(&mut tar, dest).map_err(UnpackFailure::Unpack)?;
        std::io::copy(&mut tar, &mut std::io::sink()).map_err(UnpackFailure::Io)?;
        Ok((stats, tar.digest()))
    })();
    let drained = std::io::copy(&mut blob, &mut std::io::sink());
    let result = match (result, drained) {
        (Ok(r), Ok(_)) => Ok(r),
        (Ok(_), Err(e)) => Err(UnpackFailure::Io(e)),
        (Err(e), _) => Err(e),
    };
    Unpacked {
        blob_digest: blob.digest(),
        compressed_bytes: blob.count,
        result,
    }
}
