//! What a container's stats are read from: its cgroup (where runc or crun put it, from the
//! `cgroupsPath` of its spec, in the node's hierarchies) while it runs, and its writable
//! layer (the overlay upper directory under `<root>/containers/<id>`) while it exists.

use std::path::{Path, PathBuf};

use crust_stats::{CgroupStats, Detail, DirUsage};
use crust_store::{ContainerRecord, ContainerState};

use super::Containers;
use crate::sandbox::cgroup;
use crate::service::now_nanos;

/// One reading of a container, before it becomes a CRI `ContainerStats`.
#[derive(Debug, Clone)]
pub struct ContainerReading {
    pub record: ContainerRecord,
    /// When the cgroup was read (Unix ns).
    pub timestamp: i64,
    /// The cgroup's figures; `None` unless the container runs and its cgroup is there.
    pub cgroup: Option<CgroupStats>,
    /// When the writable layer was measured, and what it holds; `None` when it is gone.
    pub writable_layer: Option<(i64, DirUsage)>,
}

impl Containers {
    /// Where the container's cgroup is, in the node's hierarchies.
    pub fn stats_cgroup(&self, record: &ContainerRecord) -> Option<crust_stats::Cgroup> {
        let path =
            cgroup::container_cgroup_path(&record.cgroups_path, self.config.runtime.cgroup_driver)?;
        Some(cgroup::stats_cgroup(&self.host.cgroups, &path))
    }

    /// The container's overlay upper directory: everything it wrote to its rootfs.
    pub fn writable_layer_dir(record: &ContainerRecord) -> PathBuf {
        Path::new(&record.state_dir).join("upper")
    }

    /// The filesystem the writable layers are on, as ImageFsInfo names it.
    pub fn writable_layers_root(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// Reads all of the container's cgroup (when it runs) and measures its writable layer.
    /// Blocks on the filesystem. Failures leave the part out (logged): stats are best effort.
    pub fn read_stats(&self, record: ContainerRecord) -> ContainerReading {
        self.read_stats_detail(record, Detail::Full)
    }

    /// [`Containers::read_stats`], reading only the cgroup files `detail` needs.
    pub fn read_stats_detail(&self, record: ContainerRecord, detail: Detail) -> ContainerReading {
        let timestamp = now_nanos();
        let cgroup = match (record.state, self.stats_cgroup(&record)) {
            (ContainerState::Running, Some(location)) => {
                match CgroupStats::read_detail(&location, detail) {
                    Ok(stats) => Some(stats),
                    Err(e) => {
                        tracing::warn!(container = %record.id, error = %e, "reading the container cgroup");
                        None
                    }
                }
            }
            _ => None,
        };
        let writable_layer = match crust_stats::dir_usage(&Self::writable_layer_dir(&record)) {
            Ok(usage) => Some((now_nanos(), usage)),
            Err(e) if e.is_not_found() => None,
            Err(e) => {
                tracing::warn!(container = %record.id, error = %e, "measuring the writable layer");
                None
            }
        };
        ContainerReading {
            record,
            timestamp,
            cgroup,
            writable_layer,
        }
    }
}
