//! Attach through the real crust-monitor to containers of real runc and crun (run as root):
//! output to several attachers and the CRI log, stdin and stdin_once, a terminal's size, a
//! slow attacher dropped, refusals ([`common`] has the helpers).

mod common;

use std::time::{Duration, Instant};

use common::*;
use crust_monitor::{Attach, AttachOptions, AttachOutput, ContainerExit};

const OUT: AttachOptions = AttachOptions {
    stdin: false,
    stdout: true,
    stderr: false,
};
const ALL: AttachOptions = AttachOptions {
    stdin: true,
    stdout: true,
    stderr: true,
};

/// What an attacher received.
#[derive(Default)]
struct Seen {
    out: Vec<u8>,
    err: Vec<u8>,
    exit: Option<ContainerExit>,
    /// The monitor closed the session.
    closed: bool,
}

impl Seen {
    fn out(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }
}

/// Reads from `attach` into `seen` until `done(seen)` (20 s at most) or the session's end.
async fn read_until(attach: &mut Attach, seen: &mut Seen, done: impl Fn(&Seen) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(seen) {
        assert!(
            !seen.closed,
            "the session ended; stdout so far: {:?}",
            seen.out()
        );
        let left = deadline.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(left, attach.next())
            .await
            .unwrap_or_else(|_| panic!("not in time; stdout so far: {:?}", seen.out()))
            .unwrap();
        match next {
            Some(AttachOutput::Stdout(data)) => seen.out.extend_from_slice(&data),
            Some(AttachOutput::Stderr(data)) => seen.err.extend_from_slice(&data),
            Some(AttachOutput::Exited(exit)) => seen.exit = Some(exit),
            None => seen.closed = true,
        }
    }
}

/// Reads until the exit frame and the end of the session; the exit.
async fn read_to_exit(attach: &mut Attach, seen: &mut Seen) -> ContainerExit {
    read_until(attach, seen, |s| s.exit.is_some()).await;
    read_until(attach, seen, |s| s.closed).await;
    seen.exit.unwrap()
}

fn contains(seen: &Seen, text: &str) -> bool {
    seen.out().contains(text)
}

/// The `lineN` numbers of the complete lines of `text`.
fn numbers(text: &str) -> Vec<u32> {
    text.split_terminator('\n')
        .map(|l| l.strip_prefix("line").unwrap().parse().unwrap())
        .collect()
}

async fn two_attachers_and_the_log(runtime: &'static str) {
    let world = World::new(runtime).await;
    let mut events = world.watch().await;
    let mut client = world.client().await;
    let (rt, req) = world.container(
        "counter",
        "i=0; while [ $i -lt 40 ]; do echo line$i; echo err$i >&2; i=$((i+1)); usleep 100000; done",
        false,
    );
    client.create_container(&req).await.unwrap();
    // Attached before the start: everything, both streams.
    let all = AttachOptions {
        stdin: false,
        ..ALL
    };
    let mut a = world.client().await.attach(&req.id, all).await.unwrap();
    assert!(!a.tty);
    rt.start();
    let (mut seen_a, mut seen_b) = (Seen::default(), Seen::default());
    read_until(&mut a, &mut seen_a, |s| contains(s, "line3\n")).await;
    // A second one, from the moment it attached.
    let mut b = world.client().await.attach(&req.id, OUT).await.unwrap();
    read_until(&mut b, &mut seen_b, |s| {
        s.out.ends_with(b"\n") && s.out.len() > 20
    })
    .await;
    read_until(&mut a, &mut seen_a, |s| contains(s, "line8\n")).await;
    let monitor = client.status().await.unwrap().pid;
    eprintln!(
        "{runtime}: crust-monitor VmRSS with one container and two attach sessions: {} kB",
        vm_rss_kib(monitor)
    );
    assert_eq!(numbers(&seen_a.out())[..9], [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert!(String::from_utf8_lossy(&seen_a.err).starts_with("err0\nerr1\n"));
    // A detaches: B and the container go on.
    drop(a);
    let had = seen_b.out.len();
    read_until(&mut b, &mut seen_b, |s| s.out.len() > had + 20).await;
    let status = client.status().await.unwrap();
    assert!(status.containers.iter().any(|c| c.id == req.id));
    assert_eq!(read_to_exit(&mut b, &mut seen_b).await.exit_code, 0);
    // B got consecutive lines from when it attached to the last; no stderr (not asked).
    let got = numbers(&seen_b.out());
    let first = got[0];
    assert!(first >= 3, "{got:?}");
    assert_eq!(got, (first..40).collect::<Vec<_>>());
    assert!(seen_b.err.is_empty());
    assert_eq!(exited(&mut events, &req.id).await.0, 0);
    // The CRI log has every line.
    let log = records(&req.log_path);
    for i in 0..40 {
        assert!(
            has(&log, "stdout", "F", &format!("line{i}")),
            "line{i}: {log:?}"
        );
        assert!(
            has(&log, "stderr", "F", &format!("err{i}")),
            "err{i}: {log:?}"
        );
    }
}

async fn stdin(runtime: &'static str) {
    let world = World::new(runtime).await;
    let mut events = world.watch().await;
    let mut client = world.client().await;

    // Without stdin_once: a session's end leaves stdin open for the next one.
    let (rt, mut req) = world.container("cat", "exec cat", false);
    req.stdin = true;
    client.create_container(&req).await.unwrap();
    rt.start();
    let mut s = world.client().await.attach(&req.id, ALL).await.unwrap();
    let mut seen = Seen::default();
    s.send_stdin(b"hello\n").await.unwrap();
    read_until(&mut s, &mut seen, |s| contains(s, "hello\n")).await;
    // Stdin of a session that did not ask for it is dropped.
    let mut watcher = world.client().await.attach(&req.id, OUT).await.unwrap();
    watcher.send_stdin(b"ignored\n").await.unwrap();
    s.close_stdin().await.unwrap();
    drop(s);
    let mut s2 = world.client().await.attach(&req.id, ALL).await.unwrap();
    let mut s3 = world.client().await.attach(&req.id, ALL).await.unwrap();
    let (mut seen2, mut seen3, mut seen_w) = (Seen::default(), Seen::default(), Seen::default());
    s2.send_stdin(b"again\n").await.unwrap();
    read_until(&mut s2, &mut seen2, |s| contains(s, "again\n")).await;
    // Stdin of another attacher reaches the container; its output reaches everyone.
    s3.send_stdin(b"from-three\n").await.unwrap();
    read_until(&mut s2, &mut seen2, |s| contains(s, "from-three\n")).await;
    read_until(&mut s3, &mut seen3, |s| contains(s, "from-three\n")).await;
    read_until(&mut watcher, &mut seen_w, |s| contains(s, "from-three\n")).await;
    assert_eq!(seen_w.out(), "again\nfrom-three\n");
    // A big write, in several frames, comes back whole.
    let big: Vec<u8> = (0..200_000u32)
        .map(|i| {
            if i % 100 == 99 {
                b'\n'
            } else {
                b'a' + (i % 26) as u8
            }
        })
        .collect();
    assert_eq!(seen3.out(), "again\nfrom-three\n");
    let before = seen3.out.len();
    s2.send_stdin(&big).await.unwrap();
    read_until(&mut s3, &mut seen3, |s| s.out.len() >= before + big.len()).await;
    assert!(
        seen3.out[before..] == big[..],
        "the big write came back changed"
    );
    rt.kill();
    let exit = read_to_exit(&mut s2, &mut seen2).await;
    assert_eq!((exit.exit_code, exit.signal), (137, Some(9)));
    assert_eq!(exited(&mut events, &req.id).await.0, 137);
    drop((s3, watcher, rt));

    // stdin_once: the end of the first session with stdin (its connection closed) closes
    // the container's stdin: cat exits 0.
    let (rt, mut req) = world.container("once", "exec cat", false);
    req.stdin = true;
    req.stdin_once = true;
    client.create_container(&req).await.unwrap();
    let mut watcher = world.client().await.attach(&req.id, OUT).await.unwrap();
    rt.start();
    let mut s = world.client().await.attach(&req.id, ALL).await.unwrap();
    let (mut seen, mut seen_w) = (Seen::default(), Seen::default());
    s.send_stdin(b"once\n").await.unwrap();
    read_until(&mut s, &mut seen, |s| contains(s, "once\n")).await;
    drop(s);
    let exit = read_to_exit(&mut watcher, &mut seen_w).await;
    assert_eq!((exit.exit_code, exit.signal), (0, None));
    assert_eq!(seen_w.out(), "once\n");
    assert_eq!(exited(&mut events, &req.id).await.0, 0);
    drop(rt);

    // stdin_once and a stdin close frame: the exit comes on the same session.
    let (rt, mut req) = world.container("close", "exec cat", false);
    req.stdin = true;
    req.stdin_once = true;
    client.create_container(&req).await.unwrap();
    rt.start();
    let mut s = world.client().await.attach(&req.id, ALL).await.unwrap();
    let mut seen = Seen::default();
    s.send_stdin(b"bye\n").await.unwrap();
    s.close_stdin().await.unwrap();
    let exit = read_to_exit(&mut s, &mut seen).await;
    assert_eq!((exit.exit_code, exit.signal), (0, None));
    assert_eq!(seen.out(), "bye\n");
    assert!(has(&records(&req.log_path), "stdout", "F", "bye"));
}

async fn terminal(runtime: &'static str) {
    let world = World::new(runtime).await;
    let mut client = world.client().await;
    let (rt, mut req) = world.container("tty", "exec sh", true);
    req.stdin = true;
    client.create_container(&req).await.unwrap();
    rt.start();
    let mut s = world.client().await.attach(&req.id, ALL).await.unwrap();
    assert!(s.tty);
    let mut seen = Seen::default();
    s.resize(100, 30).await.unwrap();
    s.send_stdin(b"stty size\n").await.unwrap();
    read_until(&mut s, &mut seen, |s| contains(s, "30 100")).await;
    s.send_stdin(b"exit 5\n").await.unwrap();
    assert_eq!(read_to_exit(&mut s, &mut seen).await.exit_code, 5);
    // A terminal's output is all stdout.
    assert!(seen.err.is_empty());
}

async fn slow_attacher(runtime: &'static str) {
    let world = World::new(runtime).await;
    let mut events = world.watch().await;
    let mut client = world.client().await;
    // 50000 lines of 100 bytes: 5 MB, far more than the 1 MiB a session may have pending, in
    // 50 bursts of 100 kB (a reader that keeps up gets it all, even on a busy machine).
    let line = "a".repeat(99);
    let (rt, req) = world.container(
        "flood",
        &format!(
            "i=0; while [ $i -lt 50 ]; do yes {line} | head -n 1000; usleep 20000; i=$((i+1)); \
             done; echo done"
        ),
        false,
    );
    let total = 50_000 * 100 + 5;
    client.create_container(&req).await.unwrap();
    let mut slow = world.client().await.attach(&req.id, OUT).await.unwrap();
    let mut fast = world.client().await.attach(&req.id, OUT).await.unwrap();
    let reader = tokio::spawn(async move {
        let mut seen = Seen::default();
        let exit = read_to_exit(&mut fast, &mut seen).await;
        (seen.out.len(), exit)
    });
    let start = Instant::now();
    rt.start();
    assert_eq!(exited(&mut events, &req.id).await.0, 0);
    let took = start.elapsed();
    // The log got everything, and so did the attacher that reads.
    let log = records(&req.log_path);
    assert_eq!(log.len(), 50_001);
    assert!(has(&log, "stdout", "F", &line) && has(&log, "stdout", "F", "done"));
    let (got, exit) = reader.await.unwrap();
    assert_eq!((got, exit.exit_code), (total, 0));
    // The one that never read was dropped: some output, then the end, and no exit.
    let mut seen = Seen::default();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), slow.next())
            .await
            .unwrap()
        {
            Ok(Some(AttachOutput::Stdout(data))) => seen.out.extend_from_slice(&data),
            Ok(Some(other)) => panic!("a dropped session got {other:?}"),
            // The end, possibly inside a frame.
            Ok(None) | Err(_) => break,
        }
    }
    assert!(seen.out.len() < total, "{} of {total}", seen.out.len());
    eprintln!(
        "{runtime}: 5 MB through the log and one reader with a stalled attacher: {took:?}, \
         the stalled one got {} bytes",
        seen.out.len()
    );
}

async fn refusals(runtime: &'static str) {
    let world = World::new(runtime).await;
    let mut events = world.watch().await;
    let mut client = world.client().await;
    let err = world.client().await.attach("nope", ALL).await.unwrap_err();
    assert_eq!(err.container_id(), Some("nope"));
    assert_eq!(err.refusal(), Some("container nope is not running"));
    let (rt, req) = world.container("gone", "exit 2", false);
    client.create_container(&req).await.unwrap();
    rt.start();
    assert_eq!(exited(&mut events, &req.id).await.0, 2);
    let err = world.client().await.attach(&req.id, ALL).await.unwrap_err();
    assert_eq!(
        err.refusal(),
        Some(format!("container {} is not running", req.id).as_str())
    );
    // The monitor serves on.
    assert!(client.status().await.unwrap().containers.is_empty());
}

for_runtimes!(
    two_attachers_and_the_log,
    stdin,
    terminal,
    slow_attacher,
    refusals
);
