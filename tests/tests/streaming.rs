//! Exec, attach and port-forward through the real crustctl binary against a real crustd
//! (streaming server, pod monitor, runc/crun), over both transports (`--transport spdy` and
//! `websocket`). Each test runs once per OCI runtime. These tests need root.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crust_tests::{binary, both_runtimes, pod_config, PodEnv};

const TRANSPORTS: [&str; 2] = ["spdy", "websocket"];

/// One crustd with a pod on its own bridge, busybox pulled.
async fn env(handler: &'static str, index: u8) -> PodEnv {
    PodEnv::builder(handler, index)
        .pod(move |logs| pod_config(&format!("stream-{handler}-{index}"), "streaming", logs))
        .build()
        .await
}

/// Runs a busybox container in the pod, with stdin open and a TTY as asked.
async fn run(env: &mut PodEnv, name: &str, cmd: &[&str], stdin: bool, tty: bool) -> String {
    let mut config = env.config(name, cmd);
    config.stdin = stdin;
    config.tty = tty;
    env.run(config).await
}

/// Runs crustctl with `input` on its stdin.
fn crustctl_with_input(env: &PodEnv, args: &[&str], input: &[u8]) -> Output {
    let mut child = env
        .crustd
        .crustctl_command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("crustctl runs");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = wait_output(child, Duration::from_secs(60));
    writer.join().unwrap();
    out
}

/// The child's output, killing it after `limit`.
fn wait_output(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("crustctl output"),
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            panic!("crustctl did not finish within {limit:?}");
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Reads `child`'s stdout until `want` appears (or panics after `limit`).
fn read_until(out: &mut impl Read, want: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !text(&seen).contains(want) {
        assert!(
            Instant::now() < deadline,
            "no {want:?} in {:?}",
            text(&seen)
        );
        match out.read(&mut buf) {
            Ok(0) => panic!("EOF before {want:?}: {:?}", text(&seen)),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read: {e}"),
        }
    }
    text(&seen)
}

async fn exec_stdin_and_exit_codes(handler: &'static str, index: u8) {
    let mut env = env(handler, index).await;
    let id = run(&mut env, "sleeper", &["sleep", "1000"], false, false).await;
    for transport in TRANSPORTS {
        let out = crustctl_with_input(
            &env,
            &["exec", "-i", "--transport", transport, &id, "cat"],
            b"hello through crustd\n",
        );
        assert!(out.status.success(), "{transport}: {out:?}");
        assert_eq!(text(&out.stdout), "hello through crustd\n", "{transport}");

        let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
        let out = crustctl_with_input(
            &env,
            &["exec", "-i", "--transport", transport, &id, "cat"],
            &big,
        );
        assert!(out.status.success(), "{transport}: {:?}", text(&out.stderr));
        assert!(
            out.stdout == big,
            "{transport}: {} bytes back",
            out.stdout.len()
        );

        let out = crustctl_with_input(
            &env,
            &[
                "exec",
                "--transport",
                transport,
                &id,
                "sh",
                "-c",
                "echo out; echo err >&2; exit 3",
            ],
            b"",
        );
        assert_eq!(out.status.code(), Some(3), "{transport}: {out:?}");
        assert_eq!(text(&out.stdout), "out\n", "{transport}");
        assert_eq!(text(&out.stderr), "err\n", "{transport}");

        let out = crustctl_with_input(
            &env,
            &["exec", "--transport", transport, &id, "/no/such/binary"],
            b"",
        );
        assert!(!out.status.success(), "{transport}: {out:?}");
    }
}

async fn exec_tty_size(handler: &'static str, index: u8) {
    let mut env = env(handler, index).await;
    let id = run(&mut env, "sleeper", &["sleep", "1000"], false, false).await;
    // runc applies process.consoleSize before the process starts, so even a command that
    // reads its size at once sees it. crun 1.8 ignores consoleSize for exec: the monitor sets
    // the size the moment crun hands it the pty, which a process exec'd at once can beat.
    let command = if handler == "crun" {
        "sh -c 'sleep 0.3; stty size'"
    } else {
        "stty size"
    };
    for transport in TRANSPORTS {
        // `script` gives crustctl a terminal; its size is set before crustctl starts.
        let inner = format!(
            "stty rows 33 cols 101; {} --runtime-endpoint unix://{} --timeout 60s exec -it --transport {transport} {id} {command}",
            binary("crustctl").display(),
            env.crustd.socket.display()
        );
        let child = Command::new("script")
            .args(["-qec", &inner, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script runs");
        let out = wait_output(child, Duration::from_secs(60));
        let shown = text(&out.stdout);
        assert!(out.status.success(), "{transport}: {out:?}");
        assert!(shown.contains("33 101"), "{transport}: {shown:?}");
    }
}

async fn attach_output_and_stdin(handler: &'static str, index: u8) {
    let mut env = env(handler, index).await;
    let counter = run(
        &mut env,
        "counter",
        &[
            "sh",
            "-c",
            "i=0; while true; do echo count $i; i=$((i+1)); sleep 0.2; done",
        ],
        false,
        false,
    )
    .await;
    let cat = run(&mut env, "cat", &["cat"], true, false).await;
    for transport in TRANSPORTS {
        let mut child = env
            .crustd
            .crustctl_command(&["attach", "--transport", transport, &counter])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A second attacher at the same time gets the same output.
        let mut second = env
            .crustd
            .crustctl_command(&["attach", "--transport", transport, &counter])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let first = read_until(&mut stdout, "count ", Duration::from_secs(30));
        let mut stdout2 = second.stdout.take().unwrap();
        read_until(&mut stdout2, "count ", Duration::from_secs(30));
        // Detaching one leaves the other (and the container) going.
        let _ = second.kill();
        let _ = second.wait();
        // Live output: numbers keep coming.
        let later = read_until(&mut stdout, "\n", Duration::from_secs(10));
        let later = later + &read_until(&mut stdout, "count ", Duration::from_secs(10));
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            later.contains("count"),
            "{transport}: {first:?} then {later:?}"
        );

        let mut child = env
            .crustd
            .crustctl_command(&["attach", "-i", "--transport", transport, &cat])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let line = format!("ping over {transport}\n");
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.flush().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        read_until(&mut stdout, line.trim(), Duration::from_secs(30));
        let _ = child.kill();
        let _ = child.wait();
    }
}

async fn port_forward_echo(handler: &'static str, index: u8) {
    let mut env = env(handler, index).await;
    // busybox nc: -ll -e forks a `cat` per connection, so connections run concurrently.
    run(
        &mut env,
        "echo",
        &["nc", "-ll", "-p", "8080", "-e", "cat"],
        false,
        false,
    )
    .await;
    let pod = env.pod.clone();
    for transport in TRANSPORTS {
        let mut child = env
            .crustd
            .crustctl_command(&["port-forward", "--transport", transport, &pod, "0:8080"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        lines.read_line(&mut first).unwrap();
        let port: u16 = first
            .trim()
            .strip_prefix("Forwarding from 127.0.0.1:")
            .and_then(|rest| rest.strip_suffix(" -> 8080"))
            .unwrap_or_else(|| panic!("{transport}: {first:?}"))
            .parse()
            .unwrap();
        std::thread::spawn(move || for _ in lines.lines() {});
        let size = 10 << 20;
        let echoes: Vec<_> = (0..3u8)
            .map(|seed| {
                std::thread::spawn(move || {
                    let data: Vec<u8> = (0..size)
                        .map(|i: usize| (i as u8).wrapping_mul(7).wrapping_add(seed))
                        .collect();
                    let conn = connect_retrying(port);
                    let mut reader = conn.try_clone().unwrap();
                    let sent = data.clone();
                    let half_close = transport == "spdy";
                    let writer = std::thread::spawn(move || {
                        let mut conn = conn;
                        conn.write_all(&sent).unwrap();
                        if half_close {
                            conn.shutdown(std::net::Shutdown::Write).unwrap();
                        }
                    });
                    // SPDY carries the half-close to the pod (cat ends, EOF comes back);
                    // kubelet's WebSocket port-forward protocol has no half-close, so there
                    // the echo is read to its length.
                    let mut back = Vec::new();
                    if half_close {
                        reader.read_to_end(&mut back).unwrap();
                    } else {
                        back.resize(size, 0);
                        reader.read_exact(&mut back).unwrap();
                    }
                    writer.join().unwrap();
                    back == data
                })
            })
            .collect();
        for echo in echoes {
            assert!(
                echo.join().unwrap(),
                "{transport}: 10 MiB not echoed intact"
            );
        }
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(child.id().to_string())
            .status();
        let out = wait_output(child, Duration::from_secs(10));
        assert!(out.status.success(), "{transport}: {:?}", text(&out.stderr));
    }
}

fn connect_retrying(port: u16) -> std::net::TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(conn) => return conn,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("connect 127.0.0.1:{port}: {e}"),
        }
    }
}

// Bridge indexes 71..74 (and 171..174): away from pods.rs and containers.rs.
both_runtimes! {
    exec_stdin_and_exit_codes(71);
    exec_tty_size(72);
    attach_output_and_stdin(73);
    disconnect_kills_the_exec(75);
}

mod port_forward {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn echo_runc() {
        super::port_forward_echo("runc", 74).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn echo_crun() {
        super::port_forward_echo("crun", 174).await
    }
}

/// A client that goes away mid-exec leaves no process behind in the container, with and
/// without a terminal.
async fn disconnect_kills_the_exec(handler: &'static str, index: u8) {
    let mut env = env(handler, index).await;
    let id = run(&mut env, "sleeper", &["sleep", "1000"], false, false).await;
    for (transport, marker, tty) in [
        ("spdy", "7771", false),
        ("websocket", "7772", false),
        ("spdy", "7773", true),
    ] {
        let mut child = if tty {
            let inner = format!(
                "{} --runtime-endpoint unix://{} --timeout 60s exec -it --transport {transport} {id} sleep {marker}",
                binary("crustctl").display(),
                env.crustd.socket.display()
            );
            Command::new("script")
                .args(["-qec", &inner, "/dev/null"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        } else {
            env.crustd
                .crustctl_command(&["exec", "-i", "--transport", transport, &id, "sleep", marker])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
        let running = |env: &PodEnv| {
            let out = env
                .crustd
                .crustctl_command(&["exec", "-s", &id, "ps"])
                .output()
                .unwrap();
            text(&out.stdout).contains(&format!("sleep {marker}"))
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !running(&env) {
            assert!(
                Instant::now() < deadline,
                "{transport}/{tty}: sleep {marker} never ran"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // The client dies (for the terminal case, `script` and crustctl under it).
        let _ = child.kill();
        let _ = child.wait();
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &format!("crustctl.*sleep {marker}")])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while running(&env) {
            assert!(
                Instant::now() < deadline,
                "{transport}/{tty}: sleep {marker} outlived its client"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
