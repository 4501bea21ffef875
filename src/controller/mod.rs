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
pub mod problem;
pub mod reasons;
mod revocation;
pub(crate) mod runtime;
mod status;

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

use futures::future::BoxFuture;
use kube::runtime::controller::Action;
use kube::runtime::watcher;

use runtime::fair_share::within_share;
use runtime::panic_safe::panic_safe;

/// Reconciles of one kind running at once (`--concurrency`). A reconcile mostly waits on the
/// API server; 64 keep it busy, and one namespace's quarter (16) is enough to issue at the API
/// server's pace.
pub const DEFAULT_CONCURRENCY: u16 = 64;

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

/// What every controller does when a reconcile of `kind` fails: log it, count it, and try again
/// after the object's backoff (reset by its next success).
fn error_policy<K>(
    kind: &'static str,
) -> impl Fn(Arc<K>, &Error, Arc<Context>) -> Action + Send + Sync + 'static
where
    K: kube::Resource<DynamicType = ()>,
{
    move |object, error, ctx| {
        tracing::warn!(%error, kind, label = error.metric_label(), "reconcile failed");
        runtime::metrics::RECONCILE_ERRORS.inc([kind, error.metric_label()]);
        let key = object.meta().uid.clone().unwrap_or_default();
        Action::requeue(
            ctx.backoff
                .next_delay(&key, runtime::backoff::TRANSIENT_RETRY),
        )
    }
}

/// kube-runtime's config for the controllers whose reconciles run [`guarded`]: they wait in the
/// fair share's queues, which bound them to `--concurrency` per kind, so kube-runtime hands
/// them over at once (no limit of its own).
fn queued() -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default()
}

/// The Secrets and ConfigMaps the controller created.
fn managed_objects() -> watcher::Config {
    watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"))
}

/// What a controller's stream yields per reconcile, logged: the error is already in the
/// object's status and events.
fn log_outcome<T, E: std::fmt::Display>(
    kind: &'static str,
) -> impl FnMut(Result<T, E>) -> std::future::Ready<()> {
    move |result| {
        if let Err(error) = result {
            tracing::debug!(%error, kind, "reconcile error");
        }
        std::future::ready(())
    }
}

/// The controllers, until a shutdown signal.
pub(crate) async fn reconcile_all(
    client: kube::Client,
    scope: &ReconcilerScope,
    ctx: Arc<Context>,
    watches: Arc<crate::shared_watch::SharedWatches>,
) {
    let Some(writers) = ctx.take_cache_writers() else {
        tracing::error!("the reconcilers were started twice in one process; not starting again");
        return;
    };
    let (binding_triggers, binding_receiver) = tokio::sync::mpsc::unbounded_channel();
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
    futures::join!(
        issuer::run_issuers(client.clone(), scope, ctx.clone()),
        issuer::run_cluster_issuers(client.clone(), scope, ctx.clone()),
        certificate::run_certificates(
            client.clone(),
            scope,
            ctx.clone(),
            writers,
            &watches,
            binding_triggers
        ),
        revocation::run_revocations(client.clone(), scope, ctx.clone()),
        binding::run_bindings(client, scope, ctx, &watches, binding_receiver),
        filled,
        stop_queues
    );
}
