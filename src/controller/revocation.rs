//! Revocation reconciler: resolve the target once to a serial, record it, ask for a re-issue if
//! wanted, and hold deletion until the revoked certificate has expired. The CRL itself is built
//! by the Issuer's reconciler from all of its Revocations (see `crl`).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::instrument;

use super::conditions::{condition, status_changed};
use super::context::{Context, FIELD_MANAGER};
use super::error::Error;
use super::issuer::{CONFIGURATION_RETRY, TRANSIENT_RETRY};
use super::metrics::RECONCILE_ERRORS;
use crate::api::{CONDITION_READY, Issuer, Revocation, RevocationStatus, WorkloadCertificate};
use crate::pki::{parse_serial_hex, serial_hex};

/// Holds a Revocation until the certificate it revokes has expired.
pub const REVOCATION_FINALIZER: &str = "iamra.dev/revocation-protection";
/// Condition: False when the serial matches no current certificate of the Issuer.
pub const CONDITION_SERIAL_KNOWN: &str = "SerialKnown";
/// Condition: True while deletion waits for the certificate to expire.
pub const CONDITION_DELETION_BLOCKED: &str = "DeletionBlocked";
/// Set on a WorkloadCertificate to have the certificate with this serial replaced right away,
/// with a new key (`Revocation.spec.reissue`).
pub const REISSUE_ANNOTATION: &str = "iamra.dev/reissue-serial";

#[instrument(skip(revocation, ctx), fields(namespace = revocation.namespace(), name = revocation.name_any()))]
pub async fn reconcile(revocation: Arc<Revocation>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = revocation
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let api: Api<Revocation> = Api::namespaced(ctx.client.clone(), &namespace);
    if revocation.meta().deletion_timestamp.is_some() {
        return release_when_expired(&api, &revocation, &ctx, &namespace).await;
    }
    if !revocation
        .finalizers()
        .iter()
        .any(|f| f == REVOCATION_FINALIZER)
    {
        let mut finalizers = revocation.finalizers().to_vec();
        finalizers.push(REVOCATION_FINALIZER.to_string());
        // The resourceVersion makes this fail, rather than drop a finalizer, on a concurrent edit.
        let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": revocation.resource_version()}});
        api.patch(
            &revocation.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    let previous = revocation.status.clone().unwrap_or_default();
    if previous.serial_number.is_some() {
        // Resolved once, never again: the CRL publisher takes it from here.
        return Ok(Action::await_change());
    }
    let generation = revocation.metadata.generation;
    let resolved = match resolve(&revocation, &ctx, &namespace).await? {
        Ok(resolved) => resolved,
        Err((reason, message)) => {
            let mut status = previous.clone();
            status.observed_generation = generation;
            status.conditions = vec![condition(
                &previous.conditions,
                CONDITION_READY,
                false,
                reason,
                message.clone(),
                generation,
            )];
            if status_changed(&previous, &status) {
                patch_status(&api, &revocation.name_any(), &status).await?;
                ctx.publish_event(revocation.as_ref(), true, reason, "Resolve", message)
                    .await;
            }
            return Ok(Action::requeue(ctx.backoff.next_delay(
                &revocation.uid().unwrap_or_default(),
                TRANSIENT_RETRY,
            )));
        }
    };
    let revocation_time = revocation
        .spec
        .revocation_time
        .clone()
        .or_else(|| revocation.metadata.creation_timestamp.clone())
        .unwrap_or_else(|| Time(jiff::Timestamp::now()));
    let mut conditions = vec![condition(
        &[],
        CONDITION_READY,
        false,
        "AwaitingCRL",
        "Serial resolved; waiting for a CRL that carries it",
        generation,
    )];
    conditions.push(match &resolved.certificate {
        Some(name) => condition(&[], CONDITION_SERIAL_KNOWN, true, "CurrentCertificate", format!("Serial is the current certificate of WorkloadCertificate {name}"), generation),
        None => condition(
            &[],
            CONDITION_SERIAL_KNOWN,
            false,
            "UnknownSerial",
            "No WorkloadCertificate of this Issuer currently holds this serial; it is revoked anyway",
            generation,
        ),
    });
    let status = RevocationStatus {
        conditions,
        observed_generation: generation,
        serial_number: Some(resolved.serial.clone()),
        revocation_time: Some(revocation_time),
        certificate_not_after: resolved.not_after.clone(),
        crl_number: None,
        import_time: None,
    };
    patch_status(&api, &revocation.name_any(), &status).await?;
    ctx.publish_event(
        revocation.as_ref(),
        resolved.certificate.is_none(),
        if resolved.certificate.is_some() {
            "Resolved"
        } else {
            "UnknownSerial"
        },
        "Resolve",
        format!(
            "Revoking serial {} of Issuer {}",
            resolved.serial, revocation.spec.issuer_ref.name
        ),
    )
    .await;
    if revocation.spec.reissue == Some(true)
        && let Some(name) = &resolved.certificate
    {
        let certificates: Api<WorkloadCertificate> =
            Api::namespaced(ctx.client.clone(), &namespace);
        let patch = json!({"metadata": {"annotations": {REISSUE_ANNOTATION: resolved.serial}}});
        certificates
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(Action::await_change())
}

/// What a Revocation's target resolved to.
struct Resolved {
    serial: String,
    /// The WorkloadCertificate whose current certificate has this serial.
    certificate: Option<String>,
    not_after: Option<Time>,
}

/// Resolves the target, or names the reason it cannot be yet.
async fn resolve(
    revocation: &Revocation,
    ctx: &Context,
    namespace: &str,
) -> Result<Result<Resolved, (&'static str, String)>, Error> {
    let certificates: Api<WorkloadCertificate> = Api::namespaced(ctx.client.clone(), namespace);
    let issuer = &revocation.spec.issuer_ref.name;
    if let Some(reference) = &revocation.spec.certificate_ref {
        let Some(certificate) = certificates.get_opt(&reference.name).await? else {
            return Ok(Err((
                "TargetNotFound",
                format!("WorkloadCertificate {} does not exist", reference.name),
            )));
        };
        if &certificate.spec.issuer_ref.name != issuer {
            return Ok(Err((
                "IssuerMismatch",
                format!(
                    "WorkloadCertificate {} is issued by {}, not {issuer}",
                    reference.name, certificate.spec.issuer_ref.name
                ),
            )));
        }
        let status = certificate.status.unwrap_or_default();
        let Some(serial) = status.serial_number else {
            return Ok(Err((
                "TargetNotIssued",
                format!(
                    "WorkloadCertificate {} has no certificate yet",
                    reference.name
                ),
            )));
        };
        return Ok(Ok(Resolved {
            serial,
            certificate: Some(reference.name.clone()),
            not_after: status.not_after,
        }));
    }
    let Some(requested) = &revocation.spec.serial_number else {
        return Ok(Err((
            "InvalidSpec",
            "neither serialNumber nor certificateRef is set".into(),
        )));
    };
    let serial = match parse_serial_hex(requested) {
        Ok(bytes) => serial_hex(&bytes),
        Err(error) => return Ok(Err(("InvalidSerialNumber", error.to_string()))),
    };
    let holder = certificates
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .find(|c| {
            &c.spec.issuer_ref.name == issuer
                && c.status.as_ref().and_then(|s| s.serial_number.as_deref())
                    == Some(serial.as_str())
        });
    Ok(Ok(Resolved {
        serial,
        not_after: holder
            .as_ref()
            .and_then(|c| c.status.as_ref())
            .and_then(|s| s.not_after.clone()),
        certificate: holder.map(|c| c.name_any()),
    }))
}

/// Until when the revoked certificate can be valid: its own expiry when known, else its CA's
/// (no certificate outlives its CA here).
async fn valid_until(
    revocation: &Revocation,
    ctx: &Context,
    namespace: &str,
) -> Result<Option<jiff::Timestamp>, Error> {
    if let Some(not_after) = revocation
        .status
        .as_ref()
        .and_then(|s| s.certificate_not_after.as_ref())
    {
        return Ok(Some(not_after.0));
    }
    let issuers: Api<Issuer> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(issuers
        .get_opt(&revocation.spec.issuer_ref.name)
        .await?
        .and_then(|issuer| issuer.status)
        .and_then(|status| status.ca_not_after)
        .map(|time| time.0))
}

async fn release_when_expired(
    api: &Api<Revocation>,
    revocation: &Revocation,
    ctx: &Context,
    namespace: &str,
) -> Result<Action, Error> {
    let name = revocation.name_any();
    if !revocation
        .finalizers()
        .iter()
        .any(|f| f == REVOCATION_FINALIZER)
    {
        return Ok(Action::await_change());
    }
    let now = jiff::Timestamp::now();
    match valid_until(revocation, ctx, namespace).await? {
        Some(until)
            if until <= now
                || revocation
                    .status
                    .as_ref()
                    .and_then(|s| s.serial_number.as_ref())
                    .is_none() =>
        {
            let remaining: Vec<String> = revocation
                .finalizers()
                .iter()
                .filter(|f| *f != REVOCATION_FINALIZER)
                .cloned()
                .collect();
            let patch = json!({"metadata": {"finalizers": remaining, "resourceVersion": revocation.resource_version()}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            tracing::info!("revoked certificate expired; Revocation released");
            Ok(Action::await_change())
        }
        until => {
            let message = match until {
                Some(until) => format!("The revoked certificate is valid until {until}; this Revocation is kept (and stays in the CRL) until then"),
                None => "The revoked certificate's expiry is unknown; this Revocation is kept (and stays in the CRL) until its Issuer's CA expires".to_string(),
            };
            let previous = revocation.status.clone().unwrap_or_default();
            let mut status = previous.clone();
            status
                .conditions
                .retain(|c| c.type_ != CONDITION_DELETION_BLOCKED);
            status.conditions.push(condition(
                &previous.conditions,
                CONDITION_DELETION_BLOCKED,
                true,
                "CertificateStillValid",
                message.clone(),
                revocation.metadata.generation,
            ));
            if status_changed(&previous, &status) {
                patch_status(api, &name, &status).await?;
                ctx.publish_event(revocation, true, "DeletionBlocked", "Delete", message)
                    .await;
            }
            let wait = until
                .map(|until| {
                    Duration::from_secs(
                        until.as_second().saturating_sub(now.as_second()).max(1) as u64
                    )
                })
                .unwrap_or(CONFIGURATION_RETRY);
            Ok(Action::requeue(wait.min(Duration::from_secs(3600))))
        }
    }
}

pub async fn patch_status(
    api: &Api<Revocation>,
    name: &str,
    status: &RevocationStatus,
) -> Result<(), Error> {
    let patch = json!({"apiVersion": "iamra.dev/v1alpha1", "kind": "Revocation", "status": status});
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

pub fn error_policy(revocation: Arc<Revocation>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(error = %error, label = error.metric_label(), "revocation reconcile failed");
    RECONCILE_ERRORS.inc(["revocation", error.metric_label()]);
    Action::requeue(
        ctx.backoff
            .next_delay(&revocation.uid().unwrap_or_default(), TRANSIENT_RETRY),
    )
}
