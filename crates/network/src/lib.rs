//! CNI: conflist loading and plugin execution (ADD, DEL, CHECK).
//!
//! The behaviour follows libcni (containernetworking/cni) as containerd uses it through go-cni:
//! the first valid configuration in lexical order of file names, plugins found in the first
//! plugin directory that has them, the `CNI_*` environment, `name`/`cniVersion`/`prevResult`
//! injected into each plugin's configuration, `runtimeConfig` restricted to the capabilities a
//! plugin declares, reverse order on DEL, and containerd's loopback attachment before the
//! pod's network. Results are not cached on disk: the caller keeps [`AddResult::raw`] and
//! [`NetworkList::raw`] with the pod and hands them back to DEL and CHECK.

mod cni;
mod config;
mod error;
mod exec;
mod quantity;
mod types;

pub use crate::cni::Cni;
pub use crate::config::{default_conflist, NetworkList, DEFAULT_CONFLIST_NAME};
pub use crate::error::{CniError, PluginFailure};
pub use crate::exec::kill_orphaned_plugins;
pub use crate::types::{
    k8s_pod_args, AddResult, Attachment, Bandwidth, Interface, IpConfig, IpRange, PortMapping,
    Protocol, EGRESS_BANDWIDTH_ANNOTATION, INGRESS_BANDWIDTH_ANNOTATION,
};

#[cfg(test)]
mod tests;
