//! A bearer-token server for docker-registry's `auth: token` mode.
//!
//! It runs on its own OS threads (not on the caller's tokio runtime) so that a test that blocks
//! its runtime while crustd pulls still gets tokens. It checks basic credentials (GET, as oci-client
//! and docker do) or form credentials (POST, the OAuth2 password grant containerd tries first)
//! and issues ES256 JWTs carrying an `x5c` chain (signing cert, then a CA cert). The CA cert is the
//! registry's `rootcertbundle`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;

pub(crate) const SERVICE: &str = "crust-registry";
pub(crate) const ISSUER: &str = "crust-test";
/// Lifetime of issued tokens.
const TOKEN_TTL_SECS: u64 = 3600;

struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    x5c: Vec<String>,
    user: String,
    pass: String,
    issued: AtomicUsize,
}

pub(crate) struct TokenServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    signer: Arc<Signer>,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    /// Creates the signing chain, writes the CA bundle to `bundle`, and starts serving on a free
    /// port of 127.0.0.1.
    pub(crate) fn start(bundle: &Path, user: &str, pass: &str) -> Result<TokenServer> {
        let ca_key = KeyPair::generate().context("generate token CA key")?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "crust test token CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).context("token CA cert")?;

        let leaf_key = KeyPair::generate().context("generate token signing key")?;
        let mut leaf_params = CertificateParams::new(Vec::<String>::new())?;
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "crust test token signer");
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let leaf = leaf_params
            .signed_by(&leaf_key, &*ca)
            .context("token signing cert")?;
        std::fs::write(bundle, ca.pem()).with_context(|| format!("write {}", bundle.display()))?;

        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &leaf_key.serialize_der(),
            &rng,
        )
        .map_err(|e| anyhow!("load token signing key: {e}"))?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let signer = Arc::new(Signer {
            key,
            rng,
            x5c: vec![b64.encode(leaf.der()), b64.encode(ca.der())],
            user: user.to_string(),
            pass: pass.to_string(),
            issued: AtomicUsize::new(0),
        });

        let listener = TcpListener::bind("127.0.0.1:0").context("bind token server")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            let signer = signer.clone();
            std::thread::Builder::new()
                .name("crust-token-server".into())
                .spawn(move || accept_loop(listener, stop, signer))
                .context("spawn token server")?
        };
        Ok(TokenServer {
            addr,
            stop,
            signer,
            thread: Some(thread),
        })
    }

    pub(crate) fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    pub(crate) fn issued(&self) -> usize {
        self.signer.issued.load(Ordering::Relaxed)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // wake the accept loop
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, stop: Arc<AtomicBool>, signer: Arc<Signer>) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(conn) = conn else { continue };
        let signer = signer.clone();
        let _ = std::thread::Builder::new()
            .name("crust-token-conn".into())
            .spawn(move || {
                let _ = handle(conn, &signer);
            });
    }
}

struct Request {
    method: String,
    path: String,
    query: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

fn read_request(conn: &TcpStream) -> Result<Request> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len.min(1 << 16)];
    reader.read_exact(&mut body)?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    Ok(Request {
        method,
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body,
    })
}

fn respond(mut conn: &TcpStream, status: &str, extra: &str, body: &str) -> Result<()> {
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    );
    conn.write_all(resp.as_bytes())?;
    conn.flush()?;
    Ok(())
}

fn error_body(code: &str, message: &str) -> String {
    json!({ "errors": [{ "code": code, "message": message }] }).to_string()
}

fn handle(conn: TcpStream, signer: &Signer) -> Result<()> {
    let req = read_request(&conn)?;
    if req.path != "/token" {
        return respond(
            &conn,
            "404 Not Found",
            "",
            &error_body("NOT_FOUND", "no such path"),
        );
    }
    let (creds, scopes) = match req.method.as_str() {
        "GET" => {
            let q = parse_form(&req.query);
            let creds = req
                .headers
                .get("authorization")
                .and_then(|a| parse_basic(a));
            let scopes: Vec<String> = q
                .iter()
                .filter(|(k, _)| k == "scope")
                .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
                .collect();
            (creds, scopes)
        }
        "POST" => {
            let form = parse_form(&String::from_utf8_lossy(&req.body));
            let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            if get("grant_type").as_deref() != Some("password") {
                return respond(
                    &conn,
                    "400 Bad Request",
                    "",
                    &error_body("UNSUPPORTED", "only the password grant is supported"),
                );
            }
            let creds = match (get("username"), get("password")) {
                (Some(u), Some(p)) => Some((u, p)),
                _ => req
                    .headers
                    .get("authorization")
                    .and_then(|a| parse_basic(a)),
            };
            let scopes = get("scope")
                .map(|s| s.split(' ').map(str::to_string).collect())
                .unwrap_or_default();
            (creds, scopes)
        }
        _ => {
            return respond(
                &conn,
                "405 Method Not Allowed",
                "",
                &error_body("UNSUPPORTED", "method not allowed"),
            )
        }
    };
    let authorized = matches!(&creds, Some((u, p)) if *u == signer.user && *p == signer.pass);
    if !authorized {
        return respond(
            &conn,
            "401 Unauthorized",
            "WWW-Authenticate: Basic realm=\"crust-token\"\r\n",
            &error_body("UNAUTHORIZED", "authentication required"),
        );
    }
    let subject = creds.map(|(u, _)| u).unwrap_or_default();
    let token = signer.issue(&subject, &scopes)?;
    let body = json!({
        "token": token,
        "access_token": token,
        "expires_in": TOKEN_TTL_SECS,
    })
    .to_string();
    respond(&conn, "200 OK", "", &body)
}

impl Signer {
    fn issue(&self, subject: &str, scopes: &[String]) -> Result<String> {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let mut jti = [0u8; 16];
        self.rng
            .fill(&mut jti)
            .map_err(|_| anyhow!("random token id"))?;
        let access: Vec<serde_json::Value> = scopes
            .iter()
            .filter_map(|s| parse_scope(s))
            .map(|(typ, name, actions)| json!({ "type": typ, "name": name, "actions": actions }))
            .collect();
        let header = json!({ "typ": "JWT", "alg": "ES256", "x5c": self.x5c });
        let claims = json!({
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + TOKEN_TTL_SECS,
            "nbf": now.saturating_sub(10),
            "iat": now,
            "jti": hex::encode(jti),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            b64.encode(header.to_string()),
            b64.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| anyhow!("sign token"))?;
        self.issued.fetch_add(1, Ordering::Relaxed);
        Ok(format!("{signing_input}.{}", b64.encode(sig.as_ref())))
    }
}

/// `repository:crust/busybox:pull,push` → (type, name, actions), granting what was asked.
fn parse_scope(scope: &str) -> Option<(String, String, Vec<String>)> {
    let (typ, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let actions = actions
        .split(',')
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect();
    Some((typ.to_string(), name.to_string(), actions))
}

fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, value) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (u, p) = decoded.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// application/x-www-form-urlencoded (also query strings) into ordered pairs.
fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_and_scope() {
        let f = parse_form(
            "service=crust-registry&scope=repository%3Acrust%2Fbusybox%3Apull%2Cpush&x=a+b%",
        );
        assert_eq!(f[0], ("service".into(), "crust-registry".into()));
        assert_eq!(f[1].1, "repository:crust/busybox:pull,push");
        assert_eq!(f[2].1, "a b%");
        let (t, n, a) = parse_scope(&f[1].1).unwrap();
        assert_eq!((t.as_str(), n.as_str()), ("repository", "crust/busybox"));
        assert_eq!(a, vec!["pull", "push"]);
        assert_eq!(
            parse_basic("Basic dTpwOnE="),
            Some(("u".to_string(), "p:q".to_string()))
        );
    }
}
