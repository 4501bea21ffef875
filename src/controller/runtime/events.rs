//! Kubernetes Events (events.k8s.io/v1), one series per distinct message.
//!
//! kube-runtime's `Recorder` keys a series on type, reason and action and keeps the first note,
//! so `kubectl describe` showed "Published CRL 1 with 0 revocation(s) (x4)" while the Issuer was
//! at CRL 4, and a certificate issued five times its first serial. Here the note is part of the
//! key: a new message makes a new Event, the same message again counts up that Event's series
//! (within six minutes, the API's rule for a series).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::Mutex;

/// How long a repeat still counts up the same Event.
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// What makes two events the same occurrence.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct EventKey {
    regarding: (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
    warning: bool,
    reason: String,
    action: String,
    note: String,
}

/// The Event last written for a key.
struct Written {
    namespace: String,
    name: String,
    count: i32,
    at: Instant,
}

/// Publishes the controller's Events.
pub struct EventPublisher {
    client: kube::Client,
    controller: String,
    instance: String,
    written: Mutex<WrittenEvents>,
}

/// The Events written within the series window.
#[derive(Default)]
struct WrittenEvents {
    by_key: HashMap<EventKey, Written>,
    /// When entries past the window were last dropped: a sweep visits every entry, so it runs
    /// once per window fraction rather than on every publish (10,000 issuances in a minute
    /// would otherwise cost 10,000 sweeps of up to 10,000 entries).
    swept_at: Option<Instant>,
}

impl WrittenEvents {
    fn sweep(&mut self) {
        let due = self
            .swept_at
            .is_none_or(|at| at.elapsed() >= SERIES_WINDOW / 6);
        if due {
            self.by_key.retain(|_, w| w.at.elapsed() < SERIES_WINDOW);
            self.swept_at = Some(Instant::now());
        }
    }
}

impl EventPublisher {
    pub fn new(client: kube::Client, controller: &str, instance: &str) -> Self {
        Self {
            client,
            controller: controller.to_string(),
            instance: instance.to_string(),
            written: Mutex::new(WrittenEvents::default()),
        }
    }

    /// Publishes `note` about `regarding`: a new Event, or the series of the same one.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) -> Result<(), kube::Error> {
        let key = EventKey {
            regarding: (
                regarding.kind.clone(),
                regarding.namespace.clone(),
                regarding.name.clone(),
                regarding.uid.clone(),
            ),
            warning,
            reason: reason.to_string(),
            action: action.to_string(),
            note: note.clone(),
        };
        // The map is locked only around lookups, never across a call to the API server.
        let previous = {
            let mut written = self.written.lock().await;
            written.sweep();
            written
                .by_key
                .get(&key)
                .filter(|w| w.at.elapsed() < SERIES_WINDOW)
                .map(|w| (w.namespace.clone(), w.name.clone(), w.count + 1))
        };
        let now = MicroTime(jiff::Timestamp::now());
        if let Some((namespace, name, count)) = previous {
            let events: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
            let series = json!({"series": EventSeries { count, last_observed_time: now.clone() }});
            match events
                .patch(&name, &PatchParams::default(), &Patch::Merge(&series))
                .await
            {
                Ok(_) => {
                    if let Some(entry) = self.written.lock().await.by_key.get_mut(&key) {
                        entry.count = entry.count.max(count);
                        entry.at = Instant::now();
                    }
                    return Ok(());
                }
                // Gone (expired or deleted): a new Event below.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error),
            }
        }
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let event = Event {
            metadata: ObjectMeta {
                // An object name can take 253 characters, all an Event's name may have.
                name: Some(format!(
                    "{}.{:x}",
                    regarding
                        .name
                        .as_deref()
                        .unwrap_or(&self.controller)
                        .chars()
                        .take(200)
                        .collect::<String>()
                        .trim_end_matches(['-', '.']),
                    now.0.as_nanosecond()
                )),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            action: Some(action.to_string()),
            reason: Some(reason.to_string()),
            note: Some(note),
            event_time: Some(now),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(if warning { "Warning" } else { "Normal" }.to_string()),
            ..Default::default()
        };
        let events: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let created = events.create(&PostParams::default(), &event).await?;
        self.written.lock().await.by_key.insert(
            key,
            Written {
                namespace,
                name: created.metadata.name.unwrap_or_default(),
                count: 1,
                at: Instant::now(),
            },
        );
        Ok(())
    }
}
