//! Containers run by the real crust-monitor through real runc and crun (run as root): the CRI
//! log, the exit file and the container_exited event ([`common`] has the helpers).

mod common;

use std::time::{Duration, Instant};

use common::*;
use crust_monitor::ContainerExit;

async fn output_exit_and_state(runtime: &'static str) {
    let world = World::new(runtime).await;
    let mut events = world.watch().await;
    let mut client = world.client().await;

    // stdout and stderr, each an F record.
    let (rt, req) = world.container("hello", "echo hello; echo oops >&2", false);
    let pid = client.create_container(&req).await.unwrap();
    assert!(pid > 0);
    let status = client.status().await.unwrap();
    assert_eq!(status.containers.len(), 1);
    assert_eq!(status.containers[0].id, req.id);
    assert_eq!(status.containers[0].pid, pid);
    // A second create of the same ID is refused while it runs.
    let err = client.create_container(&req).await.unwrap_err();
    assert_eq!(err.container_id(), Some(req.id.as_str()));
    assert!(err.refusal().unwrap().contains("already exists"), "{err}");
    rt.start();
    let (code, signal, finished_at) = exited(&mut events, &req.id).await;
    assert_eq!((code, signal), (0, None));
    let log = records(&req.log_path);
    assert!(has(&log, "stdout", "F", "hello"), "{log:?}");
    assert!(has(&log, "stderr", "F", "oops"), "{log:?}");
    let exit = crust_monitor::read_exit_file(&req.exit_file).unwrap();
    assert_eq!(
        exit,
        Some(ContainerExit {
            exit_code: 0,
            signal: None,
            finished_at
        })
    );
    assert!(not_running(pid));
    // Nothing is kept of it; forget is idempotent.
    assert!(client.status().await.unwrap().containers.is_empty());
    client.forget(&req.id).await.unwrap();
    client.forget(&req.id).await.unwrap();
    let err = client.reopen_log(&req.id).await.unwrap_err();
    assert!(err.refusal().unwrap().contains("is not running"), "{err}");
    drop(rt);

    // A 40 KiB line: P, P, F.
    let (rt, req) = world.container(
        "long",
        "head -c 40960 /dev/zero | tr '\\0' x; echo; echo after",
        false,
    );
    client.create_container(&req).await.unwrap();
    rt.start();
    assert_eq!(exited(&mut events, &req.id).await.0, 0);
    let log = records(&req.log_path);
    let shape: Vec<(&str, &str, usize)> = log
        .iter()
        .map(|(s, t, c)| (s.as_str(), t.as_str(), c.len()))
        .collect();
    assert_eq!(
        shape,
        [
            ("stdout", "P", 16384),
            ("stdout", "P", 16384),
            ("stdout", "F", 8192),
            ("stdout", "F", 5),
        ]
    );
    assert!(log[..3]
        .iter()
        .all(|(_, _, c)| c.bytes().all(|b| b == b'x')));
    drop(rt);

    // The last line before the exit, and one without a newline, are not lost.
    let (rt, req) = world.container("last", "echo last; printf tail >&2; exit 7", false);
    client.create_container(&req).await.unwrap();
    rt.start();
    let (code, signal, _) = exited(&mut events, &req.id).await;
    assert_eq!((code, signal), (7, None));
    let log = records(&req.log_path);
    assert!(has(&log, "stdout", "F", "last"), "{log:?}");
    assert!(has(&log, "stderr", "F", "tail"), "{log:?}");
    assert_eq!(
        crust_monitor::read_exit_file(&req.exit_file)
            .unwrap()
            .unwrap()
            .exit_code,
        7
    );
}

async fn terminal(runtime: &'static str) {
    let world = World::new(runtime).await;
    let mut events = world.watch().await;
    let mut client = world.client().await;
    let (rt, req) = world.container(
        "tty",
        "echo hello-tty; [ -t 1 ] && echo is-a-tty; exit 3",
        true,
    );
    client.create_container(&req).await.unwrap();
    // The console socket is gone once the create answered.
    assert!(!req.console_socket.as_ref().unwrap().exists());
    rt.start();
    let (code, _, _) = exited(&mut events, &req.id).await;
    assert_eq!(code, 3);
    let log = records(&req.log_path);
    assert!(has(&log, "stdout", "F", "hello-tty"), "{log:?}");
    assert!(has(&log, "stdout", "F", "is-a-tty"), "{log:?}");
}

async fn failing_create(runtime: &'static str) {
    let world = World::new(runtime).await;
    let mut client = world.client().await;
    let (_rt, mut req) = world.container("bad", "true", false);
    // A bundle that does not exist.
    let bundle = req.argv.iter().position(|a| a == "--bundle").unwrap() + 1;
    req.argv[bundle] = path_str(&world.tmp.path().join("no-such-bundle"));
    let err = client.create_container(&req).await.unwrap_err();
    assert_eq!(err.container_id(), Some(req.id.as_str()));
    let message = err.refusal().expect("a refusal");
    assert!(
        message.starts_with("runtime create exited with status"),
        "{message}"
    );
    assert!(client.status().await.unwrap().containers.is_empty());
    assert!(!req.exit_file.exists());
    // The same with a terminal: the console socket is removed too.
    let (_rt, mut req) = world.container("badtty", "true", true);
    let bundle = req.argv.iter().position(|a| a == "--bundle").unwrap() + 1;
    req.argv[bundle] = path_str(&world.tmp.path().join("no-such-bundle"));
    let err = client.create_container(&req).await.unwrap_err();
    assert!(err.refusal().is_some(), "{err}");
    assert!(!req.console_socket.as_ref().unwrap().exists());
    assert!(client.status().await.unwrap().containers.is_empty());
}

async fn reopen_log(runtime: &'static str) {
    let world = World::new(runtime).await;
    let mut events = world.watch().await;
    let mut client = world.client().await;
    let (rt, req) = world.container(
        "rotate",
        "i=0; while [ $i -lt 300 ]; do echo line$i; i=$((i+1)); usleep 5000; done",
        false,
    );
    client.create_container(&req).await.unwrap();
    rt.start();
    let deadline = Instant::now() + Duration::from_secs(10);
    while records(&req.log_path).len() < 20 {
        assert!(Instant::now() < deadline, "no output");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rotated = req.log_path.with_extension("log.1");
    std::fs::rename(&req.log_path, &rotated).unwrap();
    client.reopen_log(&req.id).await.unwrap();
    assert_eq!(exited(&mut events, &req.id).await.0, 0);
    let old = records(&rotated);
    let new = records(&req.log_path);
    assert!(!new.is_empty(), "nothing in the reopened log");
    let lines: Vec<String> = old.iter().chain(&new).map(|r| r.2.clone()).collect();
    let expected: Vec<String> = (0..300).map(|i| format!("line{i}")).collect();
    assert_eq!(lines, expected);
}

async fn shutdown_kills(runtime: &'static str) {
    let world = World::new(runtime).await;
    let mut events = world.watch().await;
    let mut client = world.client().await;
    let (rt, req) = world.container("sleeper", "echo started; exec sleep 1000", false);
    let pid = client.create_container(&req).await.unwrap();
    rt.start();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !has(&records(&req.log_path), "stdout", "F", "started") {
        assert!(Instant::now() < deadline, "no output");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let monitor = client.status().await.unwrap().pid;
    eprintln!(
        "{runtime}: crust-monitor VmRSS with one running container: {} kB",
        vm_rss_kib(monitor)
    );
    client.shutdown().await.unwrap();
    let (code, signal, _) = exited(&mut events, &req.id).await;
    assert_eq!((code, signal), (137, Some(9)));
    let exit = crust_monitor::read_exit_file(&req.exit_file)
        .unwrap()
        .unwrap();
    assert_eq!((exit.exit_code, exit.signal), (137, Some(9)));
    assert!(not_running(pid));
    // Its socket closes as it exits; it is gone a moment later.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !not_running(monitor) {
        assert!(Instant::now() < deadline, "the monitor still runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(rt);
}

for_runtimes!(
    output_exit_and_state,
    terminal,
    failing_create,
    reopen_log,
    shutdown_kills
);
