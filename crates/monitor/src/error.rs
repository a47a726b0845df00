use std::{io, path::PathBuf, time::Duration};

/// Why starting, asking or cleaning up a pod monitor failed. Start errors name the pod; errors
/// talking to a running monitor name its socket (in the pod's run directory); errors about a
/// container are wrapped in [`MonitorError::Container`], naming it.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The monitor binary could not be run.
    #[error("pod {pod_id}: running {}: {source}", binary.display())]
    Spawn {
        pod_id: String,
        binary: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The monitor reported that it could not set the pod up; `message` is its own
    /// (for example `applying sysctl net.ipv4.ip_forward=1: Permission denied (os error 13)`).
    /// Whatever it had done is undone.
    #[error("pod {pod_id}: monitor: {message}")]
    Failed { pod_id: String, message: String },
    /// The monitor exited without a readiness line.
    #[error("pod {pod_id}: the monitor exited ({status}) without reporting readiness")]
    NoReadiness { pod_id: String, status: String },
    /// No readiness line in time.
    #[error("pod {pod_id}: no readiness report from the monitor within {timeout:?}")]
    ReadyTimeout { pod_id: String, timeout: Duration },
    /// A readiness line that is not the protocol's.
    #[error("pod {pod_id}: malformed readiness report {line:?}: {reason}")]
    BadReadiness {
        pod_id: String,
        line: String,
        reason: String,
    },
    /// Nothing listens on the socket (the monitor is gone), or it does not exist.
    #[error("{}: connecting to the pod monitor: {source}", socket.display())]
    Connect {
        socket: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Reading from or writing to the monitor failed.
    #[error("{}: {op}: {source}", socket.display())]
    Io {
        socket: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// The monitor did not answer in time.
    #[error("{}: {op}: no answer within {timeout:?}", socket.display())]
    Timeout {
        socket: PathBuf,
        op: &'static str,
        timeout: Duration,
    },
    /// The monitor closed the connection before answering.
    #[error("{}: {op}: the monitor closed the connection", socket.display())]
    Closed { socket: PathBuf, op: &'static str },
    /// The monitor answered something that is not the protocol's.
    #[error("{}: {op}: malformed answer {line:?}: {reason}", socket.display())]
    Protocol {
        socket: PathBuf,
        op: &'static str,
        line: String,
        reason: String,
    },
    /// The monitor answered `{"ok":false}`; `message` is its error.
    #[error("{}: {op}: {message}", socket.display())]
    Refused {
        socket: PathBuf,
        op: &'static str,
        message: String,
    },
    /// A request about a container failed; `source` says how (a [`MonitorError::Refused`]
    /// carries the monitor's message, such as `runtime create exited with status 1`).
    #[error("container {id}: {source}")]
    Container {
        id: String,
        #[source]
        source: Box<MonitorError>,
    },
    /// Cleaning up after a dead monitor failed.
    #[error("{}: {op}: {source}", path.display())]
    Cleanup {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

impl MonitorError {
    /// The container the error is about, if it is about one.
    pub fn container_id(&self) -> Option<&str> {
        match self {
            MonitorError::Container { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The monitor's own message when it answered `{"ok":false}` (looking through
    /// [`MonitorError::Container`]); `None` for transport errors (timeouts, a gone monitor).
    pub fn refusal(&self) -> Option<&str> {
        match self {
            MonitorError::Refused { message, .. } => Some(message),
            MonitorError::Container { source, .. } => source.refusal(),
            _ => None,
        }
    }
}
