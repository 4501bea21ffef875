//! The operator as one process runs it: the HTTP server and the webhook on every replica, the
//! reconcilers only on the one that holds the Lease, and a shutdown that never lets two leaders
//! overlap. Above both the controller and the webhook, so neither imports the other.

use std::sync::Arc;
use std::time::Duration;

use crate::controller::runtime::fair_share::FairShare;
use crate::controller::runtime::leader::LeaderElector;
use crate::controller::runtime::{http, metrics};
use crate::controller::{
    Context, LeaderElectionConfig, LeaderElectionError, PlatformConfig, ReconcilerScope,
    reconcile_all,
};
use crate::fence::{LeadershipFence, fenced_client};
use crate::shared_watch::SharedWatches;
use crate::webhook::{self, WebhookError, WebhookOptions};

/// Where and how the operator runs.
#[derive(Clone, Debug, Default)]
pub struct OperatorOptions {
    /// Watch one namespace only; None watches the whole cluster.
    pub namespace: Option<String>,
    /// Reconciles of one kind running at once.
    pub concurrency: u16,
    /// Where the HTTP server (CRLs, health, metrics) listens; None runs none.
    pub http_address: Option<std::net::SocketAddr>,
    /// The pod-injection webhook; None runs none.
    pub webhook: Option<WebhookOptions>,
    /// Reconcile only while holding this Lease; None reconciles at once (a single replica).
    pub leader_election: Option<LeaderElectionConfig>,
    /// AWS endpoints and KMS key grants: the platform team's, from flags.
    pub platform: PlatformConfig,
    /// Where ClusterIssuers keep their CA Secrets and CRL ConfigMaps.
    pub cluster_resource_namespace: String,
    /// Whether this controller reconciles ClusterIssuers (cluster-scoped: by default only one
    /// that watches every namespace does).
    pub reconcile_cluster_issuers: bool,
    /// How often a CRL Roles Anywhere holds is checked for drift; None: the default
    /// ([`crate::controller::DRIFT_CHECK_INTERVAL`]).
    pub crl_drift_check_interval: Option<Duration>,
}

/// Why the controller stopped other than by a shutdown signal.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the controller's HTTP server could not start: {0}")]
    Http(#[from] std::io::Error),
    #[error(transparent)]
    LeaderElection(#[from] LeaderElectionError),
    #[error(transparent)]
    Webhook(#[from] WebhookError),
}

/// Serves HTTP at once and runs the reconcilers until a shutdown signal (SIGTERM, Ctrl-C);
/// with leader election, only while this replica holds the Lease. Losing the Lease returns
/// [`RunError::LeaderElection`]: the caller must exit without further work.
pub async fn run(
    client: kube::Client,
    aws: aws_config::SdkConfig,
    options: OperatorOptions,
) -> Result<(), RunError> {
    let scope = ReconcilerScope {
        namespace: options.namespace.clone(),
        concurrency: options.concurrency,
        reconcile_cluster_issuers: options.reconcile_cluster_issuers,
    };
    let instance = match &options.leader_election {
        Some(election) => election.identity.clone(),
        None => {
            std::env::var("POD_NAME").unwrap_or_else(|_| format!("iamra-{}", std::process::id()))
        }
    };
    // Only the reconcilers' writes are fenced: the Lease and the webhook are every replica's.
    let fence = Arc::new(match options.leader_election {
        Some(_) => LeadershipFence::candidate(),
        None => LeadershipFence::unfenced(),
    });
    let reconcilers_client = fenced_client(client.clone(), fence.clone());
    let mut ctx = Context::new(
        reconcilers_client.clone(),
        aws,
        instance,
        options.platform.clone(),
        fence.clone(),
    );
    if let Some(interval) = options.crl_drift_check_interval {
        ctx.crl_drift_check_interval = interval;
    }
    ctx.cluster_resource_namespace = options.cluster_resource_namespace.clone();
    ctx.clock = clock_from_env();
    ctx.fair_share = Arc::new(FairShare::for_concurrency(options.concurrency));
    let ctx = Arc::new(ctx);
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(
        options.webhook.is_none(),
    ));
    if let Some(address) = options.http_address {
        http::serve(address, ctx.clone(), ready.clone()).await?;
    }
    // Every replica answers admissions; only the leader reconciles. One watch of certificates
    // and of bindings serves the webhook and the controllers: started here when the webhook
    // needs it, else only once this replica reconciles (a standby then watches nothing).
    let mut watches = None;
    if let Some(webhook) = options.webhook.clone() {
        let started = Arc::new(SharedWatches::start(&client, &options.namespace).await);
        webhook::start(client.clone(), webhook, &started).await?;
        watches = Some(started);
        ready.store(true, std::sync::atomic::Ordering::Release);
    }
    let reconcilers = async {
        let watches = match watches {
            Some(watches) => watches,
            None => Arc::new(SharedWatches::start(&client, &options.namespace).await),
        };
        reconcile_all(reconcilers_client, &scope, ctx, watches).await
    };
    let Some(election) = options.leader_election.clone() else {
        metrics::set_leader(true);
        if let Stopped::Abandoned = until_stopped(reconcilers).await {
            tracing::warn!(
                grace = ?SHUTDOWN_GRACE,
                "reconciles still in flight after the shutdown grace period; exiting anyway"
            );
        }
        return Ok(());
    };
    let mut elector = LeaderElector::new(client.clone(), election, fence.clone())?;
    tokio::select! {
        () = elector.acquire() => {},
        () = crate::shutdown::signal() => return Ok(()),
    };
    metrics::set_leader(true);
    // The reconcilers end on a shutdown signal, after their in-flight reconciles (within the
    // grace period); the Lease is released only then, so the next leader never overlaps with
    // this one.
    let stopped = tokio::select! {
        stopped = until_stopped(reconcilers) => Ok(stopped),
        lost = elector.hold() => Err(lost),
    };
    metrics::set_leader(false);
    match stopped {
        Err(lost) => Err(lost.into()),
        Ok(Stopped::Finished) => {
            elector.release().await;
            Ok(())
        }
        // A call still in flight (a KMS signature, an UpdateCrl) may yet land: the Lease is
        // left to expire rather than handed over, so the next leader cannot act before it would.
        Ok(Stopped::Abandoned) => {
            tracing::warn!(
                grace = ?SHUTDOWN_GRACE,
                "reconciles still in flight after the shutdown grace period; exiting without releasing the Lease"
            );
            Ok(())
        }
    }
}

/// How long in-flight reconciles may run on after SIGTERM before the process exits anyway: the
/// kubelet's grace period is 30 s, and a rollout waits for every replica.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

enum Stopped {
    /// Every in-flight reconcile ended.
    Finished,
    /// Some were still running [`SHUTDOWN_GRACE`] after the shutdown signal.
    Abandoned,
}

/// Runs the reconcilers until they stop on a shutdown signal, waiting at most [`SHUTDOWN_GRACE`]
/// for their in-flight reconciles.
async fn until_stopped(reconcilers: impl std::future::Future<Output = ()>) -> Stopped {
    let grace_over = async {
        crate::shutdown::signal().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        () = reconcilers => Stopped::Finished,
        () = grace_over => Stopped::Abandoned,
    }
}

/// The system clock; in a dev-tools build, one the tests move through
/// [`crate::clock::CLOCK_OFFSET_FILE_ENV`].
fn clock_from_env() -> crate::clock::Clock {
    #[cfg(feature = "dev-tools")]
    if let Some(path) = std::env::var_os(crate::clock::CLOCK_OFFSET_FILE_ENV) {
        let (clock, hand) = crate::clock::Clock::movable();
        hand.follow_file(path.into());
        tracing::warn!("the controller's clock follows a test's offset file");
        return clock;
    }
    crate::clock::Clock::system()
}
