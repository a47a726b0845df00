//! crustd's side of the streaming server: the backend that runs what a client connected to an
//! Exec, Attach or PortForward URL asked for.

use std::sync::Arc;

use crust_streaming::{Backend, StreamError, StreamIo};
use futures::future::BoxFuture;
use k8s_cri::v1::{AttachRequest, ExecRequest};

use crate::container::Containers;
use crate::sandbox::Pods;

pub struct StreamBackend {
    pub containers: Arc<Containers>,
    pub pods: Arc<Pods>,
}

impl Backend for StreamBackend {
    fn exec(&self, req: ExecRequest, io: StreamIo) -> BoxFuture<'static, Result<i32, StreamError>> {
        let containers = self.containers.clone();
        Box::pin(async move { containers.exec_streamed(req, io).await })
    }

    fn attach(
        &self,
        req: AttachRequest,
        io: StreamIo,
    ) -> BoxFuture<'static, Result<(), StreamError>> {
        let containers = self.containers.clone();
        Box::pin(async move { containers.attach_streamed(req, io).await })
    }

    fn port_forward(
        &self,
        pod_sandbox_id: String,
        port: u16,
    ) -> BoxFuture<'static, Result<tokio::net::TcpStream, StreamError>> {
        let pods = self.pods.clone();
        Box::pin(async move {
            pods.connect_port(&pod_sandbox_id, port)
                .await
                .map_err(StreamError::Failed)
        })
    }
}
