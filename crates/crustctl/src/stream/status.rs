//! What the error channel of remotecommand carries: from v4 on a `metav1.Status` JSON object
//! (`Success`, or `Failure` with reason `NonZeroExitCode` and the code as the message of a
//! cause of type `ExitCode`); before v4 the error message as plain text. Nothing at all means
//! success.

use serde::Deserialize;

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exited with this code (0: success).
    Exited(i32),
    /// Failed to run, or the protocol broke: the message says why.
    Failed(String),
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Status {
    status: String,
    message: String,
    reason: String,
    details: Option<Details>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Details {
    causes: Vec<Cause>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Cause {
    /// `metav1.StatusCause.Type` is `reason` in JSON.
    reason: String,
    message: String,
}

/// Decodes the error channel's content; `structured` for v4 and later.
pub fn decode(message: &[u8], structured: bool) -> Outcome {
    if message.is_empty() {
        return Outcome::Exited(0);
    }
    if !structured {
        return Outcome::Failed(String::from_utf8_lossy(message).into_owned());
    }
    let status: Status = match serde_json::from_slice(message) {
        Ok(status) => status,
        Err(e) => {
            return Outcome::Failed(format!(
                "error stream protocol error: {e} in {:?}",
                String::from_utf8_lossy(message)
            ))
        }
    };
    match status.status.as_str() {
        "Success" => Outcome::Exited(0),
        "Failure" if status.reason == "NonZeroExitCode" => {
            let Some(details) = status.details else {
                return Outcome::Failed("error stream protocol error: details must be set".into());
            };
            match details.causes.iter().find(|c| c.reason == "ExitCode") {
                Some(cause) => match cause.message.parse::<u8>() {
                    Ok(code) => Outcome::Exited(i32::from(code)),
                    Err(_) => Outcome::Failed(format!(
                        "error stream protocol error: invalid exit code value {:?}",
                        cause.message
                    )),
                },
                None => {
                    Outcome::Failed("error stream protocol error: no ExitCode cause given".into())
                }
            }
        }
        "Failure" => Outcome::Failed(status.message),
        _ => Outcome::Failed("error stream protocol error: unknown error".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_statuses() {
        assert_eq!(decode(b"", true), Outcome::Exited(0));
        assert_eq!(
            decode(br#"{"metadata":{},"status":"Success"}"#, true),
            Outcome::Exited(0)
        );
        let exit3 = br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit status 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(decode(exit3, true), Outcome::Exited(3));
        assert_eq!(
            decode(
                br#"{"status":"Failure","message":"container \"x\" not found","reason":"NotFound"}"#,
                true
            ),
            Outcome::Failed("container \"x\" not found".into())
        );
        assert!(matches!(
            decode(br#"{"status":"Failure","reason":"NonZeroExitCode"}"#, true),
            Outcome::Failed(m) if m.contains("details")
        ));
        assert!(
            matches!(decode(b"not json", true), Outcome::Failed(m) if m.contains("protocol error"))
        );
        assert_eq!(
            decode(b"exec failed", false),
            Outcome::Failed("exec failed".into())
        );
    }
}
