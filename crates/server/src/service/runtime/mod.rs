//! CRI RuntimeService: one file per RPC, each a function of the RPC's name taking the shared
//! [`State`] and the request.

use std::sync::Arc;

use k8s_cri::v1::runtime_service_server::RuntimeService;
use k8s_cri::v1::*;
use tonic::{Request, Response, Status};

use super::{observed, State};
use crate::metrics::RUNTIME_SERVICE;

mod attach;
mod checkpoint_container;
mod container_stats;
mod container_status;
mod create_container;
mod exec;
mod exec_sync;
mod get_container_events;
mod list_container_stats;
mod list_containers;
mod list_metric_descriptors;
mod list_pod_sandbox;
mod list_pod_sandbox_metrics;
mod list_pod_sandbox_stats;
mod pod_sandbox_stats;
mod pod_sandbox_status;
mod port_forward;
mod remove_container;
mod remove_pod_sandbox;
mod reopen_container_log;
mod run_pod_sandbox;
mod runtime_config;
mod start_container;
mod status;
mod stop_container;
mod stop_pod_sandbox;
mod update_container_resources;
mod update_runtime_config;
mod version;

pub struct RuntimeSvc {
    state: Arc<State>,
}

impl RuntimeSvc {
    pub fn new(state: Arc<State>) -> RuntimeSvc {
        RuntimeSvc { state }
    }
}

/// The streaming server holds too many unused URLs.
fn token_error(e: crust_streaming::TokenError) -> Status {
    Status::resource_exhausted(format!("streaming: {e}"))
}

/// Runs one RPC's future inside its span, logs its outcome and counts it in the metrics.
async fn run<T>(
    state: &State,
    rpc: &'static str,
    span: tracing::Span,
    fut: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<Response<T>, Status> {
    observed(state, RUNTIME_SERVICE, rpc, span, fut)
        .await
        .map(Response::new)
}

/// RPCs on one container (the request's `container_id` names the span): each is its
/// module's function of the same name, run in its span and logged. Written out in the shape
/// `async_trait` gives trait methods, like `plain_rpcs!`.
macro_rules! container_rpcs {
    ($($method:ident($req:ty) -> $resp:ty = $rpc:literal;)*) => {
        $(
            fn $method<'life0, 'async_trait>(
                &'life0 self,
                req: Request<$req>,
            ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<$resp>, Status>> + Send + 'async_trait>>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(async move {
                    let req = req.into_inner();
                    let span = tracing::info_span!($rpc, container = %req.container_id);
                    let fut = $method::$method(&self.state, req);
                    run(&self.state, $rpc, span, fut).await
                })
            }
        )*
    };
}

/// RPCs whose span carries no ID: each is its module's function of the same name, run in its
/// span and logged. Written out in the shape `async_trait` gives trait methods, since it does
/// not see into macro invocations.
macro_rules! plain_rpcs {
    ($($method:ident($req:ty) -> $resp:ty = $rpc:literal;)*) => {
        $(
            fn $method<'life0, 'async_trait>(
                &'life0 self,
                req: Request<$req>,
            ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<$resp>, Status>> + Send + 'async_trait>>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(async move {
                    let span = tracing::info_span!($rpc);
                    let fut = $method::$method(&self.state, req.into_inner());
                    run(&self.state, $rpc, span, fut).await
                })
            }
        )*
    };
}

#[tonic::async_trait]
impl RuntimeService for RuntimeSvc {
    async fn version(
        &self,
        req: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        let span = tracing::info_span!("Version");
        run(
            &self.state,
            "Version",
            span,
            version::version(req.into_inner()),
        )
        .await
    }

    async fn status(
        &self,
        req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let span = tracing::info_span!("Status");
        run(
            &self.state,
            "Status",
            span,
            status::status(&self.state, req.into_inner()),
        )
        .await
    }

    async fn runtime_config(
        &self,
        req: Request<RuntimeConfigRequest>,
    ) -> Result<Response<RuntimeConfigResponse>, Status> {
        let span = tracing::info_span!("RuntimeConfig");
        run(
            &self.state,
            "RuntimeConfig",
            span,
            runtime_config::runtime_config(&self.state, req.into_inner()),
        )
        .await
    }

    async fn run_pod_sandbox(
        &self,
        req: Request<RunPodSandboxRequest>,
    ) -> Result<Response<RunPodSandboxResponse>, Status> {
        let req = req.into_inner();
        let name = req
            .config
            .as_ref()
            .and_then(|c| c.metadata.as_ref())
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let span = tracing::info_span!("RunPodSandbox", pod_name = %name);
        run(
            &self.state,
            "RunPodSandbox",
            span,
            run_pod_sandbox::run_pod_sandbox(&self.state, req),
        )
        .await
    }

    async fn stop_pod_sandbox(
        &self,
        req: Request<StopPodSandboxRequest>,
    ) -> Result<Response<StopPodSandboxResponse>, Status> {
        let req = req.into_inner();
        let span = tracing::info_span!("StopPodSandbox", pod = %req.pod_sandbox_id);
        run(
            &self.state,
            "StopPodSandbox",
            span,
            stop_pod_sandbox::stop_pod_sandbox(&self.state, req),
        )
        .await
    }

    async fn remove_pod_sandbox(
        &self,
        req: Request<RemovePodSandboxRequest>,
    ) -> Result<Response<RemovePodSandboxResponse>, Status> {
        let req = req.into_inner();
        let span = tracing::info_span!("RemovePodSandbox", pod = %req.pod_sandbox_id);
        run(
            &self.state,
            "RemovePodSandbox",
            span,
            remove_pod_sandbox::remove_pod_sandbox(&self.state, req),
        )
        .await
    }

    async fn pod_sandbox_status(
        &self,
        req: Request<PodSandboxStatusRequest>,
    ) -> Result<Response<PodSandboxStatusResponse>, Status> {
        let req = req.into_inner();
        let span = tracing::info_span!("PodSandboxStatus", pod = %req.pod_sandbox_id);
        run(
            &self.state,
            "PodSandboxStatus",
            span,
            pod_sandbox_status::pod_sandbox_status(&self.state, req),
        )
        .await
    }

    async fn list_pod_sandbox(
        &self,
        req: Request<ListPodSandboxRequest>,
    ) -> Result<Response<ListPodSandboxResponse>, Status> {
        let span = tracing::info_span!("ListPodSandbox");
        run(
            &self.state,
            "ListPodSandbox",
            span,
            list_pod_sandbox::list_pod_sandbox(&self.state, req.into_inner()),
        )
        .await
    }

    type GetContainerEventsStream = tonic::codegen::BoxStream<ContainerEventResponse>;

    async fn create_container(
        &self,
        req: Request<CreateContainerRequest>,
    ) -> Result<Response<CreateContainerResponse>, Status> {
        let req = req.into_inner();
        let name = req
            .config
            .as_ref()
            .and_then(|c| c.metadata.as_ref())
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let span = tracing::info_span!("CreateContainer", pod = %req.pod_sandbox_id, name = %name);
        run(
            &self.state,
            "CreateContainer",
            span,
            create_container::create_container(&self.state, req),
        )
        .await
    }

    async fn list_containers(
        &self,
        req: Request<ListContainersRequest>,
    ) -> Result<Response<ListContainersResponse>, Status> {
        let span = tracing::info_span!("ListContainers");
        run(
            &self.state,
            "ListContainers",
            span,
            list_containers::list_containers(&self.state, req.into_inner()),
        )
        .await
    }

    container_rpcs! {
        start_container(StartContainerRequest) -> StartContainerResponse = "StartContainer";
        stop_container(StopContainerRequest) -> StopContainerResponse = "StopContainer";
        remove_container(RemoveContainerRequest) -> RemoveContainerResponse = "RemoveContainer";
        container_status(ContainerStatusRequest) -> ContainerStatusResponse = "ContainerStatus";
        update_container_resources(UpdateContainerResourcesRequest) -> UpdateContainerResourcesResponse = "UpdateContainerResources";
        reopen_container_log(ReopenContainerLogRequest) -> ReopenContainerLogResponse = "ReopenContainerLog";
        exec_sync(ExecSyncRequest) -> ExecSyncResponse = "ExecSync";
        exec(ExecRequest) -> ExecResponse = "Exec";
        attach(AttachRequest) -> AttachResponse = "Attach";
    }

    async fn port_forward(
        &self,
        req: Request<PortForwardRequest>,
    ) -> Result<Response<PortForwardResponse>, Status> {
        let req = req.into_inner();
        let span = tracing::info_span!("PortForward", pod = %req.pod_sandbox_id);
        run(
            &self.state,
            "PortForward",
            span,
            port_forward::port_forward(&self.state, req),
        )
        .await
    }

    /// The event stream: subscribers get every container and pod lifecycle event from now on.
    async fn get_container_events(
        &self,
        req: Request<GetEventsRequest>,
    ) -> Result<Response<Self::GetContainerEventsStream>, Status> {
        let span = tracing::info_span!("GetContainerEvents");
        run(
            &self.state,
            "GetContainerEvents",
            span,
            get_container_events::get_container_events(&self.state, req.into_inner()),
        )
        .await
    }

    async fn checkpoint_container(
        &self,
        req: Request<CheckpointContainerRequest>,
    ) -> Result<Response<CheckpointContainerResponse>, Status> {
        let req = req.into_inner();
        let span = tracing::info_span!("CheckpointContainer", container = %req.container_id);
        run(
            &self.state,
            "CheckpointContainer",
            span,
            checkpoint_container::checkpoint_container(&self.state, req),
        )
        .await
    }

    plain_rpcs! {
        container_stats(ContainerStatsRequest) -> ContainerStatsResponse = "ContainerStats";
        list_container_stats(ListContainerStatsRequest) -> ListContainerStatsResponse = "ListContainerStats";
        pod_sandbox_stats(PodSandboxStatsRequest) -> PodSandboxStatsResponse = "PodSandboxStats";
        list_pod_sandbox_stats(ListPodSandboxStatsRequest) -> ListPodSandboxStatsResponse = "ListPodSandboxStats";
        update_runtime_config(UpdateRuntimeConfigRequest) -> UpdateRuntimeConfigResponse = "UpdateRuntimeConfig";
        list_metric_descriptors(ListMetricDescriptorsRequest) -> ListMetricDescriptorsResponse = "ListMetricDescriptors";
        list_pod_sandbox_metrics(ListPodSandboxMetricsRequest) -> ListPodSandboxMetricsResponse = "ListPodSandboxMetrics";
    }
}
