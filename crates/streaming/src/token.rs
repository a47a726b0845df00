//! One-time tokens for the streaming URLs (kubelet's request_cache.go): random, single use,
//! short-lived, bounded in number. Tokens are secrets: never logged, never in an error.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use k8s_cri::v1::{AttachRequest, ExecRequest, PortForwardRequest};
use rand::rngs::OsRng;
use rand::RngCore;

/// 128 random bits.
const TOKEN_BYTES: usize = 16;

/// Why no URL could be handed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// `max_tokens` requests are outstanding (kubelet answers ResourceExhausted).
    #[error("maximum number of in-flight streaming requests exceeded")]
    Full,
    /// The request itself is not acceptable (kubelet answers InvalidArgument).
    #[error("{0}")]
    Invalid(String),
}

/// A request waiting for its client to connect.
#[derive(Debug, Clone)]
pub(crate) enum Cached {
    Exec(ExecRequest),
    Attach(AttachRequest),
    PortForward(PortForwardRequest),
}

impl Cached {
    /// The URL path prefix requests of this kind are served under.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Cached::Exec(_) => "exec",
            Cached::Attach(_) => "attach",
            Cached::PortForward(_) => "portforward",
        }
    }
}

struct Entry {
    expires: Instant,
    req: Cached,
}

pub(crate) struct RequestCache {
    ttl: Duration,
    max: usize,
    entries: Mutex<HashMap<String, Entry>>,
}

impl RequestCache {
    pub(crate) fn new(ttl: Duration, max: usize) -> Self {
        RequestCache {
            ttl,
            max,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Stores `req` and returns its new token.
    pub(crate) fn insert(&self, req: Cached) -> Result<String, TokenError> {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.max {
            entries.retain(|_, e| e.expires > now);
        }
        if entries.len() >= self.max {
            return Err(TokenError::Full);
        }
        let token = loop {
            let token = new_token();
            if !entries.contains_key(&token) {
                break token;
            }
        };
        entries.insert(
            token.clone(),
            Entry {
                expires: now + self.ttl,
                req,
            },
        );
        Ok(token)
    }

    /// Takes the request of `token` if it is there, unexpired and of `kind`. A token is gone
    /// after its first use, whatever the outcome.
    pub(crate) fn consume(&self, kind: &str, token: &str) -> Option<Cached> {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.remove(token)?;
        (entry.expires > now && entry.req.kind() == kind).then_some(entry.req)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

fn new_token() -> String {
    let mut raw = [0u8; TOKEN_BYTES];
    OsRng.fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec() -> Cached {
        Cached::Exec(ExecRequest {
            container_id: "c".into(),
            ..Default::default()
        })
    }

    #[test]
    fn tokens_are_url_safe_and_distinct() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 22);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn one_use_and_kind_checked() {
        let cache = RequestCache::new(Duration::from_secs(60), 10);
        let t = cache.insert(exec()).unwrap();
        assert!(cache.consume("exec", &t).is_some());
        assert!(cache.consume("exec", &t).is_none());
        let t = cache.insert(exec()).unwrap();
        assert!(cache.consume("attach", &t).is_none());
        assert!(
            cache.consume("exec", &t).is_none(),
            "a token of the wrong kind is spent too"
        );
    }

    #[test]
    fn bounded_and_expired_entries_make_room() {
        let cache = RequestCache::new(Duration::from_millis(20), 2);
        cache.insert(exec()).unwrap();
        cache.insert(exec()).unwrap();
        assert_eq!(cache.insert(exec()), Err(TokenError::Full));
        std::thread::sleep(Duration::from_millis(30));
        let t = cache.insert(exec()).unwrap();
        assert_eq!(cache.len(), 1);
        assert!(cache.consume("exec", &t).is_some());
    }

    #[test]
    fn expired_token_is_refused() {
        let cache = RequestCache::new(Duration::from_millis(10), 2);
        let t = cache.insert(exec()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(cache.consume("exec", &t).is_none());
    }
}
