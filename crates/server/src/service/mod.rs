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
        let store = Arc::new(
            crust_store::Store::open(&root.join("crust.db"))
                .context("opening the metadata store")?,
        );
        let pods = crate::sandbox::Pods::open(
            store.clone(),
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
            images.clone(),
            pods.clone(),
            config.clone(),
            root.clone(),
            runroot.clone(),
        )
        .await?;
        Ok(Arc::new(State {
            config,
            config_path,
            root,
            runroot,
            images,
            pods,
            containers,
        }))
    }
}

/// Unix nanoseconds now, as CRI timestamps are.
pub(crate) fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Logs the outcome of an RPC inside its span.
pub(crate) fn traced<T>(rpc: &str, result: Result<T, tonic::Status>) -> Result<T, tonic::Status> {
    match &result {
        Ok(_) => tracing::debug!(rpc, "ok"),
        Err(s) => tracing::warn!(rpc, code = ?s.code(), message = s.message(), "failed"),
    }
    result
}
