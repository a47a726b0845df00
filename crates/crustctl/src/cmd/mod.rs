//! One file per verb. Each has an `Args` (clap) and `run(ctx, args, out)`.

pub mod imagefsinfo;
pub mod images;
pub mod info;
pub mod inspecti;
pub mod inspectp;
pub mod pods;
pub mod pull;
pub mod rmi;
pub mod rmp;
pub mod runp;
pub mod stopp;
pub mod version;
