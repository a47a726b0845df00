//! `crustctl pods`: lists pod sandboxes. The listing (filter, name/namespace patterns,
//! newest first, `--latest`/`--last`) is shared with `inspectp`.

use std::collections::HashMap;
use std::io::Write;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ListPodSandboxRequest, ListPodSandboxResponse, PodSandbox, PodSandboxFilter, PodSandboxState,
    PodSandboxStateValue,
};
use regex::Regex;
use tonic::transport::Channel;

use crate::client::Ctx;
use crate::gotime;
use crate::output::{format_parser, print_message, truncate_id, Format, Table};

#[derive(Args, Debug, Default)]
pub struct PodsArgs {
    /// Filter by pod id
    #[arg(long, default_value = "")]
    pub id: String,
    /// Filter by pod name regular expression pattern
    #[arg(long, default_value = "")]
    pub name: String,
    /// Filter by pod namespace regular expression pattern
    #[arg(long, default_value = "")]
    pub namespace: String,
    /// Filter by pod state (ready or notready)
    #[arg(short, long, default_value = "")]
    pub state: String,
    /// Filter by key=value label
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Show verbose info for pods
    #[arg(short, long)]
    pub verbose: bool,
    /// List only pod IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format
    #[arg(short, long, default_value = "table",
          value_parser = format_parser(&["json", "yaml", "table"]))]
    pub output: Format,
    /// Show the most recently created pod
    #[arg(short, long)]
    pub latest: bool,
    /// Show last n recently created pods. Set 0 for unlimited
    #[arg(short = 'n', long, default_value_t = 0, allow_negative_numbers = true)]
    pub last: i64,
    /// Show output without truncating the ID
    #[arg(long)]
    pub no_trunc: bool,
}

/// crictl's `listOptions` as far as pods use them.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub id: String,
    pub name_regexp: String,
    pub namespace_regexp: String,
    pub state: String,
    pub labels: HashMap<String, String>,
    pub latest: bool,
    pub last: i64,
}

impl PodsArgs {
    fn list_options(&self) -> Result<ListOptions> {
        Ok(ListOptions {
            id: self.id.clone(),
            name_regexp: self.name.clone(),
            namespace_regexp: self.namespace.clone(),
            state: self.state.clone(),
            labels: parse_labels(&self.labels)?,
            latest: self.latest,
            last: self.last,
        })
    }
}

pub async fn run(ctx: &Ctx, args: PodsArgs, out: &mut dyn Write) -> Result<()> {
    let opts = args.list_options()?;
    let mut client = ctx.runtime().await?;
    let pods = list(ctx, &mut client, &opts)
        .await
        .context("listing pod sandboxes")?;
    match args.output {
        Format::Json | Format::Yaml => {
            print_message(out, &ListPodSandboxResponse { items: pods }, args.output)
        }
        _ => {
            out.write_all(render(&pods, &args, gotime::now_nanos()).as_bytes())?;
            Ok(())
        }
    }
}

/// crictl's `parseLabelStringSlice`: each `key=value` with exactly one `=`.
pub fn parse_labels(labels: &[String]) -> Result<HashMap<String, String>> {
    let mut map = HashMap::new();
    for label in labels {
        match label.split('=').collect::<Vec<_>>()[..] {
            [key, value] => {
                map.insert(key.to_owned(), value.to_owned());
            }
            _ => bail!("incorrectly specified label: {label}"),
        }
    }
    Ok(map)
}

/// The server-side part of the listing: id, state and labels.
pub fn build_filter(opts: &ListOptions) -> Result<PodSandboxFilter> {
    let state = match opts.state.to_lowercase().as_str() {
        "" => None,
        "ready" => Some(PodSandboxState::SandboxReady),
        "notready" => Some(PodSandboxState::SandboxNotready),
        _ => bail!("--state should be ready or notready"),
    };
    Ok(PodSandboxFilter {
        id: opts.id.clone(),
        state: state.map(|s| PodSandboxStateValue { state: s as i32 }),
        label_selector: opts.labels.clone(),
    })
}

/// crictl's `ListPodSandboxes`: the filtered list, newest first, cut by `--latest`/`--last`.
pub async fn list(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    opts: &ListOptions,
) -> Result<Vec<PodSandbox>> {
    let request = ListPodSandboxRequest {
        filter: Some(build_filter(opts)?),
    };
    let r = ctx
        .call("ListPodSandbox", request, |req| {
            client.list_pod_sandbox(req)
        })
        .await
        .map_err(|e| anyhow!(e))
        .context("call list sandboxes RPC")?;
    Ok(select(r.items, opts))
}

/// crictl's `matchesRegex`: an empty pattern matches everything, an invalid one nothing.
pub fn matches(pattern: &str, target: &str) -> bool {
    pattern.is_empty() || Regex::new(pattern).is_ok_and(|re| re.is_match(target))
}

/// crictl's `getSandboxesList`: pods whose name and namespace match the patterns (pods
/// without metadata never do), newest first, the first 1 (`--latest`) or n (`--last`).
pub fn select(pods: Vec<PodSandbox>, opts: &ListOptions) -> Vec<PodSandbox> {
    let mut selected: Vec<PodSandbox> = pods
        .into_iter()
        .filter(|p| {
            p.metadata.as_ref().is_some_and(|m| {
                matches(&opts.name_regexp, &m.name) && matches(&opts.namespace_regexp, &m.namespace)
            })
        })
        .collect();
    selected.sort_by_key(|p| std::cmp::Reverse(p.created_at));
    selected.truncate(truncate_count(selected.len(), opts.latest, opts.last));
    selected
}

/// crictl's `truncateCount`: how many of the newest-first items `--latest` (1) and
/// `--last n` (n, winning over `--latest`) keep.
pub fn truncate_count(len: usize, latest: bool, last: i64) -> usize {
    let mut n = len;
    if latest {
        n = 1;
    }
    if last > 0 {
        n = usize::try_from(last).unwrap_or(usize::MAX);
    }
    n.min(len)
}

/// crictl's `convertPodState`.
pub fn state_name(state: i32) -> &'static str {
    match PodSandboxState::try_from(state) {
        Ok(PodSandboxState::SandboxReady) => "Ready",
        Ok(PodSandboxState::SandboxNotready) => "NotReady",
        Err(_) => "Unknown",
    }
}

/// crictl's `getSandboxesRuntimeHandler`.
fn runtime_handler(pod: &PodSandbox) -> &str {
    if pod.runtime_handler.is_empty() {
        "(default)"
    } else {
        &pod.runtime_handler
    }
}

/// Map entries sorted by key, as `\tkey -> value` lines under `title`; nothing for an empty
/// map (Go leaves an empty decoded map nil, and crictl prints nil ones not).
pub fn sorted_map_lines(title: &str, map: &HashMap<String, String>) -> String {
    if map.is_empty() {
        return String::new();
    }
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let mut text = format!("{title}:\n");
    for key in keys {
        text.push_str(&format!("\t{key} -> {}\n", map[key]));
    }
    text
}

/// The table (or `-q` IDs, or `-v` blocks) crictl prints for `pods`.
fn render(pods: &[PodSandbox], args: &PodsArgs, now_nanos: i64) -> String {
    let mut text = String::new();
    let mut table = Table::new();
    if !args.verbose && !args.quiet {
        table.add_row([
            "POD ID",
            "CREATED",
            "STATE",
            "NAME",
            "NAMESPACE",
            "ATTEMPT",
            "RUNTIME",
        ]);
    }
    for pod in pods {
        if args.quiet {
            text.push_str(&format!("{}\n", pod.id));
            continue;
        }
        let metadata = pod.metadata.clone().unwrap_or_default();
        if !args.verbose {
            let id = if args.no_trunc {
                pod.id.clone()
            } else {
                truncate_id(&pod.id, "")
            };
            table.add_row([
                id,
                gotime::ago(pod.created_at, now_nanos),
                state_name(pod.state).to_owned(),
                metadata.name,
                metadata.namespace,
                metadata.attempt.to_string(),
                runtime_handler(pod).to_owned(),
            ]);
            continue;
        }
        text.push_str(&format!("ID: {}\n", pod.id));
        if pod.metadata.is_some() {
            if !metadata.name.is_empty() {
                text.push_str(&format!("Name: {}\n", metadata.name));
            }
            if !metadata.uid.is_empty() {
                text.push_str(&format!("UID: {}\n", metadata.uid));
            }
            if !metadata.namespace.is_empty() {
                text.push_str(&format!("Namespace: {}\n", metadata.namespace));
            }
            if metadata.attempt != 0 {
                text.push_str(&format!("Attempt: {}\n", metadata.attempt));
            }
        }
        text.push_str(&format!("Status: {}\n", state_name(pod.state)));
        text.push_str(&format!(
            "Created: {}\n",
            gotime::time_string(pod.created_at)
        ));
        text.push_str(&sorted_map_lines("Labels", &pod.labels));
        text.push_str(&sorted_map_lines("Annotations", &pod.annotations));
        text.push_str(&format!("Runtime: {}\n\n", runtime_handler(pod)));
    }
    text.push_str(&table.render());
    text
}

#[cfg(test)]
mod tests {
    use k8s_cri::v1::PodSandboxMetadata;

    use super::*;

    const T0: i64 = 1_700_000_000_000_000_000;
    const SEC: i64 = 1_000_000_000;

    fn pod(id: &str, name: &str, namespace: &str, created_at: i64, ready: bool) -> PodSandbox {
        PodSandbox {
            id: id.into(),
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}"),
                namespace: namespace.into(),
                attempt: 0,
            }),
            state: if ready {
                PodSandboxState::SandboxReady
            } else {
                PodSandboxState::SandboxNotready
            } as i32,
            created_at,
            ..Default::default()
        }
    }

    fn sample() -> Vec<PodSandbox> {
        let mut nginx = pod(
            "4dccb216c4adb8e1e1fe7c2ed4a4a5a5d3c9a7a0f7a4f1e2b5f1c0d9e8a7b6c5",
            "nginx-sandbox",
            "default",
            T0,
            true,
        );
        nginx.labels = [("app".to_owned(), "nginx".to_owned())].into();
        nginx.metadata.as_mut().unwrap().attempt = 1;
        let mut busy = pod(
            "9f1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
            "busybox",
            "kube-system",
            T0 + 90 * SEC,
            false,
        );
        busy.runtime_handler = "crun".into();
        let mut no_meta = pod("0000", "x", "y", T0 + 200 * SEC, true);
        no_meta.metadata = None;
        vec![nginx, busy, no_meta]
    }

    fn ids(pods: &[PodSandbox]) -> Vec<&str> {
        pods.iter().map(|p| &p.id[..4]).collect()
    }

    #[test]
    fn labels_parse_like_crictl() {
        let labels = parse_labels(&["a=b".into(), "c=".into()]).unwrap();
        assert_eq!(labels["a"], "b");
        assert_eq!(labels["c"], "");
        for bad in ["a", "a=b=c", ""] {
            let err = parse_labels(&[bad.into()]).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("incorrectly specified label: {bad}")
            );
        }
    }

    #[test]
    fn filter_carries_id_state_and_labels() {
        let opts = ListOptions {
            id: "abc".into(),
            state: "Ready".into(),
            labels: [("app".to_owned(), "nginx".to_owned())].into(),
            name_regexp: "ngi".into(),
            ..Default::default()
        };
        let filter = build_filter(&opts).unwrap();
        assert_eq!(filter.id, "abc");
        assert_eq!(
            filter.state,
            Some(PodSandboxStateValue {
                state: PodSandboxState::SandboxReady as i32
            })
        );
        assert_eq!(filter.label_selector["app"], "nginx");

        let opts = ListOptions {
            state: "NOTREADY".into(),
            ..Default::default()
        };
        assert_eq!(
            build_filter(&opts).unwrap().state.unwrap().state,
            PodSandboxState::SandboxNotready as i32
        );
        let empty = build_filter(&ListOptions::default()).unwrap();
        assert_eq!(empty, PodSandboxFilter::default());
        let opts = ListOptions {
            state: "running".into(),
            ..Default::default()
        };
        assert_eq!(
            build_filter(&opts).unwrap_err().to_string(),
            "--state should be ready or notready"
        );
    }

    #[test]
    fn selection_matches_sorts_and_cuts() {
        let all = ListOptions::default();
        // newest first; the pod without metadata is dropped
        assert_eq!(ids(&select(sample(), &all)), ["9f1b", "4dcc"]);
        let by_name = ListOptions {
            name_regexp: "^ngin".into(),
            ..Default::default()
        };
        assert_eq!(ids(&select(sample(), &by_name)), ["4dcc"]);
        let by_ns = ListOptions {
            namespace_regexp: "kube".into(),
            ..Default::default()
        };
        assert_eq!(ids(&select(sample(), &by_ns)), ["9f1b"]);
        let bad_pattern = ListOptions {
            name_regexp: "(".into(),
            ..Default::default()
        };
        assert!(select(sample(), &bad_pattern).is_empty());
        let latest = ListOptions {
            latest: true,
            ..Default::default()
        };
        assert_eq!(ids(&select(sample(), &latest)), ["9f1b"]);
        // --last wins over --latest; more than there are is all of them
        let last = ListOptions {
            latest: true,
            last: 5,
            ..Default::default()
        };
        assert_eq!(ids(&select(sample(), &last)), ["9f1b", "4dcc"]);
        let negative = ListOptions {
            last: -1,
            ..Default::default()
        };
        assert_eq!(select(sample(), &negative).len(), 2);
    }

    #[test]
    fn table_like_crictl() {
        let pods = select(sample(), &ListOptions::default());
        let now = T0 + 150 * SEC;
        let text = render(&pods, &PodsArgs::default(), now);
        assert_eq!(
            text,
            "POD ID              CREATED              STATE               NAME                NAMESPACE           ATTEMPT             RUNTIME\n\
             9f1b2c3d4e5f6       About a minute ago   NotReady            busybox             kube-system         0                   crun\n\
             4dccb216c4adb       2 minutes ago        Ready               nginx-sandbox       default             1                   (default)\n"
        );
        let args = PodsArgs {
            no_trunc: true,
            ..Default::default()
        };
        let text = render(&pods, &args, now);
        assert!(text.lines().nth(2).unwrap().starts_with(
            "4dccb216c4adb8e1e1fe7c2ed4a4a5a5d3c9a7a0f7a4f1e2b5f1c0d9e8a7b6c5   2 minutes ago"
        ));
        let args = PodsArgs {
            quiet: true,
            ..Default::default()
        };
        assert_eq!(
            render(&pods, &args, now),
            format!("{}\n{}\n", pods[0].id, pods[1].id)
        );
    }

    #[test]
    fn verbose_blocks() {
        let pods = select(sample(), &ListOptions::default());
        let args = PodsArgs {
            verbose: true,
            ..Default::default()
        };
        let text = render(&pods[1..], &args, 0);
        assert_eq!(
            text,
            "ID: 4dccb216c4adb8e1e1fe7c2ed4a4a5a5d3c9a7a0f7a4f1e2b5f1c0d9e8a7b6c5\n\
             Name: nginx-sandbox\nUID: uid-nginx-sandbox\nNamespace: default\nAttempt: 1\n\
             Status: Ready\nCreated: 2023-11-14 22:13:20 +0000 UTC\n\
             Labels:\n\tapp -> nginx\nRuntime: (default)\n\n"
        );
    }

    #[test]
    fn json_is_protojson_items() {
        let mut out = Vec::new();
        let items = select(sample(), &ListOptions::default());
        print_message(&mut out, &ListPodSandboxResponse { items }, Format::Json).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["items"][0]["state"], "SANDBOX_NOTREADY");
        assert_eq!(v["items"][1]["createdAt"], T0.to_string());
        assert_eq!(v["items"][1]["metadata"]["name"], "nginx-sandbox");
        assert_eq!(v["items"][0]["runtimeHandler"], "crun");
    }
}
