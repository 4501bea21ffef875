//! Building and publishing an Issuer's CRL from its Revocation objects, the only source of
//! truth: the CRL number is reserved (persisted) before the CRL is signed, so a crash can skip a
//! number but never reuse one or go back.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::json;
use time::OffsetDateTime;

use super::ca::LoadedCa;
use super::context::Context;
use super::issuer::fingerprint;
use super::metrics::CRL_SIGNING_SECONDS;
use crate::api::{Issuer, Revocation, parse_duration};
use crate::pki::{CrlSpec, RevokedCertificate, build_crl, parse_serial_hex};
use crate::signer::CaSigner;

/// DER CRL in the published ConfigMap (binaryData).
pub const CRL_DER_KEY: &str = "ca.crl";
/// PEM CRL in the published ConfigMap (data).
pub const CRL_PEM_KEY: &str = "ca.crl.pem";
/// Number of the CRL in the ConfigMap.
pub const CRL_NUMBER_ANNOTATION: &str = "iamra.dev/crl-number";
/// Highest number ever reserved: written before signing, so it is never used twice.
pub const CRL_RESERVED_ANNOTATION: &str = "iamra.dev/crl-number-reserved";
/// Hash of the CA and the entries the published CRL was built from.
const CRL_CONTENT_ANNOTATION: &str = "iamra.dev/crl-content-hash";
/// thisUpdate of the published CRL, Unix seconds.
const CRL_THIS_UPDATE_ANNOTATION: &str = "iamra.dev/crl-this-update";
/// Default CRL validity (nextUpdate - thisUpdate).
pub const DEFAULT_CRL_VALIDITY: &str = "24h";

/// The ConfigMap holding an Issuer's CRL: `<issuer>-crl`.
pub fn crl_config_map_name(issuer: &str) -> String {
    format!("{issuer}-crl")
}

/// The CRL an Issuer currently publishes.
#[derive(Clone, Debug)]
pub struct PublishedCrl {
    pub number: i64,
    pub pem: String,
    pub der: Vec<u8>,
    pub this_update: i64,
    /// Whether this reconcile made it (rather than finding it current).
    pub new: bool,
    /// Names of the Revocations it carries.
    pub revocations: Vec<String>,
    /// When it must be re-signed even without changes.
    pub refresh_in: Duration,
}

/// Why no CRL could be published.
#[derive(Debug, Clone)]
pub struct CrlProblem {
    pub reason: &'static str,
    pub message: String,
}

impl From<kube::Error> for CrlProblem {
    fn from(error: kube::Error) -> Self {
        CrlProblem {
            reason: "KubernetesAPIError",
            message: error.to_string(),
        }
    }
}

fn problem(reason: &'static str, message: impl Into<String>) -> CrlProblem {
    CrlProblem {
        reason,
        message: message.into(),
    }
}

/// Publishes a new CRL when the revocations, the CA or the refresh interval call for one;
/// otherwise returns the current one.
pub async fn publish_crl(
    ctx: &Context,
    issuer: &Issuer,
    ca: &LoadedCa,
) -> Result<PublishedCrl, CrlProblem> {
    let namespace = issuer.namespace().unwrap_or_default();
    let issuer_name = issuer.name_any();
    let settings = issuer.spec.crl.clone().unwrap_or_default();
    let validity = parse_duration(settings.validity.as_deref().unwrap_or(DEFAULT_CRL_VALIDITY))
        .map_err(|e| problem("InvalidSpec", e.to_string()))?;
    let refresh = match &settings.refresh_interval {
        Some(text) => parse_duration(text).map_err(|e| problem("InvalidSpec", e.to_string()))?,
        None => validity / 3,
    };

    let now = OffsetDateTime::now_utc();
    let revocations: Api<Revocation> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut entries = Vec::new();
    let mut carried = Vec::new();
    for revocation in revocations.list(&Default::default()).await?.items {
        if revocation.spec.issuer_ref.name != issuer_name {
            continue;
        }
        let Some(status) = &revocation.status else {
            continue;
        };
        let Some(serial) = &status.serial_number else {
            continue;
        };
        // An expired certificate is refused anyway; dropping it keeps the CRL small.
        if status
            .certificate_not_after
            .as_ref()
            .is_some_and(|t| t.0.as_second() <= now.unix_timestamp())
        {
            continue;
        }
        let serial =
            parse_serial_hex(serial).map_err(|e| problem("InvalidRevocation", e.to_string()))?;
        let revoked_at = status
            .revocation_time
            .as_ref()
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t.0.as_second()).ok())
            .unwrap_or(now);
        entries.push(RevokedCertificate {
            serial,
            revoked_at,
            reason: revocation.spec.reason.unwrap_or_default(),
        });
        carried.push(revocation.name_any());
    }
    entries.sort_by(|a, b| a.serial.cmp(&b.serial));
    carried.sort();
    let content_hash = content_hash(&ca.certificate.der, &entries, validity);

    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    let name = crl_config_map_name(&issuer_name);
    let existing = config_maps.get_opt(&name).await?;
    let annotation = |key: &str| {
        existing
            .as_ref()
            .and_then(|cm| cm.annotations().get(key).cloned())
    };
    let published_number = annotation(CRL_NUMBER_ANNOTATION).and_then(|n| n.parse::<i64>().ok());
    let this_update = annotation(CRL_THIS_UPDATE_ANNOTATION)
        .and_then(|n| n.parse::<i64>().ok())
        .unwrap_or(0);
    let current = existing.as_ref().and_then(|cm| {
        let pem = cm.data.as_ref()?.get(CRL_PEM_KEY)?.clone();
        let der = cm.binary_data.as_ref()?.get(CRL_DER_KEY)?.0.clone();
        Some((pem, der))
    });
    let age = Duration::from_secs(now.unix_timestamp().saturating_sub(this_update).max(0) as u64);
    if let (Some((pem, der)), Some(number)) = (&current, published_number)
        && annotation(CRL_CONTENT_ANNOTATION).as_deref() == Some(content_hash.as_str())
        && age < refresh
    {
        return Ok(PublishedCrl {
            number,
            pem: pem.clone(),
            der: der.clone(),
            this_update,
            new: false,
            revocations: carried,
            refresh_in: refresh - age,
        });
    }

    // Reserve the next number before signing anything with it.
    let reserved = annotation(CRL_RESERVED_ANNOTATION).and_then(|n| n.parse::<i64>().ok());
    let from_status = issuer.status.as_ref().and_then(|s| s.crl_number);
    let number = [published_number, reserved, from_status]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0)
        + 1;
    match &existing {
        None => {
            let config_map = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(BTreeMap::from([(
                        super::MANAGED_BY_LABEL.to_string(),
                        super::MANAGED_BY_VALUE.to_string(),
                    )])),
                    annotations: Some(BTreeMap::from([(
                        CRL_RESERVED_ANNOTATION.to_string(),
                        number.to_string(),
                    )])),
                    owner_references: issuer.controller_owner_ref(&()).map(|owner| vec![owner]),
                    ..Default::default()
                },
                ..Default::default()
            };
            config_maps
                .create(&PostParams::default(), &config_map)
                .await?;
        }
        Some(config_map) => {
            let patch = json!({"metadata": {
                "resourceVersion": config_map.resource_version(),
                "annotations": {CRL_RESERVED_ANNOTATION: number.to_string()},
            }});
            config_maps
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
    }

    let authority_key_identifier =
        ca.certificate
            .subject_key_identifier
            .clone()
            .ok_or_else(|| {
                problem(
                    "InvalidCACertificate",
                    "the CA certificate has no subject key identifier",
                )
            })?;
    let spec = CrlSpec {
        number: number as u64,
        this_update: now,
        next_update: now + validity,
        revoked: entries,
        authority_key_identifier,
    };
    let signer = ca.signer.clone();
    let ca_pem = ca.certificate_pem.clone();
    let (der, pem) = tokio::task::spawn_blocking(move || sign_crl(&spec, &ca_pem, &signer))
        .await
        .map_err(|e| problem("SigningFailed", e.to_string()))?
        .map_err(|message| problem("SigningFailed", message))?;

    let patch = json!({
        "metadata": {"annotations": {
            CRL_NUMBER_ANNOTATION: number.to_string(),
            CRL_CONTENT_ANNOTATION: content_hash,
            CRL_THIS_UPDATE_ANNOTATION: now.unix_timestamp().to_string(),
        }},
        "data": {CRL_PEM_KEY: pem},
        "binaryData": {CRL_DER_KEY: ByteString(der.clone())},
    });
    config_maps
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    tracing::info!(
        crl_number = number,
        entries = carried.len(),
        "published CRL"
    );
    Ok(PublishedCrl {
        number,
        pem,
        der,
        this_update: now.unix_timestamp(),
        new: true,
        revocations: carried,
        refresh_in: refresh,
    })
}

/// Signs on a blocking thread (a KMS signature is a network call); returns DER and PEM.
fn sign_crl(
    spec: &CrlSpec,
    ca_pem: &str,
    signer: &std::sync::Arc<CaSigner>,
) -> Result<(Vec<u8>, String), String> {
    let started = std::time::Instant::now();
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(ca_pem, signer.as_ref()).map_err(|e| e.to_string())?;
    let crl = build_crl(spec, &issuer).map_err(|error| match signer.as_ref() {
        CaSigner::Kms(kms) => kms
            .take_last_error()
            .map(|e| e.to_string())
            .unwrap_or_else(|| error.to_string()),
        CaSigner::Local(_) => error.to_string(),
    })?;
    let pem = crl.pem().map_err(|e| e.to_string())?;
    CRL_SIGNING_SECONDS.observe(started.elapsed());
    Ok((crl.der().to_vec(), pem))
}

fn content_hash(ca_der: &[u8], entries: &[RevokedCertificate], validity: Duration) -> String {
    let mut text = format!("{}|{}", fingerprint(ca_der), validity.as_secs());
    for entry in entries {
        text.push_str(&format!(
            "|{:x?}:{}:{:?}",
            entry.serial,
            entry.revoked_at.unix_timestamp(),
            entry.reason
        ));
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Time as the status holds it.
pub fn status_time(unix_seconds: i64) -> Option<Time> {
    jiff::Timestamp::from_second(unix_seconds).ok().map(Time)
}
