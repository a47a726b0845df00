//! crustd's own Prometheus metrics: RPC counts and latencies, image pulls, pods, containers,
//! monitors and the process itself, served as text exposition format 0.0.4 on `GET /metrics`
//! when `[metrics] address` is set.
//!
//! The hot path (one RPC) is two `Instant::now()`, a lookup in a map that never changes after
//! start, and a few relaxed atomic adds: no lock. Gauges are computed at scrape time.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use tonic::Code;

use crate::service::State;

pub const RUNTIME_SERVICE: &str = "runtime.v1.RuntimeService";
pub const IMAGE_SERVICE: &str = "runtime.v1.ImageService";

/// Every RPC of the CRI v1 services, so that counting one never takes a lock.
const RUNTIME_METHODS: &[&str] = &[
    "Version",
    "RunPodSandbox",
    "StopPodSandbox",
    "RemovePodSandbox",
    "PodSandboxStatus",
    "ListPodSandbox",
    "CreateContainer",
    "StartContainer",
    "StopContainer",
    "RemoveContainer",
    "ListContainers",
    "ContainerStatus",
    "UpdateContainerResources",
    "ReopenContainerLog",
    "ExecSync",
    "Exec",
    "Attach",
    "PortForward",
    "ContainerStats",
    "ListContainerStats",
    "PodSandboxStats",
    "ListPodSandboxStats",
    "UpdateRuntimeConfig",
    "Status",
    "CheckpointContainer",
    "GetContainerEvents",
    "ListMetricDescriptors",
    "ListPodSandboxMetrics",
    "RuntimeConfig",
];
const IMAGE_METHODS: &[&str] = &[
    "ListImages",
    "ImageStatus",
    "PullImage",
    "RemoveImage",
    "ImageFsInfo",
];

/// gRPC status codes by number, spelled as grpc-go (and so grpc-prometheus) spells them.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// RPC latency buckets (seconds): 100 µs to 60 s.
pub const RPC_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];
/// Image pull buckets (seconds): 100 ms to 10 min.
pub const PULL_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Where crustd tells others the address it bound (port 0 picks a free one).
pub const ADDRESS_FILE: &str = "metrics.addr";

/// A histogram of durations: per-bucket counts (made cumulative when encoded), so one
/// observation is one atomic add plus the sum's.
pub struct Histogram {
    bounds: &'static [f64],
    bound_nanos: Box<[u64]>,
    /// `bounds.len() + 1` counts; the last is above every bound.
    counts: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            bound_nanos: bounds.iter().map(|b| (b * 1e9) as u64).collect(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = self.bound_nanos.partition_point(|b| *b < nanos);
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// Cumulative counts per bound, the total count (`+Inf`, always equal to the sum of the
    /// buckets read) and the sum in seconds.
    fn snapshot(&self) -> (Vec<u64>, u64, f64) {
        let mut cumulative = Vec::with_capacity(self.bounds.len());
        let mut total = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            total += c.load(Relaxed);
            if i < self.bounds.len() {
                cumulative.push(total);
            }
        }
        (cumulative, total, self.sum_nanos.load(Relaxed) as f64 / 1e9)
    }
}

/// Counts and latencies of one RPC.
struct RpcStats {
    service: &'static str,
    method: &'static str,
    codes: [AtomicU64; 17],
    duration: Histogram,
}

impl RpcStats {
    fn new(service: &'static str, method: &'static str) -> RpcStats {
        RpcStats {
            service,
            method,
            codes: Default::default(),
            duration: Histogram::new(RPC_BUCKETS),
        }
    }

    fn record(&self, code: Code, elapsed: Duration) {
        let i = (code as usize).min(self.codes.len() - 1);
        self.codes[i].fetch_add(1, Relaxed);
        self.duration.observe(elapsed);
    }
}

/// crustd's metrics registry.
pub struct Metrics {
    rpcs: HashMap<&'static str, RpcStats>,
    /// RPCs missing from the tables above (a newer CRI): counted, behind a lock.
    other_rpcs: Mutex<Vec<Arc<RpcStats>>>,
    pulls_succeeded: AtomicU64,
    pulls_failed: AtomicU64,
    pull_bytes: AtomicU64,
    pull_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let rpcs = RUNTIME_METHODS
            .iter()
            .map(|m| (*m, RpcStats::new(RUNTIME_SERVICE, m)))
            .chain(
                IMAGE_METHODS
                    .iter()
                    .map(|m| (*m, RpcStats::new(IMAGE_SERVICE, m))),
            )
            .collect();
        Metrics {
            rpcs,
            other_rpcs: Mutex::new(Vec::new()),
            pulls_succeeded: AtomicU64::new(0),
            pulls_failed: AtomicU64::new(0),
            pull_bytes: AtomicU64::new(0),
            pull_duration: Histogram::new(PULL_BUCKETS),
        }
    }

    /// Counts one finished RPC.
    pub fn rpc(&self, service: &'static str, method: &'static str, code: Code, elapsed: Duration) {
        if let Some(stats) = self.rpcs.get(method).filter(|s| s.service == service) {
            return stats.record(code, elapsed);
        }
        let stats = {
            let mut others = self.other_rpcs.lock().unwrap_or_else(|e| e.into_inner());
            match others
                .iter()
                .find(|s| s.method == method && s.service == service)
            {
                Some(s) => s.clone(),
                None => {
                    let s = Arc::new(RpcStats::new(service, method));
                    others.push(s.clone());
                    s
                }
            }
        };
        stats.record(code, elapsed);
    }

    /// Counts one PullImage that reached the image store: `Ok(size)` with the image's size
    /// (config plus compressed layers, as ImageStatus reports it), or a failure.
    pub fn image_pull(&self, result: Result<u64, ()>, elapsed: Duration) {
        match result {
            Ok(bytes) => {
                self.pulls_succeeded.fetch_add(1, Relaxed);
                self.pull_bytes.fetch_add(bytes, Relaxed);
            }
            Err(()) => {
                self.pulls_failed.fetch_add(1, Relaxed);
            }
        }
        self.pull_duration.observe(elapsed);
    }

    /// The counters and histograms this registry holds, in exposition format.
    pub fn encode_counters(&self, enc: &mut Encoder) {
        let others: Vec<Arc<RpcStats>> = self
            .other_rpcs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut rpcs: Vec<&RpcStats> = self
            .rpcs
            .values()
            .chain(others.iter().map(|s| &**s))
            .collect();
        rpcs.sort_by_key(|s| (s.service, s.method));

        enc.family(
            "crust_grpc_requests_total",
            "counter",
            "CRI RPCs handled, by service, method and gRPC status code.",
        );
        for s in &rpcs {
            for (code, n) in s.codes.iter().enumerate() {
                let n = n.load(Relaxed);
                if n > 0 {
                    enc.sample(
                        "crust_grpc_requests_total",
                        &[
                            ("service", s.service),
                            ("method", s.method),
                            ("code", CODE_NAMES[code]),
                        ],
                        n,
                    );
                }
            }
        }
        enc.family(
            "crust_grpc_request_duration_seconds",
            "histogram",
            "Time from the start of a CRI RPC's handler to its answer.",
        );
        for s in &rpcs {
            if s.duration.snapshot().1 > 0 {
                enc.histogram(
                    "crust_grpc_request_duration_seconds",
                    &[("method", s.method)],
                    &s.duration,
                );
            }
        }

        enc.family(
            "crust_image_pulls_total",
            "counter",
            "PullImage requests that reached the image store, by result.",
        );
        enc.sample(
            "crust_image_pulls_total",
            &[("result", "success")],
            self.pulls_succeeded.load(Relaxed),
        );
        enc.sample(
            "crust_image_pulls_total",
            &[("result", "failure")],
            self.pulls_failed.load(Relaxed),
        );
        enc.family(
            "crust_image_pull_bytes_total",
            "counter",
            "Sizes of the images pulled successfully (config plus compressed layers).",
        );
        enc.sample(
            "crust_image_pull_bytes_total",
            &[],
            self.pull_bytes.load(Relaxed),
        );
        enc.family(
            "crust_image_pull_duration_seconds",
            "histogram",
            "Time a PullImage spent in the image store, successful or not.",
        );
        enc.histogram(
            "crust_image_pull_duration_seconds",
            &[],
            &self.pull_duration,
        );
    }
}

/// Counts an RPC when dropped: with the code it finished with, or `Canceled` when its future
/// was dropped first (the client went away).
pub(crate) struct RpcTimer<'a> {
    metrics: &'a Metrics,
    service: &'static str,
    method: &'static str,
    start: Instant,
    code: Code,
}

impl<'a> RpcTimer<'a> {
    pub(crate) fn start(
        metrics: &'a Metrics,
        service: &'static str,
        method: &'static str,
    ) -> RpcTimer<'a> {
        RpcTimer {
            metrics,
            service,
            method,
            start: Instant::now(),
            code: Code::Cancelled,
        }
    }

    pub(crate) fn finish<T>(mut self, result: &Result<T, tonic::Status>) {
        self.code = match result {
            Ok(_) => Code::Ok,
            Err(s) => s.code(),
        };
    }
}

impl Drop for RpcTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .rpc(self.service, self.method, self.code, self.start.elapsed());
    }
}

/// Writes the text exposition format (version 0.0.4).
#[derive(Default)]
pub struct Encoder {
    out: String,
}

impl Encoder {
    pub fn finish(self) -> String {
        self.out
    }

    /// `# HELP` and `# TYPE` of a family; its samples follow.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Value) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        value.write(&mut self.out);
        self.out.push('\n');
    }

    /// `_bucket` lines (cumulative, then `le="+Inf"`), `_sum` and `_count`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let (cumulative, count, sum) = h.snapshot();
        let bucket = format!("{name}_bucket");
        for (bound, n) in h.bounds.iter().zip(cumulative) {
            let le = format_float(*bound);
            let mut l = labels.to_vec();
            l.push(("le", &le));
            self.sample(&bucket, &l, n);
        }
        let mut l = labels.to_vec();
        l.push(("le", "+Inf"));
        self.sample(&bucket, &l, count);
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, count);
    }
}

/// A sample value.
pub trait Value {
    fn write(&self, out: &mut String);
}

impl Value for u64 {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Value for usize {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Value for f64 {
    fn write(&self, out: &mut String) {
        out.push_str(&format_float(*self));
    }
}

/// Go's float syntax as Prometheus reads it: `+Inf`, `-Inf`, `NaN`, else the shortest decimal
/// that round-trips (Rust's Display never uses an exponent, which Go's ParseFloat accepts).
fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Everything crustd exposes: the registry's counters, then gauges read now.
pub fn encode(state: &State) -> String {
    let mut enc = Encoder::default();
    state.metrics.encode_counters(&mut enc);

    let mut pods = [("ready", 0usize), ("notready", 0)];
    let mut monitors = 0usize;
    for pod in state.pods.all() {
        let r = pod.snapshot();
        let i = usize::from(r.state != crust_store::PodState::Ready);
        pods[i].1 += 1;
        if monitor_alive(r.monitor_pid, &r.id) {
            monitors += 1;
        }
    }
    enc.family(
        "crust_pods",
        "gauge",
        "Pod sandboxes crustd knows, by state (ready, notready).",
    );
    for (s, n) in pods {
        enc.sample("crust_pods", &[("state", s)], n);
    }

    use crust_store::ContainerState as C;
    let mut containers = [
        ("created", 0usize),
        ("running", 0),
        ("exited", 0),
        ("unknown", 0),
    ];
    for c in state.containers.all() {
        let i = match c.snapshot().state {
            C::Created => 0,
            C::Running => 1,
            C::Exited => 2,
            C::Unknown => 3,
        };
        containers[i].1 += 1;
    }
    enc.family(
        "crust_containers",
        "gauge",
        "Containers crustd knows, by state (created, running, exited, unknown).",
    );
    for (s, n) in containers {
        enc.sample("crust_containers", &[("state", s)], n);
    }

    enc.family(
        "crust_monitors",
        "gauge",
        "Pod monitors (crust-monitor processes) alive for the pods crustd knows.",
    );
    enc.sample("crust_monitors", &[], monitors);

    process_metrics(&mut enc);
    enc.finish()
}

/// A live (not zombie) process whose command line is the monitor of pod `id`: checked by its
/// `--pod-id` argument, so a reused pid does not count.
fn monitor_alive(pid: i32, id: &str) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let mut args = cmdline.split(|b| *b == 0);
    while let Some(arg) = args.next() {
        if arg == b"--pod-id" {
            return args.next() == Some(id.as_bytes());
        }
    }
    false
}

/// The standard `process_*` metrics, from /proc.
fn process_metrics(enc: &mut Encoder) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    if let Some(kib) = rss_kib {
        enc.family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        enc.sample("process_resident_memory_bytes", &[], kib * 1024);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        enc.family(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
        );
        enc.sample("process_open_fds", &[], fds.count());
    }
    // /proc/self/stat: fields after the parenthesised command name; utime, stime and
    // starttime are fields 14, 15 and 22 (1-based), in clock ticks.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        enc.family(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
        );
        enc.sample(
            "process_cpu_seconds_total",
            &[],
            (utime + stime) as f64 / ticks,
        );
    }
    let boot_time = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<u64>().ok())
    });
    if let (Some(start), Some(boot)) = (field(22), boot_time) {
        enc.family(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
        );
        enc.sample(
            "process_start_time_seconds",
            &[],
            boot as f64 + start as f64 / ticks,
        );
    }
}

/// Binds the metrics server's address; `None` when metrics are off (an empty address), and
/// then a stale `<runroot>/metrics.addr` is removed.
pub async fn bind(
    address: &str,
    runroot: &Path,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    use anyhow::Context;
    if address.is_empty() {
        let _ = std::fs::remove_file(runroot.join(ADDRESS_FILE));
        return Ok(None);
    }
    let addr: SocketAddr = address
        .parse()
        .with_context(|| format!("metrics.address {address:?}"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics server on {addr}"))?;
    Ok(Some(listener))
}

/// Serves `GET /metrics` on `listener` for as long as `state` lives, and records the bound
/// address in `<runroot>/metrics.addr` (written whole, then renamed into place).
pub fn serve(listener: tokio::net::TcpListener, state: &Arc<State>) -> anyhow::Result<SocketAddr> {
    use anyhow::Context;
    let addr = listener.local_addr().context("metrics server address")?;
    let file = state.runroot.join(ADDRESS_FILE);
    let tmp = state.runroot.join(format!(".{ADDRESS_FILE}.tmp"));
    std::fs::write(&tmp, format!("{addr}\n"))
        .and_then(|()| std::fs::rename(&tmp, &file))
        .with_context(|| format!("writing {}", file.display()))?;
    let state = Arc::downgrade(state);
    tokio::spawn(accept_loop(listener, state));
    tracing::info!(address = %addr, "metrics server listening");
    Ok(addr)
}

/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

async fn accept_loop(listener: tokio::net::TcpListener, state: Weak<State>) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "metrics server accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if state.strong_count() == 0 {
            return;
        }
        let state = state.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "metrics connection ended");
            }
        });
    }
}

async fn handle(
    state: Weak<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, body: String| {
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        resp
    };
    if req.uri().path() != "/metrics" {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            "not found: try /metrics\n".into(),
        ));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
        resp.headers_mut()
            .insert(hyper::header::ALLOW, "GET, HEAD".parse().unwrap());
        return Ok(resp);
    }
    let Some(state) = state.upgrade() else {
        return Ok(reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "crustd is shutting down\n".into(),
        ));
    };
    // Reads /proc for every pod's monitor: off the async workers.
    let body = match tokio::task::spawn_blocking(move || encode(&state)).await {
        Ok(body) => body,
        Err(e) => {
            return Ok(reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding metrics: {e}\n"),
            ))
        }
    };
    let mut resp = reply(StatusCode::OK, body);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8".parse().unwrap(),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_inf_is_the_count() {
        let h = Histogram::new(&[0.001, 0.01, 0.1]);
        for d in [
            Duration::from_micros(500),
            Duration::from_millis(1), // on a bound: counted in it (le is inclusive)
            Duration::from_millis(5),
            Duration::from_millis(50),
            Duration::from_secs(2),
        ] {
            h.observe(d);
        }
        let (cumulative, count, sum) = h.snapshot();
        assert_eq!(cumulative, [2, 3, 4]);
        assert_eq!(count, 5);
        assert!((sum - 2.0565).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn encoder_writes_exposition_format() {
        let mut enc = Encoder::default();
        enc.family("x_total", "counter", "Things\\counted,\nper line.");
        enc.sample("x_total", &[], 3u64);
        enc.sample(
            "x_total",
            &[("path", "C:\\tmp"), ("msg", "say \"hi\"\nbye")],
            7u64,
        );
        enc.family("x_ratio", "gauge", "A ratio.");
        enc.sample("x_ratio", &[("k", "v")], 0.25f64);
        enc.sample("x_ratio", &[("k", "inf")], f64::INFINITY);
        enc.sample("x_ratio", &[("k", "nan")], f64::NAN);
        let h = Histogram::new(&[0.0001, 0.5, 60.0]);
        h.observe(Duration::from_millis(250));
        h.observe(Duration::from_secs(90));
        enc.family("x_seconds", "histogram", "Durations.");
        enc.histogram("x_seconds", &[("method", "Version")], &h);
        assert_eq!(
            enc.finish(),
            "# HELP x_total Things\\\\counted,\\nper line.\n\
             # TYPE x_total counter\n\
             x_total 3\n\
             x_total{path=\"C:\\\\tmp\",msg=\"say \\\"hi\\\"\\nbye\"} 7\n\
             # HELP x_ratio A ratio.\n\
             # TYPE x_ratio gauge\n\
             x_ratio{k=\"v\"} 0.25\n\
             x_ratio{k=\"inf\"} +Inf\n\
             x_ratio{k=\"nan\"} NaN\n\
             # HELP x_seconds Durations.\n\
             # TYPE x_seconds histogram\n\
             x_seconds_bucket{method=\"Version\",le=\"0.0001\"} 0\n\
             x_seconds_bucket{method=\"Version\",le=\"0.5\"} 1\n\
             x_seconds_bucket{method=\"Version\",le=\"60\"} 1\n\
             x_seconds_bucket{method=\"Version\",le=\"+Inf\"} 2\n\
             x_seconds_sum{method=\"Version\"} 90.25\n\
             x_seconds_count{method=\"Version\"} 2\n"
        );
    }

    #[test]
    fn rpcs_are_counted_by_code_and_cancelled_ones_too() {
        let m = Metrics::new();
        m.rpc(
            RUNTIME_SERVICE,
            "Version",
            Code::Ok,
            Duration::from_micros(50),
        );
        m.rpc(
            RUNTIME_SERVICE,
            "Version",
            Code::Ok,
            Duration::from_millis(3),
        );
        m.rpc(
            RUNTIME_SERVICE,
            "ContainerStatus",
            Code::NotFound,
            Duration::from_millis(1),
        );
        m.rpc(
            IMAGE_SERVICE,
            "FutureRpc",
            Code::Unimplemented,
            Duration::ZERO,
        );
        // A timer dropped before it finished: the client went away.
        drop(RpcTimer::start(&m, IMAGE_SERVICE, "PullImage"));
        let done = RpcTimer::start(&m, RUNTIME_SERVICE, "Status");
        done.finish::<()>(&Err(tonic::Status::internal("x")));
        m.image_pull(Ok(1000), Duration::from_secs(1));
        m.image_pull(Ok(24), Duration::from_secs(2));
        m.image_pull(Err(()), Duration::from_millis(10));

        let mut enc = Encoder::default();
        m.encode_counters(&mut enc);
        let text = enc.finish();
        for line in [
            "crust_grpc_requests_total{service=\"runtime.v1.RuntimeService\",method=\"Version\",code=\"OK\"} 2",
            "crust_grpc_requests_total{service=\"runtime.v1.RuntimeService\",method=\"ContainerStatus\",code=\"NotFound\"} 1",
            "crust_grpc_requests_total{service=\"runtime.v1.ImageService\",method=\"FutureRpc\",code=\"Unimplemented\"} 1",
            "crust_grpc_requests_total{service=\"runtime.v1.ImageService\",method=\"PullImage\",code=\"Canceled\"} 1",
            "crust_grpc_requests_total{service=\"runtime.v1.RuntimeService\",method=\"Status\",code=\"Internal\"} 1",
            "crust_grpc_request_duration_seconds_bucket{method=\"Version\",le=\"0.0001\"} 1",
            "crust_grpc_request_duration_seconds_bucket{method=\"Version\",le=\"0.0025\"} 1",
            "crust_grpc_request_duration_seconds_bucket{method=\"Version\",le=\"0.005\"} 2",
            "crust_grpc_request_duration_seconds_bucket{method=\"Version\",le=\"+Inf\"} 2",
            "crust_grpc_request_duration_seconds_count{method=\"Version\"} 2",
            "crust_grpc_request_duration_seconds_sum{method=\"Version\"} 0.00305",
            "crust_image_pulls_total{result=\"success\"} 2",
            "crust_image_pulls_total{result=\"failure\"} 1",
            "crust_image_pull_bytes_total 1024",
            "crust_image_pull_duration_seconds_count 3",
            "crust_image_pull_duration_seconds_bucket{le=\"1\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // RPCs never called have no series.
        assert!(!text.contains("\"RunPodSandbox\""), "{text}");
        // Each family's HELP and TYPE appear once.
        assert_eq!(
            text.matches("# TYPE crust_grpc_requests_total counter\n")
                .count(),
            1
        );
    }

    #[test]
    fn a_monitor_is_known_by_its_pod_id_argument() {
        // This test process is nobody's monitor.
        assert!(!monitor_alive(std::process::id() as i32, "abc"));
        assert!(!monitor_alive(0, "abc"));
        assert!(!monitor_alive(i32::MAX, "abc"));
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "sleep 30; true",
                "crust-monitor",
                "--pod-id",
                "abc",
                "--dir",
                "/x",
            ])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // spawn returns once the exec replaced the memory, a moment before the kernel has set
        // up the new argument list: wait for it to show.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.is_empty())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(monitor_alive(pid, "abc"));
        assert!(!monitor_alive(pid, "abd"));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!monitor_alive(pid, "abc"));
    }

    #[test]
    fn process_metrics_are_read_from_proc() {
        let mut enc = Encoder::default();
        process_metrics(&mut enc);
        let text = enc.finish();
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no {name} in\n{text}"))
                .parse()
                .unwrap()
        };
        assert!(value("process_resident_memory_bytes") > 1e6);
        assert!(value("process_open_fds") >= 3.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = value("process_start_time_seconds");
        assert!(
            start <= now + 1.0 && start > now - 3600.0,
            "{start} vs {now}"
        );
        assert!(value("process_cpu_seconds_total") >= 0.0);
    }
}
