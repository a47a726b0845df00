//! `crustctl inspectp`: the status of one or more pod sandboxes.

use std::io::Write;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use k8s_cri::v1::{PodSandboxStatus, PodSandboxStatusRequest, PodSandboxStatusResponse};
use serde_json::Value;

use super::pods::{self, sorted_map_lines, ListOptions};
use crate::client::Ctx;
use crate::gotime;
use crate::output::{format_parser, go_map, print_status_data, Format, StatusData};
use crate::protojson;

#[derive(Args, Debug)]
pub struct InspectpArgs {
    /// Pods to inspect; none: the pods the filters select
    #[arg(value_name = "POD-ID")]
    pub ids: Vec<String>,
    /// Output format
    #[arg(short, long, default_value = "json",
          value_parser = format_parser(&["json", "yaml", "go-template", "table"]))]
    pub output: Format,
    /// Do not show verbose information
    #[arg(short, long)]
    pub quiet: bool,
    /// Go template to render with, used when the output is go-template
    #[arg(long)]
    pub template: Option<String>,
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
    /// Show the most recently created pod
    #[arg(short, long)]
    pub latest: bool,
    /// Show last n recently created pods. Set 0 for unlimited
    #[arg(short = 'n', long, default_value_t = 0, allow_negative_numbers = true)]
    pub last: i64,
}

pub async fn run(ctx: &Ctx, args: InspectpArgs, out: &mut dyn Write) -> Result<()> {
    let mut client = ctx.runtime().await?;
    let mut ids = args.ids.clone();
    if ids.is_empty() {
        let opts = ListOptions {
            name_regexp: args.name.clone(),
            namespace_regexp: args.namespace.clone(),
            state: args.state.clone(),
            labels: pods::parse_labels(&args.labels).context("parse label string slice")?,
            latest: args.latest,
            last: args.last,
            ..Default::default()
        };
        let found = pods::list(ctx, &mut client, &opts)
            .await
            .context("listing pod sandboxes")?;
        ids = found.into_iter().map(|p| p.id).collect();
    }
    if ids.is_empty() {
        // crictl logs this and shows the help, exiting 0.
        eprintln!("ERRO No IDs provided or nothing found per filter");
        return Ok(());
    }

    let verbose = !args.quiet;
    let mut statuses = Vec::new();
    for id in &ids {
        let request = PodSandboxStatusRequest {
            pod_sandbox_id: id.clone(),
            verbose,
        };
        let r = ctx
            .call("PodSandboxStatus", request, |req| {
                client.pod_sandbox_status(req)
            })
            .await
            .map_err(|e| anyhow!(e))
            .context("get the status of pod sandboxes: get pod sandbox status")?;
        if args.output == Format::Table {
            out.write_all(render_table(&r, verbose).as_bytes())?;
        } else {
            statuses.push(status_data(r)?);
        }
    }
    print_status_data(out, statuses, args.output, args.template.as_deref())
}

/// crictl's `marshalPodSandboxStatus`: the status in protojson with unset messages as
/// `null` and `createdAt` as an RFC 3339 time; the verbose info beside it.
fn status_data(r: PodSandboxStatusResponse) -> Result<StatusData> {
    let status = r.status.unwrap_or_default();
    let mut value = protojson::to_value_with_nulls(&status)?;
    if let Value::Object(map) = &mut value {
        map.insert(
            "createdAt".to_owned(),
            Value::String(gotime::rfc3339_nano(status.created_at)),
        );
    }
    Ok(StatusData {
        status: Some(value),
        info: r.info,
        ..StatusData::default()
    })
}

/// crictl's `outputPodSandboxStatusTable`.
fn render_table(r: &PodSandboxStatusResponse, verbose: bool) -> String {
    let status: PodSandboxStatus = r.status.clone().unwrap_or_default();
    let mut text = format!("ID: {}\n", status.id);
    if let Some(metadata) = &status.metadata {
        if !metadata.name.is_empty() {
            text.push_str(&format!("Name: {}\n", metadata.name));
        }
        if !metadata.uid.is_empty() {
            text.push_str(&format!("UID: {}\n", metadata.uid));
        }
        if !metadata.namespace.is_empty() {
            text.push_str(&format!("Namespace: {}\n", metadata.namespace));
        }
        text.push_str(&format!("Attempt: {}\n", metadata.attempt));
    }
    // The enum's proto name, as Go's %s of it prints.
    let state = k8s_cri::v1::PodSandboxState::try_from(status.state)
        .map(|s| s.as_str_name().to_owned())
        .unwrap_or_else(|_| status.state.to_string());
    text.push_str(&format!("Status: {state}\n"));
    text.push_str(&format!(
        "Created: {}\n",
        gotime::time_string(status.created_at)
    ));
    if let Some(network) = &status.network {
        text.push_str(&format!("IP Addresses: {}\n", network.ip));
        for ip in &network.additional_ips {
            text.push_str(&format!("Additional IP: {}\n", ip.ip));
        }
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
    use serde_json::json;

    use super::*;

    fn response() -> PodSandboxStatusResponse {
        PodSandboxStatusResponse {
            status: Some(cri::PodSandboxStatus {
                id: "b5a1".into(),
                metadata: Some(cri::PodSandboxMetadata {
                    name: "nginx-sandbox".into(),
                    uid: "u1".into(),
                    namespace: "default".into(),
                    attempt: 0,
                }),
                state: cri::PodSandboxState::SandboxReady as i32,
                created_at: 1_700_000_000_500_000_000,
                network: Some(cri::PodSandboxNetworkStatus {
                    ip: "10.88.200.2".into(),
                    additional_ips: vec![cri::PodIp {
                        ip: "fd00::2".into(),
                    }],
                }),
                labels: [("app".to_owned(), "nginx".to_owned())].into(),
                ..Default::default()
            }),
            info: [("info".to_owned(), "{\"pid\":42}".to_owned())].into(),
            ..Default::default()
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
        assert_eq!(
            v,
            json!({
                "info": {"pid": 42},
                "status": {
                    "id": "b5a1",
                    "metadata": {"name": "nginx-sandbox", "uid": "u1", "namespace": "default", "attempt": 0},
                    "state": "SANDBOX_READY",
                    "createdAt": "2023-11-14T22:13:20.5Z",
                    "network": {"ip": "10.88.200.2", "additionalIps": [{"ip": "fd00::2"}]},
                    "linux": null,
                    "labels": {"app": "nginx"},
                    "annotations": {},
                    "runtimeHandler": "",
                },
            })
        );
        // keys sorted, as Go's json.Marshal of a map writes them
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("{\n  \"info\": {\n    \"pid\": 42\n  },\n  \"status\": {\n    \"annotations\": {},"), "{text}");
    }

    #[test]
    fn go_template_over_status() {
        let mut out = Vec::new();
        print_status_data(
            &mut out,
            vec![status_data(response()).unwrap()],
            Format::GoTemplate,
            Some("{{.status.network.ip}} {{.info.pid}}"),
        )
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "10.88.200.2 42\n");
    }

    #[test]
    fn table() {
        assert_eq!(
            render_table(&response(), true),
            "ID: b5a1\nName: nginx-sandbox\nUID: u1\nNamespace: default\nAttempt: 0\n\
             Status: SANDBOX_READY\nCreated: 2023-11-14 22:13:20.5 +0000 UTC\n\
             IP Addresses: 10.88.200.2\nAdditional IP: fd00::2\nLabels:\n\tapp -> nginx\n\
             Info: map[info:{\"pid\":42}]\n"
        );
        let quiet = render_table(&response(), false);
        assert!(!quiet.contains("Info:"));
    }
}
