//! `crustctl ps`: lists containers (running ones unless `-a` or `--state`).

use std::io::Write;

use anyhow::{Context, Result};
use clap::Args;
use k8s_cri::v1::{Container, ListContainersResponse};

use super::containers::{self, pod_name, pod_namespace, state_name, ListOptions};
use super::pods::{parse_labels, sorted_map_lines};
use crate::client::Ctx;
use crate::gotime;
use crate::output::{format_parser, print_message, truncate_id, Format, Table};

#[derive(Args, Debug, Default)]
pub struct PsArgs {
    /// Show verbose information for containers
    #[arg(short, long)]
    pub verbose: bool,
    /// Filter by container id
    #[arg(long, default_value = "")]
    pub id: String,
    /// Filter by container name regular expression pattern
    #[arg(long, default_value = "")]
    pub name: String,
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
    /// Only display container IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format, One of: json|yaml|table
    #[arg(short, long, default_value = "table",
          value_parser = format_parser(&["json", "yaml", "table"]))]
    pub output: Format,
    /// Show all containers
    #[arg(short, long)]
    pub all: bool,
    /// Show the most recently created container (includes all states)
    #[arg(short, long)]
    pub latest: bool,
    /// Show last n recently created containers (includes all states). Set 0 for unlimited
    #[arg(short = 'n', long, default_value_t = 0, allow_negative_numbers = true)]
    pub last: i64,
    /// Show output without truncating the ID
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter by pod namespace regular expression pattern
    #[arg(long, default_value = "")]
    pub namespace: String,
}

impl PsArgs {
    fn list_options(&self) -> Result<ListOptions> {
        Ok(ListOptions {
            id: self.id.clone(),
            pod_id: self.pod.clone(),
            name_regexp: self.name.clone(),
            namespace_regexp: self.namespace.clone(),
            image: self.image.clone(),
            state: self.state.clone(),
            labels: parse_labels(&self.labels)?,
            all: self.all,
            latest: self.latest,
            last: self.last,
        })
    }
}

pub async fn run(ctx: &Ctx, args: PsArgs, out: &mut dyn Write) -> Result<()> {
    let opts = args.list_options()?;
    let mut client = ctx.runtime().await?;
    let found = containers::list(ctx, &mut client, &opts)
        .await
        .context("listing containers")?;
    match args.output {
        Format::Json | Format::Yaml => print_message(
            out,
            &ListContainersResponse { containers: found },
            args.output,
        ),
        _ => {
            out.write_all(render(&found, &args, gotime::now_nanos())?.as_bytes())?;
            Ok(())
        }
    }
}

/// An image cell: a digest (kubelet's image ID) shortened like an ID unless `--no-trunc`.
fn image_cell(image: &str, no_trunc: bool) -> String {
    match image.split_once(':') {
        Some((algorithm, hex))
            if !no_trunc
                && algorithm == "sha256"
                && hex.len() == 64
                && hex.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            truncate_id(image, "sha256:")
        }
        _ => image.to_owned(),
    }
}

/// The table (or `-q` IDs, or `-v` blocks) crictl prints for `ps`.
fn render(found: &[Container], args: &PsArgs, now_nanos: i64) -> Result<String> {
    let mut text = String::new();
    let mut table = Table::new();
    if !args.verbose && !args.quiet {
        table.add_row([
            "CONTAINER",
            "IMAGE",
            "CREATED",
            "STATE",
            "NAME",
            "ATTEMPT",
            "POD ID",
            "POD",
        ]);
    }
    for c in found {
        if args.quiet {
            text.push_str(&format!("{}\n", c.id));
            continue;
        }
        let created = gotime::ago(c.created_at, now_nanos);
        let metadata = c.metadata.clone().unwrap_or_default();
        let image = c.image.as_ref().map(|i| i.image.as_str()).unwrap_or("");
        let state = state_name(c.state)?;
        if !args.verbose {
            let (id, pod_id) = if args.no_trunc {
                (c.id.clone(), c.pod_sandbox_id.clone())
            } else {
                (truncate_id(&c.id, ""), truncate_id(&c.pod_sandbox_id, ""))
            };
            table.add_row([
                id,
                image_cell(image, args.no_trunc),
                created,
                state.to_owned(),
                metadata.name,
                metadata.attempt.to_string(),
                pod_id,
                pod_name(&c.labels).to_owned(),
            ]);
            continue;
        }
        text.push_str(&format!("ID: {}\n", c.id));
        text.push_str(&format!("PodID: {}\n", c.pod_sandbox_id));
        text.push_str(&format!("Namespace: {}\n", pod_namespace(&c.labels)));
        if c.metadata.is_some() {
            if !metadata.name.is_empty() {
                text.push_str(&format!("Name: {}\n", metadata.name));
            }
            text.push_str(&format!("Attempt: {}\n", metadata.attempt));
        }
        text.push_str(&format!("State: {state}\n"));
        if c.image.is_some() {
            text.push_str(&format!("Image: {image}\n"));
        }
        text.push_str(&format!("Created: {created}\n"));
        text.push_str(&sorted_map_lines("Labels", &c.labels));
        text.push_str(&sorted_map_lines("Annotations", &c.annotations));
        text.push('\n');
    }
    text.push_str(&table.render());
    Ok(text)
}

#[cfg(test)]
mod tests {
    use k8s_cri::v1::{ContainerMetadata, ContainerState, ImageSpec};

    use super::*;
    use crate::cmd::containers::{POD_NAMESPACE_LABEL, POD_NAME_LABEL};

    const T0: i64 = 1_700_000_000_000_000_000;
    const SEC: i64 = 1_000_000_000;
    const DIGEST: &str = "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741";

    fn sample() -> Vec<Container> {
        vec![
            Container {
                id: "e7a3c1d2b4f5a6978899aabbccddeeff00112233445566778899aabbccddeeff".into(),
                pod_sandbox_id: "4dccb216c4adb8e1e1fe7c2ed4a4a5a5d3c9a7a0f7a4f1e2b5f1c0d9e8a7b6c5"
                    .into(),
                metadata: Some(ContainerMetadata {
                    name: "busybox".into(),
                    attempt: 1,
                }),
                image: Some(ImageSpec {
                    image: DIGEST.into(),
                    ..Default::default()
                }),
                state: ContainerState::ContainerRunning as i32,
                created_at: T0 + 100 * SEC,
                labels: [
                    (POD_NAME_LABEL.to_owned(), "busy-pod".to_owned()),
                    (POD_NAMESPACE_LABEL.to_owned(), "default".to_owned()),
                ]
                .into(),
                ..Default::default()
            },
            Container {
                id: "0123456789abcdef".into(),
                pod_sandbox_id: "fedcba9876543210".into(),
                metadata: Some(ContainerMetadata {
                    name: "web".into(),
                    attempt: 0,
                }),
                image: Some(ImageSpec {
                    image: "docker.io/library/nginx:latest".into(),
                    ..Default::default()
                }),
                state: ContainerState::ContainerExited as i32,
                created_at: T0,
                ..Default::default()
            },
        ]
    }

    #[test]
    fn table_like_crictl() {
        let text = render(&sample(), &PsArgs::default(), T0 + 105 * SEC).unwrap();
        assert_eq!(
            text,
            "CONTAINER           IMAGE                            CREATED              STATE               NAME                ATTEMPT             POD ID              POD\n\
             e7a3c1d2b4f5a       3f57d9401f8d4                    5 seconds ago        Running             busybox             1                   4dccb216c4adb       busy-pod\n\
             0123456789abc       docker.io/library/nginx:latest   About a minute ago   Exited              web                 0                   fedcba9876543       unknown\n"
        );
        let args = PsArgs {
            no_trunc: true,
            ..Default::default()
        };
        let text = render(&sample(), &args, T0 + 105 * SEC).unwrap();
        let row = text.lines().nth(1).unwrap();
        assert!(
            row.starts_with(&format!("{}   {DIGEST}", sample()[0].id)),
            "{row}"
        );
        let args = PsArgs {
            quiet: true,
            ..Default::default()
        };
        assert_eq!(
            render(&sample(), &args, 0).unwrap(),
            format!("{}\n{}\n", sample()[0].id, sample()[1].id)
        );
    }

    #[test]
    fn verbose_blocks() {
        let args = PsArgs {
            verbose: true,
            ..Default::default()
        };
        let text = render(&sample()[1..], &args, T0 + 3 * SEC).unwrap();
        assert_eq!(
            text,
            "ID: 0123456789abcdef\nPodID: fedcba9876543210\nNamespace: unknown\nName: web\n\
             Attempt: 0\nState: Exited\nImage: docker.io/library/nginx:latest\n\
             Created: 3 seconds ago\n\n"
        );
    }

    #[test]
    fn json_is_protojson_containers() {
        let mut out = Vec::new();
        print_message(
            &mut out,
            &ListContainersResponse {
                containers: sample(),
            },
            Format::Json,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["containers"][0]["state"], "CONTAINER_RUNNING");
        assert_eq!(
            v["containers"][0]["podSandboxId"],
            sample()[0].pod_sandbox_id
        );
        assert_eq!(v["containers"][1]["createdAt"], T0.to_string());
    }
}
