//! Importing a published CRL into Roles Anywhere: one CRL, or its two halves in the trust
//! anchor's two slots, under names no other CA holds.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use time::OffsetDateTime;

use crate::api::{CrlImportRecord, RolesAnywhereCrlTarget};
use crate::controller::context::Context;
use crate::controller::crl::{PublishedCrl, status_time};
use crate::controller::ledger::ClaimOutcome;
use crate::controller::problem::Problem;
use crate::controller::reasons;
use crate::pki::CRL_SHARDS;
use crate::rolesanywhere::crl_import::{ImportedCrlState, ROLES_ANYWHERE_MAX_CRL_BYTES};

/// Characters Roles Anywhere allows in a CRL name: `[a-zA-Z0-9-_ ]`, at most 255.
pub(super) const MAX_CRL_NAME_CHARS: usize = 255;

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

/// What an import step did, for the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ImportAction {
    Accepted,
    RepairedDrift,
}

impl ImportAction {
    pub(super) fn reason(self) -> &'static str {
        match self {
            ImportAction::Accepted => reasons::CRL_IMPORTED,
            ImportAction::RepairedDrift => reasons::CRL_DRIFT_REPAIRED,
        }
    }
    pub(super) fn verb(self) -> &'static str {
        match self {
            ImportAction::Accepted => "accepted",
            ImportAction::RepairedDrift => "had lost or changed its copy; re-imported",
        }
    }
}

pub(super) struct Imported {
    pub(super) crl_id: String,
    pub(super) imported_at: Option<Time>,
    /// None when Roles Anywhere already held it.
    pub(super) action: Option<ImportAction>,
}

/// The names of the trust anchor's two CRL slots for `crl_name`: itself, and `<crl_name> 2`
/// (within the service's 255 characters).
pub(super) fn slot_names(crl_name: &str) -> [String; CRL_SHARDS] {
    let stem: String = crl_name.chars().take(MAX_CRL_NAME_CHARS - 2).collect();
    [crl_name.to_string(), format!("{stem} 2")]
}

/// What the trust anchor holds after an import: each slot's CRL, and why the second slot could
/// not be used when the CRL went to the first one whole instead of split.
pub(super) struct ImportedSlots {
    pub(super) slots: Vec<Imported>,
    pub(super) second_slot_refused: Option<Problem>,
}

/// Makes Roles Anywhere hold every CRL of `published` (one, or the two shards of a split CRL),
/// and deletes a second slot this CA no longer needs.
pub(super) async fn import_all(
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
pub(super) async fn import_crl(
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
