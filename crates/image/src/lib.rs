//! Images: references, registry hosts, the registry client, pulls, layer unpacking and the
//! on-disk image store.

pub mod error;
pub mod hosts;
pub mod inflight;
pub mod manager;
pub mod manifest;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod unpack;

pub use error::ImageError;
pub use manager::{FsUsage, ImageConfigOptions, ImageManager};
pub use reference::Reference;
pub use registry::Credentials;
