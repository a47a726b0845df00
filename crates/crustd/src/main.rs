//! crustd: the CRI daemon. Config, logging, signals and wiring only; the work is in the
//! library crates.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Parser;
use crust_server::config::{Config, DEFAULT_CONFIG_PATH};
use crust_server::{ImageSvc, RuntimeSvc, State};
use k8s_cri::v1::image_service_server::ImageServiceServer;
use k8s_cri::v1::runtime_service_server::RuntimeServiceServer;
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio_stream::wrappers::UnixListenerStream;

/// How long RPCs in flight may run on after SIGTERM.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// kubelet and crictl send messages up to 16 MiB.
const MAX_MESSAGE_BYTES: usize = 16 << 20;
/// Replies may be larger: ExecSync carries up to 16 MiB of stdout and 16 MiB of stderr, as
/// containerd's does (a client must allow for that; kubelet's 16 MiB limit refuses such a
/// reply, with crustd as with containerd).
const MAX_REPLY_BYTES: usize = 40 << 20;

/// crust's CRI daemon: serves the Kubernetes Container Runtime Interface (v1 RuntimeService
/// and ImageService) over a unix socket.
#[derive(Parser, Debug)]
#[command(name = "crustd", version)]
struct Args {
    /// Unix socket to serve CRI on (created with mode 0660).
    #[arg(long, default_value = "/run/crust/crust.sock", value_name = "PATH")]
    listen: PathBuf,
    /// Persistent state: the metadata store, images and layers.
    #[arg(long, default_value = "/var/lib/crust", value_name = "DIR")]
    root: PathBuf,
    /// Runtime state that a reboot clears.
    #[arg(long, default_value = "/run/crust", value_name = "DIR")]
    runroot: PathBuf,
    /// TOML configuration; when the default path does not exist, embedded defaults serve.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log filter (error, warn, info, debug, trace or tracing directives); overrides the
    /// config's log_level.
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (config_path, required) = match &args.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    let config = Config::load(&config_path, required)?;
    let level = args
        .log_level
        .clone()
        .unwrap_or_else(|| config.log_level.clone());
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .with_context(|| format!("invalid log level {level:?}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(serve(args, config, config_path))
}

async fn serve(args: Args, config: Config, config_path: PathBuf) -> anyhow::Result<()> {
    // Before anything touches state: a second crustd must not take over a live socket.
    let listener = bind(&args.listen).await?;
    let socket_id = inode(&args.listen);
    for dir in [&args.root, &args.runroot] {
        private_dir(dir)?;
    }
    let state = State::open(config, config_path, args.root.clone(), args.runroot.clone()).await?;
    tracing::info!(
        listen = %args.listen.display(),
        root = %args.root.display(),
        runroot = %args.runroot.display(),
        version = env!("CARGO_PKG_VERSION"),
        "crustd serving CRI v1"
    );

    let runtime = RuntimeServiceServer::new(RuntimeSvc::new(state.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_REPLY_BYTES);
    let image = ImageServiceServer::new(ImageSvc::new(state.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    // On SIGTERM/SIGINT stop accepting, give RPCs in flight a moment, then go: clients such as
    // kubelet keep idle connections open indefinitely and must not hold the exit up.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .add_service(runtime)
        .add_service(image)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
            let _ = stop_rx.await;
        });
    let mut server = std::pin::pin!(server);
    let result = tokio::select! {
        r = &mut server => r,
        () = shutdown_signal() => {
            let _ = stop_tx.send(());
            // Event streams never end by themselves: end them, or they hold the exit up.
            state.events.close();
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::info!(grace = ?SHUTDOWN_GRACE, "connections still open after the grace period; exiting");
                    Ok(())
                }
            }
        }
    };
    // Remove the socket only if it is still ours (a successor may have replaced it).
    if socket_id.is_some() && inode(&args.listen) == socket_id {
        let _ = std::fs::remove_file(&args.listen);
    }
    result.context("serving CRI")?;
    tracing::info!("crustd stopped; pods and containers keep running");
    Ok(())
}

/// Binds the CRI socket: a stale socket file is replaced, a live one (another crustd answers
/// on it) stops the start.
async fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                bail!(
                    "{} exists and is not a socket; refusing to replace it",
                    path.display()
                );
            }
            if tokio::net::UnixStream::connect(path).await.is_ok() {
                bail!(
                    "another process (a running crustd?) is serving on {}; stop it first or choose another --listen path",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .with_context(|| format!("removing stale socket {}", path.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("checking {}", path.display())),
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(listener)
}

/// Makes `dir` (and its parents) and gives it mode 0700: crustd's state (the store, container
/// specs with their environment, exit files, CNI results, the monitors' sockets) is no other
/// user's to list or open.
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting the mode of {}", dir.display()))
}

fn inode(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

async fn shutdown_signal() {
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing the SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
