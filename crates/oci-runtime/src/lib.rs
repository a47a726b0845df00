//! The runc/crun driver: runs an OCI runtime CLI for one runtime handler.
//!
//! runc and crun take the same flags for what crust uses, so one [`Runtime`] drives either:
//!
//! - [`Runtime::create_argv`] builds the `create` command line. It is sync and needs no tokio:
//!   crust-monitor, single-threaded, spawns it itself with the container's stdio.
//! - With the `async` feature (default), [`Runtime::start`], [`Runtime::kill`],
//!   [`Runtime::delete`], [`Runtime::state`], [`Runtime::update`], [`Runtime::checkpoint`]
//!   run a verb to completion and
//!   [`Runtime::exec`] runs a process in a container and captures its output (CRI ExecSync);
//!   [`Runtime::exec_streaming`] hands the process' pipes to the caller (CRI Exec), and
//!   [`Runtime::exec_detached_argv`] is the terminal exec the pod monitor runs, as
//!   [`Runtime::restore_detached_argv`] is a restore from a checkpoint.
//!
//! Every call passes the global `--log FILE --log-format json`; the error a call reports is the
//! last `level=error` entry of its own log ([`last_error`]), else the runtime's stderr. An
//! unknown container is [`RuntimeError::NotFound`] (and `delete` of one succeeds).
//!
//! The real-runtime tests (`tests/runtime.rs`) run as root against runc and crun; on a hybrid
//! cgroup host crun 1.8 needs `scripts/node-setup.sh` first.

mod argv;
mod error;
mod log;
mod state;

#[cfg(feature = "async")]
mod driver;
#[cfg(feature = "async")]
mod exec;
#[cfg(feature = "async")]
mod exec_stream;

pub use argv::{CreateOptions, Runtime};
pub use error::RuntimeError;
#[cfg(feature = "async")]
pub use exec::{ExecOptions, ExecOutput};
#[cfg(feature = "async")]
pub use exec_stream::{ExecSession, ExecStreamOptions};
pub use log::{last_error, last_error_after};
pub use state::{State, Status};
