//! Wiring of the CRI services. Each RPC lives in its own file under `runtime/` or `image/`:
//! validate, look up, call, map the error.

use std::path::PathBuf;
use std::sync::Arc;

use crust_image::ImageManager;

use crate::config::Config;

pub mod image;
pub mod runtime;

pub use image::ImageSvc;
pub use runtime::RuntimeSvc;

/// What every handler shares.
pub struct State {
    pub config: Config,
    /// Path of the config file the daemon read (or would have read).
    pub config_path: PathBuf,
    pub root: PathBuf,
    pub runroot: PathBuf,
    pub images: Arc<ImageManager>,
    pub pods: Arc<crate::sandbox::Pods>,
    pub containers: Arc<crate::container::Containers>,
    /// Container and pod lifecycle events (GetContainerEvents).
    pub events: Arc<crate::lifecycle::Events>,
    /// The Exec/Attach/PortForward HTTP server.
    pub streaming: crust_streaming::Server,
    /// crustd's own Prometheus metrics (served when `[metrics] address` is set).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The previous CPU samples of the stats RPCs.
    pub stats: crate::stats::Stats,
}

impl State {
    /// The image store and its records under `root`, cleaned of an earlier run's leftovers.
    pub async fn open(
        config: Config,
        config_path: PathBuf,
        root: PathBuf,
        runroot: PathBuf,
    ) -> anyhow::Result<Arc<State>> {
        use anyhow::Context;
        std::fs::create_dir_all(&root)
            .with_context(|| format!("creating root {}", root.display()))?;
        std::fs::create_dir_all(&runroot)
            .with_context(|| format!("creating runroot {}", runroot.display()))?;
        // Bound first: a taken address stops the start before anything is touched.
        let metrics_listener = crate::metrics::bind(&config.metrics.address, &runroot).await?;
        let store = Arc::new(
            crust_store::Store::open(&root.join("crust.db"))
                .context("opening the metadata store")?,
        );
        let events = Arc::new(crate::lifecycle::Events::default());
        let pods = crate::sandbox::Pods::open(
            store.clone(),
            events.clone(),
            config.clone(),
            root.clone(),
            runroot.clone(),
        )
        .await?;
        let images = ImageManager::open(
            crust_image::ImageConfigOptions {
                root: root.join("images"),
                registry_config_path: Some(config.registry.config_path.clone()),
                progress_timeout: config.registry.image_pull_progress_timeout,
                max_concurrent_downloads: config.registry.max_concurrent_downloads,
            },
            store.clone(),
        )
        .context("opening the image store")?;
        let containers = crate::container::Containers::open(
            store,
            events.clone(),
            images.clone(),
            pods.clone(),
            config.clone(),
            root.clone(),
            runroot.clone(),
        )
        .await?;
        events.attach(&pods, &containers);
        let streaming = crust_streaming::Server::start(
            streaming_config(&config)?,
            Arc::new(crate::streaming::StreamBackend {
                containers: containers.clone(),
                pods: pods.clone(),
            }),
        )
        .await
        .with_context(|| {
            format!(
                "starting the streaming server on {}",
                config.streaming.address
            )
        })?;
        tracing::info!(url = %streaming.base_url(), "streaming server listening");
        let state = Arc::new(State {
            config,
            config_path,
            root,
            runroot,
            images,
            pods,
            containers,
            events,
            streaming,
            metrics: Arc::new(crate::metrics::Metrics::new()),
            stats: crate::stats::Stats::default(),
        });
        if let Some(listener) = metrics_listener {
            crate::metrics::serve(listener, &state)?;
        }
        Ok(state)
    }
}

/// The streaming server's settings from crustd's config.
fn streaming_config(config: &Config) -> anyhow::Result<crust_streaming::Config> {
    use anyhow::Context;
    let s = &config.streaming;
    let address = s
        .address
        .parse()
        .with_context(|| format!("streaming.address {:?}", s.address))?;
    let tls = (!s.tls_cert_file.as_os_str().is_empty())
        .then(|| (s.tls_cert_file.clone(), s.tls_key_file.clone()));
    Ok(crust_streaming::Config {
        address,
        stream_idle_timeout: s.stream_idle_timeout,
        tls,
        ..crust_streaming::Config::default()
    })
}

/// Unix nanoseconds now, as CRI timestamps are.
pub(crate) fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Runs one RPC: its future inside its span, the outcome logged and counted in the metrics
/// with its duration (a future dropped before it ends, as when the client goes away, counts
/// as Canceled).
pub(crate) async fn observed<T>(
    state: &State,
    service: &'static str,
    rpc: &'static str,
    span: tracing::Span,
    fut: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    use tracing::Instrument;
    let timer = crate::metrics::RpcTimer::start(&state.metrics, service, rpc);
    let result = fut.instrument(span).await;
    timer.finish(&result);
    traced(rpc, result)
}

/// Logs the outcome of an RPC inside its span.
pub(crate) fn traced<T>(rpc: &str, result: Result<T, tonic::Status>) -> Result<T, tonic::Status> {
    match &result {
        Ok(_) => tracing::debug!(rpc, "ok"),
        Err(s) => tracing::warn!(rpc, code = ?s.code(), message = s.message(), "failed"),
    }
    result
}
