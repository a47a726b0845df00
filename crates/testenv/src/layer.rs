//! Layer tarballs: deterministic builders for ordinary and deliberately malformed entries, and
//! compression into OCI/Docker layer blobs.

use std::io::{self, Read, Write};

use anyhow::{Context, Result};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

use crate::media_types;

/// Modification time of every entry and the `created` time of every image (2023-11-14T22:13:20Z),
/// so that images built twice have the same digests.
pub(crate) const MTIME: u64 = 1_700_000_000;
pub(crate) const CREATED: &str = "2023-11-14T22:13:20Z";

/// How a layer tarball is stored in the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    /// gzip at the default level
    Gzip,
    /// gzip at level 1 (for big, incompressible layers)
    GzipFast,
    Zstd,
    /// the tarball as is
    None,
}

/// Docker v2 schema 2 or OCI media types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    Docker,
    Oci,
}

impl Flavor {
    pub(crate) fn manifest_type(self) -> &'static str {
        match self {
            Flavor::Docker => media_types::DOCKER_MANIFEST,
            Flavor::Oci => media_types::OCI_MANIFEST,
        }
    }

    pub(crate) fn config_type(self) -> &'static str {
        match self {
            Flavor::Docker => media_types::DOCKER_CONFIG,
            Flavor::Oci => media_types::OCI_CONFIG,
        }
    }

    pub(crate) fn layer_type(self, compression: Compression) -> &'static str {
        match (self, compression) {
            (Flavor::Docker, Compression::Gzip | Compression::GzipFast) => {
                media_types::DOCKER_LAYER_GZIP
            }
            (Flavor::Docker, Compression::None) => media_types::DOCKER_LAYER_TAR,
            // Docker schema 2 has no zstd type of its own; the OCI one is what docker uses.
            (_, Compression::Zstd) => media_types::OCI_LAYER_ZSTD,
            (Flavor::Oci, Compression::Gzip | Compression::GzipFast) => media_types::OCI_LAYER_GZIP,
            (Flavor::Oci, Compression::None) => media_types::OCI_LAYER_TAR,
        }
    }
}

/// `sha256:<hex>` of some bytes.
pub(crate) fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Content addressed bytes with their media type.
#[derive(Clone, Debug)]
pub(crate) struct Blob {
    pub media_type: String,
    pub digest: String,
    /// Kept apart from `data` so a pushed blob's bytes can be dropped.
    pub size: u64,
    pub data: Bytes,
}

impl Blob {
    pub(crate) fn new(media_type: &str, data: impl Into<Bytes>) -> Blob {
        let data = data.into();
        Blob {
            media_type: media_type.to_string(),
            digest: sha256_digest(&data),
            size: data.len() as u64,
            data,
        }
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The OCI descriptor of this blob.
    pub(crate) fn descriptor(&self) -> serde_json::Value {
        serde_json::json!({
            "mediaType": self.media_type,
            "size": self.size(),
            "digest": self.digest,
        })
    }
}

/// A compressed layer blob and the digest of its uncompressed tarball.
#[derive(Clone, Debug)]
pub(crate) struct Layer {
    pub blob: Blob,
    pub diff_id: String,
}

impl Layer {
    /// Compresses a finished tarball.
    pub(crate) fn from_tar(tar: &[u8], flavor: Flavor, compression: Compression) -> Result<Layer> {
        let data = match compression {
            Compression::Gzip => gzip(tar, flate2::Compression::default())?,
            Compression::GzipFast => gzip(tar, flate2::Compression::new(1))?,
            Compression::Zstd => zstd::encode_all(tar, 3).context("zstd compression")?,
            Compression::None => tar.to_vec(),
        };
        Ok(Layer {
            blob: Blob::new(flavor.layer_type(compression), data),
            diff_id: sha256_digest(tar),
        })
    }
}

fn gzip(data: &[u8], level: flate2::Compression) -> Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 2), level);
    enc.write_all(data).context("gzip compression")?;
    enc.finish().context("gzip compression")
}

/// A writer that hashes what passes through it (the diff ID of a layer being compressed).
pub(crate) struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> HashWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
        }
    }

    pub(crate) fn finish(self) -> (W, String) {
        (
            self.inner,
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
        )
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Builds a tarball with fixed owners and times.
pub(crate) struct TarBuilder<W: Write> {
    tar: tar::Builder<W>,
}

fn header(kind: EntryType, mode: u32, uid: u64, gid: u64, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_mtime(MTIME);
    h.set_size(size);
    h
}

impl TarBuilder<Vec<u8>> {
    pub(crate) fn new() -> Self {
        TarBuilder::on(Vec::new())
    }

    pub(crate) fn into_tar(self) -> Result<Vec<u8>> {
        self.finish()
    }
}

impl<W: Write> TarBuilder<W> {
    pub(crate) fn on(writer: W) -> Self {
        let mut tar = tar::Builder::new(writer);
        tar.mode(tar::HeaderMode::Deterministic);
        TarBuilder { tar }
    }

    pub(crate) fn finish(self) -> Result<W> {
        self.tar.into_inner().context("finish tarball")
    }

    pub(crate) fn dir(&mut self, path: &str, mode: u32) -> Result<()> {
        self.dir_owned(path, mode, 0, 0)
    }

    pub(crate) fn dir_owned(&mut self, path: &str, mode: u32, uid: u64, gid: u64) -> Result<()> {
        let mut h = header(EntryType::Directory, mode, uid, gid, 0);
        self.tar
            .append_data(&mut h, path, io::empty())
            .with_context(|| format!("tar entry {path}"))
    }

    pub(crate) fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<()> {
        self.file_owned(path, mode, 0, 0, data)
    }

    pub(crate) fn file_owned(
        &mut self,
        path: &str,
        mode: u32,
        uid: u64,
        gid: u64,
        data: &[u8],
    ) -> Result<()> {
        self.file_from(path, mode, uid, gid, data.len() as u64, data)
    }

    pub(crate) fn file_from(
        &mut self,
        path: &str,
        mode: u32,
        uid: u64,
        gid: u64,
        size: u64,
        data: impl Read,
    ) -> Result<()> {
        let mut h = header(EntryType::Regular, mode, uid, gid, size);
        self.tar
            .append_data(&mut h, path, data)
            .with_context(|| format!("tar entry {path}"))
    }

    pub(crate) fn hardlink(&mut self, path: &str, target: &str) -> Result<()> {
        let mut h = header(EntryType::Link, 0o755, 0, 0, 0);
        self.tar
            .append_link(&mut h, path, target)
            .with_context(|| format!("tar entry {path}"))
    }

    /// Writes an entry without any of the tar crate's path checks: `path` and `link` go into
    /// the header bytes as given (through GNU long-name records when they exceed 100 bytes), so
    /// `..` components and absolute paths really end up in the archive.
    pub(crate) fn raw(&mut self, entry: RawEntry<'_>) -> Result<()> {
        if entry.path.len() > 100 {
            self.long_name(EntryType::GNULongName, entry.path)?;
        }
        if let Some(link) = entry.link {
            if link.len() > 100 {
                self.long_name(EntryType::GNULongLink, link)?;
            }
        }
        let mut h = header(entry.kind, entry.mode, 0, 0, entry.data.len() as u64);
        {
            let old = h.as_old_mut();
            copy_truncated(&mut old.name, entry.path);
            if let Some(link) = entry.link {
                copy_truncated(&mut old.linkname, link);
            }
        }
        if let Some((major, minor)) = entry.device {
            h.set_device_major(major)?;
            h.set_device_minor(minor)?;
        }
        h.set_cksum();
        self.tar
            .append(&h, entry.data)
            .with_context(|| format!("raw tar entry {}", String::from_utf8_lossy(entry.path)))
    }

    fn long_name(&mut self, kind: EntryType, name: &[u8]) -> Result<()> {
        let mut data = name.to_vec();
        data.push(0);
        let mut h = header(kind, 0o644, 0, 0, data.len() as u64);
        copy_truncated(&mut h.as_old_mut().name, b"././@LongLink");
        h.set_cksum();
        self.tar
            .append(&h, &data[..])
            .context("gnu long name record")
    }
}

fn copy_truncated(field: &mut [u8], value: &[u8]) {
    field.fill(0);
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// One entry for [`TarBuilder::raw`].
pub(crate) struct RawEntry<'a> {
    pub kind: EntryType,
    pub path: &'a [u8],
    pub link: Option<&'a [u8]>,
    pub mode: u32,
    pub device: Option<(u32, u32)>,
    pub data: &'a [u8],
}

impl<'a> RawEntry<'a> {
    pub(crate) fn new(kind: EntryType, path: &'a [u8]) -> Self {
        RawEntry {
            kind,
            path,
            link: None,
            mode: 0o644,
            device: None,
            data: &[],
        }
    }
}

/// Fast, seeded, incompressible bytes (xorshift64*).
pub(crate) struct NoiseReader {
    state: u64,
    remaining: u64,
    pending: [u8; 8],
    pending_len: usize,
}

impl NoiseReader {
    pub(crate) fn new(seed: u64, len: u64) -> Self {
        NoiseReader {
            // xorshift must not start at zero
            state: seed | 1,
            remaining: len,
            pending: [0; 8],
            pending_len: 0,
        }
    }

    fn next_word(&mut self) -> [u8; 8] {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes()
    }
}

impl Read for NoiseReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let buf = &mut buf[..want];
        let mut n = 0;
        while n < buf.len() && self.pending_len > 0 {
            buf[n] = self.pending[8 - self.pending_len];
            self.pending_len -= 1;
            n += 1;
        }
        let mut chunks = buf[n..].chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next_word());
            n += 8;
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let word = self.next_word();
            let k = rest.len();
            rest.copy_from_slice(&word[..k]);
            self.pending = word;
            self.pending_len = 8 - k;
            n += k;
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_deterministic_and_exact_length() {
        let mut a = Vec::new();
        NoiseReader::new(7, 1001).read_to_end(&mut a).unwrap();
        assert_eq!(a.len(), 1001);
        // the same stream regardless of how it is read
        let mut r = NoiseReader::new(7, 1001);
        let mut b = Vec::new();
        let mut buf = [0u8; 3];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            b.extend_from_slice(&buf[..n]);
        }
        assert_eq!(a, b);
        let mut c = Vec::new();
        NoiseReader::new(8, 1001).read_to_end(&mut c).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn raw_entries_keep_hostile_paths() {
        let long = format!("../../{}/x", "a".repeat(150));
        let mut t = TarBuilder::new();
        t.raw(RawEntry {
            data: b"hi",
            ..RawEntry::new(EntryType::Regular, b"../../etc/evil")
        })
        .unwrap();
        t.raw(RawEntry {
            link: Some(long.as_bytes()),
            ..RawEntry::new(EntryType::Link, long.as_bytes())
        })
        .unwrap();
        let tar = t.into_tar().unwrap();
        let mut ar = tar::Archive::new(&tar[..]);
        let entries: Vec<(Vec<u8>, Option<Vec<u8>>)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path_bytes().into_owned(),
                    e.link_name_bytes().map(|l| l.into_owned()),
                )
            })
            .collect();
        assert_eq!(entries[0].0, b"../../etc/evil");
        assert_eq!(entries[1].0, long.as_bytes());
        assert_eq!(entries[1].1.as_deref(), Some(long.as_bytes()));
    }
}
