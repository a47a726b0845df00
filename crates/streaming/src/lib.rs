//! crustd's streaming server: Exec, Attach and PortForward over SPDY/3.1 and WebSocket, as
//! kubelet and crictl speak them.

pub mod spdy;
