//! The Revocation controller.

use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::controller::Controller;
use kube::runtime::watcher;

use super::reconcile;
use crate::api::Revocation;
use crate::api::scoped_api as api;
use crate::controller::{Context, ReconcilerScope, error_policy, guarded, log_outcome, queued};

/// Revocations, until a shutdown signal.
pub(crate) async fn run_revocations(
    client: kube::Client,
    scope: &ReconcilerScope,
    ctx: Arc<Context>,
) {
    Controller::new(
        api::<Revocation>(&client, &scope.namespace),
        watcher::Config::default(),
    )
    .with_config(queued())
    // A moved clock (tests only) may have made renewals, refreshes or releases due.
    .reconcile_all_on(ctx.clock.moves())
    .shutdown_on_signal()
    .run(
        guarded("revocation", &ctx, reconcile),
        error_policy("revocation"),
        ctx.clone(),
    )
    .for_each(log_outcome("revocation"))
    .await;
}
