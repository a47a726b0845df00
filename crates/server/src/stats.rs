//! CRI stats: what ContainerStats, ListContainerStats, PodSandboxStats and ListPodSandboxStats
//! answer. Where the figures come from is in `container/stats.rs` (a container's cgroup and
//! writable layer) and `sandbox/stats.rs` (a pod's cgroup and network namespace); the
//! `crust-stats` crate reads the kernel's files. Here: reading many at once off the async
//! threads, the CPU rate from the previous sample, and the CRI messages.
//!
//! `usage_nano_cores` is computed as containerd does: (usage now - usage at the previous
//! call) / (time between the two readings), kept per container and per pod; the first call
//! has no previous sample and leaves it unset. A counter that went backwards (a container
//! restarted under the same ID: never here) or no time between the samples leaves it unset
//! too.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crust_stats::{CgroupStats, CpuStats, Detail, MemoryStats, PidsStats, SwapStats};
use crust_store::{ContainerRecord, PodRecord};
use k8s_cri::v1::{
    ContainerAttributes, ContainerMetadata, ContainerStats, ContainerStatsFilter, CpuUsage,
    FilesystemIdentifier, FilesystemUsage, LinuxPodSandboxStats, MemoryUsage, PodSandboxAttributes,
    PodSandboxMetadata, PodSandboxStats, PodSandboxStatsFilter, ProcessUsage, SwapUsage,
    UInt64Value,
};
use tonic::Status;

use crate::container::{Container, ContainerReading, Containers};
use crate::sandbox::{netns_path, network_usage, Pod, PodReading, Pods};
use crate::service::now_nanos;

/// Samples older than this are dropped (their container or pod is gone, or nobody asks).
const SAMPLE_TTL_NS: i64 = 10 * 60 * 1_000_000_000;

#[derive(Debug, Clone, Copy)]
struct Sample {
    usage_ns: u64,
    timestamp: i64,
}

/// The previous CPU sample of each container and pod, for `usage_nano_cores`, and the
/// readings in flight.
#[derive(Debug, Default)]
pub struct Stats {
    samples: Mutex<HashMap<String, Sample>>,
    containers_flight: tokio::sync::Mutex<Option<Flight<Vec<ContainerStats>>>>,
    pods_flight: tokio::sync::Mutex<Option<Flight<Vec<PodSandboxStats>>>>,
}

/// The last reading of one kind: when it started, of which objects, and what it gave.
#[derive(Debug)]
struct Flight<T> {
    started: Instant,
    ids: Vec<String>,
    result: T,
}

/// Readings of one kind go one at a time, and callers that were waiting for the lock while a
/// reading of the same objects *started after they arrived* take that reading instead of
/// making another: a burst of concurrent List*Stats calls (kubelet, a dashboard, metrics
/// scrapers at once) costs about two readings, not one each (1,000 concurrent ones over 110
/// pods used to start thousands of threads and take crustd's RSS to ~1 GB). No caller gets
/// figures older than its request.
/// The records are snapshot (`read` called) only once the lock is held, so that waiting
/// callers hold no copies of them.
async fn coalesced<T: Clone, F: std::future::Future<Output = Result<T, Status>>>(
    flight: &tokio::sync::Mutex<Option<Flight<T>>>,
    ids: Vec<String>,
    read: impl FnOnce() -> F,
) -> Result<T, Status> {
    let arrived = Instant::now();
    let mut slot = flight.lock().await;
    if let Some(f) = slot.as_ref() {
        if f.started >= arrived && f.ids == ids {
            return Ok(f.result.clone());
        }
    }
    let started = Instant::now();
    let result = read().await?;
    *slot = Some(Flight {
        started,
        ids,
        result: result.clone(),
    });
    Ok(result)
}

impl Stats {
    fn samples(&self) -> std::sync::MutexGuard<'_, HashMap<String, Sample>> {
        self.samples.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The CPU rate since the previous sample of `key` (ns of CPU per s), recording this one;
    /// `None` for the first sample, no time elapsed, or a counter that went backwards.
    pub fn usage_nano_cores(&self, key: &str, usage_ns: u64, timestamp: i64) -> Option<u64> {
        let now = Sample {
            usage_ns,
            timestamp,
        };
        let previous = self.samples().insert(key.to_string(), now)?;
        let elapsed = timestamp - previous.timestamp;
        if elapsed <= 0 || usage_ns < previous.usage_ns {
            return None;
        }
        let per_second = (usage_ns - previous.usage_ns) as f64 / elapsed as f64 * 1e9;
        Some(per_second as u64)
    }

    /// Drops samples not renewed within [`SAMPLE_TTL_NS`].
    fn prune(&self, now: i64) {
        self.samples()
            .retain(|_, s| now - s.timestamp < SAMPLE_TTL_NS);
    }

    /// Stats of `selected` (containers), in the same order.
    pub async fn containers(
        &self,
        containers: &Arc<Containers>,
        selected: Vec<Arc<Container>>,
    ) -> Result<Vec<ContainerStats>, Status> {
        let ids = selected.iter().map(|c| c.id()).collect();
        coalesced(&self.containers_flight, ids, || {
            let records = selected.iter().map(|c| c.snapshot()).collect();
            self.collect_containers(containers, records)
        })
        .await
    }

    async fn collect_containers(
        &self,
        containers: &Arc<Containers>,
        records: Vec<ContainerRecord>,
    ) -> Result<Vec<ContainerStats>, Status> {
        self.prune(now_nanos());
        let mountpoint = containers.writable_layers_root().display().to_string();
        let readings = read_containers(containers, records).await?;
        Ok(readings
            .into_iter()
            .map(|r| self.container_stats(r, &mountpoint))
            .collect())
    }

    /// Stats of `selected` (pods) with their containers', in the same order.
    pub async fn pods(
        &self,
        pods: &Arc<Pods>,
        containers: &Arc<Containers>,
        selected: Vec<Arc<Pod>>,
    ) -> Result<Vec<PodSandboxStats>, Status> {
        let ids = selected.iter().map(|p| p.id()).collect();
        coalesced(&self.pods_flight, ids, || {
            let records = selected.iter().map(|p| p.snapshot()).collect();
            self.collect_pods(pods, containers, records)
        })
        .await
    }

    async fn collect_pods(
        &self,
        pods: &Arc<Pods>,
        containers: &Arc<Containers>,
        records: Vec<PodRecord>,
    ) -> Result<Vec<PodSandboxStats>, Status> {
        self.prune(now_nanos());
        let mountpoint = containers.writable_layers_root().display().to_string();
        // Each container's record once (a snapshot clones it), grouped by pod.
        let wanted: HashMap<&str, usize> = records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        let mut pod_of = Vec::new();
        let mut container_records = Vec::new();
        for c in containers.all() {
            let r = c.record.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(&i) = wanted.get(r.pod_id.as_str()) {
                pod_of.push(i);
                container_records.push(r.clone());
            }
        }
        // The network namespaces are read on a thread of their own (it joins each one), the
        // cgroups and writable layers meanwhile.
        let netns: Vec<(usize, std::path::PathBuf)> = records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| netns_path(r).map(|p| (i, p)))
            .collect();
        let network = tokio::task::spawn_blocking(move || {
            let timestamp = now_nanos();
            let paths: Vec<_> = netns.iter().map(|(_, p)| p.clone()).collect();
            let results = crust_stats::netns_net_dev(&paths);
            (timestamp, netns, results)
        });
        let pods_for_read = pods.clone();
        let pod_readings = tokio::task::spawn_blocking(move || {
            par_map(records, |r| pods_for_read.read_stats_detail(r, Detail::Cri))
        });
        let container_readings = read_containers(containers, container_records);
        let (network, pod_readings, container_readings) =
            tokio::join!(network, pod_readings, container_readings);
        let (net_timestamp, netns, net_results) = network.map_err(join_error)?;
        let pod_readings = pod_readings.map_err(join_error)?;
        let container_readings = container_readings?;

        let mut per_pod: Vec<Vec<ContainerReading>> = vec![Vec::new(); pod_readings.len()];
        for (reading, i) in container_readings.into_iter().zip(pod_of) {
            per_pod[i].push(reading);
        }
        let mut networks: Vec<Option<_>> = vec![None; pod_readings.len()];
        for ((i, path), result) in netns.into_iter().zip(net_results) {
            match result {
                Ok(interfaces) => networks[i] = Some(network_usage(interfaces, net_timestamp)),
                Err(e) => {
                    tracing::warn!(netns = %path.display(), error = %e, "reading the pod network")
                }
            }
        }
        Ok(pod_readings
            .into_iter()
            .zip(per_pod)
            .zip(networks)
            .map(|((pod, containers), network)| {
                self.pod_stats(pod, containers, network, &mountpoint)
            })
            .collect())
    }

    fn container_stats(&self, reading: ContainerReading, mountpoint: &str) -> ContainerStats {
        let ContainerReading {
            record: r,
            timestamp,
            cgroup,
            writable_layer,
        } = reading;
        let cgroup = cgroup.unwrap_or_default();
        ContainerStats {
            cpu: cgroup.cpu.as_ref().map(|cpu| {
                let rate =
                    self.usage_nano_cores(&format!("container/{}", r.id), cpu.usage_ns, timestamp);
                cpu_usage(cpu, timestamp, rate)
            }),
            memory: cgroup.memory.as_ref().map(|m| memory_usage(m, timestamp)),
            swap: cgroup.swap.as_ref().map(|s| swap_usage(s, timestamp)),
            writable_layer: writable_layer.map(|(timestamp, usage)| FilesystemUsage {
                timestamp,
                fs_id: Some(FilesystemIdentifier {
                    mountpoint: mountpoint.to_string(),
                }),
                used_bytes: value(usage.bytes),
                inodes_used: value(usage.inodes),
            }),
            attributes: Some(ContainerAttributes {
                metadata: Some(ContainerMetadata {
                    name: r.name.clone(),
                    attempt: r.attempt,
                }),
                labels: r.labels.into_iter().collect(),
                annotations: r.annotations.into_iter().collect(),
                id: r.id,
            }),
        }
    }

    fn pod_stats(
        &self,
        pod: PodReading,
        containers: Vec<ContainerReading>,
        network: Option<k8s_cri::v1::NetworkUsage>,
        mountpoint: &str,
    ) -> PodSandboxStats {
        let PodReading {
            record: r,
            timestamp,
            cgroup,
        } = pod;
        // Without a pod cgroup of its own, the pod is what its containers are.
        let cgroup =
            cgroup.unwrap_or_else(|| sum(containers.iter().filter_map(|c| c.cgroup.as_ref())));
        let cpu = cgroup.cpu.as_ref().map(|cpu| {
            let rate = self.usage_nano_cores(&format!("pod/{}", r.id), cpu.usage_ns, timestamp);
            cpu_usage(cpu, timestamp, rate)
        });
        PodSandboxStats {
            attributes: Some(PodSandboxAttributes {
                metadata: Some(PodSandboxMetadata {
                    name: r.name.clone(),
                    uid: r.uid.clone(),
                    namespace: r.namespace.clone(),
                    attempt: r.attempt,
                }),
                labels: r.labels.into_iter().collect(),
                annotations: r.annotations.into_iter().collect(),
                id: r.id,
            }),
            linux: Some(LinuxPodSandboxStats {
                cpu,
                memory: cgroup.memory.as_ref().map(|m| memory_usage(m, timestamp)),
                network,
                process: cgroup.pids.as_ref().map(|p| ProcessUsage {
                    timestamp,
                    process_count: value(p.current),
                }),
                containers: containers
                    .into_iter()
                    .map(|c| self.container_stats(c, mountpoint))
                    .collect(),
            }),
            windows: None,
        }
    }
}

/// Reads the containers off the async threads.
async fn read_containers(
    containers: &Arc<Containers>,
    records: Vec<ContainerRecord>,
) -> Result<Vec<ContainerReading>, Status> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let containers = containers.clone();
    tokio::task::spawn_blocking(move || {
        par_map(records, |r| containers.read_stats_detail(r, Detail::Cri))
    })
    .await
    .map_err(join_error)
}

/// Below this many items one thread reads them all: more would cost more than they save.
const PARALLEL_FROM: usize = 32;

/// `items.map(f)` in order, on up to 4 scoped threads (as many as there are CPUs) when there
/// are many: a reading waits on the kernel's cgroup files, and 110 pods' worth is milliseconds.
fn par_map<T: Send, U: Send>(items: Vec<T>, f: impl Fn(T) -> U + Sync) -> Vec<U> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    if threads < 2 || items.len() < PARALLEL_FROM {
        return items.into_iter().map(f).collect();
    }
    let per_thread = items.len().div_ceil(threads);
    let mut chunks: Vec<Vec<T>> = Vec::with_capacity(threads);
    let mut rest = items.into_iter();
    loop {
        let chunk: Vec<T> = rest.by_ref().take(per_thread).collect();
        if chunk.is_empty() {
            break;
        }
        chunks.push(chunk);
    }
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| s.spawn(move || chunk.into_iter().map(f).collect::<Vec<U>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

fn join_error(e: tokio::task::JoinError) -> Status {
    Status::internal(format!("reading stats: {e}"))
}

/// ListContainerStats' filter: ID and pod ID (full or a prefix), every label of the selector.
pub fn container_filter_matches(r: &ContainerRecord, f: &ContainerStatsFilter) -> bool {
    r.pod_id.starts_with(&f.pod_sandbox_id) && selected(&r.id, &r.labels, &f.id, &f.label_selector)
}

/// ListPodSandboxStats' filter: ID (full or a prefix), every label of the selector.
pub fn pod_filter_matches(r: &PodRecord, f: &PodSandboxStatsFilter) -> bool {
    selected(&r.id, &r.labels, &f.id, &f.label_selector)
}

fn selected(
    id: &str,
    labels: &BTreeMap<String, String>,
    id_prefix: &str,
    selector: &HashMap<String, String>,
) -> bool {
    id.starts_with(id_prefix) && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn value(value: u64) -> Option<UInt64Value> {
    Some(UInt64Value { value })
}

fn cpu_usage(cpu: &CpuStats, timestamp: i64, nano_cores: Option<u64>) -> CpuUsage {
    CpuUsage {
        timestamp,
        usage_core_nano_seconds: value(cpu.usage_ns),
        usage_nano_cores: nano_cores.map(|value| UInt64Value { value }),
    }
}

fn memory_usage(m: &MemoryStats, timestamp: i64) -> MemoryUsage {
    MemoryUsage {
        timestamp,
        working_set_bytes: value(m.working_set_bytes),
        available_bytes: m.available_bytes.and_then(value),
        usage_bytes: value(m.usage_bytes),
        rss_bytes: value(m.rss_bytes),
        page_faults: value(m.page_faults),
        major_page_faults: value(m.major_page_faults),
    }
}

fn swap_usage(s: &SwapStats, timestamp: i64) -> SwapUsage {
    SwapUsage {
        timestamp,
        swap_available_bytes: s.available_bytes.and_then(value),
        swap_usage_bytes: value(s.usage_bytes),
    }
}

/// The sum of several cgroups' counters (a pod without a cgroup of its own): limits do not
/// add up, so the sum has none.
fn sum<'a>(parts: impl Iterator<Item = &'a CgroupStats>) -> CgroupStats {
    let add = |a: Option<u64>, b: Option<u64>| Some(a? + b?);
    let mut total = CgroupStats::default();
    for part in parts {
        if let Some(c) = &part.cpu {
            let t = total.cpu.get_or_insert_with(|| CpuStats {
                user_ns: Some(0),
                system_ns: Some(0),
                ..CpuStats::default()
            });
            t.usage_ns += c.usage_ns;
            t.user_ns = add(t.user_ns, c.user_ns);
            t.system_ns = add(t.system_ns, c.system_ns);
        }
        if let Some(m) = &part.memory {
            let t = total.memory.get_or_insert_with(MemoryStats::default);
            t.usage_bytes += m.usage_bytes;
            t.working_set_bytes += m.working_set_bytes;
            t.rss_bytes += m.rss_bytes;
            t.cache_bytes += m.cache_bytes;
            t.mapped_file_bytes += m.mapped_file_bytes;
            t.inactive_file_bytes += m.inactive_file_bytes;
            t.page_faults += m.page_faults;
            t.major_page_faults += m.major_page_faults;
        }
        if let Some(s) = &part.swap {
            total
                .swap
                .get_or_insert_with(SwapStats::default)
                .usage_bytes += s.usage_bytes;
        }
        if let Some(p) = &part.pids {
            total.pids.get_or_insert_with(PidsStats::default).current += p.current;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;
    const NS: u64 = 1_000_000_000;

    #[test]
    fn nano_cores_from_the_previous_sample() {
        let stats = Stats::default();
        assert_eq!(
            stats.usage_nano_cores("c", 1_000, 10 * S),
            None,
            "first sample"
        );
        // Half a core over two seconds.
        assert_eq!(
            stats.usage_nano_cores("c", 1_000 + NS, 12 * S),
            Some(500_000_000)
        );
        assert_eq!(
            stats.usage_nano_cores("c", 1_000 + NS, 12 * S),
            None,
            "no time elapsed"
        );
        assert_eq!(
            stats.usage_nano_cores("c", 10, 13 * S),
            None,
            "counter went back"
        );
        assert_eq!(
            stats.usage_nano_cores("c", 10 + 2 * NS, 14 * S),
            Some(2 * NS)
        );
        assert_eq!(stats.usage_nano_cores("other", 5, 14 * S), None, "per key");
        stats.prune(14 * S + SAMPLE_TTL_NS);
        assert!(stats.samples().is_empty());
    }

    #[test]
    fn filters() {
        let labels: BTreeMap<String, String> = [("app", "web"), ("tier", "front")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let selector = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let matches = |prefix: &str, pairs: &[(&str, &str)]| {
            selected("abc123", &labels, prefix, &selector(pairs))
        };
        assert!(matches("", &[]));
        assert!(matches("abc", &[("app", "web")]));
        assert!(matches("abc123", &[("app", "web"), ("tier", "front")]));
        assert!(!matches("abd", &[]));
        assert!(!matches("abc1234", &[]));
        assert!(!matches("", &[("app", "db")]));
        assert!(!matches("", &[("app", "web"), ("missing", "x")]));
    }

    #[test]
    fn par_map_keeps_the_order() {
        for n in [0, 1, PARALLEL_FROM - 1, PARALLEL_FROM, 111] {
            let items: Vec<usize> = (0..n).collect();
            let out = par_map(items, |i| i * 2);
            assert_eq!(out, (0..n).map(|i| i * 2).collect::<Vec<_>>());
        }
    }

    #[test]
    fn cri_messages() {
        let m = MemoryStats {
            usage_bytes: 100,
            working_set_bytes: 80,
            rss_bytes: 60,
            page_faults: 7,
            major_page_faults: 1,
            ..MemoryStats::default()
        };
        let cri = memory_usage(&m, 5);
        assert_eq!(cri.timestamp, 5);
        assert_eq!(cri.working_set_bytes.unwrap().value, 80);
        assert_eq!(cri.usage_bytes.unwrap().value, 100);
        assert_eq!(cri.rss_bytes.unwrap().value, 60);
        assert_eq!(
            (
                cri.page_faults.unwrap().value,
                cri.major_page_faults.unwrap().value
            ),
            (7, 1)
        );
        assert_eq!(cri.available_bytes, None, "no limit, no available");
        let limited = MemoryStats {
            available_bytes: Some(20),
            ..m
        };
        assert_eq!(memory_usage(&limited, 5).available_bytes.unwrap().value, 20);
        let cpu = cpu_usage(
            &CpuStats {
                usage_ns: 9,
                ..CpuStats::default()
            },
            5,
            None,
        );
        assert_eq!(cpu.usage_core_nano_seconds.unwrap().value, 9);
        assert_eq!(cpu.usage_nano_cores, None);
        let swap = swap_usage(
            &SwapStats {
                usage_bytes: 3,
                limit_bytes: Some(10),
                available_bytes: Some(7),
            },
            5,
        );
        assert_eq!(swap.swap_usage_bytes.unwrap().value, 3);
        assert_eq!(swap.swap_available_bytes.unwrap().value, 7);
    }

    #[test]
    fn sums_of_containers() {
        let part = |cpu: u64, mem: u64, pids: u64| CgroupStats {
            cpu: Some(CpuStats {
                usage_ns: cpu,
                user_ns: Some(cpu / 2),
                system_ns: None,
                throttling: None,
            }),
            memory: Some(MemoryStats {
                usage_bytes: mem,
                working_set_bytes: mem / 2,
                limit_bytes: Some(1 << 30),
                available_bytes: Some(1 << 29),
                ..MemoryStats::default()
            }),
            swap: None,
            pids: Some(PidsStats {
                current: pids,
                limit: None,
            }),
        };
        let parts = [part(10, 100, 1), part(30, 300, 2)];
        let total = sum(parts.iter());
        let cpu = total.cpu.unwrap();
        assert_eq!(
            (cpu.usage_ns, cpu.user_ns, cpu.system_ns),
            (40, Some(20), None)
        );
        let m = total.memory.unwrap();
        assert_eq!((m.usage_bytes, m.working_set_bytes), (400, 200));
        assert_eq!((m.limit_bytes, m.available_bytes), (None, None));
        assert_eq!(total.pids.unwrap().current, 3);
        assert_eq!(total.swap, None);
        assert_eq!(sum([].iter()), CgroupStats::default());
    }
}
