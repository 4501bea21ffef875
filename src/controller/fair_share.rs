//! One namespace may use only a share of a controller's reconcile slots, so a tenant with
//! thousands of objects (or objects whose reconciles hang on its own slow endpoint) cannot hold
//! every slot while other tenants' objects wait. A reconcile over its namespace's share is put
//! back in the queue at once, without an API call, and tried again a moment later.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use kube::Resource;
use kube::runtime::controller::Action;

use crate::backoff::jittered_delay;

/// When a reconcile over its share is tried again (less up to half at random).
const OVER_SHARE_RETRY: Duration = Duration::from_secs(2);

/// In-flight reconciles per (kind, namespace), each kind's count bounded by `limit`.
#[derive(Debug)]
pub struct FairShare {
    limit: usize,
    in_flight: Mutex<HashMap<(&'static str, String), usize>>,
}

impl FairShare {
    /// A quarter of each controller's `concurrency` per namespace, at least one.
    pub fn for_concurrency(concurrency: u16) -> Self {
        Self::new(usize::from(concurrency / 4).max(1))
    }

    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            in_flight: Mutex::default(),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A slot for one reconcile of `kind` in `namespace`, or None when the namespace uses its
    /// whole share already.
    fn enter(self: &Arc<Self>, kind: &'static str, namespace: &str) -> Option<Slot> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let count = in_flight.entry((kind, namespace.to_string())).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Slot {
            share: self.clone(),
            key: (kind, namespace.to_string()),
        })
    }
}

/// A reconcile's place in its namespace's share, given back when dropped (also on a panic or a
/// cancelled reconcile).
struct Slot {
    share: Arc<FairShare>,
    key: (&'static str, String),
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut in_flight = self
            .share
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = in_flight.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                in_flight.remove(&self.key);
            }
        }
    }
}

/// `reconcile`, run only within its namespace's share of `kind`'s slots. Cluster-scoped objects
/// are the platform's own and are not limited.
pub fn within_share<K, C, E, F>(
    kind: &'static str,
    share: Arc<FairShare>,
    reconcile: F,
) -> impl FnMut(Arc<K>, Arc<C>) -> BoxFuture<'static, Result<Action, E>>
where
    K: Resource + Send + Sync + 'static,
    C: Send + Sync + 'static,
    E: Send + 'static,
    F: FnMut(Arc<K>, Arc<C>) -> BoxFuture<'static, Result<Action, E>>,
{
    let mut reconcile = reconcile;
    move |object, ctx| {
        let Some(namespace) = object.meta().namespace.clone() else {
            return reconcile(object, ctx);
        };
        match share.enter(kind, &namespace) {
            Some(slot) => {
                let reconciling = reconcile(object, ctx);
                async move {
                    let result = reconciling.await;
                    drop(slot);
                    result
                }
                .boxed()
            }
            None => {
                tracing::debug!(kind, %namespace, limit = share.limit, "namespace at its share of reconciles; requeued");
                let retry = jittered_delay(0, OVER_SHARE_RETRY, OVER_SHARE_RETRY);
                async move { Ok(Action::requeue(retry)) }.boxed()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use tokio::sync::Notify;

    fn boxed<K, C, E, F, Fut>(
        reconcile: F,
    ) -> impl FnMut(Arc<K>, Arc<C>) -> BoxFuture<'static, Result<Action, E>>
    where
        F: Fn(Arc<K>, Arc<C>) -> Fut,
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
        let share = Arc::new(FairShare::new(2));
        let gate = Arc::new(Gate {
            release: Notify::new(),
            ran: Mutex::default(),
        });
        let mut reconcile = within_share("test", share.clone(), boxed(held));

        let busy: Vec<_> = (0..2)
            .map(|i| tokio::spawn(reconcile(object("busy", &format!("b{i}")), gate.clone())))
            .collect();
        tokio::task::yield_now().await;
        // The third of the busy namespace is requeued without running.
        let over = reconcile(object("busy", "b2"), gate.clone()).await;
        assert!(matches!(over, Ok(action) if action != Action::await_change()));
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

        gate.release.notify_waiters();
        for task in busy {
            assert_eq!(task.await.unwrap(), Ok(Action::await_change()));
        }
        assert_eq!(quiet.await.unwrap(), Ok(Action::await_change()));
        // The slots were given back.
        assert!(share.in_flight.lock().unwrap().is_empty());
        let again = tokio::spawn(reconcile(object("busy", "b3"), gate.clone()));
        tokio::task::yield_now().await;
        gate.release.notify_waiters();
        assert_eq!(again.await.unwrap(), Ok(Action::await_change()));
    }

    #[test]
    fn the_share_is_a_quarter_of_the_concurrency() {
        assert_eq!(FairShare::for_concurrency(16).limit(), 4);
        assert_eq!(FairShare::for_concurrency(2).limit(), 1);
        assert_eq!(FairShare::for_concurrency(0).limit(), 1);
    }
}
