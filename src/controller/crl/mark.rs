//! Reporting on every Revocation the CRL carries: in force once published (and imported),
//! with the CRL number and how long it took.

use kube::api::Api;
use kube::{Resource, ResourceExt};

use crate::api::{CONDITION_READY, IssuerKind, Revocation};
use crate::controller::conditions::{condition, status_changed};
use crate::controller::context::Context;
use crate::controller::crl::PublishedCrl;
use crate::controller::error::Error;
use crate::controller::issuer::CaIssuer;
use crate::controller::reasons;
use crate::controller::status::apply_status;

/// Records on each Revocation the CRL that first carried it and, with `imported`, that Roles
/// Anywhere accepted it; Ready once the revocation is in force.
pub(super) async fn mark_revocations(
    ctx: &Context,
    issuer: &CaIssuer,
    published: &PublishedCrl,
    imported: bool,
) -> Result<(), Error> {
    let api: Api<Revocation> = match issuer.kind {
        IssuerKind::Issuer => Api::namespaced(ctx.client.clone(), &issuer.resource_namespace),
        IssuerKind::ClusterIssuer => Api::all(ctx.client.clone()),
    };
    let needs_import = issuer.spec.roles_anywhere.is_some();
    let now = jiff::Timestamp::now();
    for revocation in api.list(&Default::default()).await?.items {
        let reference = &revocation.spec.issuer_ref;
        if !issuer.is_named_by(
            reference.kind(),
            &reference.name,
            &revocation.namespace().unwrap_or_default(),
        ) {
            continue;
        }
        let in_namespace: Api<Revocation> = Api::namespaced(
            ctx.client.clone(),
            &revocation.namespace().unwrap_or_default(),
        );
        let name = revocation.name_any();
        let name = &name;
        // Accepted revocations only; a certificate expired since has left the CRL on purpose.
        let listed = revocation
            .status
            .as_ref()
            .map(|s| s.revoked_certificates.as_slice())
            .unwrap_or_default();
        let carried = !listed.is_empty()
            && listed.iter().all(|certificate| {
                published.serials.contains(&certificate.serial_number)
                    || certificate.not_after.as_ref().is_some_and(|t| t.0 <= now)
            });
        if !carried {
            continue;
        }
        let previous = revocation.status.clone().unwrap_or_default();
        let mut status = previous.clone();
        status.crl_number = status.crl_number.or(Some(published.number));
        if imported && status.import_time.is_none() {
            status.import_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::now(),
            ));
        }
        let in_force = !needs_import || status.import_time.is_some();
        let message = match (&status.import_time, needs_import) {
            (Some(_), _) => format!(
                "Roles Anywhere refuses the certificate: CRL {} imported",
                published.number
            ),
            (None, true) => format!(
                "In CRL {}; waiting for Roles Anywhere to accept it",
                published.number
            ),
            (None, false) => format!(
                "In CRL {} (the Issuer has no Roles Anywhere target)",
                published.number
            ),
        };
        let reason = if status.import_time.is_some() {
            reasons::IMPORTED
        } else if needs_import {
            reasons::AWAITING_IMPORT
        } else {
            reasons::PUBLISHED
        };
        status.conditions.retain(|c| c.type_ != CONDITION_READY);
        status.conditions.insert(
            0,
            condition(
                &previous.conditions,
                CONDITION_READY,
                in_force,
                reason,
                message,
                revocation.meta().generation,
            ),
        );
        if status_changed(&previous, &status) {
            apply_status(&in_namespace, name, &status).await?;
            if in_force {
                let created = revocation.meta().creation_timestamp.as_ref().map(|t| t.0);
                let seconds = created.map(|created| {
                    (jiff::Timestamp::now() - created)
                        .total(jiff::Unit::Second)
                        .unwrap_or_default()
                });
                let note = match seconds {
                    Some(seconds) => format!(
                        "Revocation in force {seconds:.1}s after it was created (CRL {})",
                        published.number
                    ),
                    None => format!("Revocation in force (CRL {})", published.number),
                };
                ctx.publish_event(&revocation, false, reason, "Revoke", note)
                    .await;
            }
        }
    }
    Ok(())
}
