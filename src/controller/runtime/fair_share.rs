//! One namespace may use only a share of a controller's reconcile slots, so a tenant with
//! thousands of objects (or objects whose reconciles hang on its own slow endpoint) cannot hold
//! every slot while other tenants' objects wait. A reconcile waits first for a place in its
//! namespace's share, then for one of its kind's slots; both queues are first come, first
//! served. Waiting costs nothing but the waiting task: no requeue, no API call, no retry loop
//! (bouncing 10,000 reconciles of one namespace every second was the alternative).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;
use kube::Resource;
use kube::runtime::controller::Action;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Reconcile slots per kind, and each namespace's share of them.
#[derive(Debug)]
pub struct FairShare {
    limit: usize,
    concurrency: usize,
    /// One queue per (kind, namespace): its share.
    namespaces: Mutex<HashMap<(&'static str, String), Arc<Semaphore>>>,
    /// One queue per kind: all its slots.
    kinds: Mutex<HashMap<&'static str, Arc<Semaphore>>>,
    /// Set on shutdown: what still waits is dropped, so the process exits promptly (the next
    /// leader reconciles everything anyway).
    stopping: tokio::sync::watch::Sender<bool>,
}

impl FairShare {
    /// `concurrency` reconciles of each kind at once, a quarter of them (at least one) per
    /// namespace.
    pub fn for_concurrency(concurrency: u16) -> Self {
        Self::new(
            usize::from(concurrency).max(1),
            usize::from(concurrency / 4).max(1),
        )
    }

    pub fn new(concurrency: usize, limit: usize) -> Self {
        Self {
            limit,
            concurrency,
            namespaces: Mutex::default(),
            kinds: Mutex::default(),
            stopping: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Lets nothing that waits run any more.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    fn queue<Key: std::hash::Hash + Eq>(
        queues: &Mutex<HashMap<Key, Arc<Semaphore>>>,
        key: Key,
        permits: usize,
    ) -> Arc<Semaphore> {
        queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(permits)))
            .clone()
    }

    /// A slot for one reconcile of `kind` (in `namespace`, when it has one), once free; None
    /// when the controller stops first.
    async fn enter(self: Arc<Self>, kind: &'static str, namespace: Option<String>) -> Option<Slot> {
        let mut stopping = self.stopping.subscribe();
        let acquire = async {
            let share = match namespace {
                Some(namespace) => {
                    let queue = Self::queue(&self.namespaces, (kind, namespace), self.limit);
                    queue.acquire_owned().await.ok()
                }
                None => None,
            };
            let queue = Self::queue(&self.kinds, kind, self.concurrency);
            let slot = queue.acquire_owned().await.ok();
            Slot {
                _share: share,
                _slot: slot,
            }
        };
        tokio::select! {
            biased;
            _ = stopping.wait_for(|stopping| *stopping) => None,
            slot = acquire => Some(slot),
        }
    }
}

/// A reconcile's place, given back when dropped (also on a panic or a cancelled reconcile).
/// The semaphores are never closed, so both permits are always held.
struct Slot {
    _share: Option<OwnedSemaphorePermit>,
    _slot: Option<OwnedSemaphorePermit>,
}

/// `reconcile`, run once its namespace's share and its kind's slots allow. Cluster-scoped
/// objects are the platform's own: they wait for a slot only.
pub fn within_share<K, C, E, F>(
    kind: &'static str,
    share: Arc<FairShare>,
    reconcile: F,
) -> impl Fn(Arc<K>, Arc<C>) -> BoxFuture<'static, Result<Action, E>> + Send + Sync + 'static
where
    K: Resource + Send + Sync + 'static,
    C: Send + Sync + 'static,
    E: Send + 'static,
    F: Fn(Arc<K>, Arc<C>) -> BoxFuture<'static, Result<Action, E>> + Send + Sync + 'static,
{
    let reconcile = Arc::new(reconcile);
    move |object, ctx| {
        let namespace = object.meta().namespace.clone();
        let entering = share.clone().enter(kind, namespace);
        let reconcile = reconcile.clone();
        // The reconcile's own future (kilobytes of state) is made only once it may run, so
        // thousands waiting in a queue cost little.
        async move {
            let Some(slot) = entering.await else {
                return Ok(Action::await_change());
            };
            let result = reconcile(object, ctx).await;
            drop(slot);
            result
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use tokio::sync::Notify;

    fn boxed<K, C, E, F, Fut>(
        reconcile: F,
    ) -> impl Fn(Arc<K>, Arc<C>) -> BoxFuture<'static, Result<Action, E>> + Send + Sync + 'static
    where
        F: Fn(Arc<K>, Arc<C>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Action, E>> + Send + 'static,
    {
        move |object, ctx| reconcile(object, ctx).boxed()
    }

    fn object(namespace: &str, name: &str) -> Arc<ConfigMap> {
        let mut object = ConfigMap::default();
        object.metadata.name = Some(name.into());
        object.metadata.namespace = Some(namespace.into());
        Arc::new(object)
    }

    /// Waits for the release, counting the reconciles that really ran.
    struct Gate {
        release: Notify,
        ran: Mutex<Vec<String>>,
    }

    async fn held(object: Arc<ConfigMap>, gate: Arc<Gate>) -> Result<Action, ()> {
        gate.ran
            .lock()
            .unwrap()
            .push(object.metadata.name.clone().unwrap_or_default());
        gate.release.notified().await;
        Ok(Action::await_change())
    }

    #[tokio::test]
    async fn a_namespace_over_its_share_waits_and_others_go_on() {
        let share = Arc::new(FairShare::new(8, 2));
        let gate = Arc::new(Gate {
            release: Notify::new(),
            ran: Mutex::default(),
        });
        let reconcile = within_share("test", share.clone(), boxed(held));

        let busy: Vec<_> = (0..2)
            .map(|i| tokio::spawn(reconcile(object("busy", &format!("b{i}")), gate.clone())))
            .collect();
        tokio::task::yield_now().await;
        // The third of the busy namespace waits without running.
        let over = tokio::spawn(reconcile(object("busy", "b2"), gate.clone()));
        // Another namespace is not held back by it.
        let quiet = tokio::spawn(reconcile(object("quiet", "q0"), gate.clone()));
        tokio::task::yield_now().await;
        for _ in 0..10 {
            if gate.ran.lock().unwrap().len() == 3 {
                break;
            }
            tokio::task::yield_now().await;
        }
        let mut ran = gate.ran.lock().unwrap().clone();
        ran.sort();
        assert_eq!(ran, ["b0", "b1", "q0"]);
        assert!(!over.is_finished());

        gate.release.notify_waiters();
        for task in busy {
            assert_eq!(task.await.unwrap(), Ok(Action::await_change()));
        }
        assert_eq!(quiet.await.unwrap(), Ok(Action::await_change()));
        // A place was given back: the waiting one runs.
        for _ in 0..100 {
            if gate.ran.lock().unwrap().len() == 4 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.ran.lock().unwrap().len(), 4);
        gate.release.notify_waiters();
        assert_eq!(over.await.unwrap(), Ok(Action::await_change()));
    }

    #[tokio::test]
    async fn a_kind_runs_at_most_its_concurrency_across_namespaces() {
        let share = Arc::new(FairShare::new(3, 2));
        let gate = Arc::new(Gate {
            release: Notify::new(),
            ran: Mutex::default(),
        });
        let reconcile = within_share("test", share.clone(), boxed(held));
        let tasks: Vec<_> = (0..4)
            .map(|i| tokio::spawn(reconcile(object(&format!("ns{i}"), "x"), gate.clone())))
            .collect();
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.ran.lock().unwrap().len(), 3);
        for _ in 0..2 {
            gate.release.notify_waiters();
            for _ in 0..100 {
                tokio::task::yield_now().await;
            }
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), Ok(Action::await_change()));
        }
        assert_eq!(gate.ran.lock().unwrap().len(), 4);
    }

    #[tokio::test]
    async fn what_waits_at_shutdown_is_dropped_without_running() {
        let share = Arc::new(FairShare::new(1, 1));
        let gate = Arc::new(Gate {
            release: Notify::new(),
            ran: Mutex::default(),
        });
        let reconcile = within_share("test", share.clone(), boxed(held));
        let running = tokio::spawn(reconcile(object("ns", "a"), gate.clone()));
        let waiting = tokio::spawn(reconcile(object("ns", "b"), gate.clone()));
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        share.stop();
        assert_eq!(waiting.await.unwrap(), Ok(Action::await_change()));
        assert_eq!(*gate.ran.lock().unwrap(), ["a"]);
        gate.release.notify_waiters();
        assert_eq!(running.await.unwrap(), Ok(Action::await_change()));
    }

    #[test]
    fn the_share_is_a_quarter_of_the_concurrency() {
        assert_eq!(FairShare::for_concurrency(64).limit(), 16);
        assert_eq!(FairShare::for_concurrency(16).limit(), 4);
        assert_eq!(FairShare::for_concurrency(2).limit(), 1);
        assert_eq!(FairShare::for_concurrency(0).limit(), 1);
    }
}
