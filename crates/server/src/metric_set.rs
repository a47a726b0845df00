//! CRI metrics: what ListMetricDescriptors describes and ListPodSandboxMetrics answers, the
//! cAdvisor metrics kubelet serves at `/metrics/cadvisor` when the runtime provides them
//! (feature gate PodAndContainerStatsFromCRI).
//!
//! The figures are those of the CRI stats (`stats.rs`): a container's cgroup and writable
//! layer are read by `Containers::read_stats`, a pod's cgroup by `Pods::read_stats`, the pod
//! network namespace's `/proc/net/dev` by `crust_stats::netns_net_dev`. What this module adds:
//! the descriptor table, the cAdvisor names, types and labels, and statvfs of the filesystem
//! the writable layers are on.
//!
//! Labels, as CRI-O sets them: every metric has `id`, `name` and `image` (kubelet adds none of
//! its own: a descriptor's label keys are the Prometheus labels), a few one more
//! (`cpu`, `failure_type` and `scope`, `interface`). A container's `name` is the
//! `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>` form dockershim and CRI-O name containers
//! by, so a series tells its pod; pod-level metrics (the pod cgroup and the pod network, which
//! belongs to the pod, not to a container) carry the pod's ID, `k8s_POD_<pod>_…` as an infra
//! container's name would be, and no image.
//!
//! Values are `UInt64Value`s, which kubelet turns into floats: `*_seconds_total` counters are
//! whole seconds (truncated), as in CRI-O and containerd. Only what the kernel tells is
//! reported: a figure whose controller or file is missing is left out, not sent as 0. The one
//! exception is cAdvisor's convention for limits: 0 means none (`container_spec_memory_limit_bytes`,
//! `container_threads_max`). Page faults are counted hierarchically by the kernel, so
//! `container_memory_failures_total` has only `scope="hierarchy"`.
//!
//! Each metric's timestamp is when its figures were read (Unix ns).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crust_stats::{CgroupStats, DirUsage, InterfaceStats};
use crust_store::{ContainerRecord, ContainerState, PodRecord};
use k8s_cri::v1::{
    ContainerMetrics, Metric, MetricDescriptor, MetricType, PodSandboxMetrics, UInt64Value,
};
use tonic::Status;

use crate::container::{ContainerReading, Containers};
use crate::sandbox::{netns_path, PodReading, Pods};
use crate::service::now_nanos;

/// The labels of every metric, in this order, before a metric's own.
pub const BASE_LABELS: [&str; 3] = ["id", "name", "image"];

/// One metric family: its cAdvisor name, help, type, and the labels it has beyond
/// [`BASE_LABELS`].
#[derive(Debug)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricType,
    pub labels: &'static [&'static str],
}

const fn counter(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        help,
        kind: MetricType::Counter,
        labels: &[],
    }
}

const fn gauge(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        help,
        kind: MetricType::Gauge,
        labels: &[],
    }
}

const fn with_labels(family: Family, labels: &'static [&'static str]) -> Family {
    Family { labels, ..family }
}

const CPU_USAGE: Family = with_labels(
    counter(
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed in seconds.",
    ),
    &["cpu"],
);
const CPU_USER: Family = counter(
    "container_cpu_user_seconds_total",
    "Cumulative user cpu time consumed in seconds.",
);
const CPU_SYSTEM: Family = counter(
    "container_cpu_system_seconds_total",
    "Cumulative system cpu time consumed in seconds.",
);
const CFS_PERIODS: Family = counter(
    "container_cpu_cfs_periods_total",
    "Number of elapsed enforcement period intervals.",
);
const CFS_THROTTLED_PERIODS: Family = counter(
    "container_cpu_cfs_throttled_periods_total",
    "Number of throttled period intervals.",
);
const CFS_THROTTLED_SECONDS: Family = counter(
    "container_cpu_cfs_throttled_seconds_total",
    "Total time duration the container has been throttled.",
);
const MEMORY_USAGE: Family = gauge(
    "container_memory_usage_bytes",
    "Current memory usage in bytes, including all memory regardless of when it was accessed",
);
const MEMORY_WORKING_SET: Family = gauge(
    "container_memory_working_set_bytes",
    "Current working set in bytes.",
);
const MEMORY_RSS: Family = gauge("container_memory_rss", "Size of RSS in bytes.");
const MEMORY_CACHE: Family = gauge(
    "container_memory_cache",
    "Number of bytes of page cache memory.",
);
const MEMORY_MAPPED_FILE: Family = gauge(
    "container_memory_mapped_file",
    "Size of memory mapped files in bytes.",
);
const MEMORY_MAX_USAGE: Family = gauge(
    "container_memory_max_usage_bytes",
    "Maximum memory usage recorded in bytes",
);
const MEMORY_FAILCNT: Family = counter(
    "container_memory_failcnt",
    "Number of memory usage hits limits",
);
const MEMORY_FAILURES: Family = with_labels(
    counter(
        "container_memory_failures_total",
        "Cumulative count of memory allocation failures.",
    ),
    &["failure_type", "scope"],
);
const MEMORY_SWAP: Family = gauge("container_memory_swap", "Container swap usage in bytes.");
const OOM_EVENTS: Family = counter(
    "container_oom_events_total",
    "Count of out of memory events observed for the container",
);
const SPEC_MEMORY_LIMIT: Family = gauge(
    "container_spec_memory_limit_bytes",
    "Memory limit for the container.",
);
const THREADS: Family = gauge(
    "container_threads",
    "Number of threads running inside the container",
);
const THREADS_MAX: Family = gauge(
    "container_threads_max",
    "Maximum number of threads allowed inside the container, infinity if value is zero",
);
const FS_USAGE: Family = gauge(
    "container_fs_usage_bytes",
    "Number of bytes that are consumed by the container on this filesystem.",
);
const FS_LIMIT: Family = gauge(
    "container_fs_limit_bytes",
    "Number of bytes that can be consumed by the container on this filesystem.",
);
const FS_INODES_TOTAL: Family = gauge("container_fs_inodes_total", "Number of Inodes");
const FS_INODES_FREE: Family = gauge("container_fs_inodes_free", "Number of available Inodes");
const NET_RX_BYTES: Family = with_labels(
    counter(
        "container_network_receive_bytes_total",
        "Cumulative count of bytes received",
    ),
    &["interface"],
);
const NET_RX_PACKETS: Family = with_labels(
    counter(
        "container_network_receive_packets_total",
        "Cumulative count of packets received",
    ),
    &["interface"],
);
const NET_RX_DROPPED: Family = with_labels(
    counter(
        "container_network_receive_packets_dropped_total",
        "Cumulative count of packets dropped while receiving",
    ),
    &["interface"],
);
const NET_RX_ERRORS: Family = with_labels(
    counter(
        "container_network_receive_errors_total",
        "Cumulative count of errors encountered while receiving",
    ),
    &["interface"],
);
const NET_TX_BYTES: Family = with_labels(
    counter(
        "container_network_transmit_bytes_total",
        "Cumulative count of bytes transmitted",
    ),
    &["interface"],
);
const NET_TX_PACKETS: Family = with_labels(
    counter(
        "container_network_transmit_packets_total",
        "Cumulative count of packets transmitted",
    ),
    &["interface"],
);
const NET_TX_DROPPED: Family = with_labels(
    counter(
        "container_network_transmit_packets_dropped_total",
        "Cumulative count of packets dropped while transmitting",
    ),
    &["interface"],
);
const NET_TX_ERRORS: Family = with_labels(
    counter(
        "container_network_transmit_errors_total",
        "Cumulative count of errors encountered while transmitting",
    ),
    &["interface"],
);
const LAST_SEEN: Family = gauge(
    "container_last_seen",
    "Last time a container was seen by the exporter",
);

/// Every family crustd reports, in ListMetricDescriptors' order. The list is fixed for the
/// life of the process, as the CRI asks (kubelet reads it once).
pub static FAMILIES: &[Family] = &[
    CPU_USAGE,
    CPU_USER,
    CPU_SYSTEM,
    CFS_PERIODS,
    CFS_THROTTLED_PERIODS,
    CFS_THROTTLED_SECONDS,
    MEMORY_USAGE,
    MEMORY_WORKING_SET,
    MEMORY_RSS,
    MEMORY_CACHE,
    MEMORY_MAPPED_FILE,
    MEMORY_MAX_USAGE,
    MEMORY_FAILCNT,
    MEMORY_FAILURES,
    MEMORY_SWAP,
    OOM_EVENTS,
    SPEC_MEMORY_LIMIT,
    THREADS,
    THREADS_MAX,
    FS_USAGE,
    FS_LIMIT,
    FS_INODES_TOTAL,
    FS_INODES_FREE,
    NET_RX_BYTES,
    NET_RX_PACKETS,
    NET_RX_DROPPED,
    NET_RX_ERRORS,
    NET_TX_BYTES,
    NET_TX_PACKETS,
    NET_TX_DROPPED,
    NET_TX_ERRORS,
    LAST_SEEN,
];

/// ListMetricDescriptors' answer.
pub fn descriptors() -> Vec<MetricDescriptor> {
    FAMILIES
        .iter()
        .map(|f| MetricDescriptor {
            name: f.name.to_string(),
            help: f.help.to_string(),
            label_keys: BASE_LABELS
                .iter()
                .chain(f.labels)
                .map(|k| k.to_string())
                .collect(),
        })
        .collect()
}

/// The values of [`BASE_LABELS`] for one container or pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub id: String,
    pub name: String,
    pub image: String,
}

impl Subject {
    /// A container of `pod`: its `k8s_…` name and its image as the request named it.
    pub fn container(c: &ContainerRecord, pod: &PodRecord) -> Subject {
        Subject {
            id: c.id.clone(),
            name: k8s_name(&c.name, &pod.name, &pod.namespace, &pod.uid, c.attempt),
            image: if c.image.is_empty() {
                c.image_ref.clone()
            } else {
                c.image.clone()
            },
        }
    }

    /// The pod itself (its cgroup and network).
    pub fn pod(pod: &PodRecord) -> Subject {
        Subject {
            id: pod.id.clone(),
            name: k8s_name("POD", &pod.name, &pod.namespace, &pod.uid, pod.attempt),
            image: String::new(),
        }
    }
}

/// `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`, as dockershim and CRI-O name them.
fn k8s_name(container: &str, pod: &str, namespace: &str, uid: &str, attempt: u32) -> String {
    format!("k8s_{container}_{pod}_{namespace}_{uid}_{attempt}")
}

/// Capacity of the filesystem the writable layers are on (statvfs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsCapacity {
    pub bytes: u64,
    pub inodes: u64,
    pub inodes_free: u64,
}

/// statvfs of `path`; `None` (logged) when it fails.
pub(crate) fn fs_capacity(path: &Path) -> Option<FsCapacity> {
    match rustix::fs::statvfs(path) {
        Ok(s) => Some(FsCapacity {
            bytes: s.f_blocks.saturating_mul(s.f_frsize),
            inodes: s.f_files,
            inodes_free: s.f_ffree,
        }),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "statvfs of the writable layers' filesystem");
            None
        }
    }
}

/// Metrics of one subject, as they are added.
struct Emitter<'a> {
    subject: &'a Subject,
    out: Vec<Metric>,
}

impl Emitter<'_> {
    /// One metric of `family` with its own labels' values `extra` (in the family's order).
    fn push(&mut self, family: &Family, extra: &[&str], timestamp: i64, value: u64) {
        debug_assert_eq!(extra.len(), family.labels.len(), "{}", family.name);
        let s = self.subject;
        let mut label_values = Vec::with_capacity(BASE_LABELS.len() + extra.len());
        label_values.extend([s.id.clone(), s.name.clone(), s.image.clone()]);
        label_values.extend(extra.iter().map(|v| v.to_string()));
        self.out.push(Metric {
            name: family.name.to_string(),
            timestamp,
            metric_type: family.kind as i32,
            label_values,
            value: Some(UInt64Value { value }),
        });
    }

    fn cgroup(&mut self, stats: &CgroupStats, t: i64) {
        if let Some(cpu) = &stats.cpu {
            self.push(&CPU_USAGE, &["total"], t, seconds(cpu.usage_ns));
            if let Some(user) = cpu.user_ns {
                self.push(&CPU_USER, &[], t, seconds(user));
            }
            if let Some(system) = cpu.system_ns {
                self.push(&CPU_SYSTEM, &[], t, seconds(system));
            }
            if let Some(th) = &cpu.throttling {
                self.push(&CFS_PERIODS, &[], t, th.periods);
                self.push(&CFS_THROTTLED_PERIODS, &[], t, th.throttled_periods);
                self.push(&CFS_THROTTLED_SECONDS, &[], t, seconds(th.throttled_ns));
            }
        }
        if let Some(m) = &stats.memory {
            self.push(&MEMORY_USAGE, &[], t, m.usage_bytes);
            self.push(&MEMORY_WORKING_SET, &[], t, m.working_set_bytes);
            self.push(&MEMORY_RSS, &[], t, m.rss_bytes);
            self.push(&MEMORY_CACHE, &[], t, m.cache_bytes);
            self.push(&MEMORY_MAPPED_FILE, &[], t, m.mapped_file_bytes);
            if let Some(max) = m.max_usage_bytes {
                self.push(&MEMORY_MAX_USAGE, &[], t, max);
            }
            if let Some(failcnt) = m.failcnt {
                self.push(&MEMORY_FAILCNT, &[], t, failcnt);
            }
            self.push(
                &MEMORY_FAILURES,
                &["pgfault", "hierarchy"],
                t,
                m.page_faults,
            );
            self.push(
                &MEMORY_FAILURES,
                &["pgmajfault", "hierarchy"],
                t,
                m.major_page_faults,
            );
            if let Some(kills) = m.oom_kills {
                self.push(&OOM_EVENTS, &[], t, kills);
            }
            self.push(&SPEC_MEMORY_LIMIT, &[], t, m.limit_bytes.unwrap_or(0));
        }
        if let Some(swap) = &stats.swap {
            self.push(&MEMORY_SWAP, &[], t, swap.usage_bytes);
        }
        if let Some(pids) = &stats.pids {
            self.push(&THREADS, &[], t, pids.current);
            self.push(&THREADS_MAX, &[], t, pids.limit.unwrap_or(0));
        }
    }

    fn writable_layer(&mut self, usage: &DirUsage, fs: Option<&FsCapacity>, t: i64) {
        self.push(&FS_USAGE, &[], t, usage.bytes);
        if let Some(fs) = fs {
            self.push(&FS_LIMIT, &[], t, fs.bytes);
            self.push(&FS_INODES_TOTAL, &[], t, fs.inodes);
            self.push(&FS_INODES_FREE, &[], t, fs.inodes_free);
        }
    }

    /// Every interface but loopback (cAdvisor leaves it out too).
    fn network(&mut self, interfaces: &[InterfaceStats], t: i64) {
        for i in interfaces.iter().filter(|i| i.name != "lo") {
            let name = [i.name.as_str()];
            self.push(&NET_RX_BYTES, &name, t, i.rx_bytes);
            self.push(&NET_RX_PACKETS, &name, t, i.rx_packets);
            self.push(&NET_RX_DROPPED, &name, t, i.rx_dropped);
            self.push(&NET_RX_ERRORS, &name, t, i.rx_errors);
            self.push(&NET_TX_BYTES, &name, t, i.tx_bytes);
            self.push(&NET_TX_PACKETS, &name, t, i.tx_packets);
            self.push(&NET_TX_DROPPED, &name, t, i.tx_dropped);
            self.push(&NET_TX_ERRORS, &name, t, i.tx_errors);
        }
    }

    fn last_seen(&mut self, t: i64) {
        self.push(&LAST_SEEN, &[], t, seconds(t.max(0) as u64));
    }
}

/// Nanoseconds as whole seconds.
fn seconds(ns: u64) -> u64 {
    ns / 1_000_000_000
}

/// A container's metrics: its cgroup (read at `timestamp`) and its writable layer.
pub fn container_metrics(
    subject: &Subject,
    timestamp: i64,
    cgroup: Option<&CgroupStats>,
    writable_layer: Option<(i64, DirUsage)>,
    fs: Option<&FsCapacity>,
) -> Vec<Metric> {
    let mut e = Emitter {
        subject,
        out: Vec::new(),
    };
    if let Some(stats) = cgroup {
        e.cgroup(stats, timestamp);
    }
    if let Some((t, usage)) = writable_layer {
        e.writable_layer(&usage, fs, t);
    }
    e.last_seen(timestamp);
    e.out
}

/// A pod's own metrics: the pod cgroup (read at `timestamp`) and the interfaces of its
/// network namespace (read at their own time).
pub fn pod_metrics(
    subject: &Subject,
    timestamp: i64,
    cgroup: Option<&CgroupStats>,
    network: Option<(i64, &[InterfaceStats])>,
) -> Vec<Metric> {
    let mut e = Emitter {
        subject,
        out: Vec::new(),
    };
    if let Some(stats) = cgroup {
        e.cgroup(stats, timestamp);
    }
    if let Some((t, interfaces)) = network {
        e.network(interfaces, t);
    }
    e.last_seen(timestamp);
    e.out
}

/// ListPodSandboxMetrics for `records` (pods), in the same order: each pod's own metrics and
/// those of its running containers (oldest first). The network namespaces are read on a
/// thread of their own (it joins each one), the cgroups and writable layers meanwhile.
pub async fn collect(
    pods: &Arc<Pods>,
    containers: &Arc<Containers>,
    records: Vec<PodRecord>,
) -> Result<Vec<PodSandboxMetrics>, Status> {
    let index: HashMap<String, usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.clone(), i))
        .collect();
    let mut running: Vec<Vec<ContainerRecord>> = vec![Vec::new(); records.len()];
    for c in containers.all() {
        let r = c.record.lock().unwrap_or_else(|e| e.into_inner());
        if r.state == ContainerState::Running {
            if let Some(&i) = index.get(&r.pod_id) {
                running[i].push(r.clone());
            }
        }
    }
    for list in &mut running {
        list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    }

    let netns: Vec<(usize, PathBuf)> = records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| netns_path(r).map(|p| (i, p)))
        .collect();
    let network = tokio::task::spawn_blocking(move || {
        let timestamp = now_nanos();
        let paths: Vec<PathBuf> = netns.iter().map(|(_, p)| p.clone()).collect();
        let results = crust_stats::netns_net_dev(&paths);
        (timestamp, netns, results)
    });
    let (pods, containers) = (pods.clone(), containers.clone());
    let readings = tokio::task::spawn_blocking(move || {
        let fs = fs_capacity(&containers.writable_layers_root());
        let readings: Vec<(PodReading, Vec<ContainerReading>)> = records
            .into_iter()
            .zip(running)
            .map(|(pod, cs)| {
                let cs = cs.into_iter().map(|c| containers.read_stats(c)).collect();
                (pods.read_stats(pod), cs)
            })
            .collect();
        (fs, readings)
    });
    let (network, readings) = tokio::join!(network, readings);
    let (net_timestamp, netns, net_results) = network.map_err(join_error)?;
    let (fs, readings) = readings.map_err(join_error)?;

    let mut networks: Vec<Option<Vec<InterfaceStats>>> = vec![None; readings.len()];
    for ((i, path), result) in netns.into_iter().zip(net_results) {
        match result {
            Ok(interfaces) => networks[i] = Some(interfaces),
            Err(e) => {
                tracing::warn!(netns = %path.display(), error = %e, "reading the pod network")
            }
        }
    }
    Ok(readings
        .into_iter()
        .zip(networks)
        .map(|((pod, cs), network)| {
            let container_metrics = cs
                .iter()
                .map(|c| ContainerMetrics {
                    container_id: c.record.id.clone(),
                    metrics: container_metrics(
                        &Subject::container(&c.record, &pod.record),
                        c.timestamp,
                        c.cgroup.as_ref(),
                        c.writable_layer,
                        fs.as_ref(),
                    ),
                })
                .collect();
            PodSandboxMetrics {
                pod_sandbox_id: pod.record.id.clone(),
                metrics: pod_metrics(
                    &Subject::pod(&pod.record),
                    pod.timestamp,
                    pod.cgroup.as_ref(),
                    network.as_deref().map(|n| (net_timestamp, n)),
                ),
                container_metrics,
            }
        })
        .collect())
}

fn join_error(e: tokio::task::JoinError) -> Status {
    Status::internal(format!("reading pod metrics: {e}"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use crust_stats::{CpuStats, MemoryStats, PidsStats, SwapStats, Throttling};

    use super::*;

    const T: i64 = 1_700_000_000_123_456_789;

    /// A reading with every part the kernel can give.
    fn full_cgroup() -> CgroupStats {
        CgroupStats {
            cpu: Some(CpuStats {
                usage_ns: 7_900_000_000,
                user_ns: Some(5_000_000_000),
                system_ns: Some(2_999_999_999),
                throttling: Some(Throttling {
                    periods: 40,
                    throttled_periods: 3,
                    throttled_ns: 1_500_000_000,
                }),
            }),
            memory: Some(MemoryStats {
                usage_bytes: 10 << 20,
                working_set_bytes: 8 << 20,
                rss_bytes: 6 << 20,
                cache_bytes: 3 << 20,
                mapped_file_bytes: 1 << 20,
                inactive_file_bytes: 2 << 20,
                page_faults: 1234,
                major_page_faults: 5,
                limit_bytes: Some(64 << 20),
                available_bytes: Some(56 << 20),
                max_usage_bytes: Some(12 << 20),
                failcnt: Some(2),
                oom_kills: Some(1),
            }),
            swap: Some(SwapStats {
                usage_bytes: 4096,
                limit_bytes: None,
                available_bytes: None,
            }),
            pids: Some(PidsStats {
                current: 3,
                limit: Some(100),
            }),
        }
    }

    fn iface(name: &str, base: u64) -> InterfaceStats {
        InterfaceStats {
            name: name.into(),
            rx_bytes: base,
            rx_packets: base + 1,
            rx_errors: base + 2,
            rx_dropped: base + 3,
            tx_bytes: base + 4,
            tx_packets: base + 5,
            tx_errors: base + 6,
            tx_dropped: base + 7,
        }
    }

    fn subject(id: &str) -> Subject {
        Subject {
            id: id.into(),
            name: format!("k8s_{id}_pod_ns_uid_0"),
            image: "busybox".into(),
        }
    }

    const FS: FsCapacity = FsCapacity {
        bytes: 100 << 30,
        inodes: 1_000_000,
        inodes_free: 900_000,
    };

    /// A pod with everything: its cgroup, two interfaces and loopback, two containers.
    fn full_pod() -> PodSandboxMetrics {
        let interfaces = [iface("lo", 1), iface("eth0", 1000), iface("net1", 2000)];
        let usage = DirUsage {
            bytes: 8192,
            inodes: 4,
        };
        let cgroup = full_cgroup();
        PodSandboxMetrics {
            pod_sandbox_id: "pod".into(),
            metrics: pod_metrics(
                &subject("pod"),
                T,
                Some(&cgroup),
                Some((T + 1, &interfaces)),
            ),
            container_metrics: ["c1", "c2"]
                .iter()
                .map(|id| ContainerMetrics {
                    container_id: id.to_string(),
                    metrics: container_metrics(
                        &subject(id),
                        T,
                        Some(&cgroup),
                        Some((T + 2, usage)),
                        Some(&FS),
                    ),
                })
                .collect(),
        }
    }

    fn all_metrics(p: &PodSandboxMetrics) -> Vec<&Metric> {
        p.metrics
            .iter()
            .chain(p.container_metrics.iter().flat_map(|c| &c.metrics))
            .collect()
    }

    fn find<'a>(metrics: &'a [Metric], name: &str, extra: &[&str]) -> Option<&'a Metric> {
        metrics
            .iter()
            .find(|m| m.name == name && m.label_values[BASE_LABELS.len()..] == *extra)
    }

    fn value(metrics: &[Metric], name: &str, extra: &[&str]) -> u64 {
        find(metrics, name, extra)
            .unwrap_or_else(|| panic!("no {name} {extra:?} in {metrics:#?}"))
            .value
            .unwrap()
            .value
    }

    #[test]
    fn every_metric_matches_its_descriptor() {
        let descriptors: HashMap<String, MetricDescriptor> = descriptors()
            .into_iter()
            .map(|d| (d.name.clone(), d))
            .collect();
        assert_eq!(descriptors.len(), FAMILIES.len(), "names are unique");
        let kinds: HashMap<&str, MetricType> = FAMILIES.iter().map(|f| (f.name, f.kind)).collect();
        let pod = full_pod();
        let mut seen = HashSet::new();
        let mut series = HashSet::new();
        for m in all_metrics(&pod) {
            let d = descriptors
                .get(&m.name)
                .unwrap_or_else(|| panic!("{} has no descriptor", m.name));
            assert_eq!(
                m.label_values.len(),
                d.label_keys.len(),
                "{}: {:?} for {:?}",
                m.name,
                m.label_values,
                d.label_keys
            );
            assert_eq!(&d.label_keys[..3], BASE_LABELS);
            assert_eq!(m.metric_type, kinds[m.name.as_str()] as i32, "{}", m.name);
            assert!(m.value.is_some(), "{}", m.name);
            assert!(m.timestamp >= T, "{}", m.name);
            assert!(
                series.insert((m.name.clone(), m.label_values.clone())),
                "{} {:?} twice: Prometheus refuses the whole scrape",
                m.name,
                m.label_values
            );
            seen.insert(m.name.clone());
        }
        let never: Vec<_> = descriptors.keys().filter(|n| !seen.contains(*n)).collect();
        assert!(never.is_empty(), "described but never reported: {never:?}");
    }

    #[test]
    fn counters_and_gauges_as_cadvisor_has_them() {
        let kind = |name: &str| FAMILIES.iter().find(|f| f.name == name).unwrap().kind;
        for f in FAMILIES {
            // cAdvisor's one gauge named `_total`: the filesystem's inode count.
            if f.name.ends_with("_total") && f.name != "container_fs_inodes_total" {
                assert_eq!(f.kind, MetricType::Counter, "{}", f.name);
            }
        }
        assert_eq!(kind("container_memory_failcnt"), MetricType::Counter);
        assert_eq!(
            kind("container_memory_working_set_bytes"),
            MetricType::Gauge
        );
        assert_eq!(kind("container_spec_memory_limit_bytes"), MetricType::Gauge);
        assert_eq!(kind("container_threads"), MetricType::Gauge);
        assert_eq!(kind("container_last_seen"), MetricType::Gauge);
        assert_eq!(kind("container_fs_inodes_total"), MetricType::Gauge);
    }

    #[test]
    fn values_and_labels() {
        let pod = full_pod();
        let c = &pod.container_metrics[0].metrics;
        assert_eq!(value(c, "container_cpu_usage_seconds_total", &["total"]), 7);
        assert_eq!(value(c, "container_cpu_user_seconds_total", &[]), 5);
        assert_eq!(value(c, "container_cpu_system_seconds_total", &[]), 2);
        assert_eq!(
            value(c, "container_cpu_cfs_throttled_seconds_total", &[]),
            1
        );
        assert_eq!(value(c, "container_cpu_cfs_periods_total", &[]), 40);
        assert_eq!(value(c, "container_memory_working_set_bytes", &[]), 8 << 20);
        assert_eq!(value(c, "container_memory_rss", &[]), 6 << 20);
        assert_eq!(value(c, "container_memory_cache", &[]), 3 << 20);
        assert_eq!(
            value(
                c,
                "container_memory_failures_total",
                &["pgfault", "hierarchy"]
            ),
            1234
        );
        assert_eq!(
            value(
                c,
                "container_memory_failures_total",
                &["pgmajfault", "hierarchy"]
            ),
            5
        );
        assert_eq!(value(c, "container_spec_memory_limit_bytes", &[]), 64 << 20);
        assert_eq!(value(c, "container_threads", &[]), 3);
        assert_eq!(value(c, "container_threads_max", &[]), 100);
        assert_eq!(value(c, "container_memory_swap", &[]), 4096);
        assert_eq!(value(c, "container_fs_usage_bytes", &[]), 8192);
        assert_eq!(value(c, "container_fs_inodes_free", &[]), 900_000);
        assert_eq!(value(c, "container_last_seen", &[]), 1_700_000_000);
        let usage = find(c, "container_cpu_usage_seconds_total", &["total"]).unwrap();
        assert_eq!(
            usage.label_values,
            ["c1", "k8s_c1_pod_ns_uid_0", "busybox", "total"]
        );
        assert_eq!(usage.timestamp, T);
        assert_eq!(
            find(c, "container_fs_usage_bytes", &[]).unwrap().timestamp,
            T + 2
        );
        assert!(
            c.iter().all(|m| !m.name.starts_with("container_network_")),
            "network metrics are the pod's"
        );

        let p = &pod.metrics;
        assert_eq!(
            value(p, "container_network_receive_bytes_total", &["eth0"]),
            1000
        );
        assert_eq!(
            value(p, "container_network_receive_packets_total", &["eth0"]),
            1001
        );
        assert_eq!(
            value(p, "container_network_receive_errors_total", &["eth0"]),
            1002
        );
        assert_eq!(
            value(
                p,
                "container_network_receive_packets_dropped_total",
                &["eth0"]
            ),
            1003
        );
        assert_eq!(
            value(p, "container_network_transmit_bytes_total", &["net1"]),
            2004
        );
        assert_eq!(
            value(p, "container_network_transmit_packets_total", &["net1"]),
            2005
        );
        assert_eq!(
            value(p, "container_network_transmit_errors_total", &["net1"]),
            2006
        );
        assert_eq!(
            value(
                p,
                "container_network_transmit_packets_dropped_total",
                &["net1"]
            ),
            2007
        );
        assert!(find(p, "container_network_receive_bytes_total", &["lo"]).is_none());
        let rx = find(p, "container_network_receive_bytes_total", &["eth0"]).unwrap();
        assert_eq!(rx.timestamp, T + 1);
        assert_eq!(rx.metric_type, MetricType::Counter as i32);
        assert_eq!(value(p, "container_cpu_usage_seconds_total", &["total"]), 7);
        assert!(find(p, "container_fs_usage_bytes", &[]).is_none());
    }

    #[test]
    fn missing_parts_are_left_out_and_unlimited_is_zero() {
        let sparse = CgroupStats {
            cpu: Some(CpuStats {
                usage_ns: 999_999_999,
                ..CpuStats::default()
            }),
            memory: Some(MemoryStats::default()),
            swap: None,
            pids: Some(PidsStats {
                current: 1,
                limit: None,
            }),
        };
        let m = container_metrics(&subject("c"), T, Some(&sparse), None, None);
        assert_eq!(
            value(&m, "container_cpu_usage_seconds_total", &["total"]),
            0
        );
        for absent in [
            "container_cpu_user_seconds_total",
            "container_cpu_cfs_periods_total",
            "container_memory_max_usage_bytes",
            "container_memory_failcnt",
            "container_oom_events_total",
            "container_memory_swap",
            "container_fs_usage_bytes",
        ] {
            assert!(m.iter().all(|x| x.name != absent), "{absent} reported");
        }
        assert_eq!(value(&m, "container_spec_memory_limit_bytes", &[]), 0);
        assert_eq!(value(&m, "container_threads_max", &[]), 0);

        // Without a cgroup (not running any more, cgroup gone) only last_seen is left; a
        // writable layer without statvfs gives its usage alone.
        let usage = DirUsage {
            bytes: 4096,
            inodes: 1,
        };
        let m = container_metrics(&subject("c"), T, None, Some((T, usage)), None);
        let names: Vec<_> = m.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["container_fs_usage_bytes", "container_last_seen"]);
        let p = pod_metrics(&subject("p"), T, None, None);
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn names_tell_the_pod() {
        assert_eq!(
            k8s_name("web", "frontend", "default", "u-1", 2),
            "k8s_web_frontend_default_u-1_2"
        );
        assert_eq!(
            k8s_name("POD", "frontend", "default", "u-1", 0),
            "k8s_POD_frontend_default_u-1_0"
        );
    }

    #[test]
    fn descriptor_labels() {
        let d = descriptors();
        let keys = |name: &str| {
            d.iter()
                .find(|d| d.name == name)
                .unwrap()
                .label_keys
                .clone()
        };
        assert_eq!(
            keys("container_cpu_usage_seconds_total"),
            ["id", "name", "image", "cpu"]
        );
        assert_eq!(
            keys("container_memory_failures_total"),
            ["id", "name", "image", "failure_type", "scope"]
        );
        assert_eq!(
            keys("container_network_transmit_errors_total"),
            ["id", "name", "image", "interface"]
        );
        assert_eq!(
            keys("container_memory_working_set_bytes"),
            ["id", "name", "image"]
        );
        assert!(d.iter().all(|d| !d.help.is_empty()));
    }

    #[test]
    fn statvfs_of_a_real_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let fs = fs_capacity(dir.path()).expect("statvfs");
        assert!(fs.bytes > 0, "{fs:?}");
        assert!(fs.inodes_free <= fs.inodes, "{fs:?}");
        assert_eq!(fs_capacity(&dir.path().join("gone")), None);
    }
}
