//! crustd's Prometheus endpoint on a real crustd: RPCs, a real pull from a real registry and a
//! real pod (bridge CNI, a live monitor), scraped over HTTP and read with a strict parser of
//! the text exposition format 0.0.4. These tests need root.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crust_testenv::{push_standard_images, Registry};
use crust_tests::{Crustd, PodNet};
use k8s_cri::v1::*;
use tonic::Code;

// ---- a strict reader of the text format ----

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: Option<String>,
    samples: Vec<Sample>,
}

fn metric_name_ok(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

fn label_name_ok(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
        && !s.starts_with("__")
}

/// Go's ParseFloat syntax as Prometheus accepts it (no Rust-only spellings such as "inf").
fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        "NaN" => return Ok(f64::NAN),
        _ => {}
    }
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match body.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (body, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(int)
        && frac.is_none_or(digits)
        && (!int.is_empty() || frac.is_some_and(|f| !f.is_empty()));
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    if !mantissa_ok || !exponent_ok {
        return Err(format!("invalid value {s:?}"));
    }
    s.parse().map_err(|e| format!("invalid value {s:?}: {e}"))
}

/// `name{a="x",b="y"} value [timestamp]`.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| format!("no value: {line:?}"))?;
    let name = &line[..name_end];
    if !metric_name_ok(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        let mut end = None;
        loop {
            let start = match chars.peek() {
                Some((_, '}')) => {
                    end = Some(chars.next().unwrap().0 + 1);
                    break;
                }
                Some((i, _)) => *i,
                None => break,
            };
            let eq = r[start..]
                .find('=')
                .ok_or_else(|| format!("label without '=': {line:?}"))?;
            let label = &r[start..start + eq];
            if !label_name_ok(label) {
                return Err(format!("invalid label name {label:?} in {line:?}"));
            }
            while chars.peek().is_some_and(|(i, _)| *i < start + eq + 1) {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label value not quoted: {line:?}"));
            }
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('"') => break,
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => return Err(format!("bad escape {other:?} in {line:?}")),
                    },
                    Some('\n') | None => return Err(format!("unterminated label: {line:?}")),
                    Some(c) => value.push(c),
                }
            }
            if labels.insert(label.to_string(), value).is_some() {
                return Err(format!("duplicate label {label:?} in {line:?}"));
            }
            match chars.peek().map(|(_, c)| *c) {
                Some(',') => {
                    chars.next();
                }
                Some('}') => {}
                _ => return Err(format!("expected ',' or '}}' in {line:?}")),
            }
        }
        let end = end.ok_or_else(|| format!("unterminated label set: {line:?}"))?;
        rest = &r[end..];
    }
    let rest = rest
        .strip_prefix(' ')
        .ok_or_else(|| format!("no space before the value: {line:?}"))?;
    let mut parts = rest.split(' ');
    let value = parse_value(parts.next().unwrap_or(""))?;
    if let Some(ts) = parts.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("invalid timestamp {ts:?} in {line:?}"))?;
    }
    if parts.next().is_some() {
        return Err(format!("trailing text: {line:?}"));
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Reads a whole exposition, checking every line's grammar, that each family is announced by
/// HELP and TYPE (once each) before its samples and its samples are contiguous, that sample
/// names fit the family's type, no series repeats, and that histograms are consistent:
/// increasing `le`, non-decreasing cumulative counts, `le="+Inf"` equal to `_count`, a `_sum`.
fn parse_exposition(text: &str) -> Result<BTreeMap<String, Family>, String> {
    if !text.ends_with('\n') {
        return Err("the exposition does not end with a newline".into());
    }
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut series = BTreeSet::new();
    for line in text.lines() {
        if line.is_empty() {
            return Err("empty line".into());
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let (keyword, rest) = rest
                .split_once(' ')
                .ok_or_else(|| format!("bare comment: {line:?}"))?;
            let (name, arg) = rest
                .split_once(' ')
                .ok_or_else(|| format!("{keyword} without text: {line:?}"))?;
            if !metric_name_ok(name) {
                return Err(format!("invalid metric name {name:?}"));
            }
            let family = families.entry(name.to_string()).or_default();
            if !family.samples.is_empty() {
                return Err(format!("{keyword} of {name} after its samples"));
            }
            match keyword {
                "HELP" => {
                    let mut chars = arg.chars();
                    while let Some(c) = chars.next() {
                        if c == '\\' && !matches!(chars.next(), Some('\\' | 'n')) {
                            return Err(format!("bad escape in HELP of {name}"));
                        }
                    }
                    if family.help.replace(arg.to_string()).is_some() {
                        return Err(format!("second HELP for {name}"));
                    }
                }
                "TYPE" => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg) {
                        return Err(format!("unknown type {arg:?} of {name}"));
                    }
                    if !family.kind.is_empty() {
                        return Err(format!("second TYPE for {name}"));
                    }
                    family.kind = arg.to_string();
                }
                other => return Err(format!("unexpected comment {other:?}: {line:?}")),
            }
            current = Some(name.to_string());
            continue;
        }
        let sample = parse_sample(line)?;
        let family_name = current
            .clone()
            .ok_or_else(|| format!("sample before any TYPE: {line:?}"))?;
        let family = families.get_mut(&family_name).unwrap();
        let fits = match family.kind.as_str() {
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| sample.name == format!("{family_name}{s}")),
            "" => false,
            _ => sample.name == family_name,
        };
        if !fits {
            return Err(format!(
                "sample {} does not belong to family {family_name} ({}): samples of a family must follow its TYPE",
                sample.name, family.kind
            ));
        }
        if sample.name.ends_with("_bucket") && !sample.labels.contains_key("le") {
            return Err(format!("bucket without le: {line:?}"));
        }
        if !series.insert((sample.name.clone(), format!("{:?}", sample.labels))) {
            return Err(format!("repeated series: {line:?}"));
        }
        family.samples.push(sample);
    }
    for (name, family) in &families {
        if family.kind.is_empty() || family.help.is_none() {
            return Err(format!("{name} lacks a HELP or TYPE"));
        }
        if family.kind == "histogram" {
            check_histogram(name, family)?;
        }
        if family.kind == "counter" && family.samples.iter().any(|s| s.value < 0.0) {
            return Err(format!("negative counter {name}"));
        }
    }
    Ok(families)
}

/// One histogram series: its `(le, cumulative count)` buckets, `_sum` and `_count`.
type HistogramSeries = (Vec<(f64, f64)>, Option<f64>, Option<f64>);

fn check_histogram(name: &str, family: &Family) -> Result<(), String> {
    let mut groups: BTreeMap<String, HistogramSeries> = BTreeMap::new();
    for s in &family.samples {
        let mut key = s.labels.clone();
        let le = key.remove("le");
        let g = groups.entry(format!("{key:?}")).or_default();
        if s.name.ends_with("_bucket") {
            g.0.push((parse_value(le.as_deref().unwrap())?, s.value));
        } else if s.name.ends_with("_sum") {
            g.1 = Some(s.value);
        } else {
            g.2 = Some(s.value);
        }
    }
    for (labels, (buckets, sum, count)) in groups {
        let count = count.ok_or_else(|| format!("{name}{labels}: no _count"))?;
        sum.ok_or_else(|| format!("{name}{labels}: no _sum"))?;
        if buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
            return Err(format!(
                "{name}{labels}: the last bucket is not le=\"+Inf\""
            ));
        }
        for pair in buckets.windows(2) {
            if pair[1].0 <= pair[0].0 || pair[1].1 < pair[0].1 {
                return Err(format!("{name}{labels}: buckets out of order: {pair:?}"));
            }
        }
        if buckets.last().unwrap().1 != count {
            return Err(format!("{name}{labels}: le=\"+Inf\" != _count"));
        }
    }
    Ok(())
}

#[test]
fn the_reader_is_strict() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n";
    parse_exposition(good).unwrap();
    for bad in [
        "a_total 1\n",                                               // no TYPE
        "# TYPE a gauge\na 1\n",                                     // no HELP
        "# HELP a A.\n# TYPE a gauge\na 1",                          // no final newline
        "# HELP a A.\n# TYPE a gauge\na{x=1} 1\n",                   // unquoted label
        "# HELP a A.\n# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n",       // duplicate label
        "# HELP a A.\n# TYPE a gauge\na inf\n",                      // Rust spelling
        "# HELP a A.\n# TYPE a gauge\na 1\na 2\n",                   // repeated series
        "# HELP a A.\n# TYPE a gauge\nb 1\n",                        // foreign sample
        "# HELP a A.\n# TYPE a gauge\na{x=\"\\t\"} 1\n",             // bad escape
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
    }
}

// ---- the endpoint ----

fn value(families: &BTreeMap<String, Family>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    families
        .values()
        .flat_map(|f| &f.samples)
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// Scrapes `GET /metrics` and reads it strictly.
async fn scrape(addr: &str) -> BTreeMap<String, Family> {
    let resp = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("GET /metrics");
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let text = resp.text().await.unwrap();
    parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn requests(families: &BTreeMap<String, Family>, service: &str, method: &str, code: &str) -> f64 {
    value(
        families,
        "crust_grpc_requests_total",
        &[("service", service), ("method", method), ("code", code)],
    )
    .unwrap_or(0.0)
}

const RT: &str = "runtime.v1.RuntimeService";
const IMG: &str = "runtime.v1.ImageService";

#[tokio::test]
async fn metrics_reflect_rpcs_pulls_pods_and_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start().await.unwrap();
    let pushed = push_standard_images(&reg, None).await.unwrap();
    let net = PodNet::new(dir.path(), 232);
    let network = net.config(&[]);
    let crustd = Crustd::start_with(move |d| {
        format!(
            "[registry]\nconfig_path = {:?}\n{network}\n[metrics]\naddress = \"127.0.0.1:0\"\n",
            d.join("certs.d").display().to_string()
        )
    })
    .await
    .expect("crustd starts");
    // Port 0: crustd tells the bound address in the runroot and in its log.
    let addr = std::fs::read_to_string(crustd.runroot.join("metrics.addr")).unwrap();
    let addr = addr.trim().to_string();
    let port: u16 = addr.strip_prefix("127.0.0.1:").unwrap().parse().unwrap();
    assert_ne!(port, 0);
    let logs = crustd.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("metrics server listening") && l.contains(&addr)),
        "{logs}"
    );

    let mut rt = crustd.runtime().await.unwrap();
    let mut img = crustd.images().await.unwrap();
    let before = scrape(&addr).await;
    let versions_before = requests(&before, RT, "Version", "OK");
    assert!(versions_before >= 1.0, "the harness waited for a Version");

    for _ in 0..2 {
        rt.version(VersionRequest::default()).await.unwrap();
    }
    let err = rt
        .container_status(ContainerStatusRequest {
            container_id: "no-such-container".into(),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    rt.list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .unwrap();
    let pull = |image: &str| PullImageRequest {
        image: Some(ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    img.pull_image(pull(&pushed.busybox.reference))
        .await
        .expect("PullImage");
    let err = img
        .pull_image(pull(&format!("{}/crust/missing:latest", reg.host())))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let pod = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(PodSandboxConfig {
                metadata: Some(PodSandboxMetadata {
                    name: "scraped".into(),
                    uid: format!("uid-scraped-{}", std::process::id()),
                    namespace: "crust-test".into(),
                    attempt: 0,
                }),
                linux: Some(LinuxPodSandboxConfig::default()),
                ..Default::default()
            }),
            runtime_handler: String::new(),
        })
        .await
        .expect("RunPodSandbox")
        .into_inner()
        .pod_sandbox_id;

    let m = scrape(&addr).await;
    // RPC counters by service, method and code.
    assert_eq!(requests(&m, RT, "Version", "OK"), versions_before + 2.0);
    assert_eq!(requests(&m, RT, "ContainerStatus", "NotFound"), 1.0);
    assert_eq!(requests(&m, RT, "ContainerStatus", "OK"), 0.0);
    assert_eq!(requests(&m, RT, "ListPodSandbox", "OK"), 1.0);
    assert_eq!(requests(&m, RT, "RunPodSandbox", "OK"), 1.0);
    assert_eq!(requests(&m, IMG, "PullImage", "OK"), 1.0);
    assert_eq!(requests(&m, IMG, "PullImage", "NotFound"), 1.0);
    // Each RPC's latency histogram counts what its counters count.
    for (service, method) in [
        (RT, "Version"),
        (RT, "ContainerStatus"),
        (RT, "RunPodSandbox"),
        (IMG, "PullImage"),
    ] {
        let counted: f64 = m["crust_grpc_requests_total"]
            .samples
            .iter()
            .filter(|s| s.labels["service"] == service && s.labels["method"] == method)
            .map(|s| s.value)
            .sum();
        let observed = value(
            &m,
            "crust_grpc_request_duration_seconds_count",
            &[("method", method)],
        );
        assert_eq!(observed, Some(counted), "{method}");
    }
    let run_seconds = value(
        &m,
        "crust_grpc_request_duration_seconds_sum",
        &[("method", "RunPodSandbox")],
    )
    .unwrap();
    assert!(run_seconds > 0.0 && run_seconds < 60.0, "{run_seconds}");

    // Pulls: one success of the image's size, one failure.
    assert_eq!(
        value(&m, "crust_image_pulls_total", &[("result", "success")]),
        Some(1.0)
    );
    assert_eq!(
        value(&m, "crust_image_pulls_total", &[("result", "failure")]),
        Some(1.0)
    );
    assert_eq!(
        value(&m, "crust_image_pull_bytes_total", &[]),
        Some(pushed.busybox.size as f64)
    );
    assert_eq!(
        value(&m, "crust_image_pull_duration_seconds_count", &[]),
        Some(2.0)
    );

    // The running pod, its live monitor, no containers.
    assert_eq!(value(&m, "crust_pods", &[("state", "ready")]), Some(1.0));
    assert_eq!(value(&m, "crust_pods", &[("state", "notready")]), Some(0.0));
    assert_eq!(value(&m, "crust_monitors", &[]), Some(1.0));
    for state in ["created", "running", "exited", "unknown"] {
        assert_eq!(
            value(&m, "crust_containers", &[("state", state)]),
            Some(0.0),
            "{state}"
        );
    }

    // The process: crustd's own.
    let rss = value(&m, "process_resident_memory_bytes", &[]).unwrap();
    assert!(rss > 1e6 && rss < 1e9, "{rss}");
    assert!(value(&m, "process_open_fds", &[]).unwrap() >= 5.0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = value(&m, "process_start_time_seconds", &[]).unwrap();
    assert!(started <= now + 1.0 && started > now - 600.0, "{started}");

    // A stopped pod is not ready; its monitor lives until the pod is removed.
    rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .unwrap();
    let m = scrape(&addr).await;
    assert_eq!(value(&m, "crust_pods", &[("state", "ready")]), Some(0.0));
    assert_eq!(value(&m, "crust_pods", &[("state", "notready")]), Some(1.0));
    assert_eq!(value(&m, "crust_monitors", &[]), Some(1.0));
    rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod,
    })
    .await
    .unwrap();
    let m = scrape(&addr).await;
    assert_eq!(value(&m, "crust_pods", &[("state", "notready")]), Some(0.0));
    assert_eq!(value(&m, "crust_monitors", &[]), Some(0.0));
    assert_eq!(requests(&m, RT, "RemovePodSandbox", "OK"), 1.0);

    // Only GET (and HEAD) of /metrics.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let resp = http
        .get(format!("http://{addr}/other"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = http
        .post(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, HEAD");
}

#[tokio::test]
async fn metrics_are_off_by_default() {
    let crustd = Crustd::start_local("").await.unwrap();
    assert!(!crustd.runroot.join("metrics.addr").exists());
    assert!(!crustd.logs().contains("metrics server listening"));
}
