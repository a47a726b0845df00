//! A real `docker-registry` (distribution 2.8) process on 127.0.0.1 with tempdir storage.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use ring::rand::{SecureRandom, SystemRandom};

use crate::token::{TokenServer, ISSUER, SERVICE};

/// How the registry authenticates clients.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Auth {
    /// Anonymous pull and push.
    #[default]
    None,
    /// HTTP basic auth checked against an htpasswd (bcrypt) file.
    Htpasswd { user: String, pass: String },
    /// Bearer tokens from a token server started alongside the registry; the token server
    /// checks `user`/`pass`.
    Token { user: String, pass: String },
}

impl Auth {
    fn credentials(&self) -> Option<(&str, &str)> {
        match self {
            Auth::None => None,
            Auth::Htpasswd { user, pass } | Auth::Token { user, pass } => Some((user, pass)),
        }
    }
}

/// Options for [`Registry::start_with`].
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Listen on this port of 127.0.0.1 instead of a free one.
    pub port: Option<u16>,
    pub auth: Auth,
}

/// A running `docker-registry`. Dropping it kills the process and removes its storage.
pub struct Registry {
    child: Child,
    port: u16,
    auth: Auth,
    token_server: Option<TokenServer>,
    dir: tempfile::TempDir,
}

const BINARIES: &[&str] = &["/usr/bin/docker-registry", "/usr/bin/registry"];
/// Attempts at finding a free port when none was asked for.
const PORT_ATTEMPTS: usize = 8;
const READY_TIMEOUT: Duration = Duration::from_secs(15);
const LOG_FILE: &str = "registry.log";

impl Registry {
    /// No auth, plain HTTP, a free port on 127.0.0.1.
    pub async fn start() -> Result<Registry> {
        Registry::start_with(RegistryOptions::default()).await
    }

    /// Basic auth through an htpasswd file holding `user`/`pass`.
    pub async fn start_htpasswd(user: &str, pass: &str) -> Result<Registry> {
        Registry::start_with(RegistryOptions {
            port: None,
            auth: Auth::Htpasswd {
                user: user.into(),
                pass: pass.into(),
            },
        })
        .await
    }

    /// Bearer-token auth: a token server in this process checks `user`/`pass` and issues
    /// JWTs the registry verifies.
    pub async fn start_token_auth(user: &str, pass: &str) -> Result<Registry> {
        Registry::start_with(RegistryOptions {
            port: None,
            auth: Auth::Token {
                user: user.into(),
                pass: pass.into(),
            },
        })
        .await
    }

    pub async fn start_with(opts: RegistryOptions) -> Result<Registry> {
        let binary = BINARIES
            .iter()
            .find(|b| Path::new(b).exists())
            .ok_or_else(|| {
                anyhow!("docker-registry not found (install the Debian package docker-registry)")
            })?;
        let dir = tempfile::Builder::new()
            .prefix("crust-registry-")
            .tempdir()
            .context("registry tempdir")?;
        let root = dir.path().to_path_buf();

        let mut token_server = None;
        let auth_yaml = match &opts.auth {
            Auth::None => String::new(),
            Auth::Htpasswd { user, pass } => {
                let file = root.join("htpasswd");
                let hash = bcrypt::hash_with_result(pass, 5)
                    .context("bcrypt")?
                    .format_for_version(bcrypt::Version::TwoY);
                std::fs::write(&file, format!("{user}:{hash}\n"))
                    .with_context(|| format!("write {}", file.display()))?;
                format!(
                    "auth:\n  htpasswd:\n    realm: crust\n    path: {}\n",
                    yaml_str(&file)
                )
            }
            Auth::Token { user, pass } => {
                let bundle = root.join("token-ca.pem");
                let server = TokenServer::start(&bundle, user, pass)?;
                let yaml = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                    yaml_str(Path::new(&server.realm())),
                    yaml_str(&bundle)
                );
                token_server = Some(server);
                yaml
            }
        };

        let mut last_err = None;
        let attempts = if opts.port.is_some() {
            1
        } else {
            PORT_ATTEMPTS
        };
        for _ in 0..attempts {
            let port = match opts.port {
                Some(p) => p,
                None => free_port()?,
            };
            let instance = random_hex(16)?;
            let config = root.join("config.yml");
            std::fs::write(&config, config_yaml(&root, port, &instance, &auth_yaml)?)
                .with_context(|| format!("write {}", config.display()))?;
            let log = File::options()
                .create(true)
                .append(true)
                .open(root.join(LOG_FILE))
                .context("registry log file")?;
            let cmd = RegistryCommand {
                binary,
                config: config.clone(),
                log,
            };
            let child = spawn_tied(cmd).with_context(|| format!("spawn {binary}"))?;
            let mut child = child;
            let log_path = root.join(LOG_FILE);
            match wait_ready(&mut child, port, &instance, &log_path).await {
                Ok(()) => {
                    return Ok(Registry {
                        child,
                        port,
                        auth: opts.auth.clone(),
                        token_server,
                        dir,
                    })
                }
                Err(e) => {
                    kill(&mut child);
                    let conflict = read_log(&log_path).contains("address already in use");
                    if !conflict {
                        return Err(e);
                    }
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("registry did not start")))
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The registry's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The user and password this registry accepts, if it needs any.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.auth.credentials()
    }

    /// The token server's realm (`http://127.0.0.1:P/token`) for a token-auth registry.
    pub fn token_realm(&self) -> Option<String> {
        self.token_server.as_ref().map(|t| t.realm())
    }

    /// How many tokens the token server has issued so far (0 without token auth).
    pub fn tokens_issued(&self) -> usize {
        self.token_server.as_ref().map_or(0, |t| t.issued())
    }

    /// The filesystem storage root (`rootdirectory`); blobs live under
    /// `docker/registry/v2/blobs/sha256/xx/HEX/data`.
    pub fn storage_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The registry's stdout/stderr.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(LOG_FILE)
    }

    pub fn logs(&self) -> String {
        read_log(&self.log_path())
    }

    /// Path of a blob's data file in the storage.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| anyhow!("not a sha256 digest: {digest}"))?;
        Ok(self
            .dir
            .path()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data"))
    }

    /// Overwrites the stored blob with bytes of the same length that no longer match `digest`
    /// (every byte inverted), so the registry serves corrupt content.
    pub fn corrupt_blob(&self, digest: &str) -> Result<()> {
        let path = self.blob_path(digest)?;
        let mut data =
            std::fs::read(&path).with_context(|| format!("read blob {}", path.display()))?;
        if data.is_empty() {
            bail!("blob {digest} is empty: nothing to corrupt");
        }
        for b in &mut data {
            *b = !*b;
        }
        std::fs::write(&path, data).with_context(|| format!("write blob {}", path.display()))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

const SETPRIV: &str = "/usr/bin/setpriv";

/// What to run: `binary serve config`, output to `log`.
struct RegistryCommand {
    binary: &'static str,
    config: PathBuf,
    log: File,
}

impl RegistryCommand {
    fn spawn(self, pdeathsig: bool) -> std::io::Result<Child> {
        let mut cmd = if pdeathsig {
            let mut c = Command::new(SETPRIV);
            c.args(["--pdeathsig", "KILL", "--", self.binary]);
            c
        } else {
            Command::new(self.binary)
        };
        cmd.arg("serve")
            .arg(&self.config)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(self.log.try_clone()?)
            .stderr(self.log)
            .spawn()
    }
}

type SpawnRequest = (RegistryCommand, mpsc::Sender<std::io::Result<Child>>);

/// Spawns the registry so that it is killed when this process ends, even by SIGKILL or with
/// the [`Registry`] leaked in a `static`: through `setpriv --pdeathsig KILL` (which execs, so
/// the PID stays the registry's), from one thread that lives as long as the process (the
/// parent-death signal fires when the spawning *thread* exits, and tokio's threads come and
/// go). Without setpriv, spawns directly.
fn spawn_tied(cmd: RegistryCommand) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    if !Path::new(SETPRIV).exists() {
        return cmd.spawn(false);
    }
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        let _ = std::thread::Builder::new()
            .name("crust-registry-spawner".into())
            .spawn(move || {
                for (cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn(true));
                }
            });
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    let sent = spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, tx));
    match sent {
        Ok(()) => rx
            .recv()
            .unwrap_or_else(|_| Err(std::io::Error::other("registry spawner thread is gone"))),
        // the spawner thread could not be started
        Err(mpsc::SendError((cmd, _))) => cmd.spawn(false),
    }
}

fn kill(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

async fn wait_ready(child: &mut Child, port: u16, instance: &str, log: &Path) -> Result<()> {
    let http = crate::client::http_client()?;
    let url = format!("http://127.0.0.1:{port}/v2/");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "docker-registry exited ({status}) before answering on 127.0.0.1:{port}: {}",
                read_log(log).trim()
            );
        }
        let resp = http.get(&url).timeout(Duration::from_secs(1)).send().await;
        if let Ok(resp) = resp {
            // another registry may have won the race for this port: only ours carries the id
            let ours = resp
                .headers()
                .get("x-crust-instance")
                .is_some_and(|v| v.as_bytes() == instance.as_bytes());
            let status = resp.status().as_u16();
            if ours && (status == 200 || status == 401) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "docker-registry did not answer GET /v2/ on 127.0.0.1:{port} within {READY_TIMEOUT:?}: {}",
                read_log(log).trim()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A port of 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(l.local_addr()?.port())
}

fn random_hex(n: usize) -> Result<String> {
    let mut b = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| anyhow!("random bytes"))?;
    Ok(hex::encode(b))
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn yaml_str(p: &Path) -> String {
    serde_json::to_string(&p.to_string_lossy()).expect("string serializes")
}

fn config_yaml(root: &Path, port: u16, instance: &str, auth: &str) -> Result<String> {
    Ok(format!(
        "version: 0.1
log:
  level: warn
  formatter: text
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: {secret}
  headers:
    X-Content-Type-Options: [nosniff]
    X-Crust-Instance: [{instance}]
health:
  storagedriver:
    enabled: false
{auth}",
        root = yaml_str(root),
        secret = random_hex(16)?,
    ))
}
