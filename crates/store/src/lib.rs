//! crust's crash-safe metadata store.
//!
//! One redb database file holds every record crustd must remember across restarts. Each table
//! maps an ID to a JSON document; every change is one write transaction, so a crash leaves
//! either the old or the new state, never a mix.
//!
//! Image lifecycle (records only appear once everything they point at is on disk):
//!
//! ```text
//!   pull starts ──> layers unpacked into layers/.tmp-* ──rename──> layers/sha256/<diff_id>
//!        │                                                        │ put_layer
//!        └──────────────── config + manifest blobs written ───────┴──> put_image (tags moved
//!                                                                       from older images)
//!   RemoveImage ──> delete_image ──> GC: layers and blobs no image references are deleted
//!   start-up    ──> GC: tmp dirs, layer dirs without records, records without dirs
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("images");
const LAYERS: TableDefinition<&str, &[u8]> = TableDefinition::new("layers");
const PODS: TableDefinition<&str, &[u8]> = TableDefinition::new("pods");
const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("containers");

mod container;
mod pod;
pub use container::{container_name_key, ContainerRecord, ContainerState, ContainerUser};
pub use pod::{name_key, PodNetwork, PodRecord, PodState};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening store {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: Box<redb::Error>,
    },
    /// Any failure of the database itself (boxed: redb's errors are large).
    #[error("store: {0}")]
    Db(#[source] Box<redb::Error>),
    #[error("store record {key}: {source}")]
    Decode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

macro_rules! from_redb {
    ($($t:ty),*) => {
        $(impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(Box::new(e.into()))
            }
        })*
    };
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub type Result<T> = std::result::Result<T, StoreError>;

/// One layer of an image, as the manifest and config describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageLayer {
    /// Digest of the uncompressed tar (the config's rootfs.diff_ids entry); names the layer dir.
    pub diff_id: String,
    /// Digest of the blob as the registry serves it.
    pub digest: String,
    pub media_type: String,
    /// Compressed size as the manifest states it.
    pub size: u64,
}

/// An image: one config digest, any number of names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The config digest (`sha256:…`), which is the image ID in CRI.
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// Config plus compressed layer sizes, as containerd reports it.
    pub size: u64,
    /// Digest of the platform manifest whose layers were unpacked.
    pub manifest_digest: String,
    pub layers: Vec<ImageLayer>,
    /// Numeric uid from the config's USER, when it is numeric.
    pub uid: Option<i64>,
    /// User name from the config's USER, when it is a name.
    pub username: String,
    pub annotations: BTreeMap<String, String>,
    pub pinned: bool,
    /// Unix nanoseconds of the last pull that touched this record.
    pub pulled_at: i64,
}

/// An unpacked layer directory under the image root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub diff_id: String,
    /// Bytes of regular files in the unpacked directory.
    pub unpacked_bytes: u64,
    /// Inodes the unpacked directory holds.
    pub inodes: u64,
}

pub struct Store {
    db: redb::Database,
}

impl Store {
    /// Opens (or creates) the database at `path` and makes sure every table exists.
    pub fn open(path: &Path) -> Result<Store> {
        let db = redb::Database::create(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source: Box::new(source.into()),
        })?;
        // The records are crustd's alone (pod and container configs, annotations).
        let private = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600);
        std::fs::set_permissions(path, private).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            source: Box::new(redb::Error::Io(e)),
        })?;
        let txn = db.begin_write()?;
        txn.open_table(IMAGES)?;
        txn.open_table(LAYERS)?;
        txn.open_table(PODS)?;
        txn.open_table(CONTAINERS)?;
        txn.commit()?;
        Ok(Store { db })
    }

    pub fn list_images(&self) -> Result<Vec<ImageRecord>> {
        self.list(IMAGES)
    }

    pub fn get_image(&self, id: &str) -> Result<Option<ImageRecord>> {
        self.get(IMAGES, id)
    }

    /// Stores `image`, merging names with an existing record of the same ID, and moves every
    /// tag it carries away from the images that held it before (as a registry tag moves). An
    /// older image left with no name at all is removed; its ID is returned so its layers can
    /// be collected.
    pub fn put_image(&self, image: &ImageRecord) -> Result<Vec<String>> {
        let txn = self.db.begin_write()?;
        let mut orphaned = Vec::new();
        {
            let mut table = txn.open_table(IMAGES)?;
            let mut all: Vec<ImageRecord> = Vec::new();
            for entry in table.iter()? {
                let (key, value) = entry?;
                all.push(decode(key.value(), value.value())?);
            }
            let mut merged = image.clone();
            for mut other in all {
                if other.id == image.id {
                    merged.repo_tags = union(&other.repo_tags, &image.repo_tags);
                    merged.repo_digests = union(&other.repo_digests, &image.repo_digests);
                    merged.pinned |= other.pinned;
                    continue;
                }
                let before = other.repo_tags.len();
                other.repo_tags.retain(|t| !image.repo_tags.contains(t));
                if other.repo_tags.len() == before {
                    continue;
                }
                if other.repo_tags.is_empty() && other.repo_digests.is_empty() {
                    table.remove(other.id.as_str())?;
                    orphaned.push(other.id.clone());
                } else {
                    table.insert(other.id.as_str(), encode(&other).as_slice())?;
                }
            }
            table.insert(merged.id.as_str(), encode(&merged).as_slice())?;
        }
        txn.commit()?;
        Ok(orphaned)
    }

    /// Removes the image record; true when it existed.
    pub fn delete_image(&self, id: &str) -> Result<bool> {
        self.delete(IMAGES, id)
    }

    pub fn list_layers(&self) -> Result<Vec<LayerRecord>> {
        self.list(LAYERS)
    }

    pub fn get_layer(&self, diff_id: &str) -> Result<Option<LayerRecord>> {
        self.get(LAYERS, diff_id)
    }

    pub fn put_layer(&self, layer: &LayerRecord) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(LAYERS)?
            .insert(layer.diff_id.as_str(), encode(layer).as_slice())?;
        txn.commit()?;
        Ok(())
    }

    pub fn delete_layer(&self, diff_id: &str) -> Result<bool> {
        self.delete(LAYERS, diff_id)
    }

    pub fn list_pods(&self) -> Result<Vec<PodRecord>> {
        self.list(PODS)
    }

    pub fn get_pod(&self, id: &str) -> Result<Option<PodRecord>> {
        self.get(PODS, id)
    }

    /// Inserts or replaces the pod's record.
    pub fn put_pod(&self, pod: &PodRecord) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(PODS)?
            .insert(pod.id.as_str(), encode(pod).as_slice())?;
        txn.commit()?;
        Ok(())
    }

    pub fn delete_pod(&self, id: &str) -> Result<bool> {
        self.delete(PODS, id)
    }

    pub fn list_containers(&self) -> Result<Vec<ContainerRecord>> {
        self.list(CONTAINERS)
    }

    /// Inserts or replaces the container's record.
    pub fn put_container(&self, container: &ContainerRecord) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(CONTAINERS)?
            .insert(container.id.as_str(), encode(container).as_slice())?;
        txn.commit()?;
        Ok(())
    }

    pub fn delete_container(&self, id: &str) -> Result<bool> {
        self.delete(CONTAINERS, id)
    }

    fn list<T: for<'de> Deserialize<'de>>(
        &self,
        def: TableDefinition<&str, &[u8]>,
    ) -> Result<Vec<T>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(def)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (key, value) = entry?;
            out.push(decode(key.value(), value.value())?);
        }
        Ok(out)
    }

    fn get<T: for<'de> Deserialize<'de>>(
        &self,
        def: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(def)?;
        let value = table.get(key)?;
        value.map(|v| decode(key, v.value())).transpose()
    }

    fn delete(&self, def: TableDefinition<&str, &[u8]>, key: &str) -> Result<bool> {
        let txn = self.db.begin_write()?;
        let existed = txn.open_table(def)?.remove(key)?.is_some();
        txn.commit()?;
        Ok(existed)
    }
}

fn union(a: &[String], b: &[String]) -> Vec<String> {
    let mut out = a.to_vec();
    for item in b {
        if !out.contains(item) {
            out.push(item.clone());
        }
    }
    out
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records always serialize")
}

fn decode<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Decode {
        key: key.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, tags: &[&str], digests: &[&str]) -> ImageRecord {
        ImageRecord {
            id: id.into(),
            repo_tags: tags.iter().map(|s| s.to_string()).collect(),
            repo_digests: digests.iter().map(|s| s.to_string()).collect(),
            size: 10,
            manifest_digest: "sha256:m".into(),
            layers: vec![],
            uid: None,
            username: String::new(),
            annotations: BTreeMap::new(),
            pinned: false,
            pulled_at: 0,
        }
    }

    #[test]
    fn put_merges_names_and_moves_tags() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        store
            .put_image(&image("sha256:a", &["x:1"], &["x@sha256:ma"]))
            .unwrap();
        store.put_image(&image("sha256:a", &["x:2"], &[])).unwrap();
        let a = store.get_image("sha256:a").unwrap().unwrap();
        assert_eq!(a.repo_tags, vec!["x:1", "x:2"]);
        assert_eq!(a.repo_digests, vec!["x@sha256:ma"]);

        // x:1 moves to b; a keeps x:2.
        let orphaned = store.put_image(&image("sha256:b", &["x:1"], &[])).unwrap();
        assert!(orphaned.is_empty());
        assert_eq!(
            store.get_image("sha256:a").unwrap().unwrap().repo_tags,
            vec!["x:2"]
        );

        // An image left without any name is removed and reported.
        store.put_image(&image("sha256:c", &["y:1"], &[])).unwrap();
        let orphaned = store.put_image(&image("sha256:d", &["y:1"], &[])).unwrap();
        assert_eq!(orphaned, vec!["sha256:c"]);
        assert!(store.get_image("sha256:c").unwrap().is_none());
        assert_eq!(store.list_images().unwrap().len(), 3);
    }

    #[test]
    fn records_survive_reopen_and_delete_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = Store::open(&path).unwrap();
            store
                .put_layer(&LayerRecord {
                    diff_id: "sha256:l".into(),
                    unpacked_bytes: 5,
                    inodes: 2,
                })
                .unwrap();
            store.put_image(&image("sha256:a", &["x:1"], &[])).unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.get_layer("sha256:l").unwrap().unwrap().inodes, 2);
        assert!(store.delete_image("sha256:a").unwrap());
        assert!(!store.delete_image("sha256:a").unwrap());
        assert!(store.delete_layer("sha256:l").unwrap());
        assert!(store.list_layers().unwrap().is_empty());
    }
}
