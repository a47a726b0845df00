//! crustctl: a CRI v1 client with crictl's verbs, flags and output formats.
//!
//! `main` parses the command line and dispatches to `cmd::<verb>::run`; `client` holds
//! the connection, `output` the printing helpers, `protojson` crictl's JSON shape.

mod bench;
mod client;
mod cmd;
mod config;
mod crilog;
mod duration;
mod gotime;
mod output;
mod protojson;
mod stream;
mod template;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{ArgAction, Parser, Subcommand};

use crate::client::{Ctx, DEFAULT_ENDPOINT};

#[derive(Parser, Debug)]
#[command(
    name = "crustctl",
    version,
    about = "client for CRI: talks CRI v1 gRPC to crustd (or any CRI runtime) like crictl",
    disable_version_flag = true
)]
struct Cli {
    /// Endpoint of the CRI container runtime service (unix:///path or /path)
    #[arg(short = 'r', long, env = "CONTAINER_RUNTIME_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    runtime_endpoint: String,
    /// Endpoint of the CRI image manager service [default: the runtime endpoint]
    #[arg(short = 'i', long, env = "IMAGE_SERVICE_ENDPOINT")]
    image_endpoint: Option<String>,
    /// Timeout of connecting to the server and of each call (pull excepted), e.g. 10s
    #[arg(short = 't', long, default_value = "2s", value_parser = duration::parse)]
    timeout: Duration,
    /// Enable debug mode: log requests and replies to stderr
    #[arg(short = 'D', long)]
    debug: bool,
    /// Print the version
    #[arg(short = 'v', long, action = ArgAction::Version)]
    version: Option<bool>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Display runtime version information
    Version(cmd::version::VersionArgs),
    /// Display information of the container runtime
    Info(cmd::info::InfoArgs),
    /// Pull an image from a registry
    Pull(cmd::pull::PullArgs),
    /// List images
    #[command(visible_aliases = ["image", "img"])]
    Images(cmd::images::ImagesArgs),
    /// Return the status of one or more images
    Inspecti(cmd::inspecti::InspectiArgs),
    /// Remove one or more images
    Rmi(cmd::rmi::RmiArgs),
    /// Return image filesystem info
    Imagefsinfo(cmd::imagefsinfo::ImagefsinfoArgs),
    /// Run a new pod
    Runp(cmd::runp::RunpArgs),
    /// List pods
    Pods(cmd::pods::PodsArgs),
    /// Display the status of one or more pods
    Inspectp(cmd::inspectp::InspectpArgs),
    /// Stop one or more running pods
    Stopp(cmd::stopp::StoppArgs),
    /// Remove one or more pods
    Rmp(cmd::rmp::RmpArgs),
    /// Create a new container
    Create(cmd::create::CreateArgs),
    /// Start one or more created containers
    Start(cmd::start::StartArgs),
    /// Run a new container inside a sandbox
    Run(cmd::run::RunArgs),
    /// List containers
    Ps(cmd::ps::PsArgs),
    /// Display the status of one or more containers
    Inspect(cmd::inspect::InspectArgs),
    /// Fetch the logs of a container
    Logs(cmd::logs::LogsArgs),
    /// Run a command in a running container
    Exec(cmd::exec::ExecArgs),
    /// Attach to a running container
    Attach(cmd::attach::AttachArgs),
    /// Forward local port to a pod
    PortForward(cmd::port_forward::PortForwardArgs),
    /// Stop one or more running containers
    Stop(cmd::stop::StopArgs),
    /// Remove one or more containers
    Rm(cmd::rm::RmArgs),
    /// Update one or more running containers
    Update(cmd::update::UpdateArgs),
    /// Checkpoint one or more running containers
    Checkpoint(cmd::checkpoint::CheckpointArgs),
    /// Stream the events of containers
    #[command(visible_alias = "event")]
    Events(cmd::events::EventsArgs),
    /// List container(s) resource usage statistics
    Stats(cmd::stats::StatsArgs),
    /// List pod statistics
    Statsp(cmd::statsp::StatspArgs),
    /// List pod metrics (the runtime's replacement for cAdvisor's /metrics/cadvisor)
    Metricsp(cmd::metricsp::MetricspArgs),
    /// Time CRI workloads against the runtime (crust's benchmarks)
    Bench(bench::BenchArgs),
}

impl Cli {
    fn ctx(&self) -> Result<Ctx> {
        if self.runtime_endpoint.is_empty() {
            bail!("--runtime-endpoint is not set");
        }
        let image_endpoint = match &self.image_endpoint {
            Some(endpoint) if !endpoint.is_empty() => endpoint.clone(),
            _ => self.runtime_endpoint.clone(),
        };
        Ok(Ctx {
            runtime_endpoint: self.runtime_endpoint.clone(),
            image_endpoint,
            timeout: self.timeout,
            debug: self.debug,
        })
    }
}

async fn dispatch(cli: Cli, out: &mut dyn Write) -> Result<()> {
    let ctx = cli.ctx()?;
    match cli.command {
        Command::Version(args) => cmd::version::run(&ctx, args, out).await,
        Command::Info(args) => cmd::info::run(&ctx, args, out).await,
        Command::Pull(args) => cmd::pull::run(&ctx, args, out).await,
        Command::Images(args) => cmd::images::run(&ctx, args, out).await,
        Command::Inspecti(args) => cmd::inspecti::run(&ctx, args, out).await,
        Command::Rmi(args) => cmd::rmi::run(&ctx, args, out).await,
        Command::Imagefsinfo(args) => cmd::imagefsinfo::run(&ctx, args, out).await,
        Command::Runp(args) => cmd::runp::run(&ctx, args, out).await,
        Command::Pods(args) => cmd::pods::run(&ctx, args, out).await,
        Command::Inspectp(args) => cmd::inspectp::run(&ctx, args, out).await,
        Command::Stopp(args) => cmd::stopp::run(&ctx, args, out).await,
        Command::Rmp(args) => cmd::rmp::run(&ctx, args, out).await,
        Command::Create(args) => cmd::create::run(&ctx, args, out).await,
        Command::Start(args) => cmd::start::run(&ctx, args, out).await,
        Command::Run(args) => cmd::run::run(&ctx, args, out).await,
        Command::Ps(args) => cmd::ps::run(&ctx, args, out).await,
        Command::Inspect(args) => cmd::inspect::run(&ctx, args, out).await,
        Command::Logs(args) => cmd::logs::run(&ctx, args, out).await,
        Command::Exec(args) => cmd::exec::run(&ctx, args, out).await,
        Command::Attach(args) => cmd::attach::run(&ctx, args, out).await,
        Command::PortForward(args) => cmd::port_forward::run(&ctx, args, out).await,
        Command::Stop(args) => cmd::stop::run(&ctx, args, out).await,
        Command::Rm(args) => cmd::rm::run(&ctx, args, out).await,
        Command::Update(args) => cmd::update::run(&ctx, args, out).await,
        Command::Checkpoint(args) => cmd::checkpoint::run(&ctx, args, out).await,
        Command::Events(args) => cmd::events::run(&ctx, args, out).await,
        Command::Stats(args) => cmd::stats::run(&ctx, args, out).await,
        Command::Statsp(args) => cmd::statsp::run(&ctx, args, out).await,
        Command::Metricsp(args) => cmd::metricsp::run(&ctx, args, out).await,
        Command::Bench(args) => bench::run(&ctx, args, out).await,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = dispatch(cli, &mut out)
        .await
        .and_then(|()| Ok(out.flush()?));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `crustctl images | head`: the reader left, nothing more to say.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        // `exec -s`: the command's own exit code, its output already printed.
        Err(e) if e.downcast_ref::<cmd::exec::CommandExit>().is_some() => {
            let code = e
                .downcast_ref::<cmd::exec::CommandExit>()
                .map_or(1, |c| c.0);
            ExitCode::from(u8::try_from(code).ok().filter(|&c| c != 0).unwrap_or(1))
        }
        Err(e) => {
            eprintln!("crustctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_verb_has_help() {
        for sub in Cli::command().get_subcommands() {
            assert!(
                sub.get_about().is_some(),
                "{} has no help text",
                sub.get_name()
            );
        }
    }

    #[test]
    fn global_flags_and_defaults() {
        let cli = Cli::try_parse_from([
            "crustctl",
            "-r",
            "/tmp/x.sock",
            "-t",
            "10s",
            "-D",
            "images",
            "-q",
        ])
        .unwrap();
        let ctx = cli.ctx().unwrap();
        assert_eq!(ctx.runtime_endpoint, "/tmp/x.sock");
        assert_eq!(ctx.image_endpoint, "/tmp/x.sock");
        assert_eq!(ctx.timeout, Duration::from_secs(10));
        assert!(ctx.debug);

        let cli = Cli::try_parse_from(["crustctl", "-i", "unix:///img.sock", "version"]).unwrap();
        let ctx = cli.ctx().unwrap();
        assert_eq!(ctx.image_endpoint, "unix:///img.sock");
        assert_eq!(ctx.timeout, Duration::from_secs(2));
    }

    #[test]
    fn verb_flags() {
        let ok = |args: &[&str]| {
            let mut argv = vec!["crustctl"];
            argv.extend(args);
            Cli::try_parse_from(argv)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        ok(&[
            "pull", "busybox", "--creds", "u:p", "--pt", "1m", "-a", "k=v",
        ])
        .unwrap();
        ok(&["pull", "busybox", "-u", "user", "-p", "pw"]).unwrap();
        assert!(
            ok(&["pull", "busybox", "-p", "pw"]).is_err(),
            "--password needs --username"
        );
        ok(&[
            "images",
            "--digests",
            "--no-trunc",
            "--pinned",
            "-f",
            "dangling=true",
            "-o",
            "json",
        ])
        .unwrap();
        ok(&["img", "-v", "busybox"]).unwrap();
        assert!(ok(&["images", "-o", "go-template"]).is_err());
        ok(&[
            "inspecti",
            "a",
            "b",
            "-o",
            "go-template",
            "--template",
            "{{.status.id}}",
        ])
        .unwrap();
        assert!(ok(&["inspecti"]).is_err());
        ok(&["rmi", "-a"]).unwrap();
        ok(&["rmi", "-q"]).unwrap();
        ok(&["rmi", "x", "y"]).unwrap();
        assert!(ok(&["rmi"]).is_err());
        ok(&["imagefsinfo", "-o", "table"]).unwrap();
        ok(&["info", "-o", "yaml", "-q"]).unwrap();
        assert!(ok(&["info", "-o", "table"]).is_err());
    }

    #[test]
    fn pod_verb_flags() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["crustctl"];
            argv.extend(args);
            Cli::try_parse_from(argv).map_err(|e| e.to_string())
        };
        let cli = parse(&["runp", "-r", "crun", "-T", "30s", "pod.json"]).unwrap();
        let Command::Runp(runp) = cli.command else {
            panic!("runp");
        };
        assert_eq!(runp.runtime, "crun");
        assert_eq!(runp.cancel_timeout, Duration::from_secs(30));
        assert_eq!(runp.config, std::path::PathBuf::from("pod.json"));
        assert!(parse(&["runp"]).is_err());
        assert!(parse(&["runp", "a.json", "b.json"]).is_err());

        let cli = parse(&[
            "pods",
            "--id",
            "abc",
            "--name",
            "ng",
            "--namespace",
            "default",
            "-s",
            "ready",
            "--label",
            "a=b",
            "--label",
            "c=d",
            "-q",
            "-l",
            "-n",
            "3",
            "--no-trunc",
            "-v",
            "-o",
            "yaml",
        ])
        .unwrap();
        let Command::Pods(pods) = cli.command else {
            panic!("pods");
        };
        assert_eq!(pods.labels, ["a=b", "c=d"]);
        assert_eq!((pods.last, pods.latest, pods.quiet), (3, true, true));
        assert_eq!(pods.output, output::Format::Yaml);
        assert!(parse(&["pods", "-o", "go-template"]).is_err());
        // combined short flags, as crictl's UseShortOptionHandling allows
        assert!(parse(&["pods", "-ql"]).is_ok());

        parse(&[
            "inspectp",
            "p1",
            "p2",
            "-o",
            "go-template",
            "--template",
            "{{.status.id}}",
        ])
        .unwrap();
        parse(&["inspectp", "--name", "x", "-l", "-q", "-o", "table"]).unwrap();
        parse(&["inspectp"]).unwrap();
        parse(&["stopp", "a", "b"]).unwrap();
        assert!(parse(&["stopp"]).is_err());
        parse(&["rmp", "-fa"]).unwrap();
        parse(&["rmp", "-f", "a", "b"]).unwrap();
        assert!(parse(&["rmp"]).is_err());
        parse(&[
            "bench",
            "pods",
            "--count",
            "5",
            "--config",
            "p.json",
            "--runtime",
            "runc",
            "-o",
            "json",
        ])
        .unwrap();
        assert!(parse(&["bench", "pods", "--count", "0"]).is_err());
    }
    #[test]
    fn container_verb_flags() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["crustctl"];
            argv.extend(args);
            Cli::try_parse_from(argv).map_err(|e| e.to_string())
        };
        let cli = parse(&[
            "create",
            "--no-pull",
            "-T",
            "5s",
            "pod1",
            "c.json",
            "p.yaml",
        ])
        .unwrap();
        let Command::Create(create) = cli.command else {
            panic!("create");
        };
        assert_eq!(create.pod_id, "pod1");
        assert!(create.pull.no_pull && !create.pull.with_pull);
        assert_eq!(create.pull.cancel_timeout, Duration::from_secs(5));
        assert!(parse(&["create", "--no-pull", "--with-pull", "p", "c", "s"]).is_err());
        assert!(parse(&["create", "p", "c"]).is_err());
        let cli = parse(&["run", "-r", "crun", "--with-pull", "c.json", "p.json"]).unwrap();
        let Command::Run(run) = cli.command else {
            panic!("run");
        };
        assert_eq!((run.runtime.as_str(), run.pull.with_pull), ("crun", true));
        parse(&["start", "a", "b"]).unwrap();
        assert!(parse(&["start"]).is_err());

        // ps: -l is --latest, --label has no short form; combined short flags work.
        let cli = parse(&[
            "ps",
            "-a",
            "-p",
            "pod",
            "-s",
            "exited",
            "--name",
            "^b",
            "--label",
            "a=b",
            "--label",
            "c=d",
            "-o",
            "yaml",
            "-n",
            "2",
            "--no-trunc",
            "--image",
            "busybox",
        ])
        .unwrap();
        let Command::Ps(ps) = cli.command else {
            panic!("ps");
        };
        assert!(ps.all && ps.no_trunc);
        assert_eq!((ps.pod.as_str(), ps.state.as_str()), ("pod", "exited"));
        assert_eq!(ps.labels, ["a=b", "c=d"]);
        assert_eq!((ps.last, ps.output), (2, output::Format::Yaml));
        let Command::Ps(ps) = parse(&["ps", "-qal"]).unwrap().command else {
            panic!("ps");
        };
        assert!(ps.quiet && ps.all && ps.latest);
        assert!(parse(&["ps", "-o", "go-template"]).is_err());

        parse(&[
            "inspect",
            "a",
            "-o",
            "go-template",
            "--template",
            "{{.status.id}}",
        ])
        .unwrap();
        parse(&["inspect", "-o", "table", "-q"]).unwrap();

        let Command::Logs(logs) = parse(&["logs", "-ft", "--tail", "5", "--since", "5s", "c"])
            .unwrap()
            .command
        else {
            panic!("logs");
        };
        assert!(logs.follow && logs.timestamps);
        assert_eq!(
            (logs.tail, logs.since.as_str(), logs.limit_bytes),
            (Some(5), "5s", -1)
        );
        assert!(parse(&["logs", "--tail", "1", "--stream", "stdout", "c"]).is_err());
        assert!(parse(&["logs", "--stream", "stdin", "c"]).is_err());

        // exec: everything after the container ID is the command, flags included.
        let Command::Exec(exec) =
            parse(&["exec", "-s", "--timeout", "3", "c1", "sh", "-c", "exit 3"])
                .unwrap()
                .command
        else {
            panic!("exec");
        };
        assert!(exec.sync);
        assert_eq!(exec.timeout, 3);
        assert_eq!(exec.args, ["c1", "sh", "-c", "exit 3"]);
        assert!(parse(&["exec", "-s"]).is_err());
        let Command::Exec(exec) = parse(&["exec", "-it", "--transport", "websocket", "c1", "sh"])
            .unwrap()
            .command
        else {
            panic!("exec");
        };
        assert!(exec.interactive && exec.tty && !exec.sync);
        assert_eq!(exec.transport, "websocket");
        assert!(parse(&["exec", "-r", "tcp", "c1", "sh"]).is_err());

        let Command::Attach(attach) = parse(&["attach", "-it", "-r", "websocket", "c1"])
            .unwrap()
            .command
        else {
            panic!("attach");
        };
        assert!(attach.stdin && attach.tty);
        assert_eq!(
            (attach.id.as_str(), attach.transport.as_str()),
            ("c1", "websocket")
        );
        assert!(parse(&["attach"]).is_err());

        let Command::PortForward(pf) = parse(&["port-forward", "pod1", "8080:80", ":443", "22"])
            .unwrap()
            .command
        else {
            panic!("port-forward");
        };
        assert_eq!(pf.id, "pod1");
        assert_eq!(pf.ports, ["8080:80", ":443", "22"]);
        assert_eq!(pf.transport, "spdy");
        assert!(parse(&["port-forward", "pod1"]).is_err());

        let Command::Stop(stop) = parse(&["stop", "-t", "10", "a", "b"]).unwrap().command else {
            panic!("stop");
        };
        assert_eq!((stop.timeout, stop.ids.len()), (10, 2));
        parse(&["stop", "-a"]).unwrap();
        parse(&["rm", "-fa"]).unwrap();
        parse(&["rm", "-k", "x"]).unwrap();
        assert!(parse(&["rm"]).is_err());

        let Command::Update(update) = parse(&[
            "update",
            "--memory",
            "64m",
            "--cpu-quota",
            "50000",
            "--cpu-period",
            "100000",
            "--cpu-share",
            "512",
            "--cpuset-cpus",
            "0",
            "--cpuset-mems",
            "0",
            "c",
        ])
        .unwrap()
        .command
        else {
            panic!("update");
        };
        assert_eq!((update.memory, update.cpu_quota), (64 << 20, 50_000));
        assert!(parse(&["update", "--memory", "64x", "c"]).is_err());
        assert!(parse(&["update", "--memory", "1"]).is_err());
    }
}
