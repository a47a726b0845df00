//! A small OCI distribution client over plain HTTP: blob upload, manifest push and fetch, with
//! basic and bearer-token authentication.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};

use crate::image::BuiltImage;
use crate::layer::{sha256_digest, Blob};
use crate::media_types;

/// A manifest (or index) as the registry served it.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    /// The response's Content-Type.
    pub media_type: String,
    /// The response's Docker-Content-Digest header (empty when the registry sent none).
    pub digest: String,
    /// sha256 of the body.
    pub computed_digest: String,
    pub body: Vec<u8>,
}

impl FetchedManifest {
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("manifest is not json")
    }
}

/// Client for one registry host, caching one Authorization value per repository.
pub(crate) struct Client {
    http: reqwest::Client,
    base: Url,
    creds: Option<(String, String)>,
    auth: Mutex<HashMap<String, String>>,
}

/// An HTTP client that never uses a proxy (only 127.0.0.1 is reachable anyway).
pub(crate) fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(600))
        .build()
        .context("build http client")
}

impl Client {
    pub(crate) fn new(host: &str, creds: Option<(&str, &str)>) -> Result<Client> {
        let base = Url::parse(&format!("http://{host}/"))
            .with_context(|| format!("registry host {host:?}"))?;
        Ok(Client {
            http: http_client()?,
            base,
            creds: creds.map(|(u, p)| (u.to_string(), p.to_string())),
            auth: Mutex::new(HashMap::new()),
        })
    }

    fn url(&self, path: &str) -> Result<Url> {
        self.base.join(path).context("registry url")
    }

    fn cached_auth(&self, repo: &str) -> Option<String> {
        self.auth.lock().expect("auth cache").get(repo).cloned()
    }

    /// Sends a request made by `make`, answering one 401 challenge (basic or bearer).
    async fn send(&self, repo: &str, make: impl Fn() -> RequestBuilder) -> Result<Response> {
        let mut answered = false;
        loop {
            let mut req = make();
            if let Some(auth) = self.cached_auth(repo) {
                req = req.header(AUTHORIZATION, auth);
            }
            let resp = req.send().await.context("registry request")?;
            if resp.status() != StatusCode::UNAUTHORIZED || answered {
                return Ok(resp);
            }
            let challenge = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| anyhow!("registry answered 401 without WWW-Authenticate"))?
                .to_string();
            let auth = self.answer_challenge(repo, &challenge).await?;
            self.auth
                .lock()
                .expect("auth cache")
                .insert(repo.to_string(), auth);
            answered = true;
        }
    }

    async fn answer_challenge(&self, repo: &str, challenge: &str) -> Result<String> {
        let (scheme, params) = parse_challenge(challenge);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => {
                let (user, pass) = self.creds.as_ref().ok_or_else(|| {
                    anyhow!("registry wants basic credentials and none were given")
                })?;
                Ok(basic_auth(user, pass))
            }
            "bearer" => {
                let realm = params
                    .get("realm")
                    .ok_or_else(|| anyhow!("bearer challenge without realm: {challenge}"))?;
                let mut url = Url::parse(realm).with_context(|| format!("token realm {realm}"))?;
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(service) = params.get("service") {
                        q.append_pair("service", service);
                    }
                    q.append_pair("scope", &format!("repository:{repo}:pull,push"));
                }
                let mut req = self.http.get(url);
                if let Some((user, pass)) = &self.creds {
                    req = req.basic_auth(user, Some(pass));
                }
                let resp = req.send().await.context("token request")?;
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                if !status.is_success() {
                    bail!("token server answered {status}: {body}");
                }
                let v: serde_json::Value =
                    serde_json::from_str(&body).context("token response is not json")?;
                let token = v
                    .get("token")
                    .or_else(|| v.get("access_token"))
                    .and_then(|t| t.as_str())
                    .ok_or_else(|| anyhow!("token response without token: {body}"))?;
                Ok(format!("Bearer {token}"))
            }
            other => bail!("unsupported auth scheme {other:?} in {challenge:?}"),
        }
    }

    pub(crate) async fn blob_exists(&self, repo: &str, digest: &str) -> Result<bool> {
        let url = self.url(&format!("v2/{repo}/blobs/{digest}"))?;
        let resp = self
            .send(repo, || self.http.request(Method::HEAD, url.clone()))
            .await?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => bail!("HEAD blob {digest} in {repo}: {s}"),
        }
    }

    pub(crate) async fn push_blob(&self, repo: &str, blob: &Blob) -> Result<()> {
        if self.blob_exists(repo, &blob.digest).await? {
            return Ok(());
        }
        let url = self.url(&format!("v2/{repo}/blobs/uploads/"))?;
        let resp = self
            .send(repo, || {
                self.http
                    .post(url.clone())
                    .header(reqwest::header::CONTENT_LENGTH, 0)
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            bail!("start upload in {repo}: {}", error_text(resp).await);
        }
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow!("upload in {repo} without Location"))?;
        let mut put = self
            .base
            .join(location)
            .with_context(|| format!("upload location {location}"))?;
        put.query_pairs_mut().append_pair("digest", &blob.digest);
        let resp = self
            .send(repo, || {
                self.http
                    .put(put.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(blob.data.clone())
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            bail!(
                "upload blob {} to {repo}: {}",
                blob.digest,
                error_text(resp).await
            );
        }
        Ok(())
    }

    /// Puts a manifest or index under `reference` (a tag or its digest).
    pub(crate) async fn push_manifest(&self, repo: &str, reference: &str, m: &Blob) -> Result<()> {
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"))?;
        let resp = self
            .send(repo, || {
                self.http
                    .put(url.clone())
                    .header(CONTENT_TYPE, &m.media_type)
                    .body(m.data.clone())
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            bail!(
                "put manifest {repo}:{reference}: {}",
                error_text(resp).await
            );
        }
        if let Some(d) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            if d != m.digest {
                bail!(
                    "registry stored manifest {repo}:{reference} as {d}, expected {}",
                    m.digest
                );
            }
        }
        Ok(())
    }

    /// Pushes the blobs of an image, then its manifest under `reference`.
    pub(crate) async fn push_image(
        &self,
        repo: &str,
        reference: &str,
        img: &BuiltImage,
    ) -> Result<()> {
        for layer in &img.layers {
            self.push_blob(repo, &layer.blob).await?;
        }
        self.push_blob(repo, &img.config).await?;
        self.push_manifest(repo, reference, &img.manifest).await
    }

    pub(crate) async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<FetchedManifest> {
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"))?;
        let accept = [
            media_types::OCI_INDEX,
            media_types::OCI_MANIFEST,
            media_types::DOCKER_MANIFEST_LIST,
            media_types::DOCKER_MANIFEST,
        ]
        .join(", ");
        let resp = self
            .send(repo, || self.http.get(url.clone()).header(ACCEPT, &accept))
            .await?;
        if resp.status() != StatusCode::OK {
            bail!(
                "get manifest {repo}:{reference}: {}",
                error_text(resp).await
            );
        }
        let headers = resp.headers().clone();
        let body = resp.bytes().await.context("read manifest")?.to_vec();
        Ok(FetchedManifest {
            media_type: header_str(&headers, CONTENT_TYPE.as_str()),
            digest: header_str(&headers, "docker-content-digest"),
            computed_digest: sha256_digest(&body),
            body,
        })
    }

    pub(crate) async fn get_blob(&self, repo: &str, digest: &str) -> Result<Vec<u8>> {
        let url = self.url(&format!("v2/{repo}/blobs/{digest}"))?;
        let resp = self.send(repo, || self.http.get(url.clone())).await?;
        if resp.status() != StatusCode::OK {
            bail!("get blob {repo}@{digest}: {}", error_text(resp).await);
        }
        Ok(resp.bytes().await.context("read blob")?.to_vec())
    }
}

fn header_str(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn error_text(resp: Response) -> String {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    format!("{status}: {}", body.trim())
}

pub(crate) fn basic_auth(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// Splits `Bearer realm="x",service="y"` into the scheme and its parameters.
pub(crate) fn parse_challenge(challenge: &str) -> (String, HashMap<String, String>) {
    let challenge = challenge.trim();
    let (scheme, rest) = challenge.split_once(' ').unwrap_or((challenge, ""));
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    (scheme.to_string(), params)
}

/// Splits `name[:tag]` into repository and tag (default `latest`).
pub(crate) fn split_name(name: &str) -> (&str, &str) {
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rfind(':') {
        Some(i) => {
            let at = name.len() - last.len() + i;
            (&name[..at], &name[at + 1..])
        }
        None => (name, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_parsing() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="http://127.0.0.1:5/token",service="crust-registry",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(p["realm"], "http://127.0.0.1:5/token");
        assert_eq!(p["service"], "crust-registry");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        let (s, p) = parse_challenge(r#"Basic realm="crust""#);
        assert_eq!(s, "Basic");
        assert_eq!(p["realm"], "crust");
    }

    #[test]
    fn names() {
        assert_eq!(split_name("crust/big"), ("crust/big", "latest"));
        assert_eq!(split_name("crust/big:v1"), ("crust/big", "v1"));
        assert_eq!(split_name("a:1/big"), ("a:1/big", "latest"));
    }
}
