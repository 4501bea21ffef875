//! Watch streams that fill a reflector store with every change but trigger reconciles only on
//! the changes the triggered objects depend on. An Issuer's status changes with every CRL it
//! publishes; its certificates care only whether it is Ready and which CA it has.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Resource;
use kube::runtime::watcher::{self, Event};

use crate::api::{CONDITION_READY, ClusterIssuer, Issuer, IssuerStatus};

/// The objects of `events` whose `relevant` hash changed since last seen, and every deleted one
/// (a deletion must reach the dependants, whatever the hash says).
pub fn on_relevant_change<K, S>(
    events: S,
    relevant: fn(&K) -> u64,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource + Send + 'static,
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
{
    let mut seen: HashMap<String, u64> = HashMap::new();
    let key = |object: &K| {
        let meta = object.meta();
        format!(
            "{}/{}/{}",
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default(),
            meta.uid.as_deref().unwrap_or_default()
        )
    };
    events.flat_map(move |event| {
        let triggered: Vec<Result<K, watcher::Error>> = match event {
            Err(error) => vec![Err(error)],
            Ok(Event::Apply(object) | Event::InitApply(object)) => {
                let hash = relevant(&object);
                match seen.insert(key(&object), hash) {
                    Some(previous) if previous == hash => vec![],
                    _ => vec![Ok(object)],
                }
            }
            Ok(Event::Delete(object)) => {
                seen.remove(&key(&object));
                vec![Ok(object)]
            }
            Ok(Event::Init | Event::InitDone) => vec![],
        };
        futures::stream::iter(triggered)
    })
}

fn ready_condition(status: Option<&IssuerStatus>) -> Option<&Condition> {
    status?
        .conditions
        .iter()
        .find(|condition| condition.type_ == CONDITION_READY)
}

/// What a certificate reads of its issuer: the spec (by generation), whether it is Ready (and
/// why not), which CA it has, and whether it is being deleted.
fn certificate_relevant(
    generation: Option<i64>,
    deleting: bool,
    status: Option<&IssuerStatus>,
) -> u64 {
    let mut hasher = DefaultHasher::new();
    generation.hash(&mut hasher);
    deleting.hash(&mut hasher);
    let ready = ready_condition(status);
    ready
        .map(|c| (&c.status, &c.reason, &c.message))
        .hash(&mut hasher);
    status
        .and_then(|s| s.ca_fingerprint_sha256.as_ref())
        .hash(&mut hasher);
    hasher.finish()
}

pub fn issuer_relevant_to_certificates(issuer: &Issuer) -> u64 {
    certificate_relevant(
        issuer.metadata.generation,
        issuer.metadata.deletion_timestamp.is_some(),
        issuer.status.as_ref(),
    )
}

pub fn cluster_issuer_relevant_to_certificates(issuer: &ClusterIssuer) -> u64 {
    certificate_relevant(
        issuer.metadata.generation,
        issuer.metadata.deletion_timestamp.is_some(),
        issuer.status.as_ref(),
    )
}

/// A namespace matters to certificates by its labels (a ClusterIssuer's selector).
pub fn namespace_labels<K: Resource>(namespace: &K) -> u64 {
    let mut hasher = DefaultHasher::new();
    namespace.meta().labels.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::IssuerSpec;
    use kube::api::ObjectMeta;

    fn issuer(crl_number: i64, ready: &str) -> Issuer {
        let mut issuer = Issuer::new("ca", IssuerSpec::local("ca"));
        issuer.metadata = ObjectMeta {
            name: Some("ca".into()),
            namespace: Some("team".into()),
            uid: Some("u1".into()),
            generation: Some(1),
            ..Default::default()
        };
        issuer.status = Some(IssuerStatus {
            conditions: vec![Condition {
                type_: CONDITION_READY.into(),
                status: ready.into(),
                reason: "Loaded".into(),
                message: String::new(),
                observed_generation: Some(1),
                last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    jiff::Timestamp::UNIX_EPOCH,
                ),
            }],
            crl_number: Some(crl_number),
            ..Default::default()
        });
        issuer
    }

    #[tokio::test]
    async fn a_crl_publish_triggers_nothing_readiness_and_deletion_do() {
        let events = futures::stream::iter(vec![
            Ok(Event::Apply(issuer(1, "True"))),
            // A CRL publish: status changes, nothing a certificate reads.
            Ok(Event::Apply(issuer(2, "True"))),
            Ok(Event::Apply(issuer(3, "True"))),
            Ok(Event::Apply(issuer(3, "False"))),
            Ok(Event::Delete(issuer(3, "False"))),
        ]);
        let triggered: Vec<_> = on_relevant_change(events, issuer_relevant_to_certificates)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .map(|r| {
                r.map(|i| {
                    i.status
                        .and_then(|s| ready_condition(Some(&s)).map(|c| c.status.clone()))
                })
            })
            .collect::<Result<_, _>>()
            .unwrap_or_default();
        assert_eq!(
            triggered,
            vec![
                Some("True".into()),
                Some("False".into()),
                Some("False".into())
            ]
        );
    }
}
