//! Name reservation for objects whose creation must not be duplicated by a retry.
//!
//! kubelet retries CreateContainer with the same name when its deadline passes. The creation
//! runs in its own task; a retry that arrives while it runs waits for it, and a finished object
//! whose caller had given up (never "claimed") is handed to the next request for the same name
//! instead of being made twice. A second request for a name already handed out gets
//! AlreadyExists naming the holder, as containerd and CRI-O answer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tonic::Status;

type Outcome = Option<Result<String, Status>>;

enum Slot {
    Creating(watch::Receiver<Outcome>),
    Created { id: String, claimed: bool },
}

#[derive(Default)]
pub struct Names {
    slots: Mutex<HashMap<String, Slot>>,
}

impl Names {
    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates the object reserved under `key` with `create` (spawned, so the caller giving up
    /// does not abandon it), or waits for the creation under way, or hands over an unclaimed
    /// result. `what` names the kind in errors ("container").
    pub async fn create<F>(
        self: &Arc<Self>,
        key: &str,
        what: &str,
        create: F,
    ) -> Result<String, Status>
    where
        F: Future<Output = Result<String, Status>> + Send + 'static,
    {
        let mut rx = {
            let mut slots = self.slots();
            match slots.get_mut(key) {
                Some(Slot::Creating(rx)) => rx.clone(),
                Some(Slot::Created { id, claimed }) => {
                    if !*claimed {
                        *claimed = true;
                        tracing::info!(id = %id, "returning the {what} an abandoned request made");
                        return Ok(id.clone());
                    }
                    return Err(Status::already_exists(format!(
                        "{what} name {key:?} is reserved for {id}"
                    )));
                }
                None => {
                    let (tx, rx) = watch::channel(None);
                    slots.insert(key.to_string(), Slot::Creating(rx.clone()));
                    let names = self.clone();
                    let key = key.to_string();
                    tokio::spawn(async move {
                        let outcome = match tokio::spawn(create).await {
                            Ok(outcome) => outcome,
                            Err(e) => Err(Status::internal(format!("creation task failed: {e}"))),
                        };
                        {
                            let mut slots = names.slots();
                            match &outcome {
                                Ok(id) => {
                                    slots.insert(
                                        key,
                                        Slot::Created {
                                            id: id.clone(),
                                            claimed: false,
                                        },
                                    );
                                }
                                Err(_) => {
                                    slots.remove(&key);
                                }
                            }
                        }
                        let _ = tx.send(Some(outcome));
                    });
                    rx
                }
            }
        };
        let outcome = rx
            .wait_for(|o| o.is_some())
            .await
            .map_err(|_| Status::internal(format!("the task creating {what} {key:?} vanished")))?
            .clone()
            .expect("waited for Some");
        if outcome.is_ok() {
            if let Some(Slot::Created { claimed, .. }) = self.slots().get_mut(key) {
                *claimed = true;
            }
        }
        outcome
    }

    /// Records an object found at start-up as created and claimed.
    pub fn insert_claimed(&self, key: &str, id: &str) {
        self.slots().insert(
            key.to_string(),
            Slot::Created {
                id: id.to_string(),
                claimed: true,
            },
        );
    }

    /// Frees `key` if `id` holds it.
    pub fn release(&self, key: &str, id: &str) {
        let mut slots = self.slots();
        if matches!(slots.get(key), Some(Slot::Created { id: held, .. }) if held == id) {
            slots.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn an_abandoned_creation_is_handed_to_the_retry_once() {
        let names = Arc::new(Names::default());
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = made.clone();
        // The first caller gives up (as kubelet does at its deadline) while creation runs.
        let first = tokio::time::timeout(
            Duration::from_millis(50),
            names.create("pod/web_0", "container", async move {
                let _ = wait.await;
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok("c1".to_string())
            }),
        )
        .await;
        assert!(first.is_err(), "the first caller timed out");
        go.send(()).unwrap();
        // The retry gets the container that creation made, not a new one.
        let retry = names
            .create("pod/web_0", "container", async { Ok("c2".to_string()) })
            .await
            .unwrap();
        assert_eq!(retry, "c1");
        assert_eq!(made.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Once handed out, the name is taken.
        let again = names
            .create("pod/web_0", "container", async { Ok("c3".to_string()) })
            .await
            .unwrap_err();
        assert_eq!(again.code(), tonic::Code::AlreadyExists);
        assert!(again.message().contains("c1"), "{}", again.message());
        // Released, it can be used again; a failed creation frees the name at once.
        names.release("pod/web_0", "c1");
        let failed = names
            .create("pod/web_0", "container", async {
                Err(Status::invalid_argument("bad"))
            })
            .await
            .unwrap_err();
        assert_eq!(failed.code(), tonic::Code::InvalidArgument);
        let fresh = names
            .create("pod/web_0", "container", async { Ok("c4".to_string()) })
            .await
            .unwrap();
        assert_eq!(fresh, "c4");
    }
}
