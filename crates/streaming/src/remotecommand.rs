//! remotecommand (exec, attach) independent of the transport: the channels a session set up,
//! the backend call, and the status written on the error channel at the end.

use std::future::Future;
use std::sync::Arc;

use k8s_cri::v1::{AttachRequest, ExecRequest};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::backend::{Backend, StreamError, StreamIo};
use crate::pipe::{self, SharedWriter};

/// SPDY subprotocols, best first (apimachinery's remotecommand constants; v5 is v4 over SPDY).
pub(crate) const V5: &str = "v5.channel.k8s.io";
pub(crate) const V4: &str = "v4.channel.k8s.io";
pub(crate) const V3: &str = "v3.channel.k8s.io";
pub(crate) const V2: &str = "v2.channel.k8s.io";
pub(crate) const V1: &str = "channel.k8s.io";
pub(crate) const SPDY_PROTOCOLS: &[&str] = &[V5, V4, V3, V2, V1];

/// What was asked for; exec and attach differ only in the backend call.
#[derive(Debug, Clone)]
pub(crate) enum Command {
    Exec(ExecRequest),
    Attach(AttachRequest),
}

/// Which streams the request asked for (after kubelet's rule: no stderr with a tty).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wants {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl Command {
    pub(crate) fn wants(&self) -> Wants {
        let (stdin, stdout, stderr, tty) = match self {
            Command::Exec(r) => (r.stdin, r.stdout, r.stderr, r.tty),
            Command::Attach(r) => (r.stdin, r.stdout, r.stderr, r.tty),
        };
        Wants {
            stdin,
            stdout,
            stderr: stderr && !tty,
            tty,
        }
    }
}

/// How a session ended, as the error channel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    ExitCode(i32),
    Error(String),
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct Cause<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    message: String,
}

#[derive(Serialize)]
struct Details<'a> {
    causes: Vec<Cause<'a>>,
}

/// metav1.Status, as much of it as remotecommand uses.
#[derive(Serialize)]
struct Status<'a> {
    metadata: Empty,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
}

impl Outcome {
    fn message(&self) -> Option<String> {
        match self {
            Outcome::Success => None,
            Outcome::ExitCode(c) => Some(format!(
                "command terminated with non-zero exit code: exit status {c}"
            )),
            Outcome::Error(m) => Some(format!("Internal error occurred: {m}")),
        }
    }

    /// The v4 error channel: a metav1.Status in JSON (client-go reads the exit code from it).
    pub(crate) fn v4_json(&self) -> Vec<u8> {
        let status = match self {
            Outcome::Success => Status {
                metadata: Empty {},
                status: "Success",
                message: None,
                reason: None,
                details: None,
                code: None,
            },
            Outcome::ExitCode(c) => Status {
                metadata: Empty {},
                status: "Failure",
                message: self.message(),
                reason: Some("NonZeroExitCode"),
                details: Some(Details {
                    causes: vec![Cause {
                        reason: Some("ExitCode"),
                        message: c.to_string(),
                    }],
                }),
                code: None,
            },
            Outcome::Error(m) => Status {
                metadata: Empty {},
                status: "Failure",
                message: self.message(),
                reason: Some("InternalError"),
                details: Some(Details {
                    causes: vec![Cause {
                        reason: None,
                        message: m.clone(),
                    }],
                }),
                code: Some(500),
            },
        };
        serde_json::to_vec(&status).unwrap_or_default()
    }

    /// The v1–v3 error channel: the error's text, nothing on success.
    pub(crate) fn text(&self) -> Vec<u8> {
        self.message().unwrap_or_default().into_bytes()
    }
}

/// The streams a transport set up for one session.
#[derive(Default)]
pub(crate) struct Channels {
    pub stdin: Option<Box<dyn AsyncRead + Send + Unpin>>,
    pub stdout: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    pub stderr: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    pub resize: Option<Box<dyn AsyncRead + Send + Unpin>>,
    pub error: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// v4 and later: the status is JSON.
    pub json_status: bool,
}

/// Runs the command with `ch` until the backend finishes, then closes the output streams and
/// writes the status. If `gone` completes first (the client went away) the backend's future
/// is dropped, which cancels it, and nothing is written.
pub(crate) async fn run(
    backend: &Arc<dyn Backend>,
    cmd: Command,
    ch: Channels,
    gone: impl Future<Output = ()>,
) {
    let wants = cmd.wants();
    let stdout = ch.stdout.map(SharedWriter::new);
    let stderr = ch.stderr.map(SharedWriter::new);
    let mut resize_task = None;
    let resize = match ch.resize {
        Some(r) if wants.tty => {
            let (tx, rx) = mpsc::channel(16);
            resize_task = Some(pipe::AbortOnDrop(tokio::spawn(pipe::decode_resizes(r, tx))));
            Some(rx)
        }
        _ => None,
    };
    let io = StreamIo {
        stdin: ch.stdin,
        stdout: stdout.clone().map(|w| Box::new(w) as _),
        stderr: stderr.clone().map(|w| Box::new(w) as _),
        resize,
        tty: wants.tty,
    };
    let call = async {
        let res: Result<Outcome, StreamError> = match cmd {
            Command::Exec(req) => backend.exec(req, io).await.map(|code| match code {
                0 => Outcome::Success,
                c => Outcome::ExitCode(c),
            }),
            Command::Attach(req) => backend.attach(req, io).await.map(|()| Outcome::Success),
        };
        res.unwrap_or_else(|e| Outcome::Error(e.to_string()))
    };
    let outcome = tokio::select! {
        o = call => Some(o),
        () = gone => None,
    };
    drop(resize_task);
    let Some(outcome) = outcome else {
        tracing::debug!("streaming client went away; backend cancelled");
        return;
    };
    if let Outcome::Error(e) = &outcome {
        tracing::warn!(error = %e, "streaming command failed");
    }
    for mut w in stdout.into_iter().chain(stderr) {
        pipe::close(&mut w).await;
    }
    if let Some(mut error) = ch.error {
        let status = if ch.json_status {
            outcome.v4_json()
        } else {
            outcome.text()
        };
        if !status.is_empty() {
            let _ = error.write_all(&status).await;
        }
        pipe::close(&mut error).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_status_json() {
        assert_eq!(
            String::from_utf8(Outcome::Success.v4_json()).unwrap(),
            r#"{"metadata":{},"status":"Success"}"#
        );
        assert_eq!(
            String::from_utf8(Outcome::ExitCode(3).v4_json()).unwrap(),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit status 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        let v: serde_json::Value =
            serde_json::from_slice(&Outcome::Error("container x not found".into()).v4_json())
                .unwrap();
        assert_eq!(v["reason"], "InternalError");
        assert_eq!(v["code"], 500);
        assert_eq!(
            v["message"],
            "Internal error occurred: container x not found"
        );
    }

    #[test]
    fn text_status() {
        assert!(Outcome::Success.text().is_empty());
        assert_eq!(
            Outcome::ExitCode(2).text(),
            b"command terminated with non-zero exit code: exit status 2"
        );
    }
}
