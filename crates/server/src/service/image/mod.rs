//! CRI ImageService: one file per RPC.

use std::sync::Arc;

use k8s_cri::v1::image_service_server::ImageService;
use k8s_cri::v1::*;
use tonic::{Request, Response, Status};

use super::{observed, State};
use crate::metrics::IMAGE_SERVICE;

mod fs_info;
mod list;
mod pull;
mod remove;
mod status;

pub struct ImageSvc {
    state: Arc<State>,
}

impl ImageSvc {
    pub fn new(state: Arc<State>) -> ImageSvc {
        ImageSvc { state }
    }
}

/// Runs one RPC's future inside its span, logs its outcome and counts it in the metrics.
async fn run<T>(
    state: &State,
    rpc: &'static str,
    span: tracing::Span,
    fut: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<Response<T>, Status> {
    observed(state, IMAGE_SERVICE, rpc, span, fut)
        .await
        .map(Response::new)
}

fn image_name(spec: &Option<ImageSpec>) -> &str {
    spec.as_ref().map(|s| s.image.as_str()).unwrap_or("")
}

/// The CRI view of a stored image.
pub(crate) fn to_cri(image: &crust_store::ImageRecord) -> Image {
    Image {
        id: image.id.clone(),
        repo_tags: image.repo_tags.clone(),
        repo_digests: image.repo_digests.clone(),
        size: image.size,
        uid: image.uid.map(|value| Int64Value { value }),
        username: image.username.clone(),
        spec: Some(ImageSpec {
            image: image.id.clone(),
            annotations: image.annotations.clone().into_iter().collect(),
            ..Default::default()
        }),
        pinned: image.pinned,
    }
}

#[tonic::async_trait]
impl ImageService for ImageSvc {
    async fn list_images(
        &self,
        req: Request<ListImagesRequest>,
    ) -> Result<Response<ListImagesResponse>, Status> {
        let span = tracing::info_span!("ListImages");
        run(
            &self.state,
            "ListImages",
            span,
            list::list_images(&self.state, req.into_inner()),
        )
        .await
    }

    async fn image_status(
        &self,
        req: Request<ImageStatusRequest>,
    ) -> Result<Response<ImageStatusResponse>, Status> {
        let req = req.into_inner();
        let span = tracing::info_span!("ImageStatus", image = image_name(&req.image));
        run(
            &self.state,
            "ImageStatus",
            span,
            status::image_status(&self.state, req),
        )
        .await
    }

    async fn pull_image(
        &self,
        req: Request<PullImageRequest>,
    ) -> Result<Response<PullImageResponse>, Status> {
        let req = req.into_inner();
        let span = tracing::info_span!("PullImage", image = image_name(&req.image));
        run(
            &self.state,
            "PullImage",
            span,
            pull::pull_image(&self.state, req),
        )
        .await
    }

    async fn remove_image(
        &self,
        req: Request<RemoveImageRequest>,
    ) -> Result<Response<RemoveImageResponse>, Status> {
        let req = req.into_inner();
        let span = tracing::info_span!("RemoveImage", image = image_name(&req.image));
        run(
            &self.state,
            "RemoveImage",
            span,
            remove::remove_image(&self.state, req),
        )
        .await
    }

    async fn image_fs_info(
        &self,
        req: Request<ImageFsInfoRequest>,
    ) -> Result<Response<ImageFsInfoResponse>, Status> {
        let span = tracing::info_span!("ImageFsInfo");
        run(
            &self.state,
            "ImageFsInfo",
            span,
            fs_info::image_fs_info(&self.state, req.into_inner()),
        )
        .await
    }
}
