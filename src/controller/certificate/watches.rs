//! The WorkloadCertificate controller: the streams that fill the stores its reconciles read, and
//! the changes of other objects that revisit a certificate.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::ResourceExt;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

use super::{CacheWriters, reconcile};
use crate::api::scoped_api as api;
use crate::api::{ClusterIssuer, Issuer, IssuerKind, RolesAnywhereBinding, WorkloadCertificate};
use crate::controller::runtime::{metrics, triggers};
use crate::controller::{
    Context, ReconcilerScope, error_policy, guarded, log_outcome, managed_objects, queued,
};
use crate::shared_watch::SharedWatches;

/// WorkloadCertificates, until a shutdown signal.
pub(crate) async fn run_certificates(
    client: kube::Client,
    scope: &ReconcilerScope,
    ctx: Arc<Context>,
    writers: CacheWriters,
    watches: &SharedWatches,
    binding_triggers: tokio::sync::mpsc::UnboundedSender<ObjectRef<RolesAnywhereBinding>>,
) {
    // The certificates come from the watch the webhook shares; a change of one revisits the
    // bindings it matters to, which would otherwise watch certificates twice more.
    let certificate_store = watches.certificates.store();
    let forget = ctx.clone();
    let bindings = watches.bindings.store();
    let Some(certificate_objects) = watches
        .certificates
        .take_objects(move |event| {
            let certificate = match event {
                // What was remembered of a deleted certificate goes with it.
                watcher::Event::Delete(certificate) => {
                    forget.reads.forget_certificate(
                        &certificate.namespace().unwrap_or_default(),
                        &certificate.spec.secret_name,
                        &certificate.uid().unwrap_or_default(),
                    );
                    certificate
                }
                watcher::Event::Apply(certificate) | watcher::Event::InitApply(certificate) => {
                    certificate
                }
                watcher::Event::Init | watcher::Event::InitDone => return,
            };
            // Only the bindings it matters to are passed on, so 10,000 certificates without a
            // binding queue nothing.
            for binding in crate::controller::binding::bindings_of(&bindings, certificate) {
                let _ = binding_triggers.send(binding);
            }
        })
        .await
    else {
        tracing::error!("the certificates' watch was taken twice; not reconciling certificates");
        return;
    };
    let certificates = Controller::for_stream(certificate_objects, certificate_store.clone());
    metrics::watch_certificates(certificate_store.clone());
    // Every stream below fills a store the reconciler reads instead of the API server; the
    // Secrets' and namespaces' bodies are not needed, only their metadata.
    let managed_secrets = watcher::watcher(
        api::<PartialObjectMeta<Secret>>(&client, &scope.namespace),
        managed_objects(),
    )
    .default_backoff()
    .modify(|secret| secret.metadata.managed_fields = None)
    .reflect(writers.managed_secrets)
    .touched_objects();
    let issuer_events = watcher::watcher(
        api::<Issuer>(&client, &scope.namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writers.issuers);
    let cluster_issuer_events = watcher::watcher(
        Api::<ClusterIssuer>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writers.cluster_issuers);
    let namespace_events = watcher::watcher(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|namespace| namespace.metadata.managed_fields = None)
    .reflect(writers.namespaces);
    let issuer_store = certificate_store.clone();
    let namespace_store = certificate_store.clone();
    certificates
        .with_config(queued())
        .owns_stream(managed_secrets)
        // A change of an Issuer that its certificates read (it became Ready, its CA changed)
        // revisits them; a CRL published changes only its status, and revisits none.
        .watches_stream(
            triggers::on_relevant_change(issuer_events, triggers::issuer_relevant_to_certificates),
            move |issuer| {
                let namespace = issuer.namespace();
                let name = issuer.name_any();
                certificates_where(&issuer_store, |certificate| {
                    certificate.namespace() == namespace
                        && certificate.spec.issuer_ref.kind() == IssuerKind::Issuer
                        && certificate.spec.issuer_ref.name == name
                })
            },
        )
        .watches_stream(
            triggers::on_relevant_change(
                cluster_issuer_events,
                triggers::cluster_issuer_relevant_to_certificates,
            ),
            move |issuer| {
                let name = issuer.name_any();
                certificates_where(&certificate_store, |certificate| {
                    certificate.spec.issuer_ref.kind() == IssuerKind::ClusterIssuer
                        && certificate.spec.issuer_ref.name == name
                })
            },
        )
        // A namespace's labels decide whether a ClusterIssuer's selector admits it.
        .watches_stream(
            triggers::on_relevant_change(namespace_events, triggers::namespace_labels),
            move |namespace| {
                let name = namespace.name_any();
                certificates_where(&namespace_store, |certificate| {
                    certificate.namespace().as_deref() == Some(name.as_str())
                        && certificate.spec.issuer_ref.kind() == IssuerKind::ClusterIssuer
                })
            },
        )
        // A moved clock (tests only) may have made renewals, refreshes or releases due.
        .reconcile_all_on(ctx.clock.moves())
        .shutdown_on_signal()
        .run(
            guarded("workloadcertificate", &ctx, reconcile),
            error_policy("workloadcertificate"),
            ctx.clone(),
        )
        .for_each(log_outcome("workload certificate"))
        .await;
}

/// The certificates in `store` that `depends` says depend on a changed object.
fn certificates_where(
    store: &Store<WorkloadCertificate>,
    depends: impl Fn(&WorkloadCertificate) -> bool,
) -> Vec<ObjectRef<WorkloadCertificate>> {
    store
        .state()
        .into_iter()
        .filter(|certificate| depends(certificate))
        .map(|certificate| ObjectRef::from_obj(certificate.as_ref()))
        .collect()
}
