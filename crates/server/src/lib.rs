//! The CRI service layer: thin RPC handlers (one file per RPC under `service/`) over the
//! image store and, later, pods and containers.

pub mod config;
pub mod service;
pub mod status;

pub use config::Config;
pub use service::{ImageSvc, RuntimeSvc, State};
