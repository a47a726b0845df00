//! Port forwarding independent of the transport: the pod-level port check and the copy.

use std::sync::Arc;

use k8s_cri::v1::PortForwardRequest;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::backend::{Backend, StreamError};
use crate::pipe;

/// The SPDY subprotocol.
pub(crate) const SPDY_PROTOCOL: &str = "portforward.k8s.io";

/// A PortForwardRequest that lists ports allows only those.
pub(crate) fn check_port(req: &PortForwardRequest, port: u16) -> Result<(), StreamError> {
    if port == 0 {
        return Err(StreamError::InvalidArgument("port 0 is not valid".into()));
    }
    if req.port.is_empty() || req.port.contains(&i32::from(port)) {
        Ok(())
    } else {
        Err(StreamError::InvalidArgument(format!(
            "port {port} is not allowed by the request"
        )))
    }
}

/// What the client reads on the error stream (kubelet's wording).
pub(crate) fn error_message(port: u16, pod: &str, e: &StreamError) -> String {
    format!("error forwarding port {port} to pod {pod}: {e}")
}

/// Connects to `port` in the pod and copies both ways: client bytes until the client's EOF
/// (then the pod's socket is half-closed), pod bytes until the pod's EOF. Done when the pod's
/// side ends; the client's stream is closed then.
pub(crate) async fn forward<R, W>(
    backend: &Arc<dyn Backend>,
    pod: &str,
    port: u16,
    from_client: &mut R,
    to_client: &mut W,
) -> Result<(), StreamError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let tcp = backend.port_forward(pod.to_string(), port).await?;
    let (mut pod_r, mut pod_w) = tcp.into_split();
    let up = async {
        let _ = tokio::io::copy(from_client, &mut pod_w).await;
        let _ = pod_w.shutdown().await;
        std::future::pending::<()>().await
    };
    let down = async {
        let res = tokio::io::copy(&mut pod_r, to_client).await;
        pipe::close(to_client).await;
        res
    };
    tokio::select! {
        res = down => match res {
            Ok(_) => Ok(()),
            // The client going away mid-copy is not the pod's error.
            Err(e) if is_disconnect(&e) => Ok(()),
            Err(e) => Err(e.into()),
        },
        () = up => unreachable!("pending never completes"),
    }
}

fn is_disconnect(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ports_restrict() {
        let any = PortForwardRequest {
            pod_sandbox_id: "p".into(),
            port: vec![],
        };
        assert!(check_port(&any, 80).is_ok());
        assert!(check_port(&any, 0).is_err());
        let some = PortForwardRequest {
            pod_sandbox_id: "p".into(),
            port: vec![80, 443],
        };
        assert!(check_port(&some, 443).is_ok());
        let e = check_port(&some, 22).unwrap_err();
        assert_eq!(
            error_message(22, "p", &e),
            "error forwarding port 22 to pod p: port 22 is not allowed by the request"
        );
    }
}
