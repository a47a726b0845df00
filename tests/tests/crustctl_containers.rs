//! crustctl's container verbs against a real crustd, registry, OCI runtime and CNI bridge:
//! run, ps, inspect, logs, exec -s, update, stop, rm, as crictl users type them.

use std::time::{Duration, Instant};

use crust_testenv::{push_standard_images, Registry};
use crust_tests::{Crustd, PodNet};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(crustd: &Crustd, args: &[&str]) -> Run {
    let out = crustd.crustctl(args);
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(crustd: &Crustd, args: &[&str]) -> String {
    let r = run(crustd, args);
    assert_eq!(r.code, 0, "crustctl {args:?}: {}", r.stderr);
    r.stdout
}

fn json(crustd: &Crustd, args: &[&str]) -> serde_json::Value {
    let out = ok(crustd, args);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("crustctl {args:?} printed no JSON ({e}): {out}"))
}

/// Polls `crustctl args` until `done` accepts its result (10 s at most).
fn wait_for(crustd: &Crustd, args: &[&str], done: impl Fn(&Run) -> bool) -> Run {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = run(crustd, args);
        if done(&r) || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn run_ps_inspect_logs_exec_update_stop_rm() {
    let reg = Registry::start().await.unwrap();
    let images = push_standard_images(&reg, None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let net = PodNet::new(dir.path(), 37);
    let network = net.config(&[]);
    let crustd = Crustd::start_with(move |d| {
        format!(
            "[registry]\nconfig_path = {:?}\n{network}",
            d.join("certs.d").display().to_string()
        )
    })
    .await
    .unwrap();

    // crictl's own config formats: YAML pod config, JSON container config.
    let log_dir = dir.path().join("pod-logs");
    let pod = dir.path().join("pod.yaml");
    std::fs::write(
        &pod,
        format!(
            "metadata:\n  name: ctl-ctr-pod\n  namespace: default\n  uid: ctl-ctr-pod-uid\n\
             log_directory: {}\nlinux: {{}}\n",
            log_dir.display()
        ),
    )
    .unwrap();
    let container = dir.path().join("container.json");
    std::fs::write(
        &container,
        serde_json::to_vec_pretty(&serde_json::json!({
            "metadata": {"name": "busybox"},
            "image": {"image": images.busybox.reference},
            "command": ["sh", "-c", "echo hello; echo err >&2; sleep 1000"],
            "log_path": "busybox/0.log",
            "labels": {"tier": "test"},
            "linux": {}
        }))
        .unwrap(),
    )
    .unwrap();

    // run: pulls the image the node lacks, runs the pod, creates and starts the container.
    let id = ok(
        &crustd,
        &["run", container.to_str().unwrap(), pod.to_str().unwrap()],
    )
    .trim()
    .to_string();
    assert_eq!(id.len(), 64, "{id}");

    let table = ok(&crustd, &["ps"]);
    let mut rows = table.lines();
    let header = rows.next().unwrap();
    assert!(
        header.starts_with("CONTAINER") && header.contains("POD ID"),
        "{table}"
    );
    let row = rows.next().expect("a container row");
    assert!(row.starts_with(&id[..13]), "{table}");
    assert!(
        // POD comes from the io.kubernetes.pod.name label, as crictl's: kubelet sets it, this
        // config does not.
        row.contains("Running") && row.contains("busybox") && row.contains("unknown"),
        "{table}"
    );
    assert_eq!(ok(&crustd, &["ps", "-q"]).trim(), id);
    assert_eq!(
        ok(&crustd, &["ps", "-q", "--label", "tier=test"]).trim(),
        id
    );
    assert_eq!(ok(&crustd, &["ps", "-q", "--name", "^busy"]).trim(), id);
    assert_eq!(ok(&crustd, &["ps", "-q", "--name", "^nginx"]).trim(), "");
    assert_eq!(ok(&crustd, &["ps", "-q", "--state", "exited"]).trim(), "");
    let listed = json(&crustd, &["ps", "-o", "json"]);
    assert_eq!(listed["containers"][0]["state"], "CONTAINER_RUNNING");

    // inspect, by an ID prefix.
    let inspect = json(&crustd, &["inspect", &id[..12]]);
    assert_eq!(inspect["status"]["id"], id.as_str());
    assert_eq!(inspect["status"]["state"], "CONTAINER_RUNNING");
    let log_path = log_dir.join("busybox/0.log");
    assert_eq!(
        inspect["status"]["logPath"],
        log_path.to_str().unwrap(),
        "{inspect}"
    );
    assert_eq!(inspect["status"]["finishedAt"], "0001-01-01T00:00:00Z");

    // logs: stdout lines to stdout, stderr lines to stderr.
    let logs = wait_for(&crustd, &["logs", &id], |r| {
        r.stdout.contains("hello") && r.stderr.contains("err")
    });
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    assert_eq!(logs.stdout, "hello\n");
    assert_eq!(logs.stderr, "err\n");
    let tail = run(&crustd, &["logs", "--tail", "1", &id]);
    assert_eq!((tail.stdout.as_str(), tail.stderr.as_str()), ("", "err\n"));
    let stamped = ok(&crustd, &["logs", "-t", "--stream", "stdout", &id]);
    assert!(
        stamped.ends_with(" hello\n") && stamped.contains('T'),
        "{stamped}"
    );

    // exec -s: the command's output and exit code.
    assert_eq!(ok(&crustd, &["exec", "-s", &id, "echo", "hi"]), "hi\n");
    let failed = run(
        &crustd,
        &["exec", "-s", &id, "sh", "-c", "echo out; exit 3"],
    );
    assert_eq!(failed.code, 3, "{}", failed.stderr);
    assert_eq!(failed.stdout, "out\n");
    // exec without -s streams through the Exec RPC's URL.
    let streaming = run(&crustd, &["exec", &id, "sh", "-c", "echo hi; exit 4"]);
    assert_eq!(streaming.code, 4, "{}", streaming.stderr);
    assert_eq!(streaming.stdout, "hi\n");

    // checkpoint --export: the archive where criu works, else criu's reason.
    let archive = dir.path().join("ck.tar");
    let ck = run(
        &crustd,
        &["checkpoint", "--export", archive.to_str().unwrap(), &id],
    );
    // The default handler is crun where it is installed: it needs to be built with CRIU.
    let criu_works = std::process::Command::new("criu")
        .arg("check")
        .output()
        .is_ok_and(|o| o.status.success())
        && std::process::Command::new("crun")
            .arg("--version")
            .output()
            .map_or(true, |o| {
                String::from_utf8_lossy(&o.stdout).contains("+CRIU")
            });
    if criu_works {
        assert_eq!(ck.code, 0, "{}", ck.stderr);
        assert_eq!(ck.stdout.trim(), id);
        assert!(archive.is_file());
    } else {
        assert_ne!(ck.code, 0);
        assert!(ck.stderr.to_lowercase().contains("criu"), "{}", ck.stderr);
        assert!(!archive.exists());
    }
    let missing = run(&crustd, &["checkpoint", &id]);
    assert_ne!(missing.code, 0);
    assert!(missing.stderr.contains("--export"), "{}", missing.stderr);

    // update: the new limit shows in inspect.
    assert_eq!(ok(&crustd, &["update", "--memory", "64m", &id]).trim(), id);
    let inspect = json(&crustd, &["inspect", &id]);
    assert_eq!(
        inspect["status"]["resources"]["linux"]["memoryLimitInBytes"],
        (64 << 20).to_string(),
        "{inspect}"
    );

    // rm refuses a running container; stop, then it is listed as exited.
    let refused = run(&crustd, &["rm", &id]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("please stop it first"),
        "{}",
        refused.stderr
    );
    assert_eq!(ok(&crustd, &["stop", &id]).trim(), id);
    assert_eq!(
        ok(&crustd, &["ps", "-a", "-q", "--state", "exited"]).trim(),
        id
    );
    assert_eq!(ok(&crustd, &["ps", "-q"]).trim(), "");
    let inspect = json(&crustd, &["inspect", &id]);
    assert_eq!(inspect["status"]["state"], "CONTAINER_EXITED");
    // -f on a container that no longer runs prints the log and ends.
    let followed = run(&crustd, &["logs", "-f", &id]);
    assert_eq!(
        (followed.stdout.as_str(), followed.stderr.as_str()),
        ("hello\n", "err\n")
    );

    assert_eq!(ok(&crustd, &["rm", &id]).trim(), id);
    assert_eq!(ok(&crustd, &["ps", "-a", "-q"]).trim(), "");
    assert!(!log_path.exists(), "rm removes the log file");
    ok(&crustd, &["rmp", "-a", "-f"]);
    assert!(net.allocated_ips().is_empty());
}
