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
