//! The HTTP/1.1 upgrade to SPDY/3.1 as client-go's SPDY round tripper makes it: `POST` with
//! `Connection: Upgrade`, `Upgrade: SPDY/3.1` and one `X-Stream-Protocol-Version` header per
//! protocol offered; the server answers `101 Switching Protocols` naming the protocol it chose.
//! Then a SPDY session runs over the connection.

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use crust_streaming::spdy;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::Target;

/// The header naming the subprotocol, offered by the client and chosen by the server.
pub const PROTOCOL_HEADER: &str = "X-Stream-Protocol-Version";

/// The upgraded connection and the protocol the server chose ("" when it named none).
pub async fn upgrade(target: &Target, protocols: &[&str]) -> Result<(TokioIo<Upgraded>, String)> {
    let tcp = TcpStream::connect(&target.authority)
        .await
        .with_context(|| format!("connect to the streaming server {}", target.authority))?;
    tcp.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .context("HTTP handshake with the streaming server")?;
    tokio::spawn(conn.with_upgrades());
    let mut request = Request::post(&target.path_and_query)
        .header(header::HOST, &target.authority)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1")
        .header(header::CONTENT_LENGTH, "0");
    for protocol in protocols {
        request = request.header(PROTOCOL_HEADER, *protocol);
    }
    let request = request.body(Empty::<Bytes>::new())?;
    let response = sender
        .send_request(request)
        .await
        .context("upgrade request to the streaming server")?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_owned())
            .unwrap_or_default();
        bail!("unable to upgrade connection: {status}: {body}");
    }
    let protocol = response
        .headers()
        .get(PROTOCOL_HEADER)
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    if !protocol.is_empty() && !protocols.contains(&protocol.as_str()) {
        bail!("the streaming server chose protocol {protocol:?}, not one of {protocols:?}");
    }
    let upgraded = hyper::upgrade::on(response)
        .await
        .map_err(|e| anyhow!("upgrade to SPDY/3.1: {e}"))?;
    Ok((TokioIo::new(upgraded), protocol))
}

/// Upgrades and starts a SPDY client session on the connection.
pub async fn connect(target: &Target, protocols: &[&str]) -> Result<(spdy::Session, String)> {
    let (io, protocol) = upgrade(target, protocols).await?;
    let (session, mut pushed) = spdy::Session::client(io, spdy::Config::default());
    // The server never opens streams towards the client in these protocols; any it opens
    // are dropped (reset).
    tokio::spawn(async move { while pushed.recv().await.is_some() {} });
    Ok((session, protocol))
}
