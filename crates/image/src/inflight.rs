//! Coalescing of identical work: the first caller for a key starts it as a task of its own
//! (so it finishes even when that caller goes away); later callers for the same key wait on
//! the same result.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, FutureExt, Shared};

type SharedResult<T, E> = Shared<BoxFuture<'static, Result<T, Arc<E>>>>;

pub struct Inflight<T, E> {
    map: Arc<Mutex<HashMap<String, SharedResult<T, E>>>>,
}

impl<T, E> Default for Inflight<T, E> {
    fn default() -> Self {
        Inflight {
            map: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

impl<T, E> Inflight<T, E>
where
    T: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// Runs `make()` unless work for `key` is already under way, and returns its result.
    /// `joined` tells whether this call joined work another caller started.
    pub async fn run<F>(&self, key: &str, make: impl FnOnce() -> F) -> (Result<T, Arc<E>>, bool)
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        let (future, joined) = {
            let mut map = self.map.lock().unwrap();
            match map.get(key) {
                Some(f) => (f.clone(), true),
                None => {
                    let work = make();
                    let map_ref = self.map.clone();
                    let owned_key = key.to_string();
                    let handle = tokio::spawn(async move {
                        let out = work.await.map_err(Arc::new);
                        map_ref.lock().unwrap().remove(&owned_key);
                        out
                    });
                    let shared = async move {
                        match handle.await {
                            Ok(out) => out,
                            Err(e) => std::panic::resume_unwind(e.into_panic()),
                        }
                    }
                    .boxed()
                    .shared();
                    map.insert(key.to_string(), shared.clone());
                    (shared, false)
                }
            }
        };
        (future.await, joined)
    }

    /// How many keys have work under way.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_one_run() {
        let inflight: Arc<Inflight<usize, String>> = Arc::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let inflight = inflight.clone();
            let runs = runs.clone();
            tasks.push(tokio::spawn(async move {
                inflight
                    .run("k", || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        Ok(7)
                    })
                    .await
            }));
        }
        let mut joined = 0;
        for t in tasks {
            let (out, j) = t.await.unwrap();
            assert_eq!(out.unwrap(), 7);
            joined += j as usize;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(joined, 7);
        assert!(inflight.is_empty());
        // A later call starts fresh work, and errors are shared too.
        let (out, j) = inflight
            .run("k", || async { Err("boom".to_string()) })
            .await;
        assert_eq!(*out.unwrap_err(), "boom");
        assert!(!j);
    }
}
