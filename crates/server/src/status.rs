//! One place that turns crust's errors into gRPC statuses with the right code.

use crust_image::error::ImageError;
use crust_image::registry::RegistryError;
use tonic::{Code, Status};

pub fn image_error(context: &str, err: &ImageError) -> Status {
    let code = match err.root() {
        _ if err.is_no_space() => Code::ResourceExhausted,
        ImageError::Reference(_) => Code::InvalidArgument,
        ImageError::Hosts(_) => Code::FailedPrecondition,
        ImageError::Registry(r) => match r {
            RegistryError::BadCredentials(_) => Code::InvalidArgument,
            RegistryError::Unauthorized { .. } => Code::Unauthenticated,
            RegistryError::Forbidden { .. } => Code::PermissionDenied,
            RegistryError::NotFound { .. } => Code::NotFound,
            RegistryError::Unavailable { .. } => Code::Unavailable,
            RegistryError::NoHost(..) => Code::FailedPrecondition,
        },
        ImageError::DigestMismatch { .. } => Code::DataLoss,
        ImageError::Stalled { .. } => Code::DeadlineExceeded,
        ImageError::BadContent { .. } => Code::FailedPrecondition,
        ImageError::NoPlatform { .. } => Code::NotFound,
        ImageError::Transfer { .. } => Code::Unavailable,
        ImageError::NotFound(_) => Code::NotFound,
        ImageError::Unpack { .. } | ImageError::Io { .. } | ImageError::Store(_) => Code::Internal,
        ImageError::Shared(_) => Code::Internal,
    };
    Status::new(code, format!("{context}: {}", err.root()))
}

pub fn store_error(context: &str, err: &crust_store::StoreError) -> Status {
    Status::internal(format!("{context}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let e = ImageError::Reference(crust_image::Reference::parse("A").unwrap_err());
        let s = image_error("pulling image \"A\"", &e);
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().contains("\"A\""));
        let shared = ImageError::Shared(std::sync::Arc::new(ImageError::Registry(
            RegistryError::Unauthorized {
                host: "h".into(),
                message: "m".into(),
            },
        )));
        assert_eq!(image_error("x", &shared).code(), Code::Unauthenticated);
    }
}
