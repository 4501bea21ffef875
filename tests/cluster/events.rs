//! Events as `kubectl describe` shows them: a new message is a new Event, the same message again
//! counts up the series of that Event (kube-runtime's recorder kept the first message of every
//! reason, so a CRL at number 4 read "Published CRL 1 ... (x4)").

use anyhow::Context;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::Resource;
use kube::api::{Api, ListParams, PostParams};
use libtest_mimic::Trial;

use crate::cluster::{TestCluster, trial};

pub fn trials(cluster: &TestCluster) -> Vec<Trial> {
    vec![trial(
        "events::each_message_is_its_own_event_and_repeats_count_up",
        cluster,
        each_message_is_its_own_event_and_repeats_count_up,
    )]
}

async fn each_message_is_its_own_event_and_repeats_count_up(
    cluster: TestCluster,
) -> anyhow::Result<()> {
    let client = cluster.client().await?;
    let namespace = cluster.namespace(&client, "events").await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let mut object = ConfigMap::default();
    object.metadata.name = Some("subject".into());
    let object = config_maps.create(&PostParams::default(), &object).await?;
    let reference = object.object_ref(&());
    let publisher = iamra::controller::EventPublisher::new(client.clone(), "iamra", "test");
    for note in [
        "Published CRL 1",
        "Published CRL 2",
        "Published CRL 2",
        "Published CRL 3",
    ] {
        publisher
            .publish(&reference, false, "CrlPublished", "PublishCRL", note.into())
            .await?;
    }
    let events: Api<Event> = Api::namespaced(client, &namespace);
    let mut listed: Vec<(String, i32)> = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("subject"))
        .map(|e| {
            let count = e.series.as_ref().map_or(1, |s| s.count);
            (e.note.unwrap_or_default(), count)
        })
        .collect();
    listed.sort();
    let expected: Vec<(String, i32)> = [
        ("Published CRL 1", 1),
        ("Published CRL 2", 2),
        ("Published CRL 3", 1),
    ]
    .iter()
    .map(|(n, c)| (n.to_string(), *c))
    .collect();
    anyhow::ensure!(listed == expected, "events: {listed:?}");
    let last = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .find(|e| e.note.as_deref() == Some("Published CRL 2"))
        .context("no event for CRL 2")?;
    anyhow::ensure!(
        last.reporting_controller.as_deref() == Some("iamra")
            && last.reporting_instance.as_deref() == Some("test")
            && last.type_.as_deref() == Some("Normal"),
        "event fields: {last:?}"
    );
    Ok(())
}
