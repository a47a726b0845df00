//! `crustctl info`: the runtime's status conditions, handlers, features and verbose info.

use std::io::Write;

use anyhow::{Context, Result};
use clap::Args;
use k8s_cri::v1::{StatusRequest, StatusResponse};
use serde_json::Value;

use crate::client::Ctx;
use crate::output::{format_parser, print_status_data, Format, StatusData};

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Output format
    #[arg(short, long, default_value = "json", value_parser = format_parser(&["json", "yaml", "go-template"]))]
    pub output: Format,
    /// Do not show verbose information
    #[arg(short, long)]
    pub quiet: bool,
    /// Go template to render with, used when the output is go-template
    #[arg(long)]
    pub template: Option<String>,
}

pub async fn run(ctx: &Ctx, args: InfoArgs, out: &mut dyn Write) -> Result<()> {
    let mut client = ctx.runtime().await?;
    let request = StatusRequest {
        verbose: !args.quiet,
    };
    let r = ctx
        .call("Status", request, |req| client.status(req))
        .await
        .context("getting status of runtime")?;
    let data = status_data(r)?;
    print_status_data(out, vec![data], args.output, args.template.as_deref())
}

/// crictl's shape: `status` as protojson; `runtimeHandlers` and `features` as Go's
/// `json.Marshal` of the generated structs (snake_case keys, empty values omitted); then
/// the info entries.
fn status_data(r: StatusResponse) -> Result<StatusData> {
    let mut data = StatusData::new(r.status.as_ref())?.with_info(r.info);
    if !r.runtime_handlers.is_empty() {
        let handlers = omit_empty(serde_json::to_value(&r.runtime_handlers)?);
        data.extra.push(("runtimeHandlers".to_owned(), handlers));
    }
    if let Some(features) = r.features {
        data.extra.push((
            "features".to_owned(),
            omit_empty(serde_json::to_value(features)?),
        ));
    }
    Ok(data)
}

/// Go's `omitempty` on the generated structs: drops null, false, 0, "" and empty lists
/// from objects (set messages stay, even when empty).
fn omit_empty(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| match v {
                    Value::Null => false,
                    Value::Bool(b) => *b,
                    Value::Number(n) => n.as_f64() != Some(0.0),
                    Value::String(s) => !s.is_empty(),
                    Value::Array(a) => !a.is_empty(),
                    Value::Object(_) => true,
                })
                .map(|(k, v)| (k, omit_empty(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(omit_empty).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use k8s_cri::v1 as cri;
    use serde_json::json;

    use super::*;
    use crate::output::print_status_data;

    #[test]
    fn info_shape_like_crictl() {
        let r = cri::StatusResponse {
            status: Some(cri::RuntimeStatus {
                conditions: vec![cri::RuntimeCondition {
                    r#type: "RuntimeReady".into(),
                    status: true,
                    reason: String::new(),
                    message: String::new(),
                }],
            }),
            info: [(
                "config".to_owned(),
                "{\"root\":\"/var/lib/crust\"}".to_owned(),
            )]
            .into(),
            runtime_handlers: vec![
                cri::RuntimeHandler {
                    name: String::new(),
                    features: Some(cri::RuntimeHandlerFeatures {
                        recursive_read_only_mounts: true,
                        user_namespaces: false,
                    }),
                },
                cri::RuntimeHandler {
                    name: "runc".into(),
                    features: None,
                },
            ],
            features: Some(cri::RuntimeFeatures {
                supplemental_groups_policy: true,
            }),
        };
        let mut out = Vec::new();
        print_status_data(&mut out, vec![status_data(r).unwrap()], Format::Json, None).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!({
                "status": {"conditions": [{"type": "RuntimeReady", "status": true, "reason": "", "message": ""}]},
                "runtimeHandlers": [{"features": {"recursive_read_only_mounts": true}}, {"name": "runc"}],
                "features": {"supplemental_groups_policy": true},
                "config": {"root": "/var/lib/crust"},
            })
        );
    }
}
