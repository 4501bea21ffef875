//! The CRL part of an Issuer's reconcile: publish, import into Roles Anywhere, and report on the
//! Issuer and on every Revocation the CRL carries.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::{Resource, ResourceExt};
use time::OffsetDateTime;

use crate::api::{
    CONDITION_READY, CrlImportRecord, IssuerKind, IssuerStatus, Revocation, RolesAnywhereCrlTarget,
};
use crate::controller::ca::LoadedCa;
use crate::controller::conditions::{condition, status_changed};
use crate::controller::context::Context;
use crate::controller::crl::{PublishedCrl, publish_crl, status_time};
use crate::controller::error::Error;
use crate::controller::issuer::CaIssuer;
use crate::controller::ledger::ClaimOutcome;
use crate::controller::policy::minimums::BelowMinimum;
use crate::controller::problem::Problem;
use crate::controller::reasons;
use crate::controller::status::apply_status;
use crate::pki::CRL_SHARDS;
use crate::rolesanywhere::crl_import::{ImportedCrlState, ROLES_ANYWHERE_MAX_CRL_BYTES};

/// Condition: the current CRL is published (ConfigMap and HTTP).
pub const CONDITION_CRL_PUBLISHED: &str = "CrlPublished";
/// Condition: Roles Anywhere holds the current CRL.
pub const CONDITION_CRL_IMPORTED: &str = "CrlImported";
/// Condition: the CRL is well within Roles Anywhere's import limit.
pub const CONDITION_CRL_CAPACITY: &str = "CrlCapacity";

/// How often a CRL that Roles Anywhere already holds is checked for drift (disabled, deleted or
/// overwritten out of band): one GetCrl per trust anchor, well under the 1 request/s quota.
pub const DRIFT_CHECK_INTERVAL: Duration = Duration::from_secs(300);
/// Characters Roles Anywhere allows in a CRL name: `[a-zA-Z0-9-_ ]`, at most 255.
const MAX_CRL_NAME_CHARS: usize = 255;

/// The CRL name used when the issuer names none: `iamra <namespace> <name>` for an Issuer,
/// `iamra-cluster <name>` for a ClusterIssuer (empty `namespace`). Spaces cannot occur in
/// Kubernetes names, so it is unambiguous; `.` (not allowed by the service) becomes `_`, which
/// cannot occur in a Kubernetes name either. Too long a name keeps a hash of the whole.
pub fn default_crl_name(namespace: &str, name: &str) -> String {
    let name = name.replace('.', "_");
    let name = if namespace.is_empty() {
        format!("iamra-cluster {name}")
    } else {
        format!("iamra {namespace} {name}")
    };
    if name.len() <= MAX_CRL_NAME_CHARS {
        return name;
    }
    let hash = crate::pki::sha256_hex(name.as_bytes());
    format!("{} {}", &name[..MAX_CRL_NAME_CHARS - 33], &hash[..32])
}

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
    status.conditions.push(condition(
        &previous.conditions,
        condition_type,
        false,
        problem.reason,
        problem.message.clone(),
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

/// Ledger records past their notAfter go: once per new CRL is often enough, since they only
/// matter until then.
async fn forget_expired_records(
    ctx: &Context,
    published: &PublishedCrl,
    now: time::OffsetDateTime,
) {
    let authority = &published.authority.spec.authority;
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

/// What an import step did, for the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ImportAction {
    Accepted,
    RepairedDrift,
}

impl ImportAction {
    fn reason(self) -> &'static str {
        match self {
            ImportAction::Accepted => reasons::CRL_IMPORTED,
            ImportAction::RepairedDrift => reasons::CRL_DRIFT_REPAIRED,
        }
    }
    fn verb(self) -> &'static str {
        match self {
            ImportAction::Accepted => "accepted",
            ImportAction::RepairedDrift => "had lost or changed its copy; re-imported",
        }
    }
}

struct Imported {
    crl_id: String,
    imported_at: Option<Time>,
    /// None when Roles Anywhere already held it.
    action: Option<ImportAction>,
}

/// The names of the trust anchor's two CRL slots for `crl_name`: itself, and `<crl_name> 2`
/// (within the service's 255 characters).
fn slot_names(crl_name: &str) -> [String; CRL_SHARDS] {
    let stem: String = crl_name.chars().take(MAX_CRL_NAME_CHARS - 2).collect();
    [crl_name.to_string(), format!("{stem} 2")]
}

/// What the trust anchor holds after an import: each slot's CRL, and why the second slot could
/// not be used when the CRL went to the first one whole instead of split.
struct ImportedSlots {
    slots: Vec<Imported>,
    second_slot_refused: Option<Problem>,
}

/// Makes Roles Anywhere hold every CRL of `published` (one, or the two shards of a split CRL),
/// and deletes a second slot this CA no longer needs.
async fn import_all(
    ctx: &Context,
    target: &RolesAnywhereCrlTarget,
    crl_name: &str,
    published: &PublishedCrl,
    now: OffsetDateTime,
) -> Result<ImportedSlots, Problem> {
    let [first_name, second_name] = slot_names(crl_name);
    let first_only = match published.imports.as_slice() {
        // The second slot first: when a CRL is split, half its entries move there before the
        // first slot lets them go, so no revoked serial is ever on neither.
        [first, second] => {
            match import_crl(ctx, target, &second_name, &second.pem, published, now).await {
                Ok(second) => {
                    let first =
                        import_crl(ctx, target, &first_name, &first.pem, published, now).await?;
                    return Ok(ImportedSlots {
                        slots: vec![first, second],
                        second_slot_refused: None,
                    });
                }
                // The whole CRL still fits one import: the first slot takes it rather than
                // leaving the new entries out.
                Err(problem) if published.pem.len() <= ROLES_ANYWHERE_MAX_CRL_BYTES => {
                    tracing::warn!(reason = problem.reason, message = %problem.message, "second CRL slot refused; importing the whole CRL into the first");
                    let whole =
                        import_crl(ctx, target, &first_name, &published.pem, published, now)
                            .await?;
                    return Ok(ImportedSlots {
                        slots: vec![whole],
                        second_slot_refused: Some(problem),
                    });
                }
                Err(problem) => return Err(problem),
            }
        }
        [whole] => import_crl(ctx, target, &first_name, &whole.pem, published, now).await?,
        _ => {
            return Err(Problem::transient(
                reasons::CRL_TOO_LARGE,
                format!(
                    "a CRL split in {} does not fit the trust anchor's {CRL_SHARDS} CRL slots",
                    published.imports.len()
                ),
            ));
        }
    };
    // Joined again (the first slot now holds every entry): the second slot is released.
    let authority = &published.authority.spec.authority;
    let anchor = &target.trust_anchor_arn;
    if let Some(entry) = published
        .authority
        .spec
        .imports
        .iter()
        .find(|i| &i.trust_anchor_arn == anchor && i.crl_name == second_name)
    {
        if let Some(crl_id) = &entry.crl_id {
            ctx.crl_importer.delete(target, crl_id).await?;
            tracing::info!(%crl_id, crl_name = %second_name, "second CRL slot released: the CRL fits one import again");
        }
        ctx.ledger
            .forget_import(authority, anchor, &second_name)
            .await?;
    }
    Ok(ImportedSlots {
        slots: vec![first_only],
        second_slot_refused: None,
    })
}

/// Makes Roles Anywhere hold `pem` (a CRL of `published`) under (trust anchor, `crl_name`),
/// which this CA must own: checked against the ledger, where the first CA to claim a name keeps
/// it.
async fn import_crl(
    ctx: &Context,
    target: &RolesAnywhereCrlTarget,
    crl_name: &str,
    pem: &str,
    published: &PublishedCrl,
    now: OffsetDateTime,
) -> Result<Imported, Problem> {
    let authority = &published.authority.spec.authority;
    let anchor = &target.trust_anchor_arn;
    let taken = |owner: String| {
        Problem::transient(
            reasons::CRL_NAME_TAKEN,
            format!(
                "CRL name {crl_name:?} on trust anchor {anchor} belongs to another CA (ledger authority {owner}); \
             set spec.rolesAnywhere.crlName to a name of this Issuer's own"
            ),
        )
    };
    if let ClaimOutcome::TakenBy { authority: owner } =
        ctx.ledger.claim(authority, anchor, crl_name).await?
    {
        return Err(taken(owner));
    }
    let mut entry = published
        .authority
        .spec
        .imports
        .iter()
        .find(|i| &i.trust_anchor_arn == anchor && i.crl_name == crl_name)
        .cloned();
    if entry.is_none() {
        // Claim first, then look again: of two CAs claiming at once, both see the same winner.
        let claim = CrlImportRecord {
            trust_anchor_arn: anchor.clone(),
            crl_name: crl_name.to_string(),
            claimed_at: Time(jiff::Timestamp::now()),
            crl_id: None,
            number: 0,
            pem_sha256: None,
            imported_at: None,
            verified_at: None,
        };
        ctx.ledger.record_import(authority, claim.clone()).await?;
        if let ClaimOutcome::TakenBy { authority: owner } =
            ctx.ledger.claim(authority, anchor, crl_name).await?
        {
            ctx.ledger
                .forget_import(authority, anchor, crl_name)
                .await?;
            return Err(taken(owner));
        }
        entry = Some(claim);
    }
    let Some(mut entry) = entry else {
        return Err(Problem::transient(
            reasons::LEDGER_UNAVAILABLE,
            "the import claim was not recorded",
        ));
    };

    let mut action = Some(ImportAction::Accepted);
    let pem_sha256 = crate::pki::sha256_hex(pem.as_bytes());
    // Records from before splitting carry no hash: one number was one CRL then.
    let same_crl = entry.number == published.number
        && entry
            .pem_sha256
            .as_ref()
            .is_none_or(|held| held == &pem_sha256);
    if let Some(crl_id) = entry.crl_id.clone()
        && same_crl
    {
        let checked_recently = entry.verified_at.as_ref().is_some_and(|at| {
            now.unix_timestamp() - at.0.as_second() < ctx.crl_drift_check_interval.as_secs() as i64
        });
        if checked_recently {
            return Ok(Imported {
                crl_id,
                imported_at: entry.imported_at,
                action: None,
            });
        }
        match ctx.crl_importer.check(target, &crl_id, pem).await? {
            ImportedCrlState::Current => {
                entry.verified_at = status_time(now.unix_timestamp());
                ctx.ledger.record_import(authority, entry.clone()).await?;
                return Ok(Imported {
                    crl_id,
                    imported_at: entry.imported_at,
                    action: None,
                });
            }
            state => {
                tracing::warn!(?state, %crl_id, "Roles Anywhere's copy of the CRL drifted; repairing");
                action = Some(ImportAction::RepairedDrift);
            }
        }
    }
    // A newer CRL was published meanwhile (by another writer): that one is imported instead.
    if let Some(latest) = ctx.ledger.authority(authority).await?
        && latest
            .spec
            .published
            .as_ref()
            .is_some_and(|p| p.number > published.number)
    {
        return Err(Problem::transient(
            reasons::SUPERSEDED,
            format!(
                "CRL {} was superseded by a newer CRL before it was imported",
                published.number
            ),
        ));
    }
    let ca_key = published.ca_public_key_info.clone();
    let crl_id = ctx
        .crl_importer
        .import(
            target,
            crl_name,
            pem,
            entry.crl_id.as_deref(),
            &|crl: &[u8]| crate::pki::crl_is_signed_by(crl, &ca_key),
        )
        .await?;
    entry.crl_id = Some(crl_id.clone());
    entry.number = published.number;
    entry.pem_sha256 = Some(pem_sha256);
    entry.imported_at = status_time(now.unix_timestamp());
    entry.verified_at = entry.imported_at.clone();
    ctx.ledger.record_import(authority, entry.clone()).await?;
    Ok(Imported {
        crl_id,
        imported_at: entry.imported_at,
        action,
    })
}

/// Records on each Revocation the CRL that first carried it and, with `imported`, that Roles
/// Anywhere accepted it; Ready once the revocation is in force.
async fn mark_revocations(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_crl_names_are_unambiguous_and_within_the_service_rules() {
        assert_ne!(default_crl_name("a-b", "c"), default_crl_name("a", "b-c"));
        assert_ne!(
            default_crl_name("", "x"),
            default_crl_name("iamra-cluster", "x")
        );
        assert_eq!(default_crl_name("team", "my.ca"), "iamra team my_ca");
        assert_eq!(default_crl_name("", "platform"), "iamra-cluster platform");
        let long = default_crl_name(&"n".repeat(63), &"c".repeat(253));
        assert!(long.len() <= MAX_CRL_NAME_CHARS, "{}", long.len());
        for name in [long, default_crl_name("ns", "a.b.c")] {
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || " -_".contains(c)),
                "{name}"
            );
        }
    }

    #[test]
    fn the_second_slot_is_named_after_the_first_within_the_service_rules() {
        assert_eq!(
            slot_names("iamra team ca"),
            ["iamra team ca", "iamra team ca 2"].map(String::from)
        );
        let long = "x".repeat(MAX_CRL_NAME_CHARS);
        let [first, second] = slot_names(&long);
        assert_eq!(first, long);
        assert_eq!(second.len(), MAX_CRL_NAME_CHARS);
        assert_ne!(first, second);
    }
}
