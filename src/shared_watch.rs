//! One watch of a kind for the whole process. Its store answers every reader: the webhook's
//! admissions on every replica, and the controllers' lookups on the leader. Its events are
//! applied to the store from the start; a controller that takes them (once, when the replica
//! starts reconciling) gets every object already in the store first, then every later event,
//! so nothing is missed between the two.

use std::fmt::Debug;
use std::sync::Mutex;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

type Events<K> = BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>;

/// A watch of `K` whose store is shared and whose events one controller may take over.
pub struct SharedWatch<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    store: Store<K>,
    /// Asks the task that applies events to hand them over instead.
    take: Mutex<Option<oneshot::Sender<oneshot::Sender<Events<K>>>>>,
}

impl<K> SharedWatch<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    /// Starts watching `api`; managedFields (read by nothing here) are dropped on the way in.
    /// Returns once the store holds the first list, so no reader sees it empty.
    pub async fn start(api: Api<K>, config: watcher::Config) -> Self {
        let (store, writer) = reflector::store();
        let mut events: Events<K> = watcher(api, config)
            .default_backoff()
            .modify(|object| object.meta_mut().managed_fields = None)
            .reflect(writer)
            .boxed();
        let (take, mut taken) = oneshot::channel::<oneshot::Sender<Events<K>>>();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    reply = &mut taken => {
                        if let Ok(reply) = reply {
                            let _ = reply.send(events);
                        }
                        return;
                    }
                    event = events.next() => {
                        if event.is_none() {
                            return;
                        }
                    }
                }
            }
        });
        if store.wait_until_ready().await.is_err() {
            tracing::warn!("a shared watch ended before its first list");
        }
        Self {
            store,
            take: Mutex::new(Some(take)),
        }
    }

    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Every object in the store, then every object the watch applies from now on (deletions
    /// are `watcher::Event::Delete` in `on_event` only). None after the first call.
    pub async fn take_objects(
        &self,
        on_event: impl Fn(&watcher::Event<K>) + Send + 'static,
    ) -> Option<impl Stream<Item = Result<K, watcher::Error>> + Send + 'static> {
        let take = self.take.lock().ok()?.take()?;
        let (reply, events) = oneshot::channel();
        take.send(reply).ok()?;
        let events = events.await.ok()?;
        // Taken after the hand-over: the store then holds everything applied before it.
        let present: Vec<Result<K, watcher::Error>> = self
            .store
            .state()
            .into_iter()
            .map(|object| Ok(object.as_ref().clone()))
            .collect();
        let later = events
            .inspect(move |event| {
                if let Ok(event) = event {
                    on_event(event);
                }
            })
            .applied_objects();
        Some(futures::stream::iter(present).chain(later))
    }
}

/// The watches the webhook and the controllers share.
pub struct SharedWatches {
    pub certificates: SharedWatch<crate::api::WorkloadCertificate>,
    pub bindings: SharedWatch<crate::api::RolesAnywhereBinding>,
}

impl SharedWatches {
    /// Starts both, in `namespace` or in all, and returns once both stores are filled.
    pub async fn start(client: &kube::Client, namespace: &Option<String>) -> Self {
        let (certificates, bindings) = futures::join!(
            SharedWatch::start(
                crate::api::scoped_api(client, namespace),
                watcher::Config::default()
            ),
            SharedWatch::start(
                crate::api::scoped_api(client, namespace),
                watcher::Config::default()
            ),
        );
        Self {
            certificates,
            bindings,
        }
    }
}
