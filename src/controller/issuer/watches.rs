//! The Issuer and ClusterIssuer controllers: what triggers a reconcile of each.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use super::{reconcile, reconcile_cluster};
use crate::api::scoped_api as api;
use crate::api::{ClusterIssuer, Issuer, IssuerKind, Revocation};
use crate::controller::runtime::panic_safe::panic_safe;
use crate::controller::{
    Context, ReconcilerScope, error_policy, guarded, log_outcome, managed_objects, queued,
};

/// How long an Issuer waits after a trigger before building a CRL, so a burst of Revocations
/// lands in one CRL and one import.
const CRL_COALESCE_WINDOW: std::time::Duration = std::time::Duration::from_millis(300);

/// Issuers, until a shutdown signal.
pub(crate) async fn run_issuers(client: kube::Client, scope: &ReconcilerScope, ctx: Arc<Context>) {
    // Bursts of revocations are coalesced: triggers that arrive while an Issuer waits or
    // reconciles fold into one more run, which builds one CRL for all of them.
    Controller::new(
        api::<Issuer>(&client, &scope.namespace),
        watcher::Config::default(),
    )
    .with_config(queued().debounce(CRL_COALESCE_WINDOW))
    .owns(
        api::<ConfigMap>(&client, &scope.namespace),
        managed_objects(),
    )
    .watches(
        api::<Revocation>(&client, &scope.namespace),
        watcher::Config::default(),
        |revocation| {
            let reference = &revocation.spec.issuer_ref;
            (reference.kind() == IssuerKind::Issuer)
                .then(|| revocation.namespace())
                .flatten()
                .map(|namespace| ObjectRef::<Issuer>::new(&reference.name).within(&namespace))
        },
    )
    // A moved clock (tests only) may have made renewals, refreshes or releases due.
    .reconcile_all_on(ctx.clock.moves())
    .shutdown_on_signal()
    .run(
        guarded("issuer", &ctx, reconcile),
        error_policy("issuer"),
        ctx.clone(),
    )
    .for_each(log_outcome("issuer"))
    .await;
}

/// ClusterIssuers, until a shutdown signal; none unless this controller reconciles them.
pub(crate) async fn run_cluster_issuers(
    client: kube::Client,
    scope: &ReconcilerScope,
    ctx: Arc<Context>,
) {
    // ClusterIssuers: their Revocations live in any namespace, their CRL ConfigMaps in the
    // cluster resource namespace.
    if !scope.reconcile_cluster_issuers {
        return;
    }
    Controller::new(
        Api::<ClusterIssuer>::all(client.clone()),
        watcher::Config::default(),
    )
    .with_config(
        kube::runtime::controller::Config::default()
            .concurrency(scope.concurrency)
            .debounce(CRL_COALESCE_WINDOW),
    )
    .watches(
        Api::<ConfigMap>::namespaced(client.clone(), &ctx.cluster_resource_namespace),
        managed_objects(),
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
    // A moved clock (tests only) may have made renewals, refreshes or releases due.
    .reconcile_all_on(ctx.clock.moves())
    .shutdown_on_signal()
    .run(
        panic_safe(reconcile_cluster),
        error_policy("clusterissuer"),
        ctx.clone(),
    )
    .for_each(log_outcome("cluster issuer"))
    .await;
}
