//! exec/attach and port forwarding sessions over a [`WsConn`] (kubelet's
//! remotecommand/websocket.go and portforward/websocket.go).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use k8s_cri::v1::PortForwardRequest;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::backend::Backend;
use crate::portforward;
use crate::remotecommand::{self, Channels, Command};
use crate::ws::{WsConn, WsProtocol};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;

pub(crate) async fn remotecommand<IO>(
    io: IO,
    proto: WsProtocol,
    cmd: Command,
    backend: Arc<dyn Backend>,
    idle: Duration,
) where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let wants = cmd.wants();
    let inputs = [wants.stdin, false, false, false, wants.tty];
    let (conn, mut readers) = WsConn::start(io, proto, &inputs, idle).await;
    // Kubernetes tells the client the connection is up with an empty message on the lowest
    // channel it will write.
    let first = if wants.stdout {
        STDOUT
    } else if wants.stderr {
        STDERR
    } else {
        ERROR
    };
    conn.send(first, Bytes::new()).await;
    let ch = Channels {
        stdin: readers[STDIN as usize].take().map(|r| Box::new(r) as _),
        stdout: wants.stdout.then(|| Box::new(conn.writer(STDOUT)) as _),
        stderr: wants.stderr.then(|| Box::new(conn.writer(STDERR)) as _),
        resize: readers[RESIZE as usize].take().map(|r| Box::new(r) as _),
        error: Some(Box::new(conn.writer(ERROR))),
        json_status: proto.json_status,
    };
    let gone = conn.gone();
    remotecommand::run(&backend, cmd, ch, gone.cancelled()).await;
    conn.finish().await;
}

/// Port forwarding for `ports`, known before the upgrade: channel 2k carries port k's data,
/// 2k+1 its errors; each starts with the port, 2 bytes little-endian.
pub(crate) async fn portforward<IO>(
    io: IO,
    proto: WsProtocol,
    req: PortForwardRequest,
    ports: Vec<u16>,
    backend: Arc<dyn Backend>,
    idle: Duration,
) where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let inputs: Vec<bool> = ports.iter().flat_map(|_| [true, false]).collect();
    let (conn, mut readers) = WsConn::start(io, proto, &inputs, idle).await;
    let mut tasks = Vec::with_capacity(ports.len());
    for (i, &port) in ports.iter().enumerate() {
        let (data_ch, err_ch) = ((2 * i) as u8, (2 * i + 1) as u8);
        let le = Bytes::copy_from_slice(&port.to_le_bytes());
        conn.send(data_ch, le.clone()).await;
        conn.send(err_ch, le).await;
        let Some(mut from_client) = readers[2 * i].take() else {
            continue;
        };
        let mut to_client = conn.writer(data_ch);
        let mut errors = conn.writer(err_ch);
        let backend = backend.clone();
        let pod = req.pod_sandbox_id.clone();
        let allowed = portforward::check_port(&req, port);
        tasks.push(async move {
            let res = match allowed {
                Ok(()) => {
                    portforward::forward(&backend, &pod, port, &mut from_client, &mut to_client)
                        .await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = res {
                let msg = portforward::error_message(port, &pod, &e);
                tracing::debug!(port, error = %e, "port forward failed");
                let _ = errors.write_all(msg.as_bytes()).await;
            }
        });
    }
    let gone = conn.gone();
    tokio::select! {
        _ = futures::future::join_all(tasks) => {}
        () = gone.cancelled() => {}
    }
    conn.finish().await;
}
