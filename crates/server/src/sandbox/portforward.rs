//! PortForward's connections: a TCP connection to a port inside the pod's network namespace.
//!
//! A socket belongs to the network namespace of the thread that created it, whatever thread
//! uses it later. So each connection is made on a short-lived thread of its own that joins the
//! pod's namespace first (never on a pooled thread, which would stay in the pod afterwards);
//! the connected socket is then handed to tokio.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use crust_store::PodState;

use super::{Lookup, Pods};

/// How long connecting to a port in the pod may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Pods {
    /// Connects to `port` on the pod's loopback (IPv4, else IPv6), as kubelet's port-forward
    /// does; a hostNetwork pod's is the node's.
    pub async fn connect_port(
        &self,
        pod_id: &str,
        port: u16,
    ) -> Result<tokio::net::TcpStream, String> {
        let pod = match self.lookup(pod_id) {
            Lookup::Found(pod) => pod.snapshot(),
            _ => return Err(format!("pod sandbox {pod_id} not found")),
        };
        if pod.state != PodState::Ready {
            return Err(format!("pod sandbox {} is not ready", pod.id));
        }
        let netns = pod.namespaces.get("net").map(PathBuf::from);
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("crust-portforward".into())
            .spawn(move || {
                let _ = tx.send(connect_in(netns, port));
            })
            .map_err(|e| format!("starting a port-forward thread: {e}"))?;
        let stream = rx
            .await
            .map_err(|_| "the port-forward thread ended without a result".to_string())??;
        stream
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpStream::from_std(stream))
            .map_err(|e| format!("port {port} in pod {pod_id}: {e}"))
    }
}

/// On the calling thread: joins `netns` (if any) and connects to the loopback `port`.
fn connect_in(netns: Option<PathBuf>, port: u16) -> Result<TcpStream, String> {
    if let Some(path) = &netns {
        crust_sys::setns_path(path, crust_sys::Namespace::Net).map_err(|e| e.to_string())?;
    }
    let mut last = None;
    for ip in [
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
    ] {
        match TcpStream::connect_timeout(&ip, CONNECT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(format!(
        "connecting to port {port} in the pod: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}
