//! The CRL part of an Issuer's reconcile: publish, import into Roles Anywhere, and report on the
//! Issuer and on every Revocation the CRL carries.

use std::time::Duration;

use super::import::{ImportAction, ImportedSlots, default_crl_name, import_all};
use super::mark::mark_revocations;
use crate::api::{IssuerKind, IssuerStatus, RolesAnywhereCrlTarget};
use crate::controller::ca::LoadedCa;
use crate::controller::conditions::{condition, status_changed};
use crate::controller::context::Context;
use crate::controller::crl::{PublishedCrl, publish_crl, status_time};
use crate::controller::error::Error;
use crate::controller::issuer::CaIssuer;
use crate::controller::policy::minimums::BelowMinimum;
use crate::controller::problem::Problem;
use crate::controller::reasons;
use crate::rolesanywhere::crl_import::ROLES_ANYWHERE_MAX_CRL_BYTES;

/// Condition: the current CRL is published (ConfigMap and HTTP).
pub const CONDITION_CRL_PUBLISHED: &str = "CrlPublished";
/// Condition: Roles Anywhere holds the current CRL.
pub const CONDITION_CRL_IMPORTED: &str = "CrlImported";
/// Condition: the CRL is well within Roles Anywhere's import limit.
pub const CONDITION_CRL_CAPACITY: &str = "CrlCapacity";

/// How often a CRL that Roles Anywhere already holds is checked for drift (disabled, deleted or
/// overwritten out of band): one GetCrl per trust anchor, well under the 1 request/s quota.
pub const DRIFT_CHECK_INTERVAL: Duration = Duration::from_secs(300);
/// Publishes (and imports) the CRL, writing the outcome into `status`; returns when to look
/// again. Each step reports its own outcome: publish, forget expired records, mark the
/// Revocations, import.
pub async fn reconcile_crl(
    ctx: &Context,
    issuer: &CaIssuer,
    ca: &LoadedCa,
    previous: &IssuerStatus,
    status: &mut IssuerStatus,
) -> Result<Option<Duration>, Error> {
    let uid = format!("{}/crl", issuer.uid);
    let now = ctx.clock.now();
    let published = match publish_crl(ctx, issuer, ca, now).await {
        Ok(published) => published,
        Err(problem) => {
            tracing::warn!(reason = problem.reason, message = %problem.message, "CRL publish failed");
            report_failure(
                ctx,
                issuer,
                previous,
                status,
                CONDITION_CRL_PUBLISHED,
                "PublishCRL",
                problem,
                Announce::Always,
            )
            .await;
            return Ok(Some(retry_soon(ctx, &uid)));
        }
    };
    report_published(ctx, issuer, previous, status, &published).await;
    if published.new {
        forget_expired_records(ctx, &published, now).await;
    }
    mark_revocations(ctx, issuer, &published, false).await?;
    let Some(target) = &issuer.spec.roles_anywhere else {
        ctx.backoff.reset(&uid);
        return Ok(Some(published.refresh_in));
    };
    if issuer.kind == IssuerKind::Issuer
        && !ctx
            .platform
            .grants_trust_anchor(&issuer.resource_namespace, &target.trust_anchor_arn)
    {
        refuse_ungranted_trust_anchor(ctx, issuer, target, previous, status).await;
        ctx.backoff.reset(&uid);
        return Ok(Some(published.refresh_in));
    }
    let crl_name = target
        .crl_name
        .clone()
        .unwrap_or_else(|| default_crl_name(issuer.ledger_namespace(), &issuer.name));
    match import_all(ctx, target, &crl_name, &published, now).await {
        Ok(slots) => {
            let second_slot_refused = slots.second_slot_refused.is_some();
            if !second_slot_refused {
                ctx.backoff.reset(&uid);
            }
            report_imported(ctx, issuer, previous, status, &published, slots).await;
            mark_revocations(ctx, issuer, &published, true).await?;
            if second_slot_refused {
                // Split as soon as the second slot is free again.
                return Ok(Some(retry_soon(ctx, &uid)));
            }
            Ok(Some(published.refresh_in.min(ctx.crl_drift_check_interval)))
        }
        Err(problem) => {
            tracing::warn!(reason = problem.reason, message = %problem.message, "CRL import failed");
            report_failure(
                ctx,
                issuer,
                previous,
                status,
                CONDITION_CRL_IMPORTED,
                "ImportCRL",
                problem,
                Announce::OnChange,
            )
            .await;
            Ok(Some(retry_soon(ctx, &uid)))
        }
    }
}

fn retry_soon(ctx: &Context, uid: &str) -> Duration {
    ctx.backoff
        .next_delay(uid, crate::controller::runtime::backoff::TRANSIENT_RETRY)
}

/// When a failure is announced as a Warning event.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Announce {
    Always,
    /// Only when the conditions changed (an import retried with the same outcome is quiet).
    OnChange,
}

/// `condition_type` False with the problem, and a Warning event as `announce` says.
#[allow(clippy::too_many_arguments)]
async fn report_failure(
    ctx: &Context,
    issuer: &CaIssuer,
    previous: &IssuerStatus,
    status: &mut IssuerStatus,
    condition_type: &str,
    action: &str,
    problem: Problem,
    announce: Announce,
) {
    status.conditions.push(problem.condition(
        &previous.conditions,
        condition_type,
        issuer.generation,
    ));
    if announce == Announce::Always || status_changed(&previous.conditions, &status.conditions) {
        ctx.publish_event_about(
            &issuer.reference,
            true,
            problem.reason,
            action,
            problem.message,
        )
        .await;
    }
}

/// The published CRL in the status (number, time, the `CrlPublished` and `CrlCapacity`
/// conditions) and its events.
async fn report_published(
    ctx: &Context,
    issuer: &CaIssuer,
    previous: &IssuerStatus,
    status: &mut IssuerStatus,
    published: &PublishedCrl,
) {
    let generation = issuer.generation;
    ctx.store_crl(issuer.ledger_namespace(), &issuer.name, published);
    status.crl_number = Some(published.number);
    status.last_crl_publish_time = status_time(published.this_update);
    let unusable = if published.unusable_records.is_empty() {
        String::new()
    } else {
        format!(
            "; {} ledger record(s) with an unusable serial left off: {}",
            published.unusable_records.len(),
            published.unusable_records.join(", ")
        )
    };
    let raised = published
        .refresh_raised
        .as_ref()
        .map(|raised| format!("; {raised}"))
        .unwrap_or_default();
    status.conditions.push(condition(
        &previous.conditions,
        CONDITION_CRL_PUBLISHED,
        true,
        reasons::PUBLISHED,
        format!(
            "CRL {} carries {} revocation(s){unusable}{raised}",
            published.number,
            published.serials.len()
        ),
        generation,
    ));
    if let (true, Some(raised)) = (published.new, &published.refresh_raised) {
        ctx.publish_event_about(
            &issuer.reference,
            true,
            BelowMinimum::REASON,
            "PublishCRL",
            raised.clone(),
        )
        .await;
    }
    if published.new {
        ctx.publish_event_about(
            &issuer.reference,
            false,
            reasons::CRL_PUBLISHED,
            "PublishCRL",
            format!(
                "Published CRL {} with {} revocation(s)",
                published.number,
                published.serials.len()
            ),
        )
        .await;
    }

    let capacity = crl_capacity(published, issuer.generation, &previous.conditions);
    let was_near_limit = previous
        .conditions
        .iter()
        .any(|c| c.type_ == CONDITION_CRL_CAPACITY && c.status == "False");
    if capacity.status == "False" && !was_near_limit {
        ctx.publish_event_about(
            &issuer.reference,
            true,
            &capacity.reason,
            "PublishCRL",
            capacity.message.clone(),
        )
        .await;
    }
    status.conditions.push(capacity);
}

/// How often a CA's expired ledger records are swept: a sweep lists every record of the CA, and
/// a record is kept an hour past its notAfter anyway.
const EXPIRED_SWEEP_INTERVAL_SECONDS: i64 = 3600;

/// Ledger records past their notAfter (and its grace) go, at most once per
/// [`EXPIRED_SWEEP_INTERVAL_SECONDS`] per CA, so a CRL published among many certificates does
/// not list them all each time.
async fn forget_expired_records(
    ctx: &Context,
    published: &PublishedCrl,
    now: time::OffsetDateTime,
) {
    let authority = &published.authority.spec.authority;
    {
        let Ok(mut swept) = ctx.expired_swept_at.lock() else {
            return;
        };
        let due = swept
            .get(authority)
            .is_none_or(|last| now.unix_timestamp() - last >= EXPIRED_SWEEP_INTERVAL_SECONDS);
        if !due {
            return;
        }
        swept.insert(authority.clone(), now.unix_timestamp());
    }
    match ctx
        .ledger
        .delete_expired(authority, now.unix_timestamp())
        .await
    {
        Ok(0) => {}
        Ok(deleted) => tracing::info!(deleted, "expired ledger records removed"),
        Err(error) => tracing::warn!(%error, "expired ledger records could not be removed"),
    }
}

/// What Roles Anywhere holds, in the status (`CrlImported`, the CRL ids) and as events.
async fn report_imported(
    ctx: &Context,
    issuer: &CaIssuer,
    previous: &IssuerStatus,
    status: &mut IssuerStatus,
    published: &PublishedCrl,
    slots: ImportedSlots,
) {
    let generation = issuer.generation;
    let ImportedSlots {
        slots: imported,
        second_slot_refused,
    } = slots;
    let ids: Vec<String> = imported.iter().map(|i| i.crl_id.clone()).collect();
    status.crl_id = ids.first().cloned();
    status.crl_ids = ids.clone();
    status.imported_crl_number = Some(published.number);
    status.last_crl_import_time = imported.iter().filter_map(|i| i.imported_at.clone()).max();
    let held_as = match (&second_slot_refused, ids.len() > 1) {
        (_, true) => format!("split by serial as {}", ids.join(" and ")),
        (Some(problem), false) => format!(
            "whole as {}: it is due to be split, but the trust anchor's second slot was refused ({}: {})",
            ids.join(""),
            problem.reason,
            problem.message
        ),
        (None, false) => format!("as {}", ids.join("")),
    };
    let message = format!("Roles Anywhere holds CRL {} {held_as}", published.number);
    let repeated = previous
        .conditions
        .iter()
        .any(|c| c.type_ == CONDITION_CRL_IMPORTED && c.message == message);
    if let Some(problem) = &second_slot_refused
        && !repeated
    {
        ctx.publish_event_about(
            &issuer.reference,
            true,
            reasons::CRL_SPLIT_REFUSED,
            "ImportCRL",
            format!(
                "CRL {} is due to be split, but the second CRL slot was refused: {}",
                published.number, problem.message
            ),
        )
        .await;
    }
    status.conditions.push(condition(
        &previous.conditions,
        CONDITION_CRL_IMPORTED,
        true,
        reasons::IMPORTED,
        message,
        generation,
    ));
    for imported in &imported {
        let Some(how) = imported.action else {
            continue;
        };
        ctx.publish_event_about(
            &issuer.reference,
            how == ImportAction::RepairedDrift,
            how.reason(),
            "ImportCRL",
            format!(
                "Roles Anywhere {} CRL {} ({})",
                how.verb(),
                published.number,
                imported.crl_id
            ),
        )
        .await;
    }
}

/// Reports that the namespace may not import into the trust anchor it names; no AWS call is
/// made. Waits for a spec change (or the platform's grant and the next refresh).
async fn refuse_ungranted_trust_anchor(
    ctx: &Context,
    issuer: &CaIssuer,
    target: &RolesAnywhereCrlTarget,
    previous: &IssuerStatus,
    status: &mut IssuerStatus,
) {
    let namespace = &issuer.resource_namespace;
    let anchor = &target.trust_anchor_arn;
    let message = format!(
        "trust anchor {anchor} is not granted to namespace {namespace}: the platform team grants it with the controller flag --trust-anchor-grant {namespace}={anchor}"
    );
    let repeated = previous.conditions.iter().any(|c| {
        c.type_ == CONDITION_CRL_IMPORTED
            && c.reason == reasons::TRUST_ANCHOR_NOT_GRANTED
            && c.message == message
    });
    status.conditions.push(condition(
        &previous.conditions,
        CONDITION_CRL_IMPORTED,
        false,
        reasons::TRUST_ANCHOR_NOT_GRANTED,
        message.clone(),
        issuer.generation,
    ));
    if !repeated {
        tracing::warn!(%anchor, "CRL not imported: trust anchor not granted to the namespace");
        ctx.publish_event_about(
            &issuer.reference,
            true,
            reasons::TRUST_ANCHOR_NOT_GRANTED,
            "ImportCRL",
            message,
        )
        .await;
    }
}

/// Share of Roles Anywhere's import limit at which the `CrlCapacity` condition turns False, well
/// before imports start failing.
const CRL_CAPACITY_WARNING_PERCENT: usize = 80;

/// The `CrlCapacity` condition: how much of the 300,000-byte import limit the CRL (or the larger
/// of its two shards) uses.
fn crl_capacity(
    published: &PublishedCrl,
    generation: Option<i64>,
    previous: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    let sizes: Vec<usize> = published.imports.iter().map(|c| c.pem.len()).collect();
    let size = sizes.iter().copied().max().unwrap_or(published.pem.len());
    let percent = size * 100 / ROLES_ANYWHERE_MAX_CRL_BYTES;
    let entries = published.serials.len();
    let message = if sizes.len() > 1 {
        let sizes: Vec<String> = sizes.iter().map(usize::to_string).collect();
        format!(
            "CRL {} carries {entries} entries, split by serial across the trust anchor's two CRL slots ({} PEM bytes); the larger is {percent}% of Roles Anywhere's {ROLES_ANYWHERE_MAX_CRL_BYTES}-byte import limit",
            published.number,
            sizes.join(" and ")
        )
    } else {
        format!(
            "CRL {} carries {entries} entries in {size} PEM bytes, {percent}% of Roles Anywhere's {ROLES_ANYWHERE_MAX_CRL_BYTES}-byte import limit",
            published.number
        )
    };
    if percent >= CRL_CAPACITY_WARNING_PERCENT {
        condition(
            previous,
            CONDITION_CRL_CAPACITY,
            false,
            reasons::NEAR_IMPORT_LIMIT,
            format!(
                "{message}: shorten certificate lifetimes (expired entries leave) or split workloads across Issuers before imports are refused"
            ),
            generation,
        )
    } else {
        condition(
            previous,
            CONDITION_CRL_CAPACITY,
            true,
            reasons::WITHIN_IMPORT_LIMIT,
            message,
            generation,
        )
    }
}
