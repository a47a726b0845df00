//! The runtime's `state` output.

use std::path::PathBuf;

use serde::Deserialize;

/// What `<runtime> state ID` reports (the OCI state, less the fields crust does not use).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct State {
    pub id: String,
    /// The init process' pid on the host; 0 once stopped.
    #[serde(default)]
    pub pid: i32,
    pub status: Status,
    #[serde(default)]
    pub bundle: PathBuf,
}

/// The container status as the runtime names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum Status {
    Created,
    Running,
    Stopped,
    Paused,
    /// A status this crate does not know (runc also says `pausing`, for example).
    Unknown(String),
}

impl From<String> for Status {
    fn from(s: String) -> Self {
        match s.as_str() {
            "created" => Status::Created,
            "running" => Status::Running,
            "stopped" => Status::Stopped,
            "paused" => Status::Paused,
            _ => Status::Unknown(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_runc_and_crun_state() {
        let runc = r#"{"ociVersion":"1.0.2-dev","id":"c1","pid":4242,"status":"running",
            "bundle":"/run/b","rootfs":"/run/b/rootfs","created":"2026-12-02T06:49:15Z","owner":""}"#;
        let state: State = serde_json::from_str(runc).unwrap();
        assert_eq!(
            state,
            State {
                id: "c1".into(),
                pid: 4242,
                status: Status::Running,
                bundle: "/run/b".into()
            }
        );
        let crun = r#"{"ociVersion":"1.0.0","id":"c2","pid":0,"status":"stopped","bundle":"/b",
            "rootfs":"/b/rootfs","created":"x","owner":"root"}"#;
        let state: State = serde_json::from_str(crun).unwrap();
        assert_eq!(state.status, Status::Stopped);
        let odd: State = serde_json::from_str(r#"{"id":"c3","status":"pausing"}"#).unwrap();
        assert_eq!(odd.status, Status::Unknown("pausing".into()));
    }
}
