//! Test environment for crust: OCI test images built in-process from Debian's busybox-static,
//! served by a real `docker-registry` (distribution 2.8) on 127.0.0.1, optionally behind
//! htpasswd basic auth or bearer tokens from an in-process token server.
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! let reg = crust_testenv::Registry::start().await?;
//! let images = crust_testenv::push_standard_images(&reg, None).await?;
//! println!("pull {}", images.busybox.reference);
//! # Ok(()) }
//! ```

mod client;
mod image;
mod images;
mod layer;
mod registry;
mod token;

pub use client::FetchedManifest;
pub use images::{
    push_big_image, push_big_image_to, push_configured_image, push_hostile_image,
    push_hostile_image_to, push_image_with_layer, push_pause_image_to, push_standard_images,
    push_standard_images_to, LayerEntry, Pushed, StandardImages, BUSYBOX_PATH,
};
pub use images::{push_raw_config_image, push_zeros_image};
pub use registry::{Auth, Registry, RegistryOptions};

/// Media types used by the test images.
pub mod media_types {
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
}

/// Fetches a manifest (or index) from `host` as a puller would (Accept: every manifest type),
/// authenticating with `user_pass` when challenged.
pub async fn get_manifest(
    host: &str,
    name: &str,
    reference: &str,
    user_pass: Option<(&str, &str)>,
) -> anyhow::Result<FetchedManifest> {
    client::Client::new(host, user_pass)?
        .get_manifest(name, reference)
        .await
}

/// Fetches a blob from `host`, authenticating with `user_pass` when challenged. The bytes are
/// returned as served (not verified against `digest`).
pub async fn get_blob(
    host: &str,
    name: &str,
    digest: &str,
    user_pass: Option<(&str, &str)>,
) -> anyhow::Result<Vec<u8>> {
    client::Client::new(host, user_pass)?
        .get_blob(name, digest)
        .await
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    layer::sha256_digest(data)
}
