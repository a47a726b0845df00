//! crustd's streaming server: Exec, Attach and PortForward over SPDY/3.1 and WebSocket, as
//! kubelet and crictl speak them.
//!
//! The CRI RPCs hand out one-time URLs ([`Server::get_exec`] and friends); the client connects
//! to one, upgrades to SPDY/3.1 (`X-Stream-Protocol-Version` negotiation) or WebSocket
//! (`Sec-WebSocket-Protocol`), and the session runs against a [`Backend`].

mod backend;
mod httpstream;
mod pipe;
mod portforward;
mod remotecommand;
mod server;
pub mod spdy;
mod token;
mod websocket;
mod ws;

pub use backend::{Backend, BoxFuture, StreamError, StreamIo, TerminalSize};
pub use server::{Config, Server};
pub use token::TokenError;
