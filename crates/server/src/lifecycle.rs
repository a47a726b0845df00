//! Lifecycle events for GetContainerEvents (kubelet's evented PLEG): every container and pod
//! state change, told to every subscriber with the pod's status and the statuses of all its
//! containers, as containerd's `generateAndSendContainerEvent` builds them. Not to be confused
//! with `container/events.rs`, which applies the exits the pod monitors report.
//!
//! One bounded `tokio::sync::broadcast` channel fans the events out: sending never waits, so
//! crustd never blocks on a subscriber. A subscriber that falls more than [`CAPACITY`] events
//! behind loses its place: its stream ends with ResourceExhausted naming how many it missed
//! (it must list again, as kubelet does when its stream breaks); the others go on. A
//! subscriber that goes away drops its receiver, and with it its place in the channel. With
//! nobody subscribed, an event costs one atomic load: no status is built.
//!
//! Pods are reported as containerd reports them: the pod ID as `container_id`, CREATED and
//! STARTED when RunPodSandbox made it, STOPPED when it stops being ready (once), DELETED when
//! it is removed. A removed pod's DELETED event carries its last status (kubelet drops events
//! without one, and needs its metadata to forget the pod) and no container statuses. A
//! removed container's DELETED event carries the statuses of the containers left in the pod.

use std::sync::{Arc, Mutex, OnceLock, Weak};

use crust_store::PodRecord;
use k8s_cri::v1::{ContainerEventResponse, ContainerEventType, ContainerStatus};
use tokio::sync::broadcast;
use tonic::Status;

use crate::container::Containers;
use crate::sandbox::Pods;

/// How many events a subscriber may be behind before it is dropped.
pub const CAPACITY: usize = 1024;

type Event = Arc<ContainerEventResponse>;

/// The event stream of one subscriber.
pub type EventStream = tonic::codegen::BoxStream<ContainerEventResponse>;

/// Where event statuses come from: set once both sides exist (events sent earlier, during
/// start-up recovery, have no subscriber anyway).
struct Sources {
    pods: Weak<Pods>,
    containers: Weak<Containers>,
}

pub struct Events {
    /// None once crustd shuts down: the subscribers' streams end.
    tx: Mutex<Option<broadcast::Sender<Event>>>,
    sources: OnceLock<Sources>,
}

impl Default for Events {
    fn default() -> Self {
        Events::with_capacity(CAPACITY)
    }
}

impl Events {
    pub fn with_capacity(capacity: usize) -> Events {
        Events {
            tx: Mutex::new(Some(broadcast::channel(capacity).0)),
            sources: OnceLock::new(),
        }
    }

    /// Names the pods and containers whose statuses events carry.
    pub fn attach(&self, pods: &Arc<Pods>, containers: &Arc<Containers>) {
        let _ = self.sources.set(Sources {
            pods: Arc::downgrade(pods),
            containers: Arc::downgrade(containers),
        });
    }

    fn sender(&self) -> Option<broadcast::Sender<Event>> {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many subscribers there are now.
    pub fn subscribers(&self) -> usize {
        self.sender().map_or(0, |tx| tx.receiver_count())
    }

    /// Ends every subscriber's stream (Unavailable) and refuses new ones: crustd is stopping,
    /// and a stream that never ends would hold its graceful shutdown up.
    pub fn close(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Sends the event `build` makes, if anyone listens; `build` is not called otherwise.
    pub fn send_with(&self, build: impl FnOnce() -> ContainerEventResponse) {
        let Some(tx) = self.sender() else {
            return;
        };
        if tx.receiver_count() == 0 {
            return;
        }
        // Err: the last subscriber left meanwhile; nobody missed anything.
        let _ = tx.send(Arc::new(build()));
    }

    /// A container's event: its pod's status and the statuses of the pod's containers now.
    pub(crate) fn container(&self, kind: ContainerEventType, container_id: &str, pod_id: &str) {
        self.send_with(|| self.response(kind, container_id, pod_id));
    }

    /// A pod's event (the pod ID as the container ID), with its status now.
    pub(crate) fn pod(&self, kind: ContainerEventType, pod_id: &str) {
        self.send_with(|| self.response(kind, pod_id, pod_id));
    }

    /// A removed pod's DELETED event: the status it last had.
    pub(crate) fn pod_deleted(&self, last: &PodRecord) {
        self.send_with(|| ContainerEventResponse {
            container_id: last.id.clone(),
            container_event_type: ContainerEventType::ContainerDeletedEvent as i32,
            created_at: crate::service::now_nanos(),
            pod_sandbox_status: Some(crate::sandbox::pod_status(last)),
            containers_statuses: Vec::new(),
        });
    }

    fn response(
        &self,
        kind: ContainerEventType,
        container_id: &str,
        pod_id: &str,
    ) -> ContainerEventResponse {
        let created_at = crate::service::now_nanos();
        let sources = self.sources.get();
        let pod_sandbox_status = sources
            .and_then(|s| s.pods.upgrade())
            .and_then(|pods| match pods.lookup(pod_id) {
                crate::sandbox::Lookup::Found(pod) => Some(pod.snapshot()),
                _ => None,
            })
            .filter(|record| record.id == pod_id)
            .map(|record| crate::sandbox::pod_status(&record));
        let containers_statuses = sources
            .and_then(|s| s.containers.upgrade())
            .map(|containers| pod_container_statuses(&containers, pod_id))
            .unwrap_or_default();
        ContainerEventResponse {
            container_id: container_id.to_string(),
            container_event_type: kind as i32,
            created_at,
            pod_sandbox_status,
            containers_statuses,
        }
    }

    /// A new subscriber: every event from now on, until it falls behind, goes away, or crustd
    /// stops.
    pub fn subscribe(&self) -> Result<EventStream, Status> {
        let rx = self
            .sender()
            .ok_or_else(|| Status::unavailable("GetContainerEvents: crustd is shutting down"))?
            .subscribe();
        tracing::debug!(subscribers = self.subscribers(), "event subscriber joined");
        let sub = Subscriber { rx };
        Ok(Box::pin(futures::stream::unfold(
            Some(sub),
            |sub| async move {
                let mut sub = sub?;
                match sub.rx.recv().await {
                    Ok(event) => Some((Ok((*event).clone()), Some(sub))),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "dropping an event subscriber that fell behind");
                        Some((Err(fell_behind(missed)), None))
                    }
                    Err(broadcast::error::RecvError::Closed) => Some((
                        Err(Status::unavailable(
                            "GetContainerEvents: crustd is shutting down",
                        )),
                        None,
                    )),
                }
            },
        )))
    }
}

/// The error that ends the stream of a subscriber that missed `missed` events.
fn fell_behind(missed: u64) -> Status {
    Status::resource_exhausted(format!(
        "GetContainerEvents: the subscriber fell behind by {missed} events (at most {CAPACITY} \
         are kept); subscribe again and list the containers"
    ))
}

/// One subscriber's receiver; logs when it goes (the client left, or it was dropped).
struct Subscriber {
    rx: broadcast::Receiver<Event>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        tracing::debug!("event subscriber left");
    }
}

/// The statuses of a pod's containers, oldest first.
fn pod_container_statuses(containers: &Containers, pod_id: &str) -> Vec<ContainerStatus> {
    let mut records: Vec<_> = containers
        .of_pod(pod_id)
        .iter()
        .map(|c| c.snapshot())
        .collect();
    records.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    records
        .iter()
        .map(crate::container::container_status)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::StreamExt;

    use super::*;

    fn event(id: &str, kind: ContainerEventType) -> ContainerEventResponse {
        ContainerEventResponse {
            container_id: id.into(),
            container_event_type: kind as i32,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn nobody_listening_builds_nothing() {
        let events = Events::default();
        let built = AtomicUsize::new(0);
        for _ in 0..10 {
            events.send_with(|| {
                built.fetch_add(1, Ordering::Relaxed);
                event("c", ContainerEventType::ContainerCreatedEvent)
            });
        }
        assert_eq!(built.load(Ordering::Relaxed), 0);
        let mut sub = events.subscribe().unwrap();
        events.send_with(|| {
            built.fetch_add(1, Ordering::Relaxed);
            event("c", ContainerEventType::ContainerStartedEvent)
        });
        assert_eq!(built.load(Ordering::Relaxed), 1);
        let got = sub.next().await.unwrap().unwrap();
        assert_eq!(
            got.container_event_type,
            ContainerEventType::ContainerStartedEvent as i32
        );
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_event_in_order() {
        let events = Events::default();
        let mut a = events.subscribe().unwrap();
        let mut b = events.subscribe().unwrap();
        assert_eq!(events.subscribers(), 2);
        for i in 0..100 {
            events.send_with(|| event(&format!("c{i}"), ContainerEventType::ContainerCreatedEvent));
        }
        for sub in [&mut a, &mut b] {
            for i in 0..100 {
                assert_eq!(
                    sub.next().await.unwrap().unwrap().container_id,
                    format!("c{i}")
                );
            }
        }
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_dropped_alone() {
        let events = Events::with_capacity(8);
        let mut slow = events.subscribe().unwrap();
        let mut fast = events.subscribe().unwrap();
        for i in 0..20 {
            events.send_with(|| event(&format!("c{i}"), ContainerEventType::ContainerCreatedEvent));
            assert_eq!(
                fast.next().await.unwrap().unwrap().container_id,
                format!("c{i}")
            );
        }
        let err = slow.next().await.unwrap().unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(
            err.message().contains("fell behind by 12 events"),
            "{}",
            err.message()
        );
        assert!(
            slow.next().await.is_none(),
            "the stream ends after the error"
        );
        drop(slow);
        assert_eq!(events.subscribers(), 1);
        events.send_with(|| event("after", ContainerEventType::ContainerStoppedEvent));
        assert_eq!(fast.next().await.unwrap().unwrap().container_id, "after");
    }

    #[tokio::test]
    async fn a_subscriber_that_leaves_is_cleaned_up() {
        let events = Events::default();
        let sub = events.subscribe().unwrap();
        assert_eq!(events.subscribers(), 1);
        drop(sub);
        assert_eq!(events.subscribers(), 0);
        let built = AtomicUsize::new(0);
        events.send_with(|| {
            built.fetch_add(1, Ordering::Relaxed);
            event("c", ContainerEventType::ContainerDeletedEvent)
        });
        assert_eq!(built.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn close_ends_the_streams() {
        let events = Events::default();
        let mut sub = events.subscribe().unwrap();
        events.send_with(|| event("c", ContainerEventType::ContainerCreatedEvent));
        events.close();
        assert_eq!(sub.next().await.unwrap().unwrap().container_id, "c");
        let err = sub.next().await.unwrap().unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable);
        assert!(sub.next().await.is_none());
        assert_eq!(
            events.subscribe().err().map(|s| s.code()),
            Some(tonic::Code::Unavailable)
        );
    }
}
