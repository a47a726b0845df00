//! `crustctl inspect`: the status of one or more containers.

use std::io::Write;

use anyhow::{Context, Result};
use clap::Args;
use k8s_cri::v1::{ContainerState, ContainerStatusResponse};

use super::containers::{self, container_status, status_data, ListOptions};
use super::pods::{parse_labels, sorted_map_lines};
use crate::client::Ctx;
use crate::gotime;
use crate::output::{format_parser, go_map, print_status_data, Format};

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Containers to inspect; none: the containers the filters select
    #[arg(value_name = "CONTAINER-ID")]
    pub ids: Vec<String>,
    /// Output format, One of: json|yaml|go-template|table
    #[arg(short, long, default_value = "json",
          value_parser = format_parser(&["json", "yaml", "go-template", "table"]))]
    pub output: Format,
    /// Do not show verbose information
    #[arg(short, long)]
    pub quiet: bool,
    /// The template string is only used when output is go-template; The Template format is
    /// golang template
    #[arg(long)]
    pub template: Option<String>,
    /// Filter by container name regular expression pattern
    #[arg(long, default_value = "")]
    pub name: String,
    /// Filter by pod namespace regular expression pattern
    #[arg(long, default_value = "")]
    pub namespace: String,
    /// Filter by pod id
    #[arg(short, long, default_value = "")]
    pub pod: String,
    /// Filter by container image
    #[arg(long, default_value = "")]
    pub image: String,
    /// Filter by container state
    #[arg(short, long, default_value = "")]
    pub state: String,
    /// Filter by key=value label
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Show the most recently created container (includes all states)
    #[arg(short, long)]
    pub latest: bool,
    /// Show last n recently created containers (includes all states). Set 0 for unlimited
    #[arg(short = 'n', long, default_value_t = 0, allow_negative_numbers = true)]
    pub last: i64,
    /// Show all containers
    #[arg(short, long)]
    pub all: bool,
}

pub async fn run(ctx: &Ctx, args: InspectArgs, out: &mut dyn Write) -> Result<()> {
    let mut client = ctx.runtime().await?;
    let mut ids = args.ids.clone();
    if ids.is_empty() {
        let opts = ListOptions {
            name_regexp: args.name.clone(),
            namespace_regexp: args.namespace.clone(),
            pod_id: args.pod.clone(),
            image: args.image.clone(),
            state: args.state.clone(),
            labels: parse_labels(&args.labels)?,
            all: args.all,
            latest: args.latest,
            last: args.last,
            ..Default::default()
        };
        let found = containers::list(ctx, &mut client, &opts)
            .await
            .context("listing containers")?;
        ids = found.into_iter().map(|c| c.id).collect();
    }
    if ids.is_empty() {
        // crictl logs this and shows the help, exiting 0.
        eprintln!("ERRO No IDs provided or nothing found per filter");
        return Ok(());
    }

    let verbose = !args.quiet;
    let mut statuses = Vec::new();
    for id in &ids {
        let r = container_status(ctx, &mut client, id, verbose)
            .await
            .context("get the status of containers: get container status")?;
        if args.output == Format::Table {
            out.write_all(render_table(&r, verbose, gotime::now_nanos()).as_bytes())?;
        } else {
            statuses.push(status_data(r).context("marshal container status")?);
        }
    }
    print_status_data(out, statuses, args.output, args.template.as_deref())
}

/// crictl's `outputContainerStatusTable`.
fn render_table(r: &ContainerStatusResponse, verbose: bool, now_nanos: i64) -> String {
    let status = r.status.clone().unwrap_or_default();
    let mut text = format!("ID: {}\n", status.id);
    if let Some(metadata) = &status.metadata {
        if !metadata.name.is_empty() {
            text.push_str(&format!("Name: {}\n", metadata.name));
        }
        if metadata.attempt != 0 {
            text.push_str(&format!("Attempt: {}\n", metadata.attempt));
        }
    }
    let state = ContainerState::try_from(status.state).ok();
    // The enum's proto name, as Go's %s of it prints.
    let state_text = state.map_or_else(|| status.state.to_string(), |s| s.as_str_name().to_owned());
    text.push_str(&format!("State: {state_text}\n"));
    text.push_str(&format!(
        "Created: {}\n",
        gotime::ago(status.created_at, now_nanos)
    ));
    if state != Some(ContainerState::ContainerCreated) {
        text.push_str(&format!(
            "Started: {}\n",
            gotime::ago(status.started_at, now_nanos)
        ));
    }
    if state == Some(ContainerState::ContainerExited) {
        if status.finished_at > 0 {
            text.push_str(&format!(
                "Finished: {}\n",
                gotime::ago(status.finished_at, now_nanos)
            ));
        }
        text.push_str(&format!("Exit Code: {}\n", status.exit_code));
    }
    text.push_str(&sorted_map_lines("Labels", &status.labels));
    text.push_str(&sorted_map_lines("Annotations", &status.annotations));
    if verbose {
        text.push_str(&format!("Info: {}\n", go_map(&r.info)));
    }
    text
}

#[cfg(test)]
mod tests {
    use k8s_cri::v1 as cri;
    use serde_json::{json, Value};

    use super::*;

    const T0: i64 = 1_700_000_000_000_000_000;
    const SEC: i64 = 1_000_000_000;

    fn response() -> ContainerStatusResponse {
        ContainerStatusResponse {
            status: Some(cri::ContainerStatus {
                id: "c0ffee".into(),
                metadata: Some(cri::ContainerMetadata {
                    name: "busybox".into(),
                    attempt: 0,
                }),
                state: cri::ContainerState::ContainerExited as i32,
                created_at: T0,
                started_at: T0 + SEC,
                finished_at: T0 + 2 * SEC,
                exit_code: 3,
                image: Some(cri::ImageSpec {
                    image: "busybox:latest".into(),
                    ..Default::default()
                }),
                log_path: "/var/log/pods/p/busybox/0.log".into(),
                labels: [("app".to_owned(), "b".to_owned())].into(),
                ..Default::default()
            }),
            info: [("info".to_owned(), "{\"pid\":42}".to_owned())].into(),
        }
    }

    #[test]
    fn json_like_crictl() {
        let mut out = Vec::new();
        print_status_data(
            &mut out,
            vec![status_data(response()).unwrap()],
            Format::Json,
            None,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["info"], json!({"pid": 42}));
        let s = &v["status"];
        assert_eq!(s["state"], "CONTAINER_EXITED");
        assert_eq!(s["exitCode"], 3);
        assert_eq!(s["logPath"], "/var/log/pods/p/busybox/0.log");
        assert_eq!(s["createdAt"], "2023-11-14T22:13:20Z");
        assert_eq!(s["startedAt"], "2023-11-14T22:13:21Z");
        assert_eq!(s["finishedAt"], "2023-11-14T22:13:22Z");
        assert_eq!(s["image"]["image"], "busybox:latest");
        assert_eq!(s["resources"], Value::Null);
    }

    #[test]
    fn table() {
        assert_eq!(
            render_table(&response(), true, T0 + 10 * SEC),
            "ID: c0ffee\nName: busybox\nState: CONTAINER_EXITED\nCreated: 10 seconds ago\n\
             Started: 9 seconds ago\nFinished: 8 seconds ago\nExit Code: 3\n\
             Labels:\n\tapp -> b\nInfo: map[info:{\"pid\":42}]\n"
        );
        let mut created = response();
        created.status.as_mut().unwrap().state = cri::ContainerState::ContainerCreated as i32;
        let text = render_table(&created, false, T0 + 10 * SEC);
        assert!(!text.contains("Started") && !text.contains("Exit Code") && !text.contains("Info"));
    }
}
