//! crust-monitor: the per-pod monitor process and crustd's client for it.
//!
//! One monitor runs per pod, detached from crustd (it survives crustd's restarts and crashes).
//! It creates the pod's net/ipc/uts namespaces (in itself) and, when asked, a pid namespace
//! whose pid 1 is a tiny reaping init; pins each under `RUNDIR/ns/<ns>`; applies the pod's
//! namespaced sysctls; is child subreaper for the pod's processes; and serves newline-delimited
//! JSON on `RUNDIR/monitor.sock` ([`protocol`]). It exits only when told to shut down.
//!
//! - [`server`]: the monitor process (the `crust-monitor` binary's body): single-threaded, a
//!   poll(2) loop, no async runtime.
//! - [`spawn`], [`MonitorClient`], [`Events`], [`probe`], [`is_alive`]: crustd's tokio client
//!   (feature `client`, on by default).
//! - [`force_cleanup`]: tear down a run directory whose monitor is gone or stuck.
//! - [`read_exit_file`]: a container's recorded exit ([`ContainerExit`]), for recovery.
//!
//! Containers: the monitor runs the OCI runtime's `create` ([`CreateContainer`]) with stdio it
//! owns, writes the CRI log and records the exit (see [`protocol`]); crustd attaches to their
//! stdio through it ([`MonitorClient::attach`], CRI Attach).

mod cleanup;
#[cfg(feature = "client")]
mod client;
mod error;
pub mod options;
pub mod protocol;
pub mod server;

pub use cleanup::{force_cleanup, monitor_pid};
#[cfg(feature = "client")]
pub use client::{
    is_alive, probe, socket_path, spawn, Attach, AttachOptions, AttachOutput, AttachReader,
    AttachWriter, Events, MonitorClient, CREATE_GRACE, DEFAULT_TIMEOUT, SHUTDOWN_TIMEOUT,
    SPAWN_TIMEOUT,
};
pub use error::MonitorError;
pub use options::SpawnOptions;
pub use protocol::{
    read_exit_file, AttachRequest, Attached, ContainerExit, ContainerStatus, CreateContainer,
    Created, Event, InitExit, Ready, Request, Resize, Status, NS_DIR, PID_FILE, SOCKET_NAME,
};
