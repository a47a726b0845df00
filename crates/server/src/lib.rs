//! The CRI service layer: thin RPC handlers (one file per RPC under `service/`) over the
//! image store and the pod sandboxes (and, later, containers).

pub mod config;
pub mod container;
pub mod lifecycle;
pub mod metric_set;
pub mod metrics;
mod names;
pub mod sandbox;
pub mod service;
pub mod stats;
pub mod status;
pub mod streaming;

pub use config::Config;
pub use service::{ImageSvc, RuntimeSvc, State};
