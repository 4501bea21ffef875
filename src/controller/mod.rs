//! The operator: one reconciler per custom resource, sharing one [`Context`].

mod binding;
mod ca;
mod certificate;
mod conditions;
mod context;
mod crl;
mod error;
mod issuer;
mod ledger;
mod policy;
mod revocation;
pub(crate) mod runtime;

pub use binding::{CONDITION_INJECTION_ENABLED, check_arns};
pub use certificate::{
    CA_CERTIFICATE_KEY, CERTIFICATE_NAME_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE,
    REVISION_ANNOTATION, SERIAL_ANNOTATION, TLS_CERTIFICATE_KEY, TLS_PRIVATE_KEY_KEY,
};
pub use context::{Context, FIELD_MANAGER};
pub use crl::{
    CRL_DER_KEY, CRL_PEM_KEY, DRIFT_CHECK_INTERVAL, crl_config_map_name, default_crl_name,
};
pub use error::Error;
pub use ledger::{AUTHORITY_LABEL, REVOKED_LABEL, record_name};
pub use policy::minimums::{BelowMinimum, PlatformMinimums};
pub use policy::platform::{
    ANY_TRUST_ANCHOR, InvalidGrant, KmsKeyGrant, NamespaceGrant, PlatformConfig, TrustAnchorGrant,
};
pub use runtime::aws_timeouts::aws_timeouts;
pub use runtime::events::EventPublisher;
pub use runtime::leader::{
    DEFAULT_LEASE_DURATION, DEFAULT_RENEW_DEADLINE, DEFAULT_RETRY_PERIOD, LeaderElectionConfig,
    LeaderElectionError, default_identity,
};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::ResourceExt;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};

use crate::api::scoped_api as api;
use crate::api::well_known::{INJECTED_BY_ANNOTATION, INJECTED_LABEL};
use crate::api::{
    ClusterIssuer, Issuer, IssuerKind, Revocation, RolesAnywhereBinding, WorkloadCertificate,
};
use runtime::fair_share::within_share;
use runtime::panic_safe::panic_safe;
use runtime::triggers;

/// Reconciles of one kind running at once (`--concurrency`). A reconcile mostly waits on the
/// API server; 64 keep it busy, and one namespace's quarter (16) is enough to issue at the API
/// server's pace.
pub const DEFAULT_CONCURRENCY: u16 = 64;

/// How long an Issuer waits after a trigger before building a CRL, so a burst of Revocations
/// lands in one CRL and one import.
const CRL_COALESCE_WINDOW: Duration = Duration::from_millis(300);

/// Where ClusterIssuers keep their Secrets when neither the flag nor `POD_NAMESPACE` says.
pub const DEFAULT_CLUSTER_RESOURCE_NAMESPACE: &str = "iamra-system";

/// What the reconcilers watch.
#[derive(Clone, Debug, Default)]
pub struct ReconcilerScope {
    /// Watch one namespace only; None watches the whole cluster.
    pub namespace: Option<String>,
    /// Reconciles of one kind running at once.
    pub concurrency: u16,
    /// Whether ClusterIssuers are reconciled here (cluster-scoped: by default only by a
    /// controller that watches every namespace).
    pub reconcile_cluster_issuers: bool,
}

/// A reconcile of `kind` as every controller runs it: within its namespace's share of the
/// slots, and with a panic turned into that object's error.
fn guarded<K, F, Fut>(
    kind: &'static str,
    ctx: &Arc<Context>,
    reconcile: F,
) -> impl Fn(Arc<K>, Arc<Context>) -> BoxFuture<'static, Result<Action, Error>> + Send + Sync + 'static
where
    K: kube::Resource<DynamicType = ()> + Send + Sync + 'static,
    F: Fn(Arc<K>, Arc<Context>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, Error>> + Send + 'static,
{
    within_share(kind, ctx.fair_share.clone(), panic_safe(reconcile))
}

/// The controllers, until a shutdown signal.
pub(crate) async fn reconcile_all(
    client: kube::Client,
    options: &ReconcilerScope,
    ctx: Arc<Context>,
) {
    // The reconciles that run `guarded` wait in the fair share's queues, which bound them to
    // `--concurrency` per kind; kube-runtime hands them over at once (no limit of its own).
    let queued = kube::runtime::controller::Config::default();
    let config = kube::runtime::controller::Config::default().concurrency(options.concurrency);
    let managed =
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));

    // Bursts of revocations are coalesced: triggers that arrive while an Issuer waits or
    // reconciles fold into one more run, which builds one CRL for all of them.
    let issuers = Controller::new(
        api::<Issuer>(&client, &options.namespace),
        watcher::Config::default(),
    )
    .with_config(queued.clone().debounce(CRL_COALESCE_WINDOW))
    .owns(
        api::<ConfigMap>(&client, &options.namespace),
        managed.clone(),
    )
    .watches(
        api::<Revocation>(&client, &options.namespace),
        watcher::Config::default(),
        |revocation| {
            let reference = &revocation.spec.issuer_ref;
            (reference.kind() == IssuerKind::Issuer)
                .then(|| revocation.namespace())
                .flatten()
                .map(|namespace| ObjectRef::<Issuer>::new(&reference.name).within(&namespace))
        },
    )
    .shutdown_on_signal()
    .run(
        guarded("issuer", &ctx, issuer::reconcile),
        issuer::error_policy,
        ctx.clone(),
    )
    .for_each(|result| async move {
        if let Err(error) = result {
            tracing::debug!(%error, "issuer reconcile error");
        }
    });

    // ClusterIssuers: their Revocations live in any namespace, their CRL ConfigMaps in the
    // cluster resource namespace.
    let cluster_issuers = options.reconcile_cluster_issuers.then(|| {
        Controller::new(
            Api::<ClusterIssuer>::all(client.clone()),
            watcher::Config::default(),
        )
        .with_config(config.clone().debounce(CRL_COALESCE_WINDOW))
        .watches(
            Api::<ConfigMap>::namespaced(client.clone(), &ctx.cluster_resource_namespace),
            managed.clone(),
            |config_map| {
                config_map
                    .owner_references()
                    .iter()
                    .find(|owner| owner.kind == "ClusterIssuer")
                    .map(|owner| ObjectRef::<ClusterIssuer>::new(&owner.name))
            },
        )
        .watches(
            Api::<Revocation>::all(client.clone()),
            watcher::Config::default(),
            |revocation| {
                let reference = &revocation.spec.issuer_ref;
                (reference.kind() == IssuerKind::ClusterIssuer)
                    .then(|| ObjectRef::<ClusterIssuer>::new(&reference.name))
            },
        )
        .shutdown_on_signal()
        .run(
            panic_safe(issuer::reconcile_cluster),
            issuer::error_policy_cluster,
            ctx.clone(),
        )
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "cluster issuer reconcile error");
            }
        })
    });
    let cluster_issuers = async move {
        if let Some(controller) = cluster_issuers {
            controller.await;
        }
    };

    let Some(writers) = ctx.take_cache_writers() else {
        tracing::error!("the reconcilers were started twice in one process; not starting again");
        return;
    };
    let filled = {
        let ctx = ctx.clone();
        async move { ctx.reads.mark_filled_when_listed().await }
    };
    let stop_queues = {
        let ctx = ctx.clone();
        async move {
            crate::shutdown::signal().await;
            ctx.fair_share.stop();
        }
    };
    // The certificates' store holds every WorkloadCertificate; their managedFields (a few KB
    // each, read by nothing here) are dropped on the way in.
    let (certificate_store, certificate_writer) = kube::runtime::reflector::store();
    let certificates = Controller::for_stream(
        watcher::watcher(
            api::<WorkloadCertificate>(&client, &options.namespace),
            watcher::Config::default(),
        )
        .default_backoff()
        .modify(|certificate| certificate.metadata.managed_fields = None)
        .reflect(certificate_writer)
        .inspect({
            // What was remembered of a deleted certificate goes with it.
            let ctx = ctx.clone();
            move |event| {
                if let Ok(watcher::Event::Delete(certificate)) = event {
                    ctx.reads.forget_certificate(
                        &certificate.namespace().unwrap_or_default(),
                        &certificate.spec.secret_name,
                        &certificate.uid().unwrap_or_default(),
                    );
                }
            }
        })
        .applied_objects(),
        certificate_store.clone(),
    );
    runtime::metrics::watch_certificates(certificate_store.clone());
    // Every stream below fills a store the reconciler reads instead of the API server; the
    // Secrets' and namespaces' bodies are not needed, only their metadata.
    let managed_secrets = watcher::watcher(
        api::<PartialObjectMeta<Secret>>(&client, &options.namespace),
        managed.clone(),
    )
    .default_backoff()
    .modify(|secret| secret.metadata.managed_fields = None)
    .reflect(writers.managed_secrets)
    .touched_objects();
    let issuer_events = watcher::watcher(
        api::<Issuer>(&client, &options.namespace),
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
    let certificates = certificates
        .with_config(queued.clone())
        .owns_stream(managed_secrets)
        // A change of an Issuer that its certificates read (it became Ready, its CA changed)
        // revisits them; a CRL published changes only its status, and revisits none.
        .watches_stream(
            triggers::on_relevant_change(issuer_events, triggers::issuer_relevant_to_certificates),
            move |issuer| {
                let namespace = issuer.namespace();
                let name = issuer.name_any();
                issuer_store
                    .state()
                    .into_iter()
                    .filter(|certificate| {
                        certificate.namespace() == namespace
                            && certificate.spec.issuer_ref.kind() == IssuerKind::Issuer
                            && certificate.spec.issuer_ref.name == name
                    })
                    .map(|certificate| ObjectRef::from_obj(certificate.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .watches_stream(
            triggers::on_relevant_change(
                cluster_issuer_events,
                triggers::cluster_issuer_relevant_to_certificates,
            ),
            move |issuer| {
                let name = issuer.name_any();
                certificate_store
                    .state()
                    .into_iter()
                    .filter(|certificate| {
                        certificate.spec.issuer_ref.kind() == IssuerKind::ClusterIssuer
                            && certificate.spec.issuer_ref.name == name
                    })
                    .map(|certificate| ObjectRef::from_obj(certificate.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        // A namespace's labels decide whether a ClusterIssuer's selector admits it.
        .watches_stream(
            triggers::on_relevant_change(namespace_events, triggers::namespace_labels),
            move |namespace| {
                let name = namespace.name_any();
                namespace_store
                    .state()
                    .into_iter()
                    .filter(|certificate| {
                        certificate.namespace().as_deref() == Some(name.as_str())
                            && certificate.spec.issuer_ref.kind() == IssuerKind::ClusterIssuer
                    })
                    .map(|certificate| ObjectRef::from_obj(certificate.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .shutdown_on_signal()
        .run(
            guarded("workloadcertificate", &ctx, certificate::reconcile),
            certificate::error_policy,
            ctx.clone(),
        )
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "workload certificate reconcile error");
            }
        });

    let revocations = Controller::new(
        api::<Revocation>(&client, &options.namespace),
        watcher::Config::default(),
    )
    .with_config(queued.clone())
    .shutdown_on_signal()
    .run(
        guarded("revocation", &ctx, revocation::reconcile),
        revocation::error_policy,
        ctx.clone(),
    )
    .for_each(|result| async move {
        if let Err(error) = result {
            tracing::debug!(%error, "revocation reconcile error");
        }
    });

    let bindings = Controller::new(
        api::<RolesAnywhereBinding>(&client, &options.namespace),
        watcher::Config::default(),
    );
    let binding_store = bindings.store();
    let bindings = bindings
        .with_config(queued)
        .owns(
            api::<WorkloadCertificate>(&client, &options.namespace),
            watcher::Config::default(),
        )
        // A referenced certificate becoming Ready (or not) changes the binding's Ready.
        .watches(
            api::<WorkloadCertificate>(&client, &options.namespace),
            watcher::Config::default(),
            move |certificate| {
                let namespace = certificate.namespace();
                let name = certificate.name_any();
                binding_store
                    .state()
                    .into_iter()
                    .filter(|binding| {
                        binding.namespace() == namespace
                            && binding.spec.certificate_ref.as_ref().map(|r| &r.name) == Some(&name)
                    })
                    .map(|binding| ObjectRef::from_obj(binding.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        // Injected pods (labelled by the webhook) update the count of the binding they name.
        .watches(
            api::<Pod>(&client, &options.namespace),
            watcher::Config::default().labels(&format!("{INJECTED_LABEL}=true")),
            |pod| {
                let namespace = pod.namespace()?;
                let binding = pod.annotations().get(INJECTED_BY_ANNOTATION)?;
                Some(ObjectRef::<RolesAnywhereBinding>::new(binding).within(&namespace))
            },
        )
        .shutdown_on_signal()
        .run(
            guarded("binding", &ctx, binding::reconcile),
            binding::error_policy,
            ctx.clone(),
        )
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "binding reconcile error");
            }
        });

    futures::join!(
        issuers,
        cluster_issuers,
        certificates,
        revocations,
        bindings,
        filled,
        stop_queues
    );
}
