//! What a pod's stats are read from: the pod cgroup (`cgroup_parent`, recorded in cgroupfs
//! form, in the node's hierarchies: it holds the pod init and every container's cgroup) and
//! the pod's network namespace (the monitor's pinned one; a hostNetwork pod has none, and like
//! containerd crustd then reports no network).

use std::path::PathBuf;

use crust_stats::{CgroupStats, Detail, InterfaceStats};
use crust_store::PodRecord;
use k8s_cri::v1::{NetworkInterfaceUsage, NetworkUsage, UInt64Value};

use super::{cgroup, Pods};
use crate::service::now_nanos;

/// The interface kubelet reports as the pod's (the one CNI plugins create).
pub const DEFAULT_INTERFACE: &str = "eth0";

/// One reading of a pod's cgroup.
#[derive(Debug, Clone)]
pub struct PodReading {
    pub record: PodRecord,
    /// When the cgroup was read (Unix ns).
    pub timestamp: i64,
    /// `None` when the pod has no cgroup of its own or it cannot be read.
    pub cgroup: Option<CgroupStats>,
}

impl Pods {
    /// Where the pod cgroup is; `None` for a pod created without a cgroup parent.
    pub fn stats_cgroup(&self, record: &PodRecord) -> Option<crust_stats::Cgroup> {
        (!record.cgroup_parent.is_empty())
            .then(|| cgroup::stats_cgroup(&self.cgroups, &record.cgroup_parent))
    }

    /// Reads all of the pod cgroup. Blocks on the filesystem; a failure leaves it out (logged).
    pub fn read_stats(&self, record: PodRecord) -> PodReading {
        self.read_stats_detail(record, Detail::Full)
    }

    /// [`Pods::read_stats`], reading only the cgroup files `detail` needs.
    pub fn read_stats_detail(&self, record: PodRecord, detail: Detail) -> PodReading {
        let timestamp = now_nanos();
        let cgroup = self.stats_cgroup(&record).and_then(|location| {
            CgroupStats::read_detail(&location, detail)
                .map_err(|e| tracing::warn!(pod = %record.id, error = %e, "reading the pod cgroup"))
                .ok()
        });
        PodReading {
            record,
            timestamp,
            cgroup,
        }
    }
}

/// The pod's pinned network namespace; `None` for a hostNetwork pod.
pub fn netns_path(record: &PodRecord) -> Option<PathBuf> {
    record.namespaces.get("net").map(PathBuf::from)
}

/// CRI's NetworkUsage: `eth0` (else the first interface) as the default, the others (not
/// loopback) in `interfaces`, which the CRI API defines as excluding the default.
pub fn network_usage(interfaces: Vec<InterfaceStats>, timestamp: i64) -> NetworkUsage {
    let mut interfaces: Vec<InterfaceStats> =
        interfaces.into_iter().filter(|i| i.name != "lo").collect();
    let default = interfaces
        .iter()
        .position(|i| i.name == DEFAULT_INTERFACE)
        .or(if interfaces.is_empty() { None } else { Some(0) })
        .map(|at| interfaces.remove(at));
    let cri = |i: InterfaceStats| NetworkInterfaceUsage {
        name: i.name,
        rx_bytes: Some(UInt64Value { value: i.rx_bytes }),
        rx_errors: Some(UInt64Value { value: i.rx_errors }),
        tx_bytes: Some(UInt64Value { value: i.tx_bytes }),
        tx_errors: Some(UInt64Value { value: i.tx_errors }),
    };
    NetworkUsage {
        timestamp,
        default_interface: default.map(cri),
        interfaces: interfaces.into_iter().map(cri).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, rx: u64) -> InterfaceStats {
        InterfaceStats {
            name: name.into(),
            rx_bytes: rx,
            tx_bytes: rx + 1,
            rx_errors: 2,
            tx_errors: 3,
            ..Default::default()
        }
    }

    #[test]
    fn eth0_is_the_default_and_loopback_is_left_out() {
        let n = network_usage(vec![iface("lo", 1), iface("net1", 5), iface("eth0", 9)], 42);
        assert_eq!(n.timestamp, 42);
        let d = n.default_interface.unwrap();
        assert_eq!(d.name, "eth0");
        assert_eq!(d.rx_bytes.unwrap().value, 9);
        assert_eq!(d.tx_bytes.unwrap().value, 10);
        assert_eq!(
            (d.rx_errors.unwrap().value, d.tx_errors.unwrap().value),
            (2, 3)
        );
        let names: Vec<_> = n.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["net1"]);
    }

    #[test]
    fn without_eth0_the_first_is_the_default() {
        let n = network_usage(vec![iface("lo", 1), iface("net1", 5), iface("net2", 6)], 1);
        assert_eq!(n.default_interface.unwrap().name, "net1");
        assert_eq!(n.interfaces.len(), 1);
        let none = network_usage(vec![iface("lo", 1)], 1);
        assert!(none.default_interface.is_none() && none.interfaces.is_empty());
    }
}
