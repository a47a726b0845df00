//! `crustctl exec`: runs a command in running containers. `-s` runs it through ExecSync;
//! without it the Exec RPC returns a URL on the streaming server and the command's stdio is
//! streamed there (SPDY or WebSocket, `--transport`), our terminal in raw mode with `-t`.
//! Either way crustctl exits with the command's exit code.

use std::fmt;
use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{ExecRequest, ExecSyncRequest};
use tonic::transport::Channel;

use super::containers::{self, ListOptions};
use super::pods::parse_labels;
use crate::client::Ctx;
use crate::stream::remotecommand::{self, Io};
use crate::stream::status::Outcome;
use crate::stream::{term, Transport};

#[derive(Args, Debug, Default)]
pub struct ExecArgs {
    /// Run the command synchronously
    #[arg(short, long)]
    pub sync: bool,
    /// Timeout in seconds
    #[arg(long, default_value_t = 0)]
    pub timeout: i64,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Keep STDIN open
    #[arg(short, long)]
    pub interactive: bool,
    /// Transport protocol to use, one of: spdy|websocket
    #[arg(short = 'r', long, default_value = "spdy",
          value_parser = clap::builder::PossibleValuesParser::new(["spdy", "websocket"]))]
    pub transport: String,
    /// Exec command for all containers matching this name filter regular expression pattern
    #[arg(long)]
    pub name: Option<String>,
    /// Exec command for all containers matching this pod ID filter
    #[arg(short, long)]
    pub pod: Option<String>,
    /// Exec command for all containers matching this container image filter
    #[arg(long)]
    pub image: Option<String>,
    /// Exec command for all containers matching this container state filter
    #[arg(long)]
    pub state: Option<String>,
    /// Exec command for all containers matching this key=value label filter
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Exec command for the most recently created container
    #[arg(short, long)]
    pub latest: bool,
    /// Exec command for all last n containers, set to 0 for unlimited
    #[arg(short = 'n', long)]
    pub last: Option<i64>,
    /// Do not print the container ID if multiple containers are selected
    #[arg(short, long)]
    pub quiet: bool,
    /// Ignore errors during command execution
    #[arg(short = 'e', long)]
    pub ignore_errors: bool,
    /// Run the command in parallel if multiple containers are selected
    #[arg(short = 'x', long)]
    pub parallel: bool,
    /// [CONTAINER-ID] COMMAND [ARG...]: the CONTAINER-ID is only required if none of the
    /// filter flags (--image, --label, --last, --latest, --name, --pod, --state) are set
    #[arg(value_name = "ARGS", required = true, num_args = 1.., trailing_var_arg = true,
          allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// A command that ran and exited non-zero: crustctl exits with its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandExit(pub i32);

impl fmt::Display for CommandExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "non-zero exit code {}", self.0)
    }
}

impl std::error::Error for CommandExit {}

impl ExecArgs {
    fn filtered(&self) -> bool {
        self.name.is_some()
            || self.pod.is_some()
            || self.image.is_some()
            || self.state.is_some()
            || !self.labels.is_empty()
            || self.latest
            || self.last.is_some()
    }

    /// The container IDs given (none with filters) and the command.
    fn split(&self) -> Result<(Option<String>, Vec<String>)> {
        if self.filtered() {
            return Ok((None, self.args.clone()));
        }
        match &self.args[..] {
            [id, cmd @ ..] if !cmd.is_empty() => Ok((Some(id.clone()), cmd.to_vec())),
            _ => bail!("a CONTAINER-ID and a COMMAND are required"),
        }
    }
}

pub async fn run(ctx: &Ctx, args: ExecArgs, out: &mut dyn Write) -> Result<()> {
    let (id, cmd) = args.split()?;
    let transport = Transport::parse(&args.transport)?;
    if args.ignore_errors && !args.quiet {
        eprintln!(
            "WARN The `--ignore-errors` option has been set all errors returned by the command will be ignored."
        );
    }
    let mut client = ctx.runtime().await?;
    let ids = match id {
        Some(id) => vec![id],
        None => {
            let opts = ListOptions {
                name_regexp: args.name.clone().unwrap_or_default(),
                pod_id: args.pod.clone().unwrap_or_default(),
                image: args.image.clone().unwrap_or_default(),
                state: args.state.clone().unwrap_or_default(),
                labels: parse_labels(&args.labels)?,
                latest: args.latest,
                last: args.last.unwrap_or(0),
                ..Default::default()
            };
            let found = containers::list(ctx, &mut client, &opts)
                .await
                .context("listing containers")?;
            if found.is_empty() {
                eprintln!("ERRO No containers found per filter flags");
                return Ok(());
            }
            found.into_iter().map(|c| c.id).collect()
        }
    };
    let print_ids = ids.len() > 1 && !args.quiet && !args.parallel;
    let mut exit = None;
    let mut errors = Vec::new();
    for id in &ids {
        if print_ids {
            writeln!(out, "{id}:")?;
        }
        if !args.sync {
            out.flush()?;
            match exec(ctx, &mut client, id, &cmd, &args, transport).await {
                Ok(0) => {}
                Ok(code) => exit = Some(code),
                Err(e) => errors.push(format!(
                    "{:#}",
                    e.context(format!("execing command in container {id}"))
                )),
            }
            continue;
        }
        match exec_sync(ctx, &mut client, id, &cmd, args.timeout).await {
            Ok(r) => {
                out.write_all(&r.stdout)?;
                out.flush()?;
                std::io::stderr().write_all(&r.stderr)?;
                if r.exit_code != 0 {
                    exit = Some(r.exit_code);
                }
            }
            Err(e) => errors.push(format!(
                "{:#}",
                e.context(format!("execing command in container {id} synchronously"))
            )),
        }
    }
    if args.ignore_errors {
        return Ok(());
    }
    containers::aggregate(errors)?;
    match exit {
        Some(code) => Err(CommandExit(code).into()),
        None => Ok(()),
    }
}

/// The streaming exec: the Exec RPC, then the command's stdio on its URL; its exit code.
async fn exec(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    id: &str,
    cmd: &[String],
    args: &ExecArgs,
    transport: Transport,
) -> Result<i32> {
    if id.is_empty() {
        bail!("ID cannot be empty");
    }
    let request = ExecRequest {
        container_id: id.to_owned(),
        cmd: cmd.to_vec(),
        tty: args.tty,
        stdin: args.interactive,
        stdout: true,
        stderr: !args.tty,
    };
    let response = ctx
        .call("Exec", request, |req| client.exec(req))
        .await
        .map_err(|e| anyhow!(e))?;
    ctx.debug(format_args!("Exec URL: {}", response.url));
    stream(&response.url, transport, args.interactive, args.tty).await
}

/// Streams our stdio to a remotecommand URL (exec and attach): stdin with `stdin`, the
/// terminal raw and its size sent with `tty`. The remote command's exit code, or its error.
pub async fn stream(url: &str, transport: Transport, stdin: bool, tty: bool) -> Result<i32> {
    let mut io = Io {
        stdout: Some(Box::new(term::stdout_writer()?)),
        stderr: if tty {
            None
        } else {
            Some(Box::new(term::stderr_writer()?))
        },
        tty,
        ..Default::default()
    };
    let mut raw = None;
    if tty {
        if !stdin {
            bail!("tty=true must be specified with interactive=true");
        }
        let input = term::stdin_fd();
        if !term::is_terminal(input) {
            bail!("input is not a terminal");
        }
        // Sizes of the terminal we print on, as kubectl's TTY does; else of the input's.
        let output = term::stdout_fd();
        let sized = if term::is_terminal(output) {
            output
        } else {
            input
        };
        io.resize = Some(term::watch_size(sized)?);
        raw = Some(term::RawMode::enter(input)?);
    }
    if stdin {
        io.stdin = Some(Box::new(term::stdin_reader()));
    }
    let outcome = remotecommand::stream(url, transport, io).await;
    drop(raw);
    match outcome? {
        Outcome::Exited(code) => Ok(code),
        Outcome::Failed(message) => Err(anyhow!(message)),
    }
}

/// ExecSync: the server kills the command after `timeout` seconds (0: never); the call
/// waits that long plus `-t`, or without a deadline for 0, as kubelet's CRI client does.
pub async fn exec_sync(
    ctx: &Ctx,
    client: &mut RuntimeServiceClient<Channel>,
    id: &str,
    cmd: &[String],
    timeout: i64,
) -> Result<k8s_cri::v1::ExecSyncResponse> {
    if id.is_empty() {
        bail!("ID cannot be empty");
    }
    let deadline = (timeout > 0).then(|| ctx.timeout + Duration::from_secs(timeout.unsigned_abs()));
    let mut request = tonic::Request::new(ExecSyncRequest {
        container_id: id.to_owned(),
        cmd: cmd.to_vec(),
        timeout,
    });
    if let Some(deadline) = deadline {
        request.set_timeout(deadline);
    }
    ctx.call_with_timeout("ExecSync", deadline, request, |req| client.exec_sync(req))
        .await
        .map_err(|e| anyhow!(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(sync: bool, rest: &[&str]) -> ExecArgs {
        ExecArgs {
            sync,
            args: rest.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn id_then_command_unless_filtered() {
        let (id, cmd) = args(true, &["abc", "sh", "-c", "exit 3"]).split().unwrap();
        assert_eq!(id.as_deref(), Some("abc"));
        assert_eq!(cmd, ["sh", "-c", "exit 3"]);
        assert!(args(true, &["abc"]).split().is_err());
        let mut filtered = args(true, &["echo", "hi"]);
        filtered.latest = true;
        assert_eq!(
            filtered.split().unwrap(),
            (None, vec!["echo".into(), "hi".into()])
        );
    }

    #[test]
    fn exit_code_error() {
        let e: anyhow::Error = CommandExit(3).into();
        assert_eq!(e.downcast_ref::<CommandExit>(), Some(&CommandExit(3)));
    }
}
