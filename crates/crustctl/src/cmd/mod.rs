//! One file per verb. Each has an `Args` (clap) and `run(ctx, args, out)`;
//! `containers` holds what the container verbs share.

pub mod attach;
pub mod containers;
pub mod create;
pub mod exec;
pub mod imagefsinfo;
pub mod images;
pub mod info;
pub mod inspect;
pub mod inspecti;
pub mod inspectp;
pub mod logs;
pub mod pods;
pub mod port_forward;
pub mod ps;
pub mod pull;
pub mod rm;
pub mod rmi;
pub mod rmp;
pub mod run;
pub mod runp;
pub mod start;
pub mod stop;
pub mod stopp;
pub mod update;
pub mod version;
