//! Harness for crust's integration tests: a real crustd process on a private socket and
//! state directories, CRI clients connected to it, and the crustctl binary.
//!
//! The binaries come from the same target directory as the test executable; the README's
//! test command builds them first (`cargo build --workspace --bins`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint};

mod pod_env;

/// Makes each `name(index);` a test once per OCI runtime: `runc::name` calls
/// `name("runc", index)` and `crun::name` calls `name("crun", index + 100)`, both of the
/// invoking module, so that the two never share a bridge.
#[macro_export]
macro_rules! both_runtimes {
    ($($name:ident($index:expr);)*) => {
        mod runc {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name("runc", $index).await })*
        }
        mod crun {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name("crun", $index + 100).await })*
        }
    };
}
pub use pod_env::{
    all_containers, all_pods, container_events, kv, pod_config, stop_and_remove_pod, PodEnv,
    PodEnvBuilder,
};

/// Path of a workspace binary next to the running test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

/// A crustd process with its own socket, root, runroot and config, all in a temporary
/// directory. Dropping it stops the process (SIGTERM, then SIGKILL) and removes the directory.
pub struct Crustd {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub root: PathBuf,
    pub runroot: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Crustd {
    /// Starts crustd with hosts.toml files read from `<dir>/certs.d` (empty unless the test
    /// writes some: registries on 127.0.0.1 are then plain HTTP), no CNI config, and `extra`
    /// lines in the `[registry]` section.
    pub async fn start_local(extra: &str) -> anyhow::Result<Crustd> {
        Crustd::start_with(|dir| config_with_hosts(&dir.join("certs.d"), extra)).await
    }

    /// Starts crustd with `config` (TOML) and waits until it answers Version.
    pub async fn start(config: &str) -> anyhow::Result<Crustd> {
        let config = config.to_string();
        Crustd::start_with(move |_| config).await
    }

    /// Starts crustd on `net` (its plugins looked for in `bin_dirs`, then /usr/lib/cni), with
    /// hosts.toml files read from `<dir>/certs.d` and `extra` TOML after the `[network]`
    /// section.
    pub async fn start_on(net: &PodNet, bin_dirs: &[&Path], extra: &str) -> anyhow::Result<Crustd> {
        let network = net.config(bin_dirs);
        let extra = extra.to_string();
        Crustd::start_with(move |dir| {
            format!(
                "[registry]\nconfig_path = {:?}\n{network}{extra}",
                dir.join("certs.d").display().to_string()
            )
        })
        .await
    }

    /// Starts crustd with the config `make_config` writes for the instance's directory.
    pub async fn start_with(make_config: impl FnOnce(&Path) -> String) -> anyhow::Result<Crustd> {
        let dir = tempfile::Builder::new().prefix("crust-it-").tempdir()?;
        let mut d = Crustd {
            child: None,
            socket: dir.path().join("run/crust.sock"),
            root: dir.path().join("root"),
            runroot: dir.path().join("run"),
            config: dir.path().join("config.toml"),
            log: dir.path().join("crustd.log"),
            dir,
        };
        std::fs::write(&d.config, make_config(d.dir.path()))?;
        d.spawn().await?;
        Ok(d)
    }

    /// The command line this instance runs with.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(binary("crustd"));
        cmd.arg("--listen")
            .arg(&self.socket)
            .arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot)
            .arg("--config")
            .arg(&self.config)
            .arg("--log-level")
            .arg("debug");
        cmd
    }

    /// Starts (or starts again) the daemon and waits for it to serve.
    pub async fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = self
            .command()
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning crustd")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait()? {
                bail!(
                    "crustd exited with {status} while starting:\n{}",
                    self.logs()
                );
            }
            if let Ok(mut c) = self.runtime().await {
                if c.version(k8s_cri::v1::VersionRequest::default())
                    .await
                    .is_ok()
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("crustd did not answer within 30s:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the exit; returns the exit status.
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("crustd not running")?;
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("crustd did not exit within 20s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn channel(&self) -> anyhow::Result<Channel> {
        connect(&self.socket).await
    }

    pub async fn runtime(&self) -> anyhow::Result<RuntimeServiceClient<Channel>> {
        // ExecSync replies carry up to 16 MiB per stream.
        Ok(RuntimeServiceClient::new(self.channel().await?).max_decoding_message_size(40 << 20))
    }

    pub async fn images(&self) -> anyhow::Result<ImageServiceClient<Channel>> {
        Ok(ImageServiceClient::new(self.channel().await?))
    }

    /// Directory the image store unpacks layers into.
    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("images/layers")
    }

    /// Unpacked layer directory for a diff ID.
    pub fn layer_dir(&self, diff_id: &str) -> PathBuf {
        self.layers_dir()
            .join("sha256")
            .join(diff_id.trim_start_matches("sha256:"))
    }

    /// crustctl with this daemon's endpoint and a 60s timeout, stdio left to the caller.
    pub fn crustctl_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary("crustctl"));
        cmd.arg("--runtime-endpoint")
            .arg(format!("unix://{}", self.socket.display()))
            .arg("--timeout")
            .arg("60s")
            .args(args);
        cmd
    }

    /// Runs crustctl against this daemon.
    pub fn crustctl(&self, args: &[&str]) -> std::process::Output {
        self.crustctl_command(args)
            .stdin(Stdio::null())
            .output()
            .expect("running crustctl")
    }
}

impl Drop for Crustd {
    fn drop(&mut self) {
        if self.child.is_some() && self.terminate().is_err() {
            self.kill();
        }
        // A test that failed midway may leave pods: end their monitors and unpin whatever is
        // mounted below the instance's directory so that nothing outlives the test.
        for pid in monitors_under(self.dir.path()) {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
        let mut mounts = mounts_under(self.dir.path());
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
    }
}

/// A tonic channel over a unix socket.
pub async fn connect(path: &Path) -> anyhow::Result<Channel> {
    let path = path.to_path_buf();
    let channel = Endpoint::try_from("http://[::]:50051")?
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(path).await?,
                ))
            }
        }))
        .await?;
    Ok(channel)
}

/// Writes `<dir>/<host>/hosts.toml`.
pub fn write_hosts_toml(dir: &Path, host: &str, text: &str) -> anyhow::Result<()> {
    let d = dir.join(host);
    std::fs::create_dir_all(&d)?;
    std::fs::write(d.join("hosts.toml"), text)?;
    Ok(())
}

/// A crustd config whose registry hosts live in `certs_dir` and whose CNI directory is empty.
pub fn config_with_hosts(certs_dir: &Path, extra: &str) -> String {
    format!(
        "[registry]\nconfig_path = {:?}\n{extra}\n[network]\nconf_dir = {:?}\ndefault_conflist = false\n",
        certs_dir.display().to_string(),
        certs_dir.join("no-cni").display().to_string()
    )
}

/// Every path below `dir` (files, dirs, links), relative, sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&p) {
            for e in rd.flatten() {
                let path = e.path();
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(path);
                }
            }
        }
    }
    out.sort();
    out
}

/// Makes `to_name:to_tag` on a registry point at the image `from_name:from_tag`: blobs are
/// mounted across repositories and the manifest is put under the new name, as
/// `skopeo copy` between repositories of one registry would.
pub async fn retag(
    host: &str,
    from_name: &str,
    from_tag: &str,
    to_name: &str,
    to_tag: &str,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
    let resp = http
        .get(format!("http://{host}/v2/{from_name}/manifests/{from_tag}"))
        .header("accept", accept)
        .send()
        .await?
        .error_for_status()?;
    let media_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = resp.bytes().await?;
    let doc: serde_json::Value = serde_json::from_slice(&body)?;
    let mut digests: Vec<String> = Vec::new();
    if let Some(c) = doc["config"]["digest"].as_str() {
        digests.push(c.into());
    }
    for l in doc["layers"].as_array().into_iter().flatten() {
        digests.extend(l["digest"].as_str().map(String::from));
    }
    for d in digests {
        let r = http
            .post(format!(
                "http://{host}/v2/{to_name}/blobs/uploads/?mount={d}&from={from_name}"
            ))
            .send()
            .await?;
        anyhow::ensure!(r.status().as_u16() == 201, "mounting {d}: {}", r.status());
    }
    http.put(format!("http://{host}/v2/{to_name}/manifests/{to_tag}"))
        .header("content-type", media_type)
        .body(body)
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

/// What a [`Proxy`] does to the traffic between crustd and a real registry.
#[derive(Clone, Debug)]
pub enum ProxyMode {
    /// Once the client asks for one of these blob digests, let `after_bytes` of the response
    /// through and then send nothing more, holding the connection open: a transfer that hangs.
    Stall {
        blobs: Vec<String>,
        after_bytes: usize,
    },
    /// Change one byte of every manifest served (same length, still valid JSON): content that
    /// no longer matches its digest, as a tampering middlebox or a corrupt mirror would serve.
    TamperManifests,
}

/// A TCP proxy in front of a real registry, for the failures a real registry cannot be made
/// to produce on demand.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: &str, mode: ProxyMode) -> anyhow::Result<Proxy> {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let upstream = upstream.to_string();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let mode = mode.clone();
                // Set when the request now in flight on this connection is one to act on.
                let armed = Arc::new(AtomicBool::new(false));
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let flag = armed.clone();
                let request_mode = mode.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let text = String::from_utf8_lossy(&buf[..n]);
                        if text.contains(" HTTP/1.1") {
                            let hit = match &request_mode {
                                ProxyMode::Stall { blobs, .. } => {
                                    blobs.iter().any(|d| text.contains(&format!("/blobs/{d}")))
                                }
                                ProxyMode::TamperManifests => text.contains("/manifests/"),
                            };
                            flag.store(hit, Ordering::SeqCst);
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut sent_after = 0usize;
                    while let Ok(n) = sr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if armed.load(Ordering::SeqCst) {
                            match &mode {
                                ProxyMode::Stall { after_bytes, .. } => {
                                    if sent_after >= *after_bytes {
                                        std::future::pending::<()>().await;
                                    }
                                    sent_after += n;
                                }
                                ProxyMode::TamperManifests => {
                                    let needle = b"\"schemaVersion\"";
                                    if let Some(i) =
                                        buf[..n].windows(needle.len()).position(|w| w == needle)
                                    {
                                        buf[i + needle.len() - 2] = b'N';
                                    }
                                }
                            }
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Ok(Proxy { addr, task })
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A CNI network of a test's own: a conflist naming bridge `crt<index>` on 10.88.<index>.0/24
/// (ipMasq off, host-local IPAM state in the test's directory, portmap), so tests can run in
/// parallel. Dropping it deletes the bridge.
pub struct PodNet {
    pub conf_dir: PathBuf,
    pub data_dir: PathBuf,
    pub bridge: String,
    pub name: String,
    pub gateway: String,
    pub subnet_prefix: String,
}

impl PodNet {
    pub fn new(dir: &Path, index: u8) -> PodNet {
        let conf_dir = dir.join("net.d");
        let data_dir = dir.join("cni-ipam");
        std::fs::create_dir_all(&conf_dir).expect("conf dir");
        let bridge = format!("crt{index}");
        let name = format!("crust-test-{index}");
        let net = PodNet {
            conf_dir,
            data_dir,
            gateway: format!("10.88.{index}.1"),
            subnet_prefix: format!("10.88.{index}."),
            bridge,
            name,
        };
        net.write_conflist(&[]);
        net
    }

    /// Writes the conflist with `extra` plugins after bridge and portmap.
    pub fn write_conflist(&self, extra: &[serde_json::Value]) {
        let index = self.gateway.split('.').nth(2).unwrap_or("0");
        let mut plugins = vec![
            serde_json::json!({
                "type": "bridge",
                "bridge": self.bridge,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": self.data_dir,
                    "ranges": [[{"subnet": format!("10.88.{index}.0/24")}]],
                    "routes": [{"dst": "0.0.0.0/0"}]
                }
            }),
            serde_json::json!({"type": "portmap", "capabilities": {"portMappings": true}}),
        ];
        plugins.extend(extra.iter().cloned());
        let conflist = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": self.name,
            "plugins": plugins,
        });
        std::fs::write(
            self.conf_dir.join("10-test.conflist"),
            serde_json::to_vec_pretty(&conflist).unwrap(),
        )
        .expect("writing conflist");
    }

    /// Writes a conflist whose bridge declares the `ipRanges` capability and whose host-local
    /// has no range of its own: pods get addresses only from the pod CIDRs crustd passes
    /// (UpdateRuntimeConfig), and ADD fails while there are none. `forceAddress` lets the
    /// bridge's gateway address follow a changed pod CIDR.
    pub fn write_ip_ranges_conflist(&self) {
        let conflist = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": self.name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    "ipMasq": false,
                    "hairpinMode": true,
                    "forceAddress": true,
                    "capabilities": {"ipRanges": true},
                    "ipam": {
                        "type": "host-local",
                        "dataDir": self.data_dir,
                        "routes": [{"dst": "0.0.0.0/0"}]
                    }
                },
                {"type": "portmap", "capabilities": {"portMappings": true}}
            ],
        });
        std::fs::write(
            self.conf_dir.join("10-test.conflist"),
            serde_json::to_vec_pretty(&conflist).unwrap(),
        )
        .expect("writing conflist");
    }

    /// The `[network]` section for crustd.
    pub fn config(&self, bin_dirs: &[&Path]) -> String {
        let mut dirs: Vec<String> = bin_dirs
            .iter()
            .map(|d| format!("{:?}", d.display().to_string()))
            .collect();
        dirs.push("\"/usr/lib/cni\"".into());
        format!(
            "[network]\nconf_dir = {:?}\nbin_dirs = [{}]\ndefault_conflist = false\n",
            self.conf_dir.display().to_string(),
            dirs.join(", ")
        )
    }

    /// IPs host-local holds allocated on this network.
    pub fn allocated_ips(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(self.data_dir.join(&self.name))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Interfaces enslaved to the bridge (one veth per pod).
    pub fn bridge_ports(&self) -> usize {
        let out = Command::new("ip")
            .args(["-o", "link", "show", "master", &self.bridge])
            .output()
            .expect("ip link");
        String::from_utf8_lossy(&out.stdout).lines().count()
    }
}

impl Drop for PodNet {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
    }
}

/// The cgroup hierarchies under /sys/fs/cgroup a pod's directories can be in: the v1
/// controllers, a hybrid host's `name=systemd` and cgroup2 (`unified`) ones, the v2 root ("").
pub const CGROUP_HIERARCHIES: [&str; 12] = [
    "memory", "cpu", "cpuacct", "pids", "cpuset", "blkio", "devices", "freezer", "hugetlb",
    "systemd", "unified", "",
];

/// `path`'s (cgroupfs form) directory in every hierarchy that has it.
pub fn cgroup_dirs_of(path: &str) -> Vec<PathBuf> {
    CGROUP_HIERARCHIES
        .iter()
        .map(|c| {
            Path::new("/sys/fs/cgroup")
                .join(c)
                .join(path.trim_start_matches('/'))
        })
        .filter(|d| d.join("cgroup.procs").exists())
        .collect()
}

/// Every cgroup directory below (not including) `path` in every hierarchy, deepest first.
pub fn cgroup_dirs_below(path: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(e.path());
                walk(&e.path(), out);
            }
        }
    }
    let mut out = Vec::new();
    for top in cgroup_dirs_of(path) {
        walk(&top, &mut out);
    }
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out
}

/// Removes test cgroup trees when dropped, whatever a failed test (or crustd) left in them:
/// their processes killed, the directories removed deepest first, the roots last.
pub struct CgroupGuard(pub Vec<String>);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        for root in &self.0 {
            let dirs = cgroup_dirs_below(root)
                .into_iter()
                .chain(cgroup_dirs_of(root));
            for dir in dirs {
                let procs =
                    || std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in procs().split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
                // A killed process leaves its cgroup a moment later; until then rmdir is EBUSY.
                let deadline = Instant::now() + Duration::from_secs(2);
                while !procs().trim().is_empty() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let _ = std::fs::remove_dir(&dir);
            }
        }
    }
}

/// Mount points below `dir` (namespace pins, /dev/shm tmpfs).
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.display().to_string();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(|m| m.to_string())
        .collect()
}

/// PIDs of live crust-monitor processes whose command line mentions `dir`.
pub fn monitors_under(dir: &Path) -> Vec<u32> {
    let needle = dir.display().to_string();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains("crust-monitor") && cmdline.contains(&needle) {
            out.push(pid);
        }
    }
    out
}
