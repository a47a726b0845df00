//! Resource usage read straight from the kernel's files, for CRI stats and metrics: no
//! process is spawned and nothing is cached here.
//!
//! - [`CgroupStats::read`]: CPU, memory, swap and process counts of one cgroup, v1 or v2
//!   ([`CgroupStats::read_detail`] with [`Detail::Cri`] reads only what CRI stats report);
//!   [`Cgroup`] says where its directories are (the caller resolves the path: crustd's
//!   `sandbox::cgroup::Layout` knows the node's hierarchies).
//! - [`net_dev`], [`netns_net_dev`]: per-interface counters in `/proc/net/dev` form, the latter
//!   for network namespaces given by path (pinned bind mounts or `/proc/PID/ns/net`).
//! - [`dir_usage`]: allocated bytes and inodes of a directory tree (a writable layer).
//!
//! Every reader is a thin layer over a pure parser of the file's text ([`cgroup::v1`],
//! [`cgroup::v2`], [`parse_net_dev`]); the parsers are what the unit tests exercise. Readers
//! block on the filesystem: async callers run them in `spawn_blocking`.

pub mod cgroup;
mod error;
mod fs;
mod net;

pub use cgroup::{
    Cgroup, CgroupStats, CpuStats, Detail, MemoryStats, PidsStats, SwapStats, Throttling, V1Dirs,
};
pub use error::{Error, ParseError};
pub use fs::{dir_usage, DirUsage};
pub use net::{net_dev, netns_net_dev, parse_net_dev, InterfaceStats};
