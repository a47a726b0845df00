//! `crustctl events`: follows the runtime's container and pod lifecycle events
//! (GetContainerEvents) until interrupted or the stream ends. `-o json|yaml|go-template`
//! print each event as crictl does (protojson); the default prints one line per event.
//! The stream has no deadline: `--timeout` bounds only the connection.

use std::io::Write;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use k8s_cri::v1::{
    ContainerEventResponse, ContainerEventType, ContainerState, GetEventsRequest, PodSandboxState,
};

use crate::client::{Ctx, RpcError};
use crate::gotime;
use crate::output::{format_parser, print_message, print_value, Format};
use crate::protojson;

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Output format, One of: json|yaml|go-template|table (table: one line per event)
    #[arg(short, long, default_value = "table",
          value_parser = format_parser(&["json", "yaml", "go-template", "table"]))]
    pub output: Format,
    /// The template string is only used when output is go-template; The Template format is
    /// golang template
    #[arg(long)]
    pub template: Option<String>,
}

pub async fn run(ctx: &Ctx, args: EventsArgs, out: &mut dyn Write) -> Result<()> {
    if args.template.is_some() && args.output != Format::GoTemplate {
        bail!(
            "template can't be used with {:?} format",
            format_name(args.output)
        );
    }
    let mut client = ctx.runtime().await?;
    ctx.debug(format_args!(
        "GetContainerEventsRequest: {:?}",
        GetEventsRequest {}
    ));
    // No deadline: the stream lasts as long as the user wants it.
    let mut stream = tokio::select! {
        r = client.get_container_events(tonic::Request::new(GetEventsRequest {})) => r
            .map_err(|s| anyhow!(RpcError(s)))
            .context("getting container events")?
            .into_inner(),
        _ = tokio::signal::ctrl_c() => return Ok(()),
    };
    loop {
        let next = tokio::select! {
            next = stream.message() => next,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        match next {
            Ok(Some(event)) => {
                ctx.debug(format_args!("ContainerEventResponse: {event:?}"));
                print_event(out, &event, args.output, args.template.as_deref())?;
                out.flush()?;
            }
            Ok(None) => return Ok(()),
            Err(status) => {
                return Err(anyhow!(RpcError(status))).context("getting container events")
            }
        }
    }
}

fn format_name(format: Format) -> &'static str {
    match format {
        Format::Json => "json",
        Format::Yaml => "yaml",
        Format::Table => "table",
        Format::GoTemplate => "go-template",
    }
}

/// One event in `format`.
fn print_event(
    out: &mut dyn Write,
    event: &ContainerEventResponse,
    format: Format,
    template: Option<&str>,
) -> Result<()> {
    match format {
        Format::Json | Format::Yaml => print_message(out, event, format),
        Format::GoTemplate => {
            let value = protojson::to_value(event).context("marshal container event")?;
            print_value(out, &value, format, template)
        }
        Format::Table => Ok(writeln!(out, "{}", event_line(event))?),
    }
}

/// `<time> <pod|container> <created|started|stopped|deleted> <ID> key=value…`: the subject's
/// name and state from the statuses the event carries (a deleted container has none left).
fn event_line(event: &ContainerEventResponse) -> String {
    let kind = match ContainerEventType::try_from(event.container_event_type) {
        Ok(ContainerEventType::ContainerCreatedEvent) => "created".to_owned(),
        Ok(ContainerEventType::ContainerStartedEvent) => "started".to_owned(),
        Ok(ContainerEventType::ContainerStoppedEvent) => "stopped".to_owned(),
        Ok(ContainerEventType::ContainerDeletedEvent) => "deleted".to_owned(),
        Err(_) => format!("event({})", event.container_event_type),
    };
    let time = gotime::rfc3339_nano(event.created_at);
    let pod = event.pod_sandbox_status.as_ref();
    let mut line = String::new();
    if pod.is_some_and(|p| p.id == event.container_id) {
        let pod = pod.expect("checked");
        line.push_str(&format!("{time} pod {kind} {}", event.container_id));
        if let Some(m) = &pod.metadata {
            line.push_str(&format!(" name={} namespace={}", m.name, m.namespace));
        }
        let state = PodSandboxState::try_from(pod.state)
            .map_or_else(|_| pod.state.to_string(), |s| s.as_str_name().to_owned());
        line.push_str(&format!(" state={state}"));
        return line;
    }
    line.push_str(&format!("{time} container {kind} {}", event.container_id));
    if let Some(status) = event
        .containers_statuses
        .iter()
        .find(|s| s.id == event.container_id)
    {
        if let Some(m) = &status.metadata {
            line.push_str(&format!(" name={}", m.name));
        }
        let state = ContainerState::try_from(status.state)
            .map_or_else(|_| status.state.to_string(), |s| s.as_str_name().to_owned());
        line.push_str(&format!(" state={state}"));
        if status.state == ContainerState::ContainerExited as i32 {
            line.push_str(&format!(" exit_code={}", status.exit_code));
            if !status.reason.is_empty() {
                line.push_str(&format!(" reason={}", status.reason));
            }
        }
    }
    if let Some(pod) = pod {
        line.push_str(&format!(" pod={}", pod.id));
    }
    line
}

#[cfg(test)]
mod tests {
    use k8s_cri::v1::{ContainerMetadata, ContainerStatus, PodSandboxMetadata, PodSandboxStatus};

    use super::*;

    fn pod() -> PodSandboxStatus {
        PodSandboxStatus {
            id: "p1".into(),
            metadata: Some(PodSandboxMetadata {
                name: "web".into(),
                namespace: "default".into(),
                ..Default::default()
            }),
            state: PodSandboxState::SandboxReady as i32,
            ..Default::default()
        }
    }

    fn exited(id: &str) -> ContainerStatus {
        ContainerStatus {
            id: id.into(),
            metadata: Some(ContainerMetadata {
                name: "job".into(),
                attempt: 0,
            }),
            state: ContainerState::ContainerExited as i32,
            exit_code: 3,
            reason: "Error".into(),
            ..Default::default()
        }
    }

    #[test]
    fn lines() {
        let container = ContainerEventResponse {
            container_id: "c1".into(),
            container_event_type: ContainerEventType::ContainerStoppedEvent as i32,
            created_at: 1_700_000_000_123_456_789,
            pod_sandbox_status: Some(pod()),
            containers_statuses: vec![exited("c0"), exited("c1")],
        };
        assert_eq!(
            event_line(&container),
            "2023-11-14T22:13:20.123456789Z container stopped c1 name=job \
             state=CONTAINER_EXITED exit_code=3 reason=Error pod=p1"
        );
        let deleted = ContainerEventResponse {
            container_event_type: ContainerEventType::ContainerDeletedEvent as i32,
            containers_statuses: vec![exited("c0")],
            ..container.clone()
        };
        assert_eq!(
            event_line(&deleted),
            "2023-11-14T22:13:20.123456789Z container deleted c1 pod=p1"
        );
        let pod_event = ContainerEventResponse {
            container_id: "p1".into(),
            container_event_type: ContainerEventType::ContainerCreatedEvent as i32,
            created_at: 1_700_000_000_000_000_000,
            pod_sandbox_status: Some(pod()),
            containers_statuses: vec![],
        };
        assert_eq!(
            event_line(&pod_event),
            "2023-11-14T22:13:20Z pod created p1 name=web namespace=default state=SANDBOX_READY"
        );
    }

    #[test]
    fn json_is_protojson() {
        let event = ContainerEventResponse {
            container_id: "c1".into(),
            container_event_type: ContainerEventType::ContainerStartedEvent as i32,
            created_at: 5,
            pod_sandbox_status: Some(pod()),
            containers_statuses: vec![],
        };
        let mut out = Vec::new();
        print_event(&mut out, &event, Format::Json, None).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["containerId"], "c1");
        assert_eq!(value["containerEventType"], "CONTAINER_STARTED_EVENT");
        assert_eq!(value["createdAt"], "5");
        assert_eq!(value["podSandboxStatus"]["state"], "SANDBOX_READY");
        let mut out = Vec::new();
        print_event(
            &mut out,
            &event,
            Format::GoTemplate,
            Some("{{.containerId}} {{.containerEventType}}"),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "c1 CONTAINER_STARTED_EVENT\n"
        );
    }
}
