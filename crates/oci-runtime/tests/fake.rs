//! The driver against a fake runtime: a shell script that records its arguments, logs an error
//! the way runc does and exits with the code it is told (containerd's rust-extensions use
//! `/bin/true` the same way).
#![cfg(feature = "async")]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crust_oci_runtime::{Runtime, RuntimeError, Status};

struct Fake {
    dir: tempfile::TempDir,
    runtime: Runtime,
}

impl Fake {
    fn new() -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fake-runtime");
        let d = dir.path().display();
        std::fs::write(
            &script,
            format!(
                r#"#!/bin/sh
# $1=--root $2=ROOT $3=--log $4=LOG $5=--log-format $6=json, then the verb
echo "$@" >> {d}/args
code=$(cat {d}/code 2>/dev/null || echo 0)
if [ "$code" != 0 ]; then
  printf '{{"level":"error","msg":"%s","time":"t"}}\n' "$(cat {d}/msg)" >> "$4"
  echo "stderr noise" >&2
  exit "$code"
fi
if [ "$7" = state ]; then
  printf '{{"ociVersion":"1.0.2","id":"%s","pid":42,"status":"paused","bundle":"/b"}}' "$8"
fi
"#
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let runtime = Runtime::new(&script, dir.path().join("root"));
        Fake { dir, runtime }
    }

    fn fail_with(&self, code: i32, msg: &str) {
        std::fs::write(self.dir.path().join("code"), code.to_string()).unwrap();
        std::fs::write(self.dir.path().join("msg"), msg).unwrap();
    }

    /// The argument lists of the calls so far, less the global flags (whose log path differs).
    fn calls(&self) -> Vec<String> {
        let root = self.dir.path().join("root");
        let text = std::fs::read_to_string(self.dir.path().join("args")).unwrap_or_default();
        text.lines()
            .map(|line| {
                let words: Vec<&str> = line.split(' ').collect();
                assert_eq!(words[..2], ["--root", root.to_str().unwrap()]);
                assert_eq!(words[2], "--log");
                assert_eq!(words[4..6], ["--log-format", "json"]);
                words[6..].join(" ")
            })
            .collect()
    }
}

#[tokio::test]
async fn verbs_pass_their_arguments() {
    let fake = Fake::new();
    let rt = &fake.runtime;
    rt.start("c1").await.unwrap();
    rt.kill("c1", 15, false).await.unwrap();
    rt.kill("c1", 9, true).await.unwrap();
    rt.delete("c1", false).await.unwrap();
    rt.delete("c1", true).await.unwrap();
    let state = rt.state("c1").await.unwrap();
    assert_eq!((state.id.as_str(), state.pid), ("c1", 42));
    assert_eq!(state.status, Status::Paused);
    assert_eq!(state.bundle, PathBuf::from("/b"));
    let resources = oci_spec::runtime::LinuxResources::default();
    rt.update("c1", &resources).await.unwrap();

    let calls = fake.calls();
    assert_eq!(
        calls[..6],
        [
            "start c1",
            "kill c1 15",
            "kill --all c1 9",
            "delete c1",
            "delete --force c1",
            "state c1"
        ]
    );
    assert!(calls[6].starts_with("update --resources /"), "{}", calls[6]);
    assert!(calls[6].ends_with(" c1"), "{}", calls[6]);
}

#[tokio::test]
async fn failures_carry_the_logged_message() {
    let fake = Fake::new();
    fake.fail_with(1, "cannot start a container that has stopped");
    let err = fake.runtime.start("c1").await.unwrap_err();
    let RuntimeError::Failed {
        ref binary,
        verb,
        ref id,
        ref status,
        ref message,
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!(binary, &fake.runtime.binary);
    assert_eq!((verb, id.as_str()), ("start", "c1"));
    assert_eq!(status, "exit status: 1");
    assert_eq!(message, "cannot start a container that has stopped");
    assert_eq!(
        err.to_string(),
        format!(
            "{} start c1 failed (exit status: 1): cannot start a container that has stopped",
            binary.display()
        )
    );
}

#[tokio::test]
async fn unknown_containers() {
    let fake = Fake::new();
    fake.fail_with(1, "container does not exist");
    let err = fake.runtime.state("c1").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    fake.runtime.delete("c1", false).await.unwrap();
    fake.runtime.delete("c1", true).await.unwrap();
    // crun's wording.
    fake.fail_with(
        1,
        "error opening file `/r/c1/status`: No such file or directory",
    );
    assert!(fake
        .runtime
        .kill("c1", 9, false)
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn bad_state_json_is_a_decode_error() {
    let fake = Fake::new();
    let script = fake.runtime.binary.clone();
    // `true` prints nothing: not a state.
    let rt = Runtime::new("/bin/true", fake.dir.path());
    let err = rt.state("c1").await.unwrap_err();
    assert!(
        matches!(err, RuntimeError::Decode { verb: "state", .. }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "decode state output for container c1");
    assert!(script.exists());
}

#[tokio::test]
async fn a_missing_binary_is_a_spawn_error() {
    let rt = Runtime::new(Path::new("/nonexistent/runc"), "/tmp");
    let err = rt.start("c1").await.unwrap_err();
    assert!(
        matches!(err, RuntimeError::Spawn { verb: "start", .. }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "spawn /nonexistent/runc start");
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("No such file"), "{source}");
}

/// A fake `exec`: `${11}` is the pid file (`exec --process P --pid-file F ID`). It prints, then
/// behaves as `mode` says.
fn exec_fake(dir: &Path, mode: &str) -> Runtime {
    let script = dir.join("fake-exec");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
echo out; echo err >&2
case {mode} in
  exit3) echo $$ > "${{11}}"; exit 3 ;;
  fail) printf '{{"level":"error","msg":"exec failed: container not running"}}\n' >> "$4"; exit 1 ;;
  nopid) exit 1 ;;
  big) echo $$ > "${{11}}"; head -c 100000 /dev/zero; head -c 300000 /dev/zero >&2 ;;
esac
"#
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    Runtime::new(&script, dir.join("root"))
}

#[tokio::test]
async fn exec_tells_a_failing_process_from_a_failing_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let process = oci_spec::runtime::Process::default();
    let opts = crust_oci_runtime::ExecOptions {
        timeout: None,
        max_output: 200_000,
        work_dir: dir.path().to_owned(),
    };

    let out = exec_fake(dir.path(), "exit3")
        .exec("c1", &process, &opts)
        .await
        .unwrap();
    assert_eq!(out.exit_code, 3);
    assert_eq!(
        (out.stdout.as_slice(), out.stderr.as_slice()),
        (&b"out\n"[..], &b"err\n"[..])
    );
    assert!(dir.path().join("process.json").exists());

    // An error logged: the runtime failed, whatever the pid file says.
    let err = exec_fake(dir.path(), "fail")
        .exec("c1", &process, &opts)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Failed { verb: "exec", message, .. } if message == "exec failed: container not running"),
        "{err:?}"
    );
    // Nothing logged, no pid file (the previous exec's was removed first): stderr tells.
    let err = exec_fake(dir.path(), "nopid")
        .exec("c1", &process, &opts)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Failed { message, .. } if message == "err"),
        "{err:?}"
    );

    let out = exec_fake(dir.path(), "big")
        .exec("c1", &process, &opts)
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0);
    assert_eq!((out.stdout.len(), out.stdout_truncated), (100_004, false));
    assert_eq!((out.stderr.len(), out.stderr_truncated), (200_000, true));
}
