//! Loading an Issuer's CA (and creating it the first time): the key from a Secret or from KMS,
//! the certificate checked against the key.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use rcgen::{KeyPair, PublicKeyData};

use time::OffsetDateTime;

use crate::api::{IssuerKind, KmsKeySource, LocalKeySource, Subject, parse_duration};
use crate::controller::certificate::{
    CA_CERTIFICATE_KEY, MANAGED_BY_LABEL, MANAGED_BY_VALUE, TLS_CERTIFICATE_KEY,
    TLS_PRIVATE_KEY_KEY, secret_text,
};
use crate::controller::context::{Context, KmsKeyLocation};
use crate::controller::issuer::CaIssuer;
use crate::controller::problem::{Problem, Retry};
use crate::controller::reasons;
use crate::pki::{
    CaCertificateSpec, ParsedCertificate, generate_key, parse_certificate_pem, self_signed_ca,
};
use crate::signer::CaSigner;

/// Validity of a CA the operator creates when the Issuer names none: ten years.
pub const DEFAULT_CA_DURATION: &str = "87600h";

/// A CA ready to sign.
pub struct LoadedCa {
    pub signer: Arc<CaSigner>,
    pub certificate_pem: String,
    pub certificate: ParsedCertificate,
    /// True for a root: its own key verifies its signature.
    pub self_signed: bool,
    /// True when this load created the CA.
    pub created: bool,
}

/// Loads the Issuer's CA. With `create_missing`, a missing CA is created (a local key when
/// `bootstrap` allows, or a KMS-signed certificate); only the Issuer reconciler passes it.
pub async fn load_ca(
    ctx: &Context,
    issuer: &CaIssuer,
    create_missing: bool,
) -> Result<LoadedCa, Problem> {
    let loaded = load_key_and_certificate(ctx, issuer, create_missing).await?;
    crate::controller::ca::refuse_stranding_established_ca(ctx, issuer, &loaded).await?;
    Ok(loaded)
}

async fn load_key_and_certificate(
    ctx: &Context,
    issuer: &CaIssuer,
    create_missing: bool,
) -> Result<LoadedCa, Problem> {
    match (&issuer.spec.local, &issuer.spec.kms) {
        (Some(local), None) => load_local_ca(ctx, issuer, local, create_missing).await,
        (None, Some(kms)) => load_kms_ca(ctx, issuer, kms, create_missing).await,
        _ => Err(Problem::permanent(
            reasons::INVALID_SPEC,
            "exactly one of spec.local and spec.kms must be set",
        )),
    }
}

/// A CA whose key is in a Secret: read, or (with `bootstrap`) created the first time.
async fn load_local_ca(
    ctx: &Context,
    issuer: &CaIssuer,
    local: &LocalKeySource,
    create_missing: bool,
) -> Result<LoadedCa, Problem> {
    let namespace = &issuer.resource_namespace;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    match secrets.get_opt(&local.secret_name).await? {
        Some(secret) => load_local(&secret, &local.secret_name),
        None if create_missing && local.bootstrap.unwrap_or(true) => {
            refuse_replacing_established_ca(ctx, issuer, local).await?;
            let key =
                generate_key(local.key_algorithm.unwrap_or_default().into()).map_err(|e| {
                    Problem::permanent(reasons::CA_KEY_GENERATION_FAILED, e.to_string())
                })?;
            let spec = ca_spec(issuer)?;
            let certificate = self_signed_ca(&spec, &key)
                .map_err(|e| Problem::permanent(reasons::CA_SIGNING_FAILED, e.to_string()))?;
            let data = BTreeMap::from([
                (TLS_CERTIFICATE_KEY.to_string(), certificate.pem()),
                (TLS_PRIVATE_KEY_KEY.to_string(), key.serialize_pem()),
            ]);
            let (stored, created) = create_ca_secret(
                &secrets,
                issuer,
                &local.secret_name,
                "kubernetes.io/tls",
                data,
            )
            .await?;
            let mut loaded = load_local(&stored, &local.secret_name)?;
            loaded.created = created;
            Ok(loaded)
        }
        None => Err(Problem::permanent(
            reasons::SECRET_NOT_FOUND,
            format!(
                "CA Secret {namespace}/{} does not exist and spec.local.bootstrap is false",
                local.secret_name
            ),
        )),
    }
}

/// A CA whose key is in KMS (granted to the namespace): its certificate read from its Secret,
/// or self-signed through KMS the first time.
async fn load_kms_ca(
    ctx: &Context,
    issuer: &CaIssuer,
    kms: &KmsKeySource,
    create_missing: bool,
) -> Result<LoadedCa, Problem> {
    let namespace = &issuer.resource_namespace;
    // A ClusterIssuer is the platform's own; a namespaced Issuer needs a grant.
    if issuer.kind == IssuerKind::Issuer && !ctx.platform.grants_kms_key(namespace, &kms.key_id) {
        return Err(Problem::permanent(
            reasons::KMS_KEY_NOT_GRANTED,
            format!(
                "KMS key {:?} is not granted to namespace {namespace}: the platform team grants it with the controller flag --kms-key-grant {namespace}={}",
                kms.key_id, kms.key_id
            ),
        ));
    }
    let location = KmsKeyLocation {
        key_id: kms.key_id.clone(),
        region: kms.region.clone(),
    };
    let key = ctx.kms_key(&location).await.map_err(|error| {
        let retry = if matches!(error, crate::signer::KmsError::GetPublicKey { .. }) {
            Retry::Soon
        } else {
            Retry::Slowly
        };
        Problem::new(reasons::KMS_KEY_UNUSABLE, error.to_string(), retry)
    })?;
    let signer = Arc::new(CaSigner::Kms(key.clone()));
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let certificate_of = |secret: &Secret| {
        secret_text(secret, CA_CERTIFICATE_KEY).ok_or_else(|| {
            Problem::permanent(
                reasons::INVALID_CA_SECRET,
                format!(
                    "Secret {} has no {CA_CERTIFICATE_KEY}",
                    kms.certificate_secret_name
                ),
            )
        })
    };
    let (pem, created) = match secrets.get_opt(&kms.certificate_secret_name).await? {
        Some(secret) => (certificate_of(&secret)?, false),
        None if create_missing => {
            let spec = ca_spec(issuer)?;
            let signing_key = signer.clone();
            let certificate =
                tokio::task::spawn_blocking(move || self_signed_ca(&spec, signing_key.as_ref()))
                    .await
                    .map_err(|e| Problem::transient(reasons::CA_SIGNING_FAILED, e.to_string()))?
                    .map_err(|e| {
                        Problem::transient(reasons::CA_SIGNING_FAILED, signer.signing_failure(e))
                    })?;
            let data = BTreeMap::from([(CA_CERTIFICATE_KEY.to_string(), certificate.pem())]);
            let (stored, created) = create_ca_secret(
                &secrets,
                issuer,
                &kms.certificate_secret_name,
                "Opaque",
                data,
            )
            .await?;
            (certificate_of(&stored)?, created)
        }
        None => {
            return Err(Problem::transient(
                reasons::ISSUER_NOT_READY,
                format!(
                    "CA certificate Secret {} does not exist yet",
                    kms.certificate_secret_name
                ),
            ));
        }
    };
    let certificate = check_ca_certificate(&pem, key.public_key_info())?;
    let self_signed = certificate.is_signed_by(&certificate.public_key_info);
    Ok(LoadedCa {
        signer,
        certificate_pem: pem,
        certificate,
        self_signed,
        created,
    })
}

/// A CA this Issuer established is never replaced silently: bootstrapping again needs
/// `spec.local.replaceLostCA` naming the lost CA's fingerprint.
async fn refuse_replacing_established_ca(
    ctx: &Context,
    issuer: &CaIssuer,
    local: &crate::api::LocalKeySource,
) -> Result<(), Problem> {
    let namespace = &issuer.resource_namespace;
    let established = ctx
        .ledger
        .established_by(issuer.ledger_namespace(), &issuer.name)
        .await
        .map_err(|e| Problem::transient(reasons::LEDGER_UNAVAILABLE, e.to_string()))?;
    let Some(latest) = established.first() else {
        return Ok(());
    };
    let lost = &latest.spec.ca_fingerprint_sha256;
    if local.replace_lost_ca.as_deref() == Some(lost.as_str()) {
        tracing::warn!(lost_ca = %lost, "replacing the lost CA, as spec.local.replaceLostCA asks");
        return Ok(());
    }
    Err(Problem::permanent(
        reasons::CA_SECRET_LOST,
        format!(
            "CA Secret {namespace}/{} is gone, but this issuer established the CA with fingerprint {lost}: \
             restore the Secret from a backup, or set spec.local.replaceLostCA: \"{lost}\" to bootstrap a new CA \
             (the trust anchor then needs the new CA certificate, and certificates of the old CA stop being renewed)",
            local.secret_name
        ),
    ))
}

/// Marks a CA Secret the operator created (`Issuer <namespace>/<name>` or `ClusterIssuer <name>`),
/// so an operator-made CA is told from a supplied one.
pub const CREATED_BY_ANNOTATION: &str = "iamra.dev/created-for-issuer";

fn ca_spec(issuer: &CaIssuer) -> Result<CaCertificateSpec, Problem> {
    let default_subject = Subject {
        common_name: Some(issuer.default_ca_common_name()),
        ..Default::default()
    };
    let subject = issuer
        .spec
        .subject
        .as_ref()
        .unwrap_or(&default_subject)
        .into();
    let duration = parse_duration(
        issuer
            .spec
            .duration
            .as_deref()
            .unwrap_or(DEFAULT_CA_DURATION),
    )
    .map_err(|e| Problem::permanent(reasons::INVALID_SPEC, e.to_string()))?;
    let now = OffsetDateTime::now_utc();
    Ok(CaCertificateSpec {
        subject,
        not_before: now - crate::pki::NOT_BEFORE_BACKDATE,
        not_after: now + duration,
    })
}

/// Creates the CA Secret unless another writer won the race, in which case theirs is used:
/// an existing CA key is never overwritten. The flag says whether this call created it.
async fn create_ca_secret(
    secrets: &Api<Secret>,
    issuer: &CaIssuer,
    name: &str,
    type_: &str,
    data: BTreeMap<String, String>,
) -> Result<(Secret, bool), Problem> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_string(),
                MANAGED_BY_VALUE.to_string(),
            )])),
            annotations: Some(BTreeMap::from([(
                CREATED_BY_ANNOTATION.to_string(),
                issuer.display(),
            )])),
            ..Default::default()
        },
        type_: Some(type_.to_string()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Default::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(created) => Ok((created, true)),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            Ok((secrets.get(name).await?, false))
        }
        Err(error) => Err(error.into()),
    }
}

fn load_local(secret: &Secret, name: &str) -> Result<LoadedCa, Problem> {
    let invalid = |what: String| {
        Problem::permanent(reasons::INVALID_CA_SECRET, format!("Secret {name}: {what}"))
    };
    let pem = secret_text(secret, TLS_CERTIFICATE_KEY)
        .ok_or_else(|| invalid(format!("no {TLS_CERTIFICATE_KEY}")))?;
    let key_pem = secret_text(secret, TLS_PRIVATE_KEY_KEY)
        .ok_or_else(|| invalid(format!("no {TLS_PRIVATE_KEY_KEY}")))?;
    let key = KeyPair::from_pem(&key_pem).map_err(|_| {
        invalid(format!(
            "{TLS_PRIVATE_KEY_KEY} is not a PEM PKCS#8, SEC1 or PKCS#1 private key"
        ))
    })?;
    let certificate = check_ca_certificate(&pem, &key.subject_public_key_info())
        .map_err(|problem| invalid(problem.message))?;
    let self_signed = certificate.is_signed_by(&certificate.public_key_info);
    Ok(LoadedCa {
        signer: Arc::new(CaSigner::Local(key)),
        certificate_pem: pem,
        certificate,
        self_signed,
        created: false,
    })
}

/// The CA certificate must be a CA, able to sign certificates, valid now, and for `public_key_info`.
fn check_ca_certificate(pem: &str, public_key_info: &[u8]) -> Result<ParsedCertificate, Problem> {
    let certificate = parse_certificate_pem(pem)
        .map_err(|e| Problem::permanent(reasons::INVALID_CA_CERTIFICATE, e.to_string()))?;
    if !certificate.is_ca || !certificate.can_sign_certificates {
        return Err(Problem::permanent(
            reasons::INVALID_CA_CERTIFICATE,
            "the certificate is not a CA (BasicConstraints CA:true and keyCertSign are required)",
        ));
    }
    if certificate.public_key_info != public_key_info {
        return Err(Problem::permanent(
            reasons::KEY_MISMATCH,
            "the CA certificate is not for this key",
        ));
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    if certificate.not_after <= now {
        return Err(Problem::permanent(
            reasons::CA_EXPIRED,
            "the CA certificate has expired",
        ));
    }
    Ok(certificate)
}
