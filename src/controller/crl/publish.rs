//! Building and publishing an Issuer's CRL from the revocation ledger (the CertificateRecords of
//! its CA), never from Revocation objects: the CRL number is reserved in the CA's ledger record
//! before the CRL is signed, so a crash can skip a number but never reuse one or go back.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use time::OffsetDateTime;

use crate::api::{
    CertificateAuthorityRecord, PublishedCrlRecord, PublishedShardRecord, parse_duration,
};
use crate::controller::ca::LoadedCa;
use crate::controller::context::Context;
use crate::controller::issuer::CaIssuer;
use crate::controller::issuer::fingerprint;
use crate::controller::ledger::revoked_entries;
use crate::controller::policy::minimums::{PlatformMinimums, format_duration};
use crate::controller::problem::Problem;
use crate::controller::reasons;
use crate::controller::runtime::metrics::CRL_SIGNING_SECONDS;
use crate::pki::{
    CrlSpec, RevokedCertificate, authority_id, build_crl, serial_hex, sha256_hex, split_into_shards,
};
use crate::rolesanywhere::crl_import::ROLES_ANYWHERE_MAX_CRL_BYTES;
use crate::signer::CaSigner;

/// DER CRL in the published ConfigMap (binaryData).
pub const CRL_DER_KEY: &str = "ca.crl";
/// PEM CRL in the published ConfigMap (data).
pub const CRL_PEM_KEY: &str = "ca.crl.pem";
/// Number of the CRL in the ConfigMap.
pub const CRL_NUMBER_ANNOTATION: &str = "iamra.dev/crl-number";
/// Highest number reserved by versions before the ledger; read once, to continue numbering.
pub const CRL_RESERVED_ANNOTATION: &str = "iamra.dev/crl-number-reserved";
/// The highest number read from a pre-ledger ConfigMap: far beyond any real count of CRLs, far
/// below the end of the range.
const MAX_LEGACY_CRL_NUMBER: i64 = 1 << 40;
/// Default CRL validity (nextUpdate - thisUpdate).
pub const DEFAULT_CRL_VALIDITY: &str = "24h";
/// A CRL whose PEM is larger than this is split across the trust anchor's two CRL slots: 80% of
/// Roles Anywhere's import limit, so a growing list is split well before imports are refused.
pub const SPLIT_ABOVE_PEM_BYTES: usize = ROLES_ANYWHERE_MAX_CRL_BYTES * 4 / 5;
/// A split CRL is joined again only below this, so a list near the threshold does not flap.
pub const JOIN_BELOW_PEM_BYTES: usize = ROLES_ANYWHERE_MAX_CRL_BYTES / 2;
/// PEM of each shard of a split CRL, in `<issuer>-crl-shards`: `shard-1.crl.pem`,
/// `shard-2.crl.pem`.
pub fn shard_pem_key(index: usize) -> String {
    format!("shard-{}.crl.pem", index + 1)
}

/// The ConfigMap holding an Issuer's CRL: `<issuer>-crl`.
pub fn crl_config_map_name(issuer: &str) -> String {
    format!("{issuer}-crl")
}

/// A CRL to hold in Roles Anywhere: the whole CRL, or one of its shards.
#[derive(Clone, Debug)]
pub struct ImportableCrl {
    pub pem: String,
    pub entries: usize,
}

/// The CRL an Issuer currently publishes.
#[derive(Clone, Debug)]
pub struct PublishedCrl {
    pub number: i64,
    pub pem: String,
    pub der: Vec<u8>,
    /// What Roles Anywhere must hold, in slot order: the whole CRL, or its two shards when it
    /// is too large for one import.
    pub imports: Vec<ImportableCrl>,
    pub this_update: i64,
    /// Whether this reconcile made it (rather than finding it current).
    pub new: bool,
    /// Serials (lowercase hex) it carries.
    pub serials: BTreeSet<String>,
    /// Revoked records the ledger holds that could not be listed (reported, never blocking).
    pub unusable_records: Vec<String>,
    /// When it must be re-signed even without changes.
    pub refresh_in: Duration,
    /// Why the refresh interval in effect is not the Issuer's (the platform's floor), if so.
    pub refresh_raised: Option<String>,
    /// The CA's ledger record after publishing.
    pub authority: CertificateAuthorityRecord,
    /// The CA's public key (DER SPKI), to recognise its CRLs.
    pub ca_public_key_info: Vec<u8>,
}

/// How long each CRL is valid and how often it is re-signed anyway.
struct CrlTiming {
    validity: Duration,
    refresh: Duration,
    /// Why the platform's floor changed what the Issuer asks for, if it did.
    raised: Option<String>,
}

fn crl_timing(issuer: &CaIssuer, minimums: &PlatformMinimums) -> Result<CrlTiming, Problem> {
    let settings = issuer.spec.crl.clone().unwrap_or_default();
    let requested_validity =
        parse_duration(settings.validity.as_deref().unwrap_or(DEFAULT_CRL_VALIDITY))
            .map_err(|e| Problem::permanent(reasons::INVALID_SPEC, e.to_string()))?;
    let requested_refresh = match &settings.refresh_interval {
        Some(text) => parse_duration(text)
            .map_err(|e| Problem::permanent(reasons::INVALID_SPEC, e.to_string()))?,
        None => requested_validity / 3,
    };
    let (refresh, below) = minimums.crl_refresh(requested_refresh);
    let Some(below) = below else {
        return Ok(CrlTiming {
            validity: requested_validity,
            refresh,
            raised: None,
        });
    };
    let mut raised = format!(
        "{below}; re-signed every {} instead",
        format_duration(refresh)
    );
    // A CRL must be re-signed before it expires, or relying parties see an expired one.
    let validity = if requested_validity <= refresh {
        let validity = refresh * 3;
        raised.push_str(&format!(
            ", valid for {} instead of crl.validity {}",
            format_duration(validity),
            format_duration(requested_validity)
        ));
        validity
    } else {
        requested_validity
    };
    Ok(CrlTiming {
        validity,
        refresh,
        raised: Some(raised),
    })
}

/// The CRL in the ConfigMap, when it is exactly the one the ledger says was published: a copy
/// anyone could have edited is used only if its SHA-256 is the ledger's.
fn verified_copy(
    config_map: Option<&ConfigMap>,
    published: &PublishedCrlRecord,
) -> Option<Vec<u8>> {
    let der = config_map?
        .binary_data
        .as_ref()?
        .get(CRL_DER_KEY)?
        .0
        .clone();
    (sha256_hex(&der) == published.sha256).then_some(der)
}

/// The shards in the shards ConfigMap, when each is exactly the one the ledger recorded.
fn verified_shards(
    config_map: Option<&ConfigMap>,
    published: &PublishedCrlRecord,
) -> Option<Vec<ImportableCrl>> {
    let data = config_map?.data.as_ref()?;
    published
        .shards
        .iter()
        .enumerate()
        .map(|(index, shard)| {
            let pem = data.get(&shard_pem_key(index))?;
            (sha256_hex(pem.as_bytes()) == shard.pem_sha256).then(|| ImportableCrl {
                pem: pem.clone(),
                entries: usize::try_from(shard.entries).unwrap_or(0),
            })
        })
        .collect()
}

/// The highest number a pre-ledger ConfigMap carries: continued, so an upgrade never goes back.
/// The annotations are writable in the namespace: bounded, so they cannot exhaust the numbers.
fn legacy_crl_number(config_map: Option<&ConfigMap>) -> i64 {
    [CRL_NUMBER_ANNOTATION, CRL_RESERVED_ANNOTATION]
        .iter()
        .filter_map(|key| config_map?.annotations().get(*key)?.parse::<i64>().ok())
        .filter(|number| (0..=MAX_LEGACY_CRL_NUMBER).contains(number))
        .max()
        .unwrap_or(0)
}

/// Whether a CRL of `pem_bytes` goes to Roles Anywhere split in two.
fn split_for_import(has_import_target: bool, pem_bytes: usize, split_before: bool) -> bool {
    has_import_target
        && (pem_bytes > SPLIT_ABOVE_PEM_BYTES
            || (split_before && pem_bytes >= JOIN_BELOW_PEM_BYTES))
}

/// Publishes a new CRL when the ledger's revocations, the CA or the refresh interval call for
/// one, or when the published copy is missing or not the one signed; otherwise returns the
/// current one.
pub async fn publish_crl(
    ctx: &Context,
    issuer: &CaIssuer,
    ca: &LoadedCa,
    now: OffsetDateTime,
) -> Result<PublishedCrl, Problem> {
    let CrlTiming {
        validity,
        refresh,
        raised: refresh_raised,
    } = crl_timing(issuer, &ctx.platform.minimums)?;
    let authority = authority_id(&ca.certificate.public_key_info);
    let has_import_target = issuer.spec.roles_anywhere.is_some();

    let config_maps: Api<ConfigMap> =
        Api::namespaced(ctx.client.clone(), &issuer.resource_namespace);
    let name = issuer.crl_config_map_name();
    let shards_name = shards_config_map_name(&name);
    let existing = config_maps.get_opt(&name).await?;
    let ca_not_after = status_time(ca.certificate.not_after).ok_or_else(|| {
        Problem::permanent(
            reasons::INVALID_CA_CERTIFICATE,
            "the CA's notAfter is out of range",
        )
    })?;
    let record = ctx
        .ledger
        .ensure_authority(
            &authority,
            &fingerprint(&ca.certificate.der),
            ca_not_after,
            (issuer.ledger_namespace(), &issuer.name),
            legacy_crl_number(existing.as_ref()),
        )
        .await?;

    let revoked = ctx.ledger.revoked(&authority).await?;
    let (entries, unusable_records) = revoked_entries(&revoked, now);
    if !unusable_records.is_empty() {
        tracing::warn!(records = ?unusable_records, "revoked records with an unusable serial left off the CRL");
    }
    let serials: BTreeSet<String> = entries.iter().map(|e| serial_hex(&e.serial)).collect();
    let content_hash = content_hash(&ca.certificate.der, &entries, validity, has_import_target);
    let current =
        |number, der: Vec<u8>, imports, this_update, new, refresh_in, authority| PublishedCrl {
            number,
            pem: crate::pki::pem::encode_pem("X509 CRL", &der),
            der,
            imports,
            this_update,
            new,
            serials: serials.clone(),
            unusable_records: unusable_records.clone(),
            refresh_in,
            refresh_raised: refresh_raised.clone(),
            authority,
            ca_public_key_info: ca.certificate.public_key_info.clone(),
        };

    if let Some((number, der, imports, this_update, refresh_in)) = still_current(
        &config_maps,
        &shards_name,
        &record,
        existing.as_ref(),
        &content_hash,
        entries.len(),
        (now, refresh),
    )
    .await?
    {
        return Ok(current(
            number,
            der,
            imports,
            this_update,
            false,
            refresh_in,
            record.clone(),
        ));
    }

    // Reserve the next number before signing anything with it.
    let reserved = ctx.ledger.reserve_crl_number(&record).await?;
    let number = reserved.number;
    let spec = CrlSpec {
        number: u64::try_from(number).map_err(|_| {
            Problem::permanent(
                reasons::INVALID_CRL_NUMBER,
                format!("CRL number {number} is negative"),
            )
        })?,
        this_update: now,
        next_update: now + validity,
        revoked: entries,
        authority_key_identifier: ca.certificate.subject_key_identifier.clone().ok_or_else(
            || {
                Problem::permanent(
                    reasons::INVALID_CA_CERTIFICATE,
                    "the CA certificate has no subject key identifier",
                )
            },
        )?,
    };
    let entry_count = spec.revoked.len();
    let split_before = record
        .spec
        .published
        .as_ref()
        .is_some_and(|p| !p.shards.is_empty());
    let (der, pem, shards) = sign(spec, ca, has_import_target, split_before).await?;
    let this_update = status_time(now.unix_timestamp()).ok_or_else(|| {
        Problem::transient(reasons::INVALID_TIME, "the current time is out of range")
    })?;
    let published = PublishedCrlRecord {
        number,
        sha256: sha256_hex(&der),
        content_hash,
        this_update,
        entries: entry_count as i64,
        shards: shards
            .iter()
            .map(|shard| PublishedShardRecord {
                pem_sha256: sha256_hex(shard.pem.as_bytes()),
                entries: shard.entries as i64,
            })
            .collect(),
    };
    let authority_record = persist(
        ctx,
        issuer,
        &reserved,
        published,
        (&der, &pem, &shards),
        split_before,
    )
    .await?;
    tracing::info!(
        crl_number = number,
        entries = entry_count,
        shards = shards.len(),
        "published CRL"
    );
    let imports = if shards.is_empty() {
        vec![ImportableCrl {
            pem: pem.clone(),
            entries: entry_count,
        }]
    } else {
        shards
    };
    Ok(current(
        number,
        der,
        imports,
        now.unix_timestamp(),
        true,
        refresh,
        authority_record,
    ))
}

/// The CRL published last, when it holds what a new one would and is younger than `refresh`:
/// its number, DER, importable PEMs, thisUpdate and how long until it is due.
async fn still_current(
    config_maps: &Api<ConfigMap>,
    shards_name: &str,
    record: &CertificateAuthorityRecord,
    existing: Option<&ConfigMap>,
    content_hash: &str,
    entries: usize,
    (now, refresh): (OffsetDateTime, Duration),
) -> Result<Option<(i64, Vec<u8>, Vec<ImportableCrl>, i64, Duration)>, Problem> {
    let Some(published) = &record.spec.published else {
        return Ok(None);
    };
    if published.content_hash != content_hash {
        return Ok(None);
    }
    let Some(der) = verified_copy(existing, published) else {
        return Ok(None);
    };
    let this_update = published.this_update.0.as_second();
    let age = Duration::from_secs(now.unix_timestamp().saturating_sub(this_update).max(0) as u64);
    if age >= refresh {
        return Ok(None);
    }
    let imports = if published.shards.is_empty() {
        Some(vec![ImportableCrl {
            pem: crate::pki::pem::encode_pem("X509 CRL", &der),
            entries,
        }])
    } else {
        verified_shards(config_maps.get_opt(shards_name).await?.as_ref(), published)
    };
    Ok(imports.map(|imports| (published.number, der, imports, this_update, refresh - age)))
}

/// Signs the CRL, and its two halves when it is split for import, on a blocking thread (a KMS
/// signature is a network call): the whole CRL's DER and PEM, and the halves' PEMs.
async fn sign(
    spec: CrlSpec,
    ca: &LoadedCa,
    has_import_target: bool,
    split_before: bool,
) -> Result<(Vec<u8>, String, Vec<ImportableCrl>), Problem> {
    let signer = ca.signer.clone();
    let ca_pem = ca.certificate_pem.clone();
    tokio::task::spawn_blocking(move || {
        let (der, pem) = sign_crl(&spec, &ca_pem, &signer)?;
        let shards = if split_for_import(has_import_target, pem.len(), split_before) {
            split_into_shards(&spec.revoked)
                .into_iter()
                .map(|revoked| {
                    let entries = revoked.len();
                    let shard = CrlSpec {
                        revoked,
                        ..spec.clone()
                    };
                    sign_crl(&shard, &ca_pem, &signer)
                        .map(|(_, pem)| ImportableCrl { pem, entries })
                })
                .collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
        Ok::<_, String>((der, pem, shards))
    })
    .await
    .map_err(|e| Problem::transient(reasons::SIGNING_FAILED, e.to_string()))?
    .map_err(|message| Problem::transient(reasons::SIGNING_FAILED, message))
}

/// Records the CRL as published in the ledger (only the writer whose reservation is still the
/// latest may), then writes it where it is served from. Returns the updated authority record.
async fn persist(
    ctx: &Context,
    issuer: &CaIssuer,
    reserved: &crate::controller::ledger::CrlNumberReserved,
    published: PublishedCrlRecord,
    (der, pem, shards): (&[u8], &str, &[ImportableCrl]),
    split_before: bool,
) -> Result<CertificateAuthorityRecord, Problem> {
    let number = published.number;
    let authority_record = ctx.ledger.record_published(reserved, published).await?;
    let config_maps: Api<ConfigMap> =
        Api::namespaced(ctx.client.clone(), &issuer.resource_namespace);
    let name = issuer.crl_config_map_name();
    // A split CRL's PEM is left out of the main ConfigMap: with the shards beside it, the whole
    // would pass a ConfigMap's 1 MiB limit at the entry counts that call for splitting.
    let whole_pem = shards.is_empty().then_some(pem);
    write_config_map(&config_maps, issuer, &name, number, der, whole_pem).await?;
    write_shards_config_map(
        &config_maps,
        issuer,
        &shards_config_map_name(&name),
        number,
        shards,
        split_before,
    )
    .await?;
    Ok(authority_record)
}

/// The ConfigMap holding the shards of a split CRL: `<issuer>-crl-shards`.
fn shards_config_map_name(crl_config_map: &str) -> String {
    format!("{crl_config_map}-shards")
}

/// Writes the CRL to its ConfigMap, guarded by the resourceVersion read here. What the ConfigMap
/// said before is not trusted (anyone with ConfigMap rights in the namespace can edit it): the
/// caller checked the ledger that this CRL is the latest.
async fn write_config_map(
    config_maps: &Api<ConfigMap>,
    issuer: &CaIssuer,
    name: &str,
    number: i64,
    der: &[u8],
    pem: Option<&str>,
) -> Result<(), Problem> {
    let data: BTreeMap<String, String> = pem
        .map(|pem| (CRL_PEM_KEY.to_string(), pem.to_string()))
        .into_iter()
        .collect();
    let binary_data = BTreeMap::from([(CRL_DER_KEY.to_string(), ByteString(der.to_vec()))]);
    upsert_config_map(config_maps, issuer, name, number, data, binary_data).await
}

/// Writes the shards of a split CRL; once it is joined again, empties the shards ConfigMap (the
/// controller deletes no ConfigMap: the Issuer's ownerReference removes it with the Issuer).
async fn write_shards_config_map(
    config_maps: &Api<ConfigMap>,
    issuer: &CaIssuer,
    name: &str,
    number: i64,
    shards: &[ImportableCrl],
    split_before: bool,
) -> Result<(), Problem> {
    if shards.is_empty() && !split_before {
        return Ok(());
    }
    let data = shards
        .iter()
        .enumerate()
        .map(|(index, shard)| (shard_pem_key(index), shard.pem.clone()))
        .collect();
    upsert_config_map(config_maps, issuer, name, number, data, BTreeMap::new()).await
}

/// Creates the ConfigMap, or replaces its CRL keys guarded by the resourceVersion read here.
async fn upsert_config_map(
    config_maps: &Api<ConfigMap>,
    issuer: &CaIssuer,
    name: &str,
    number: i64,
    data: BTreeMap<String, String>,
    binary_data: BTreeMap<String, ByteString>,
) -> Result<(), Problem> {
    let existing = config_maps.get_opt(name).await?;
    let annotations = BTreeMap::from([(CRL_NUMBER_ANNOTATION.to_string(), number.to_string())]);
    match existing {
        None => {
            let config_map = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    labels: Some(BTreeMap::from([(
                        crate::controller::MANAGED_BY_LABEL.to_string(),
                        crate::controller::MANAGED_BY_VALUE.to_string(),
                    )])),
                    annotations: Some(annotations),
                    owner_references: issuer.owner.clone().map(|owner| vec![owner]),
                    ..Default::default()
                },
                data: Some(data),
                binary_data: Some(binary_data),
                ..Default::default()
            };
            config_maps
                .create(&PostParams::default(), &config_map)
                .await?;
        }
        Some(config_map) => {
            // Keys this CRL does not have are removed (a merge patch keeps what it does not name).
            let mut data_patch = serde_json::Map::new();
            for key in config_map.data.iter().flat_map(|d| d.keys()) {
                data_patch.insert(key.clone(), serde_json::Value::Null);
            }
            for (key, value) in data {
                data_patch.insert(key, value.into());
            }
            let mut binary_patch = serde_json::Map::new();
            for key in config_map.binary_data.iter().flat_map(|d| d.keys()) {
                binary_patch.insert(key.clone(), serde_json::Value::Null);
            }
            for (key, value) in binary_data {
                binary_patch.insert(key, serde_json::to_value(value).unwrap_or_default());
            }
            let patch = json!({
                "metadata": {
                    "resourceVersion": config_map.resource_version(),
                    "annotations": annotations,
                },
                "data": data_patch,
                "binaryData": binary_patch,
            });
            config_maps
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
    }
    Ok(())
}

/// Signs on a blocking thread (a KMS signature is a network call); returns DER and PEM.
fn sign_crl(
    spec: &CrlSpec,
    ca_pem: &str,
    signer: &std::sync::Arc<CaSigner>,
) -> Result<(Vec<u8>, String), String> {
    let started = std::time::Instant::now();
    let crl =
        build_crl(spec, ca_pem, signer.as_ref()).map_err(|error| signer.signing_failure(error))?;
    let pem = crl.pem().map_err(|e| e.to_string())?;
    CRL_SIGNING_SECONDS.observe(started.elapsed());
    Ok((crl.der().to_vec(), pem))
}

fn content_hash(
    ca_der: &[u8],
    entries: &[RevokedCertificate],
    validity: Duration,
    has_import_target: bool,
) -> String {
    let mut text = format!(
        "{}|{}|{has_import_target}",
        fingerprint(ca_der),
        validity.as_secs()
    );
    for entry in entries {
        text.push_str(&format!(
            "|{:x?}:{}:{:?}",
            entry.serial,
            entry.revoked_at.unix_timestamp(),
            entry.reason
        ));
    }
    let mut hash = sha256_hex(text.as_bytes());
    hash.truncate(32);
    hash
}

/// Time as the status holds it.
pub fn status_time(unix_seconds: i64) -> Option<Time> {
    jiff::Timestamp::from_second(unix_seconds).ok().map(Time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crl_is_split_above_the_threshold_and_joined_only_well_below_it() {
        assert!(!split_for_import(true, SPLIT_ABOVE_PEM_BYTES, false));
        assert!(split_for_import(true, SPLIT_ABOVE_PEM_BYTES + 1, false));
        // Once split, it stays split until well below the threshold: no flapping near it.
        assert!(split_for_import(true, SPLIT_ABOVE_PEM_BYTES - 1, true));
        assert!(split_for_import(true, JOIN_BELOW_PEM_BYTES, true));
        assert!(!split_for_import(true, JOIN_BELOW_PEM_BYTES - 1, true));
        // Nothing to import into: never split.
        assert!(!split_for_import(
            false,
            ROLES_ANYWHERE_MAX_CRL_BYTES * 2,
            true
        ));
    }
}
