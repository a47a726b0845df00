//! A small OCI distribution client: manifests and blobs fetched from the hosts a hosts.toml
//! directory names (mirrors in order, then the upstream), with basic and bearer-token
//! authentication. It verifies nothing itself; callers check digests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};

use crate::hosts::{Capability, RegistryHost};
use crate::reference::Reference;

/// Credentials as the CRI AuthConfig carries them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// base64 of `user:pass`.
    pub auth: String,
    pub server_address: String,
    /// An OAuth2 refresh token, exchanged at the token endpoint.
    pub identity_token: String,
    /// A bearer token sent to the registry as it is.
    pub registry_token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("server_address", &self.server_address)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Username and password, from the explicit fields or the `auth` string.
    pub fn user_pass(&self) -> Result<Option<(String, String)>, RegistryError> {
        if !self.username.is_empty() {
            return Ok(Some((self.username.clone(), self.password.clone())));
        }
        if self.auth.is_empty() {
            return Ok(None);
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(self.auth.trim())
            .map_err(|_| RegistryError::BadCredentials("auth is not valid base64".into()))?;
        let text = String::from_utf8(decoded)
            .map_err(|_| RegistryError::BadCredentials("auth is not valid UTF-8".into()))?;
        let (u, p) = text.split_once(':').ok_or_else(|| {
            RegistryError::BadCredentials("auth must encode user:password".into())
        })?;
        Ok(Some((u.to_string(), p.to_string())))
    }

    /// containerd sends credentials to a host unless `server_address` names another one.
    fn applies_to(&self, host: &str) -> bool {
        if self.server_address.is_empty() {
            return true;
        }
        let addr = self.server_address.as_str();
        let addr = addr.split_once("://").map(|(_, h)| h).unwrap_or(addr);
        let addr = addr.split('/').next().unwrap_or(addr);
        addr == host
            || (addr == "index.docker.io" || addr == "docker.io") && host == "registry-1.docker.io"
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid credentials: {0}")]
    BadCredentials(String),
    #[error("{host}: unauthorized: {message}")]
    Unauthorized { host: String, message: String },
    #[error("{host}: access denied: {message}")]
    Forbidden { host: String, message: String },
    #[error("{what} not found (tried {tried})")]
    NotFound { what: String, tried: String },
    #[error("fetching {what} failed: {tried}")]
    Unavailable { what: String, tried: String },
    #[error("no host configured for {0} with capability {1}")]
    NoHost(String, &'static str),
}

/// What went wrong at one host; the caller moves on to the next one.
#[derive(Debug)]
enum Attempt {
    NotFound(String),
    Failed(String),
    Fatal(RegistryError),
}

pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

pub struct RegistryClient {
    reference: Reference,
    hosts: Vec<(RegistryHost, reqwest::Client)>,
    creds: Option<Credentials>,
    /// Authorization header per host origin, for this client's lifetime only.
    auth: Mutex<HashMap<String, HeaderValue>>,
    request_timeout: Duration,
}

/// A fetched object: which host served it, and the response to read.
pub struct Fetched {
    pub host: String,
    pub response: Response,
}

impl RegistryClient {
    pub fn new(
        reference: Reference,
        hosts: Vec<(RegistryHost, reqwest::Client)>,
        creds: Option<Credentials>,
        request_timeout: Duration,
    ) -> RegistryClient {
        RegistryClient {
            reference,
            hosts,
            creds,
            auth: Mutex::new(HashMap::new()),
            request_timeout,
        }
    }

    /// GETs a manifest by tag or digest from the first resolve-capable (for tags) or
    /// pull-capable (for digests) host that has it.
    pub async fn fetch_manifest(&self, object: &str) -> Result<Fetched, RegistryError> {
        let by_digest = object.contains(':');
        let cap = if by_digest {
            Capability::Pull
        } else {
            Capability::Resolve
        };
        let path = format!("{}/manifests/{object}", self.reference.path);
        self.fetch(
            cap,
            &path,
            MANIFEST_ACCEPT,
            &format!("manifest {}", self.describe(object)),
        )
        .await
    }

    /// GETs a blob by digest.
    pub async fn fetch_blob(&self, digest: &str) -> Result<Fetched, RegistryError> {
        let path = format!("{}/blobs/{digest}", self.reference.path);
        self.fetch(
            Capability::Pull,
            &path,
            "*/*",
            &format!("blob {}", self.describe(digest)),
        )
        .await
    }

    fn describe(&self, object: &str) -> String {
        format!(
            "{}/{}:{}",
            self.reference.domain, self.reference.path, object
        )
        .replace(":sha256:", "@sha256:")
    }

    async fn fetch(
        &self,
        cap: Capability,
        path: &str,
        accept: &str,
        what: &str,
    ) -> Result<Fetched, RegistryError> {
        let candidates: Vec<_> = self.hosts.iter().filter(|(h, _)| h.can(cap)).collect();
        if candidates.is_empty() {
            let name = match cap {
                Capability::Pull => "pull",
                Capability::Resolve => "resolve",
                Capability::Push => "push",
            };
            return Err(RegistryError::NoHost(self.reference.domain.clone(), name));
        }
        let mut tried = Vec::new();
        let mut all_not_found = true;
        for (host, client) in candidates {
            let url = format!("{}{}/{}", host.origin, host.path, path);
            match self.attempt(host, client, &url, accept).await {
                Ok(response) => {
                    return Ok(Fetched {
                        host: host.host().to_string(),
                        response,
                    })
                }
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::NotFound(reason)) => tried.push(format!("{} ({reason})", host.host())),
                Err(Attempt::Failed(reason)) => {
                    all_not_found = false;
                    tried.push(format!("{} ({reason})", host.host()));
                }
            }
            tracing::debug!(what, host = host.host(), "host failed, trying the next");
        }
        let tried = tried.join("; ");
        if all_not_found {
            Err(RegistryError::NotFound {
                what: what.into(),
                tried,
            })
        } else {
            Err(RegistryError::Unavailable {
                what: what.into(),
                tried,
            })
        }
    }

    async fn attempt(
        &self,
        host: &RegistryHost,
        client: &reqwest::Client,
        url: &str,
        accept: &str,
    ) -> Result<Response, Attempt> {
        let creds = self.creds.as_ref().filter(|c| c.applies_to(host.host()));
        let mut authorized = false;
        if let Some(c) = creds.filter(|c| !c.registry_token.is_empty()) {
            let v = bearer(&c.registry_token).map_err(Attempt::Fatal)?;
            self.auth.lock().unwrap().insert(host.origin.clone(), v);
        }
        for round in 0..2 {
            let mut headers = HeaderMap::new();
            headers.insert(
                ACCEPT,
                HeaderValue::from_str(accept).expect("static accept"),
            );
            for (k, v) in &host.headers {
                if let (Ok(k), Ok(v)) = (
                    reqwest::header::HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(v),
                ) {
                    headers.insert(k, v);
                }
            }
            if let Some(v) = self.auth.lock().unwrap().get(&host.origin) {
                headers.insert(AUTHORIZATION, v.clone());
                authorized = true;
            }
            // Only the wait for the response head is bounded here: bodies may take as long as
            // they keep making progress, which the puller watches.
            let sent = tokio::time::timeout(
                self.request_timeout,
                client.get(url).headers(headers).send(),
            );
            let response = match sent.await {
                Ok(r) => r.map_err(|e| Attempt::Failed(error_chain(&e)))?,
                Err(_) => {
                    let waited = humantime::format_duration(self.request_timeout);
                    return Err(Attempt::Failed(format!("no response within {waited}")));
                }
            };
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let message = registry_message(response).await;
            match status {
                StatusCode::UNAUTHORIZED if round == 0 && challenge.is_some() => {
                    let challenge = challenge.unwrap_or_default();
                    let value = self
                        .authorize(host, client, &challenge, creds, authorized)
                        .await
                        .map_err(Attempt::Fatal)?;
                    self.auth.lock().unwrap().insert(host.origin.clone(), value);
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(Attempt::Fatal(RegistryError::Unauthorized {
                        host: host.host().into(),
                        message,
                    }))
                }
                StatusCode::FORBIDDEN => {
                    return Err(Attempt::Fatal(RegistryError::Forbidden {
                        host: host.host().into(),
                        message,
                    }))
                }
                StatusCode::NOT_FOUND => return Err(Attempt::NotFound(format!("404 {message}"))),
                s => return Err(Attempt::Failed(format!("{} {message}", s.as_u16()))),
            }
        }
        Err(Attempt::Failed("authorization was not accepted".into()))
    }

    /// Answers a WWW-Authenticate challenge with an Authorization header value.
    async fn authorize(
        &self,
        host: &RegistryHost,
        client: &reqwest::Client,
        challenge: &str,
        creds: Option<&Credentials>,
        already_sent: bool,
    ) -> Result<HeaderValue, RegistryError> {
        let unauthorized = |message: &str| RegistryError::Unauthorized {
            host: host.host().into(),
            message: message.into(),
        };
        if already_sent {
            return Err(unauthorized("credentials were rejected"));
        }
        let (scheme, params) = parse_challenge(challenge);
        let user_pass = match creds {
            Some(c) => c.user_pass()?,
            None => None,
        };
        if scheme.eq_ignore_ascii_case("basic") {
            let (u, p) = user_pass.ok_or_else(|| unauthorized("authentication required"))?;
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            return HeaderValue::from_str(&format!("Basic {token}")).map_err(|_| {
                RegistryError::BadCredentials("credentials contain invalid characters".into())
            });
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(unauthorized(&format!(
                "unsupported authentication scheme {scheme:?}"
            )));
        }
        let realm = params
            .get("realm")
            .ok_or_else(|| unauthorized("bearer challenge without realm"))?;
        let scope = params
            .get("scope")
            .cloned()
            .unwrap_or_else(|| format!("repository:{}:pull", self.reference.path));
        let service = params.get("service").cloned().unwrap_or_default();
        let identity = creds.map(|c| c.identity_token.as_str()).unwrap_or("");
        let request = if !identity.is_empty() {
            client.post(realm).form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", identity),
                ("service", &service),
                ("scope", &scope),
                ("client_id", "crust"),
            ])
        } else {
            let mut r = client
                .get(realm)
                .query(&[("service", &service), ("scope", &scope)]);
            if let Some((u, p)) = &user_pass {
                r = r.basic_auth(u, Some(p));
            }
            r
        };
        let response = request
            .timeout(self.request_timeout)
            .send()
            .await
            .map_err(|e| unauthorized(&format!("token request to {realm}: {}", error_chain(&e))))?;
        let status = response.status();
        if !status.is_success() {
            let message = registry_message(response).await;
            return Err(match status {
                StatusCode::FORBIDDEN => RegistryError::Forbidden {
                    host: host.host().into(),
                    message,
                },
                _ => unauthorized(&format!(
                    "token request to {realm}: {} {message}",
                    status.as_u16()
                )),
            });
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: String,
            #[serde(default)]
            access_token: String,
        }
        let body: TokenResponse = response
            .json()
            .await
            .map_err(|e| unauthorized(&format!("token response from {realm}: {e}")))?;
        let token = if body.token.is_empty() {
            body.access_token
        } else {
            body.token
        };
        if token.is_empty() {
            return Err(unauthorized("token endpoint returned no token"));
        }
        bearer(&token)
    }
}

fn bearer(token: &str) -> Result<HeaderValue, RegistryError> {
    HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| RegistryError::BadCredentials("token contains invalid characters".into()))
}

/// `Bearer realm="https://x/token",service="reg",scope="repository:a:pull"` → ("Bearer", map).
pub fn parse_challenge(header: &str) -> (String, HashMap<String, String>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.insert(key, value);
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_string(), params)
}

/// The registry's error text: the first `errors[].message` of its JSON body, or the body.
async fn registry_message(response: Response) -> String {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_str::<Errors>(&body) {
        if let Some(first) = e.errors.first() {
            return format!("{}: {}", first.code, first.message);
        }
    }
    let body = body.trim();
    if body.is_empty() {
        status.canonical_reason().unwrap_or("").to_string()
    } else {
        body.chars().take(300).collect()
    }
}

/// reqwest's error with its sources, which carry the useful part ("connection refused").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_parsing() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/busybox:pull");
        let (s, p) = parse_challenge(r#"Basic realm="crust""#);
        assert_eq!(s, "Basic");
        assert_eq!(p["realm"], "crust");
        let (_, p) = parse_challenge(r#"Bearer realm=x, error="insufficient_scope""#);
        assert_eq!(p["realm"], "x");
        assert_eq!(p["error"], "insufficient_scope");
    }

    #[test]
    fn credentials() {
        let c = Credentials {
            auth: base64::engine::general_purpose::STANDARD.encode("u:p:x"),
            ..Default::default()
        };
        assert_eq!(c.user_pass().unwrap(), Some(("u".into(), "p:x".into())));
        let c = Credentials {
            auth: "!!".into(),
            ..Default::default()
        };
        assert!(c.user_pass().is_err());
        let c = Credentials {
            server_address: "https://127.0.0.1:5000".into(),
            ..Default::default()
        };
        assert!(c.applies_to("127.0.0.1:5000"));
        assert!(!c.applies_to("mirror:5000"));
        assert!(!format!("{c:?}").contains("password"));
    }
}
