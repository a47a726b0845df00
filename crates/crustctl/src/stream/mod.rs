//! The client side of CRI streaming: what crustctl does with the URL an Exec, Attach or
//! PortForward RPC returns. The protocols are those of client-go (`tools/remotecommand`,
//! `tools/portforward`), which crictl uses: SPDY/3.1 after an HTTP upgrade
//! ([`spdy_upgrade`]), or WebSocket ([`ws`]).

pub mod portforward;
pub mod remotecommand;
pub mod spdy_upgrade;
pub mod status;
pub mod term;
pub mod ws;

#[cfg(test)]
mod fakes;

use std::fmt;

use anyhow::{bail, Context, Result};
use http::Uri;

/// How to reach the streaming server, as `--transport` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Spdy,
    WebSocket,
}

impl Transport {
    pub fn parse(name: &str) -> Result<Transport> {
        match name {
            "spdy" => Ok(Transport::Spdy),
            "websocket" => Ok(Transport::WebSocket),
            other => bail!("unknown transport: {other}"),
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Spdy => "spdy",
            Transport::WebSocket => "websocket",
        })
    }
}

/// A streaming URL, split into what a plain TCP connection and an HTTP request need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port`, for the TCP connection and the `Host` header.
    pub authority: String,
    /// Path and query for the request line.
    pub path_and_query: String,
}

/// Where crictl sends a URL that names no host or scheme (kubelet's address).
const DEFAULT_AUTHORITY: &str = "127.0.0.1:10250";

impl Target {
    /// Parses the URL a streaming RPC returned. Only plain `http` is supported (crustd's
    /// streaming server listens on loopback without TLS).
    pub fn parse(url: &str) -> Result<Target> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("invalid streaming URL {url:?}"))?;
        match uri.scheme_str() {
            None | Some("http") => {}
            Some(other) => bail!("streaming URL {url:?}: scheme {other:?} is not supported"),
        }
        let authority = match uri.authority() {
            Some(a) if a.port().is_some() => a.to_string(),
            Some(a) => format!("{}:80", a.host()),
            None => DEFAULT_AUTHORITY.to_owned(),
        };
        let path_and_query = uri
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned());
        Ok(Target {
            authority,
            path_and_query,
        })
    }

    /// The same target with `port=` query parameters appended.
    pub fn with_ports(&self, ports: &[u16]) -> Target {
        let mut path = self.path_and_query.clone();
        for port in ports {
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str(&format!("port={port}"));
        }
        Target {
            authority: self.authority.clone(),
            path_and_query: path,
        }
    }

    /// The `ws://` URL of this target.
    pub fn ws_url(&self) -> String {
        format!("ws://{}{}", self.authority, self.path_and_query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("http://127.0.0.1:34567/exec/abc").unwrap();
        assert_eq!(t.authority, "127.0.0.1:34567");
        assert_eq!(t.path_and_query, "/exec/abc");
        assert_eq!(t.ws_url(), "ws://127.0.0.1:34567/exec/abc");
        let t = Target::parse("/portforward/tok").unwrap();
        assert_eq!(t.authority, "127.0.0.1:10250");
        assert_eq!(
            t.with_ports(&[80, 8080]).path_and_query,
            "/portforward/tok?port=80&port=8080"
        );
        assert!(Target::parse("https://h:1/x").is_err());
        assert_eq!(Transport::parse("websocket").unwrap(), Transport::WebSocket);
        assert!(Transport::parse("tcp").is_err());
    }
}
