//! The crust-testenv binary: serve until SIGTERM, push-big into a running registry.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_crust-testenv");

/// Starts `serve` with `args` and returns it with the registry's host once it is up.
async fn serve(args: &[&str]) -> (std::process::Child, String, Vec<String>) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line.starts_with("registry: ");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    })
    .await
    .unwrap();
    let host = lines
        .last()
        .and_then(|l| l.strip_prefix("registry: "))
        .unwrap_or_else(|| panic!("no registry line in {lines:?}"))
        .to_string();
    (child, host, lines)
}

async fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "serve did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until nothing listens on `host`.
async fn wait_port_closed(host: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(host).is_ok() {
        assert!(Instant::now() < deadline, "{host} still answers");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn serve_prints_references_and_stops_on_sigterm() {
    let (mut child, host, lines) = serve(&["--auth", "carol:pw"]).await;
    assert!(
        lines.contains(&format!("{host}/crust/busybox:latest")),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!("{host}/crust/multiarch:latest")),
        "{lines:?}"
    );
    let m = crust_testenv::get_manifest(&host, "crust/busybox", "latest", Some(("carol", "pw")))
        .await
        .unwrap();
    assert_eq!(m.media_type, crust_testenv::media_types::DOCKER_MANIFEST);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = wait_exit(&mut child).await;
    assert!(status.success(), "{status}");
    // the registry went with it
    assert!(std::net::TcpStream::connect(&host).is_err());
}

#[tokio::test]
async fn registry_dies_with_a_killed_serve() {
    let (mut child, host, lines) = serve(&[]).await;
    child.kill().unwrap(); // SIGKILL: no destructors run
    wait_exit(&mut child).await;
    wait_port_closed(&host).await;
    // nobody removed the storage: do it here
    let storage = lines
        .iter()
        .find_map(|l| l.strip_prefix("storage: "))
        .expect("storage line");
    assert!(storage.starts_with(&std::env::temp_dir().to_string_lossy().to_string()));
    std::fs::remove_dir_all(storage).unwrap();
}

#[tokio::test]
async fn push_big_into_running_registry() {
    let reg = crust_testenv::Registry::start().await.unwrap();
    let out = tokio::task::spawn_blocking({
        let host = reg.host();
        move || {
            Command::new(BIN)
                .args([
                    "push-big",
                    "--registry",
                    &host,
                    "--name",
                    "crust/big-cli",
                    "--layers",
                    "2",
                    "--bytes-per-layer",
                    "100000",
                ])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with(&format!("{}/crust/big-cli:latest\n", reg.host())),
        "{stdout}"
    );
    let m = crust_testenv::get_manifest(&reg.host(), "crust/big-cli", "latest", None)
        .await
        .unwrap();
    assert_eq!(m.json().unwrap()["layers"].as_array().unwrap().len(), 2);
}
