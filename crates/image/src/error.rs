use crate::hosts::HostsError;
use crate::reference::ReferenceError;
use crate::registry::RegistryError;
use crate::unpack::UnpackError;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("registry configuration: {0}")]
    Hosts(#[from] HostsError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what}: no progress for {timeout}, pull cancelled")]
    Stalled { what: String, timeout: String },
    #[error("{what}: {reason}")]
    BadContent { what: String, reason: String },
    #[error("{reference}: no manifest for platform {platform} (index lists: {available})")]
    NoPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("{what}: {message}")]
    Transfer { what: String, message: String },
    #[error("unpacking layer {diff_id}: {source}")]
    Unpack {
        diff_id: String,
        #[source]
        source: UnpackError,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crust_store::StoreError),
    #[error("image {0:?} not found")]
    NotFound(String),
    #[error("{0}")]
    Shared(std::sync::Arc<ImageError>),
}

impl ImageError {
    pub fn io(path: impl AsRef<std::path::Path>) -> impl FnOnce(std::io::Error) -> ImageError {
        let path = path.as_ref().display().to_string();
        move |source| ImageError::Io { path, source }
    }

    /// Whether a filesystem ran out of space or quota (ENOSPC, EDQUOT) somewhere in the
    /// chain of causes: a failure the node's operator can fix by freeing space.
    pub fn is_no_space(&self) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self.root());
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::StorageFull
                    || io.kind() == std::io::ErrorKind::QuotaExceeded
                {
                    return true;
                }
            }
            cause = e.source();
        }
        false
    }

    /// The error itself, looking through the sharing wrapper of coalesced pulls.
    pub fn root(&self) -> &ImageError {
        match self {
            ImageError::Shared(inner) => inner.root(),
            other => other,
        }
    }
}
