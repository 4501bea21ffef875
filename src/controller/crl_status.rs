//! The CRL part of an Issuer's reconcile: publish, import into Roles Anywhere, and report on the
//! Issuer and on every Revocation the CRL carries.

use std::time::Duration;

use kube::api::Api;
use kube::{Resource, ResourceExt};

use super::ca::LoadedCa;
use super::conditions::{condition, status_changed};
use super::context::Context;
use super::crl::{PublishedCrl, publish_crl, status_time};
use super::error::Error;
use super::revocation::patch_status as patch_revocation_status;
use crate::api::{CONDITION_READY, Issuer, IssuerStatus, Revocation};

/// Condition: the current CRL is published (ConfigMap and HTTP).
pub const CONDITION_CRL_PUBLISHED: &str = "CrlPublished";
/// Condition: Roles Anywhere holds the current CRL.
pub const CONDITION_CRL_IMPORTED: &str = "CrlImported";

/// Publishes (and imports) the CRL, writing the outcome into `status`; returns when to look
/// again.
pub async fn reconcile_crl(
    ctx: &Context,
    issuer: &Issuer,
    ca: &LoadedCa,
    previous: &IssuerStatus,
    status: &mut IssuerStatus,
) -> Result<Option<Duration>, Error> {
    let generation = issuer.metadata.generation;
    let uid = format!("{}/crl", issuer.uid().unwrap_or_default());
    let published = match publish_crl(ctx, issuer, ca).await {
        Ok(published) => published,
        Err(problem) => {
            tracing::warn!(reason = problem.reason, message = %problem.message, "CRL publish failed");
            status.conditions.push(condition(
                &previous.conditions,
                CONDITION_CRL_PUBLISHED,
                false,
                problem.reason,
                problem.message.clone(),
                generation,
            ));
            ctx.publish_event(issuer, true, problem.reason, "PublishCRL", problem.message)
                .await;
            return Ok(Some(
                ctx.backoff.next_delay(&uid, super::issuer::TRANSIENT_RETRY),
            ));
        }
    };
    ctx.store_crl(
        &issuer.namespace().unwrap_or_default(),
        &issuer.name_any(),
        &published,
    );
    status.crl_number = Some(published.number);
    status.last_crl_publish_time = status_time(published.this_update);
    status.conditions.push(condition(
        &previous.conditions,
        CONDITION_CRL_PUBLISHED,
        true,
        "Published",
        format!(
            "CRL {} carries {} revocation(s)",
            published.number,
            published.revocations.len()
        ),
        generation,
    ));
    if published.new {
        ctx.publish_event(
            issuer,
            false,
            "CrlPublished",
            "PublishCRL",
            format!(
                "Published CRL {} with {} revocation(s)",
                published.number,
                published.revocations.len()
            ),
        )
        .await;
    }

    let Some(target) = &issuer.spec.roles_anywhere else {
        mark_revocations(ctx, issuer, &published, false).await?;
        ctx.backoff.reset(&uid);
        return Ok(Some(published.refresh_in));
    };
    mark_revocations(ctx, issuer, &published, false).await?;
    if previous.imported_crl_number == Some(published.number) {
        status.conditions.push(
            previous
                .conditions
                .iter()
                .find(|c| c.type_ == CONDITION_CRL_IMPORTED)
                .cloned()
                .unwrap_or_else(|| {
                    condition(
                        &[],
                        CONDITION_CRL_IMPORTED,
                        true,
                        "Imported",
                        format!("Roles Anywhere holds CRL {}", published.number),
                        generation,
                    )
                }),
        );
        mark_revocations(ctx, issuer, &published, true).await?;
        return Ok(Some(published.refresh_in));
    }
    let crl_name = target.crl_name.clone().unwrap_or_else(|| {
        format!(
            "iamra-{}-{}",
            issuer.namespace().unwrap_or_default(),
            issuer.name_any()
        )
    });
    match ctx
        .crl_importer
        .import(
            target,
            &crl_name,
            &published.pem,
            previous.crl_id.as_deref(),
        )
        .await
    {
        Ok(crl_id) => {
            ctx.backoff.reset(&uid);
            status.crl_id = Some(crl_id.clone());
            status.imported_crl_number = Some(published.number);
            status.last_crl_import_time = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
            );
            status.conditions.push(condition(
                &previous.conditions,
                CONDITION_CRL_IMPORTED,
                true,
                "Imported",
                format!("Roles Anywhere holds CRL {} as {crl_id}", published.number),
                generation,
            ));
            ctx.publish_event(
                issuer,
                false,
                "CrlImported",
                "ImportCRL",
                format!(
                    "Roles Anywhere accepted CRL {} ({crl_id})",
                    published.number
                ),
            )
            .await;
            mark_revocations(ctx, issuer, &published, true).await?;
            Ok(Some(published.refresh_in))
        }
        Err(error) => {
            let message = error.to_string();
            tracing::warn!(%message, "CRL import failed");
            status.conditions.push(condition(
                &previous.conditions,
                CONDITION_CRL_IMPORTED,
                false,
                error.reason(),
                message.clone(),
                generation,
            ));
            if status_changed(&previous.conditions, &status.conditions) {
                ctx.publish_event(issuer, true, error.reason(), "ImportCRL", message)
                    .await;
            }
            Ok(Some(
                ctx.backoff.next_delay(&uid, super::issuer::TRANSIENT_RETRY),
            ))
        }
    }
}

/// Records on each Revocation the CRL that first carried it and, with `imported`, that Roles
/// Anywhere accepted it; Ready once the revocation is in force.
async fn mark_revocations(
    ctx: &Context,
    issuer: &Issuer,
    published: &PublishedCrl,
    imported: bool,
) -> Result<(), Error> {
    let namespace = issuer.namespace().unwrap_or_default();
    let api: Api<Revocation> = Api::namespaced(ctx.client.clone(), &namespace);
    let needs_import = issuer.spec.roles_anywhere.is_some();
    for name in &published.revocations {
        let Some(revocation) = api.get_opt(name).await? else {
            continue;
        };
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
            "Imported"
        } else if needs_import {
            "AwaitingImport"
        } else {
            "Published"
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
            patch_revocation_status(&api, name, &status).await?;
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
