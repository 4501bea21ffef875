//! Issuer reconciler: load (or create) the CA, check key and certificate match, report Ready.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use tracing::instrument;

use crate::api::{CONDITION_READY, ClusterIssuer, Issuer, IssuerStatus};
use crate::controller::ca::load_ca;
use crate::controller::conditions::{condition, status_changed};
use crate::controller::context::Context;
use crate::controller::crl;
use crate::controller::error::Error;
use crate::controller::issuer::CaIssuer;
use crate::controller::reasons;
use crate::controller::runtime::backoff::{CONFIGURATION_RETRY, TRANSIENT_RETRY};
use crate::controller::status::apply_status;

/// A Ready Issuer is looked at again this often (CA expiry, a deleted CA Secret).
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(600);

#[instrument(skip(issuer, ctx), fields(namespace = issuer.namespace(), name = issuer.name_any()))]
pub async fn reconcile(issuer: Arc<Issuer>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = issuer
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let api: Api<Issuer> = Api::namespaced(ctx.client.clone(), &namespace);
    let name = issuer.name_any();
    reconcile_ca(&ctx, &CaIssuer::from_issuer(&issuer), |status| {
        let (api, name) = (api.clone(), name.clone());
        async move { apply_status(&api, &name, &status).await }
    })
    .await
}

#[instrument(skip(issuer, ctx), fields(name = issuer.name_any()))]
pub async fn reconcile_cluster(
    issuer: Arc<ClusterIssuer>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let api: Api<ClusterIssuer> = Api::all(ctx.client.clone());
    let ca_issuer = CaIssuer::from_cluster_issuer(&issuer, &ctx.cluster_resource_namespace);
    let name = issuer.name_any();
    reconcile_ca(&ctx, &ca_issuer, |status| {
        let (api, name) = (api.clone(), name.clone());
        async move { apply_status(&api, &name, &status).await }
    })
    .await
}

/// Load (or create) the CA, report it, and publish and import its CRL: the same for both kinds.
async fn reconcile_ca<F, Fut>(ctx: &Context, issuer: &CaIssuer, patch: F) -> Result<Action, Error>
where
    F: Fn(IssuerStatus) -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    let previous = issuer.status.clone().unwrap_or_default();
    let generation = issuer.generation;
    let uid = issuer.uid.clone();

    match load_ca(ctx, issuer, true).await {
        Ok(ca) => {
            ctx.backoff.reset(&uid);
            if ca.created {
                ctx.publish_event_about(
                    &issuer.reference,
                    false,
                    reasons::CA_CREATED,
                    "Bootstrap",
                    format!(
                        "Created self-signed CA, SHA-256 fingerprint {}",
                        fingerprint(&ca.certificate.der)
                    ),
                )
                .await;
            }
            let mut status = IssuerStatus {
                conditions: vec![condition(
                    &previous.conditions,
                    CONDITION_READY,
                    true,
                    reasons::CA_READY,
                    format!(
                        "CA key ({}) and certificate loaded and matching",
                        ca.signer.source_name()
                    ),
                    generation,
                )],
                observed_generation: generation,
                key_source: Some(ca.signer.source_name().to_string()),
                ca_certificate: Some(ca.certificate_pem.clone()),
                ca_fingerprint_sha256: Some(fingerprint(&ca.certificate.der)),
                ca_not_after: jiff::Timestamp::from_second(ca.certificate.not_after)
                    .ok()
                    .map(Time),
                ..previous.clone()
            };
            let requeue = crl::reconcile_crl(ctx, issuer, &ca, &previous, &mut status).await?;
            if status_changed(&previous, &status) {
                tracing::info!(
                    key_source = ca.signer.source_name(),
                    crl_number = status.crl_number,
                    "issuer ready"
                );
                patch(status).await?;
            }
            Ok(Action::requeue(
                requeue.unwrap_or(RESYNC_INTERVAL).min(RESYNC_INTERVAL),
            ))
        }
        Err(problem) => {
            tracing::warn!(reason = problem.reason, message = %problem.message, "issuer not ready");
            let status = IssuerStatus {
                conditions: vec![problem.condition(
                    &previous.conditions,
                    CONDITION_READY,
                    generation,
                )],
                observed_generation: generation,
                ..previous.clone()
            };
            if status_changed(&previous, &status) {
                patch(status).await?;
                ctx.publish_event_about(
                    &issuer.reference,
                    true,
                    problem.reason,
                    "LoadCA",
                    problem.message.clone(),
                )
                .await;
            }
            Ok(Action::requeue(if problem.is_transient() {
                TRANSIENT_RETRY
            } else {
                CONFIGURATION_RETRY
            }))
        }
    }
}

/// SHA-256 of the DER certificate, colon-separated uppercase hex as `openssl x509 -fingerprint`
/// prints it.
pub fn fingerprint(der: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|octet| hex::encode_upper([*octet]))
        .collect::<Vec<_>>()
        .join(":")
}
