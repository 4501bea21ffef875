//! Revocation reconciler: resolve the request against the ledger, record every revoked serial
//! there (permanently), ask for a re-issue if wanted, and hold deletion until the revoked
//! certificates have expired. The CRL itself is built by the Issuer's reconciler from the ledger.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::instrument;

use crate::api::{
    CONDITION_READY, CertificateRecord, ClusterIssuer, Issuer, IssuerKind, Revocation,
    RevocationRequester, RevocationStatus, RevokedCertificateStatus, RolesAnywhereBinding,
    WorkloadCertificate,
};
use crate::controller::ca::load_ca;
use crate::controller::conditions::{condition, status_changed};
use crate::controller::context::Context;
use crate::controller::crl::status_time;
use crate::controller::error::Error;
use crate::controller::issuer::CaIssuer;
use crate::controller::ledger::revocation_for;
use crate::controller::problem::Problem;
use crate::controller::reasons;
use crate::controller::revocation::{IamSessionRevoker, MAX_SESSION_SECONDS, RevokedSession};
use crate::controller::status::apply_status;
use crate::pki::{authority_id, parse_serial_hex, serial_hex};

/// Holds a Revocation until the certificate it revokes has expired.
pub const REVOCATION_FINALIZER: &str = "iamra.dev/revocation-protection";
/// Condition: False when the serial was never issued by the Issuer's CA.
pub const CONDITION_SERIAL_KNOWN: &str = "SerialKnown";
/// Condition: the live sessions of the revoked certificates are denied on the bound roles.
pub const CONDITION_LIVE_SESSIONS_ENDED: &str = "LiveSessionsEnded";
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
        return release_when_expired(&api, &revocation, &ctx).await;
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
    let generation = revocation.metadata.generation;
    let accepted = match accept(&revocation, &ctx, &namespace).await? {
        Ok(accepted) => accepted,
        Err(Problem {
            reason,
            message,
            retry,
        }) => {
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
                apply_status(&api, &revocation.name_any(), &status).await?;
                ctx.publish_event(revocation.as_ref(), true, reason, "Resolve", message)
                    .await;
            }
            // Refusals that only a change of the Revocation can lift wait for that change.
            return Ok(match retry.base_delay() {
                Some(base) => Action::requeue(
                    ctx.backoff
                        .next_delay(&revocation.uid().unwrap_or_default(), base),
                ),
                None => Action::await_change(),
            });
        }
    };
    ctx.backoff.reset(&revocation.uid().unwrap_or_default());
    let mut status = accepted_status(&revocation, &previous, &accepted);
    if let Some(revoker) = &ctx.live_sessions {
        end_live_sessions(
            &ctx,
            revoker,
            &revocation,
            &previous,
            &accepted,
            &mut status,
        )
        .await?;
    }
    let first_acceptance = previous.revoked_certificates.is_empty();
    if status_changed(&previous, &status) {
        apply_status(&api, &revocation.name_any(), &status).await?;
    }
    if first_acceptance {
        let serials: Vec<&str> = accepted
            .revoked
            .iter()
            .map(|r| r.serial_number.as_str())
            .collect();
        ctx.publish_event(
            revocation.as_ref(),
            !accepted.serial_known,
            if accepted.serial_known {
                reasons::ACCEPTED
            } else {
                reasons::UNKNOWN_SERIAL
            },
            "Resolve",
            format!(
                "Revoking serial(s) {} of Issuer {}",
                serials.join(", "),
                revocation.spec.issuer_ref.name
            ),
        )
        .await;
    }
    if revocation.spec.reissue == Some(true)
        && let Some(name) = &revocation.spec.certificate_ref.as_ref().map(|r| &r.name)
        && let Some(newest) = accepted.newest_of_certificate.as_ref()
    {
        let certificates: Api<WorkloadCertificate> =
            Api::namespaced(ctx.client.clone(), &namespace);
        let current = certificates
            .get_opt(name)
            .await?
            .and_then(|c| c.annotations().get(REISSUE_ANNOTATION).cloned());
        if current.as_deref() != Some(newest.as_str()) {
            // The re-issue must sort after the cut-off (the end of the Revocation's creation
            // second), or resolving the Revocation again would revoke the new certificate too.
            let until_cutoff =
                creation_second_end(&revocation).duration_since(jiff::Timestamp::now());
            if until_cutoff.is_positive() {
                let wait = Duration::from_millis(until_cutoff.as_millis().max(0) as u64 + 50);
                return Ok(Action::requeue(wait));
            }
            let patch = json!({"metadata": {"annotations": {REISSUE_ANNOTATION: newest}}});
            certificates
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
    }
    // Once more after the cut-off has settled: a certificate signed just before it whose record
    // was written after the first resolution is found then.
    let settled = creation_second_end(&revocation) + RESOLUTION_SETTLE;
    let until_settled = settled.duration_since(jiff::Timestamp::now());
    if until_settled.is_positive() {
        let wait = Duration::from_millis(until_settled.as_millis().max(0) as u64);
        return Ok(Action::requeue(wait));
    }
    Ok(Action::await_change())
}

/// How long after a Revocation's creation it is resolved once more.
const RESOLUTION_SETTLE: jiff::SignedDuration = jiff::SignedDuration::from_secs(10);

/// The end of the second the Revocation was created in (creationTimestamp has whole seconds):
/// certificates issued before it are its targets.
fn creation_second_end(revocation: &Revocation) -> jiff::Timestamp {
    creation_time(revocation) + jiff::SignedDuration::from_secs(1)
}

fn creation_time(revocation: &Revocation) -> jiff::Timestamp {
    revocation
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or_else(jiff::Timestamp::now)
}

/// What an accepted Revocation revoked.
struct Accepted {
    revoked: Vec<RevokedCertificateStatus>,
    /// The ledger records of what was revoked, as they now stand.
    records: Vec<CertificateRecord>,
    /// The serial of a `serialNumber` Revocation is one this CA issued.
    serial_known: bool,
    /// The latest revoked certificate of the referenced WorkloadCertificate (to re-issue).
    newest_of_certificate: Option<String>,
    revocation_time: Time,
}

/// The Issuer or ClusterIssuer the Revocation names, and its CA.
async fn issuer_and_ca(
    revocation: &Revocation,
    ctx: &Context,
    namespace: &str,
) -> Result<Result<(CaIssuer, crate::controller::ca::LoadedCa), Problem>, Error> {
    let reference = &revocation.spec.issuer_ref;
    let issuer_name = &reference.name;
    let issuer = match reference.kind() {
        IssuerKind::Issuer => Api::<Issuer>::namespaced(ctx.client.clone(), namespace)
            .get_opt(issuer_name)
            .await?
            .map(|issuer| CaIssuer::from_issuer(&issuer)),
        IssuerKind::ClusterIssuer => Api::<ClusterIssuer>::all(ctx.client.clone())
            .get_opt(issuer_name)
            .await?
            .map(|issuer| CaIssuer::from_cluster_issuer(&issuer, &ctx.cluster_resource_namespace)),
    };
    let Some(issuer) = issuer else {
        return Ok(Err(Problem::transient(
            reasons::ISSUER_NOT_FOUND,
            format!("{} {issuer_name} does not exist", reference.kind()),
        )));
    };
    let ca = match load_ca(ctx, &issuer, false).await {
        Ok(ca) => ca,
        Err(problem) => {
            return Ok(Err(Problem::transient(
                reasons::ISSUER_NOT_READY,
                format!("{}: {}", issuer.display(), problem.message),
            )));
        }
    };
    Ok(Ok((issuer, ca)))
}

/// What a `certificateRef` Revocation revokes.
struct CertificateScope<'a> {
    authority: &'a str,
    namespace: &'a str,
    certificate: &'a str,
    /// Only certificates issued before this are targets.
    cutoff: jiff::Timestamp,
    now: jiff::Timestamp,
}

/// The records a `certificateRef` Revocation revokes, and the newest of them (to re-issue).
struct CertificateTargets {
    targets: Vec<CertificateRecord>,
    newest: Option<String>,
}

/// Every unexpired certificate of the WorkloadCertificate issued before the cut-off, and every
/// unexpired certificate of the namespace with one of their keys.
async fn certificate_targets(
    ctx: &Context,
    scope: &CertificateScope<'_>,
) -> Result<CertificateTargets, Error> {
    let CertificateScope {
        authority,
        namespace,
        certificate,
        cutoff,
        now,
    } = *scope;
    let issued: Vec<CertificateRecord> = ctx
        .ledger
        .records_of_certificate(authority, namespace, certificate)
        .await?
        .into_iter()
        .filter(|r| r.spec.not_after.0 > now)
        .filter(|r| {
            r.spec
                .issued
                .as_ref()
                .is_some_and(|i| i.issued_at.0 < cutoff)
        })
        .collect();
    let newest = issued
        .iter()
        .max_by_key(|r| r.spec.issued.as_ref().map(|i| i.issued_at.0))
        .map(|r| r.spec.serial_number.clone());
    let keys: BTreeSet<String> = issued
        .iter()
        .filter_map(|r| r.spec.issued.as_ref().map(|i| i.key_fingerprint.clone()))
        .collect();
    let mut targets = issued;
    for key in keys {
        for record in ctx.ledger.records_with_key(authority, &key).await? {
            let same_namespace = record
                .spec
                .issued
                .as_ref()
                .is_some_and(|i| i.namespace == namespace);
            if same_namespace
                && record.spec.not_after.0 > now
                && !targets.iter().any(|t| t.name_any() == record.name_any())
            {
                targets.push(record);
            }
        }
    }
    Ok(CertificateTargets { targets, newest })
}

/// Records every target as revoked in the ledger (once: a record already revoked keeps its
/// first revocation); the status entries, by serial, and the records as they are now.
async fn record_revocations(
    ctx: &Context,
    targets: &[CertificateRecord],
    recorded: &crate::api::RecordedRevocation,
    uid: &str,
) -> Result<(Vec<RevokedCertificateStatus>, Vec<CertificateRecord>), Error> {
    let mut revoked = Vec::new();
    let mut records = Vec::new();
    for target in targets {
        let record = ctx.ledger.revoke(target, recorded).await?;
        records.push(record.clone());
        let first_revoked_by = record
            .spec
            .revocation
            .as_ref()
            .filter(|r| r.requested_by.uid != uid)
            .map(|r| r.requested_by.name.clone());
        revoked.push(RevokedCertificateStatus {
            serial_number: record.spec.serial_number.clone(),
            not_after: Some(record.spec.not_after.clone()),
            certificate: record.spec.issued.as_ref().map(|i| i.certificate.clone()),
            first_revoked_by,
        });
    }
    revoked.sort_by(|a, b| a.serial_number.cmp(&b.serial_number));
    Ok((revoked, records))
}

/// What a `serialNumber` Revocation may revoke, and under whom.
struct SerialScope<'a> {
    authority: &'a str,
    namespace: &'a str,
    /// A Revocation of the platform team (in the cluster resource namespace, for a ClusterIssuer).
    platform: bool,
    issuer: &'a CaIssuer,
    ca_not_after: &'a Time,
    recorded: &'a crate::api::RecordedRevocation,
}

/// The record a `serialNumber` Revocation revokes, and whether this CA issued that serial: an
/// unknown serial is revoked anyway (until the CA expires), except under a shared CA, where only
/// the platform team may; one issued to another namespace is refused.
async fn serial_target(
    ctx: &Context,
    scope: &SerialScope<'_>,
    requested: &str,
) -> Result<Result<(CertificateRecord, bool), Problem>, Error> {
    let SerialScope {
        authority,
        namespace,
        platform,
        issuer,
        ca_not_after,
        recorded,
    } = *scope;
    let serial = match parse_serial_hex(requested) {
        Ok(bytes) => serial_hex(&bytes),
        Err(error) => {
            return Ok(Err(Problem::until_changed(
                reasons::INVALID_SERIAL_NUMBER,
                error.to_string(),
            )));
        }
    };
    match ctx.ledger.record(authority, &serial).await? {
        Some(record) => {
            if let Some(issued) = &record.spec.issued
                && issued.namespace != namespace
                && !platform
            {
                return Ok(Err(Problem::until_changed(
                    reasons::NOT_YOUR_CERTIFICATE,
                    format!(
                        "serial {serial} of {} was issued to another namespace; a Revocation may revoke only certificates issued to its own namespace (the platform team revokes any from namespace {})",
                        issuer.display(),
                        ctx.cluster_resource_namespace
                    ),
                )));
            }
            // A record made by an earlier revocation of a serial never issued here.
            let known = record.spec.issued.is_some();
            Ok(Ok((record, known)))
        }
        None if issuer.kind == IssuerKind::ClusterIssuer && !platform => {
            Ok(Err(Problem::until_changed(
                reasons::UNKNOWN_SERIAL,
                format!(
                    "{} never issued serial {serial} to namespace {namespace}; only the platform team (a Revocation in namespace {}) may revoke a serial the shared CA has no record of",
                    issuer.display(),
                    ctx.cluster_resource_namespace
                ),
            )))
        }
        None => {
            let record = ctx
                .ledger
                .revoke_unissued(authority, &serial, ca_not_after.clone(), recorded)
                .await?;
            Ok(Ok((record, false)))
        }
    }
}

/// Resolves the request against the ledger and records the revocation of every target there.
/// Deterministic: a certificate issued after the Revocation was created is never a target, so
/// resolving again (after a status was wiped, or a restore) revokes nothing new by mistake.
async fn accept(
    revocation: &Revocation,
    ctx: &Context,
    namespace: &str,
) -> Result<Result<Accepted, Problem>, Error> {
    let (issuer, ca) = match issuer_and_ca(revocation, ctx, namespace).await? {
        Ok(found) => found,
        Err(problem) => return Ok(Err(problem)),
    };
    // Under a shared CA only the platform team (a Revocation in the cluster resource namespace)
    // may revoke what was issued to another namespace, or a serial the CA never issued.
    let platform =
        issuer.kind == IssuerKind::ClusterIssuer && namespace == ctx.cluster_resource_namespace;
    let authority = authority_id(&ca.certificate.public_key_info);
    // The latest a certificate of the CA can be valid: how long an unissued serial stays revoked.
    let ca_not_after =
        status_time(ca.certificate.not_after).ok_or(Error::MissingObjectKey("CA notAfter"))?;
    let uid = revocation.uid().ok_or(Error::MissingObjectKey("uid"))?;
    let requester = RevocationRequester {
        namespace: namespace.to_string(),
        name: revocation.name_any(),
        uid: uid.clone(),
    };
    let created = creation_time(revocation);
    // creationTimestamp has whole seconds: a certificate issued in the same second (before the
    // Revocation, or a renewal racing it) is included, and the re-issue it asks for waits until
    // that second is over. Once this request has revoked something, its first acceptance
    // (microseconds) bounds the cut-off too. By uid: a new Revocation reusing an old one's name
    // gets a cut-off of its own (a copy restored from a backup revokes more, never less).
    let first_acceptance = ctx
        .ledger
        .revoked_by(&uid)
        .await?
        .into_iter()
        .filter(|record| record.spec.authority == authority)
        .filter_map(|record| record.spec.revocation)
        .filter(|r| r.requested_by.uid == uid)
        .map(|r| r.accepted_at.0)
        .min();
    let created_second_end = creation_second_end(revocation);
    let cutoff = first_acceptance.map_or(created_second_end, |first| first.min(created_second_end));
    let revocation_time = revocation
        .spec
        .revocation_time
        .clone()
        .unwrap_or(Time(created));
    let recorded = revocation_for(
        revocation.spec.reason.unwrap_or_default(),
        revocation_time.clone(),
        requester,
    );
    let now = ctx.clock.timestamp();
    let legacy_serial = legacy_serial(ctx, revocation, &issuer, &authority).await?;

    let mut targets = Vec::new();
    let mut serial_known = true;
    let mut newest_of_certificate = None;
    if let Some(reference) = &revocation.spec.certificate_ref {
        let of_certificate = CertificateScope {
            authority: &authority,
            namespace,
            certificate: &reference.name,
            cutoff,
            now,
        };
        let issued = certificate_targets(ctx, &of_certificate).await?;
        if issued.targets.is_empty() && legacy_serial.is_none() {
            return Ok(Err(Problem::transient(
                reasons::TARGET_NOT_ISSUED,
                format!(
                    "the ledger of {} holds no unexpired certificate issued for WorkloadCertificate {} before this Revocation was created",
                    issuer.display(),
                    reference.name
                ),
            )));
        }
        newest_of_certificate = issued.newest;
        targets.extend(issued.targets);
    } else if let Some(requested) = &revocation.spec.serial_number {
        let scope = SerialScope {
            authority: &authority,
            namespace,
            platform,
            issuer: &issuer,
            ca_not_after: &ca_not_after,
            recorded: &recorded,
        };
        match serial_target(ctx, &scope, requested).await? {
            Ok((record, known)) => {
                serial_known = known;
                targets.push(record);
            }
            Err(problem) => return Ok(Err(problem)),
        }
    } else {
        return Ok(Err(Problem::until_changed(
            reasons::INVALID_SPEC,
            "neither serialNumber nor certificateRef is set",
        )));
    }

    if let Some(serial) = legacy_serial
        && !targets.iter().any(|t| t.spec.serial_number == serial)
    {
        match ctx.ledger.record(&authority, &serial).await? {
            Some(record) => {
                if record
                    .spec
                    .issued
                    .as_ref()
                    .is_none_or(|i| i.namespace == namespace)
                {
                    targets.push(record);
                }
            }
            None => {
                targets.push(
                    ctx.ledger
                        .revoke_unissued(&authority, &serial, ca_not_after, &recorded)
                        .await?,
                );
            }
        }
    }

    let (revoked, records) = record_revocations(ctx, &targets, &recorded, &uid).await?;
    Ok(Ok(Accepted {
        revoked,
        records,
        serial_known,
        newest_of_certificate,
        revocation_time,
    }))
}

/// Denies the live sessions of every revoked certificate on the roles its bindings name, and
/// says so in `status` (`LiveSessionsEnded`, `liveSessionsDeniedOn`). Done once per set of
/// revoked certificates: the Deny statements are idempotent, the IAM calls are not free.
async fn end_live_sessions(
    ctx: &Context,
    revoker: &IamSessionRevoker,
    revocation: &Revocation,
    previous: &RevocationStatus,
    accepted: &Accepted,
    status: &mut RevocationStatus,
) -> Result<(), Error> {
    let generation = revocation.metadata.generation;
    let done = previous.revoked_certificates == accepted.revoked
        && previous
            .conditions
            .iter()
            .any(|c| c.type_ == CONDITION_LIVE_SESSIONS_ENDED && c.status == "True");
    if done {
        return Ok(());
    }
    let now = jiff::Timestamp::now().as_second();
    // Role ARN -> the sessions it must refuse.
    let mut by_role: std::collections::BTreeMap<String, Vec<RevokedSession>> = Default::default();
    let mut skipped = Vec::new();
    for record in &accepted.records {
        let Some(issued) = &record.spec.issued else {
            continue;
        };
        let bindings: Api<RolesAnywhereBinding> =
            Api::namespaced(ctx.client.clone(), &issued.namespace);
        for binding in bindings.list(&Default::default()).await?.items {
            if binding.certificate_name() != issued.certificate {
                continue;
            }
            // A custom session name is the tenant's and could match anyone's sessions.
            if let Some(name) = &binding.spec.role_session_name {
                skipped.push(format!(
                    "binding {} sets roleSessionName {name:?}, so its sessions cannot be told from others'",
                    binding.name_any()
                ));
                continue;
            }
            by_role
                .entry(binding.spec.role_arn.clone())
                .or_default()
                .push(RevokedSession {
                    serial: record.spec.serial_number.clone(),
                    expires: record.spec.not_after.0.as_second() + MAX_SESSION_SECONDS,
                });
        }
    }
    let mut failures = skipped;
    for (role, sessions) in &by_role {
        if let Err(error) = revoker.deny(role, sessions, now).await {
            failures.push(error.to_string());
        }
    }
    status.live_sessions_denied_on = by_role.keys().cloned().collect();
    status
        .conditions
        .retain(|c| c.type_ != CONDITION_LIVE_SESSIONS_ENDED);
    let condition = if failures.is_empty() {
        let message = if by_role.is_empty() {
            "No RolesAnywhereBinding uses the revoked certificates: no live session to end"
                .to_string()
        } else {
            format!(
                "Every session of the revoked certificates is denied on {}",
                status.live_sessions_denied_on.join(", ")
            )
        };
        condition(
            &previous.conditions,
            CONDITION_LIVE_SESSIONS_ENDED,
            true,
            reasons::DENIED_ON_ROLES,
            message,
            generation,
        )
    } else {
        let message = failures.join("; ");
        tracing::warn!(%message, "live sessions could not be ended");
        ctx.publish_event(
            revocation,
            true,
            reasons::LIVE_SESSIONS_NOT_ENDED,
            "Revoke",
            message.clone(),
        )
        .await;
        condition(
            &previous.conditions,
            CONDITION_LIVE_SESSIONS_ENDED,
            false,
            reasons::IAM_FAILED,
            message,
            generation,
        )
    };
    status.conditions.push(condition);
    Ok(())
}

/// The serial a Revocation accepted before the ledger existed recorded in its status: carried
/// into the ledger once, so upgrading never un-revokes it (adding is the safe direction). Only
/// for a namespaced Issuer's Revocation created before its CA's ledger record: later statuses
/// are views of the ledger and never read.
async fn legacy_serial(
    ctx: &Context,
    revocation: &Revocation,
    issuer: &CaIssuer,
    authority: &str,
) -> Result<Option<String>, Error> {
    if issuer.kind != IssuerKind::Issuer {
        return Ok(None);
    }
    let Some(serial) = revocation
        .status
        .as_ref()
        .and_then(|s| s.serial_number.as_deref())
        .and_then(|s| parse_serial_hex(s).ok())
        .map(|bytes| serial_hex(&bytes))
    else {
        return Ok(None);
    };
    let ledger_since = ctx
        .ledger
        .authority(authority)
        .await?
        .and_then(|record| record.metadata.creation_timestamp)
        .map(|t| t.0);
    let predates_ledger = ledger_since.is_none_or(|since| creation_time(revocation) < since);
    Ok(predates_ledger.then_some(serial))
}

/// The status of an accepted Revocation; Ready stays as the CRL publisher last set it.
fn accepted_status(
    revocation: &Revocation,
    previous: &RevocationStatus,
    accepted: &Accepted,
) -> RevocationStatus {
    let generation = revocation.metadata.generation;
    let ready = previous
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION_READY && c.reason != reasons::AWAITING_CRL)
        .filter(|_| previous.revoked_certificates == accepted.revoked)
        .cloned()
        .unwrap_or_else(|| {
            condition(
                &previous.conditions,
                CONDITION_READY,
                false,
                reasons::AWAITING_CRL,
                "Revocation recorded in the ledger; waiting for a CRL that carries it",
                generation,
            )
        });
    let known = if accepted.serial_known {
        condition(
            &previous.conditions,
            CONDITION_SERIAL_KNOWN,
            true,
            reasons::ISSUED,
            "The ledger records the issuance of every revoked serial",
            generation,
        )
    } else {
        condition(
            &previous.conditions,
            CONDITION_SERIAL_KNOWN,
            false,
            reasons::UNKNOWN_SERIAL,
            "This CA never issued the serial; it is revoked anyway, until the CA expires",
            generation,
        )
    };
    let mut conditions = vec![ready, known];
    conditions.extend(
        previous
            .conditions
            .iter()
            .filter(|c| {
                c.type_ == CONDITION_DELETION_BLOCKED || c.type_ == CONDITION_LIVE_SESSIONS_ENDED
            })
            .cloned(),
    );
    RevocationStatus {
        conditions,
        observed_generation: generation,
        serial_number: accepted
            .newest_of_certificate
            .clone()
            .or_else(|| accepted.revoked.first().map(|r| r.serial_number.clone())),
        revoked_certificates: accepted.revoked.clone(),
        revocation_time: Some(accepted.revocation_time.clone()),
        certificate_not_after: accepted
            .revoked
            .iter()
            .filter_map(|r| r.not_after.clone())
            .max_by_key(|t| t.0),
        crl_number: previous.crl_number,
        import_time: previous.import_time.clone(),
        live_sessions_denied_on: previous.live_sessions_denied_on.clone(),
    }
}

/// How often a Revocation whose deletion is held is looked at again.
const BLOCKED_DELETION_RECHECK: Duration = Duration::from_secs(60);

/// Releases a deleted Revocation once every certificate it revoked has expired, or at once when
/// its namespace is being deleted (held, it would keep the namespace terminating for as long as a
/// certificate lives). The ledger, not this object, keeps the entries on the CRL, so releasing it
/// early loses nothing; it is held so that `kubectl get` keeps showing what is still in force.
async fn release_when_expired(
    api: &Api<Revocation>,
    revocation: &Revocation,
    ctx: &Context,
) -> Result<Action, Error> {
    let name = revocation.name_any();
    if !revocation
        .finalizers()
        .iter()
        .any(|f| f == REVOCATION_FINALIZER)
    {
        return Ok(Action::await_change());
    }
    let now = ctx.clock.timestamp();
    let uid = revocation.uid().unwrap_or_default();
    let until = ctx
        .ledger
        .revoked_by(&uid)
        .await?
        .into_iter()
        .map(|record| record.spec.not_after.0)
        .max();
    let still_valid = until.is_some_and(|until| until > now);
    // Asked only when it decides anything: a Revocation with nothing valid left goes anyway.
    let namespace_terminating = match revocation.namespace() {
        Some(namespace) if still_valid => {
            Api::<k8s_openapi::api::core::v1::Namespace>::all(ctx.client.clone())
                .get_opt(&namespace)
                .await?
                .is_none_or(|n| n.metadata.deletion_timestamp.is_some())
        }
        _ => false,
    };
    match until {
        Some(until) if still_valid && !namespace_terminating => {
            let message = format!(
                "A certificate this Revocation revoked is valid until {until}; the Revocation is kept until then. Its entries stay on the CRL until then whatever happens to this object"
            );
            let previous = revocation.status.clone().unwrap_or_default();
            let mut status = previous.clone();
            status
                .conditions
                .retain(|c| c.type_ != CONDITION_DELETION_BLOCKED);
            status.conditions.push(condition(
                &previous.conditions,
                CONDITION_DELETION_BLOCKED,
                true,
                reasons::CERTIFICATE_STILL_VALID,
                message.clone(),
                revocation.metadata.generation,
            ));
            if status_changed(&previous, &status) {
                apply_status(api, &name, &status).await?;
                ctx.publish_event(
                    revocation,
                    true,
                    reasons::DELETION_BLOCKED,
                    "Delete",
                    message,
                )
                .await;
            }
            let wait = Duration::from_secs(
                until.as_second().saturating_sub(now.as_second()).max(1) as u64,
            );
            // Looked at again within a minute: nothing else wakes it when its namespace starts
            // terminating.
            Ok(Action::requeue(wait.min(BLOCKED_DELETION_RECHECK)))
        }
        _ => {
            let remaining: Vec<String> = revocation
                .finalizers()
                .iter()
                .filter(|f| *f != REVOCATION_FINALIZER)
                .cloned()
                .collect();
            let patch = json!({"metadata": {"finalizers": remaining, "resourceVersion": revocation.resource_version()}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            if namespace_terminating {
                tracing::info!(
                    "namespace being deleted; Revocation released (the ledger keeps its entries)"
                );
            } else {
                tracing::info!("revoked certificates expired; Revocation released");
            }
            Ok(Action::await_change())
        }
    }
}
