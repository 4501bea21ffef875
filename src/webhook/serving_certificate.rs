//! The webhook's TLS identity: a CA of the operator's own (its certificate becomes the
//! MutatingWebhookConfiguration's caBundle) and a server certificate it signs, both kept in
//! Secrets so every replica serves the same certificate and a restart keeps the caBundle.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use rcgen::KeyPair;
use time::OffsetDateTime;

use crate::api::well_known::{
    CA_CERTIFICATE_KEY, MANAGED_BY_LABEL, MANAGED_BY_VALUE, TLS_CERTIFICATE_KEY,
    TLS_PRIVATE_KEY_KEY,
};
use crate::pki::{
    CaCertificateSpec, KeyAlgorithm, LeafCertificateSpec, LeafPurpose, NOT_BEFORE_BACKDATE,
    PkiError, SubjectName, generate_key, issue_leaf, parse_certificate_pem, random_serial_number,
    self_signed_ca,
};

/// Secret holding the webhook CA's certificate and key.
pub const CA_SECRET: &str = "iamra-webhook-ca";
/// Secret holding the serving certificate, its key and the CA certificate.
pub const SERVING_SECRET: &str = "iamra-webhook-tls";
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const SERVING_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// A serving certificate with less than this left is replaced.
const SERVING_RENEW_BEFORE: Duration = Duration::from_secs(10 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum ServingCertificateError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Pki(#[from] PkiError),
    #[error("Secret {0} is missing {1}")]
    Incomplete(String, &'static str),
}

/// The names the serving certificate must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServingNames {
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
}

impl ServingNames {
    /// The names a Service is reached by from the API server.
    pub fn for_service(namespace: &str, name: &str) -> Self {
        Self {
            dns_names: vec![
                name.to_string(),
                format!("{name}.{namespace}"),
                format!("{name}.{namespace}.svc"),
                format!("{name}.{namespace}.svc.cluster.local"),
            ],
            ip_addresses: Vec::new(),
        }
    }

    /// The name of a URL's host (an IP address or a DNS name).
    pub fn for_host(host: &str) -> Self {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match host.parse::<IpAddr>() {
            Ok(address) => Self {
                dns_names: Vec::new(),
                ip_addresses: vec![address],
            },
            Err(_) => Self {
                dns_names: vec![host.to_string()],
                ip_addresses: Vec::new(),
            },
        }
    }
}

/// PEM texts the TLS server and the webhook configuration use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServingCertificate {
    pub ca_pem: String,
    pub certificate_pem: String,
    pub private_key_pem: String,
    pub not_after: OffsetDateTime,
}

impl ServingCertificate {
    /// When this certificate should be replaced.
    pub fn renewal_time(&self) -> OffsetDateTime {
        self.not_after - SERVING_RENEW_BEFORE
    }
}

fn webhook_subject(common_name: &str) -> SubjectName {
    SubjectName {
        organization: Some("iamra".into()),
        common_name: Some(common_name.into()),
        ..SubjectName::default()
    }
}

/// A new CA for the webhook: (certificate PEM, key PEM).
pub fn new_webhook_ca(now: OffsetDateTime) -> Result<(String, String), PkiError> {
    let key = generate_key(KeyAlgorithm::EcdsaP256)?;
    let certificate = self_signed_ca(
        &CaCertificateSpec {
            subject: webhook_subject("iamra webhook CA"),
            not_before: now - NOT_BEFORE_BACKDATE,
            not_after: now + CA_LIFETIME,
        },
        &key,
    )?;
    Ok((certificate.pem(), key.serialize_pem()))
}

/// A serving certificate for `names` signed by the CA.
pub fn new_serving_certificate(
    ca_pem: &str,
    ca_key_pem: &str,
    names: &ServingNames,
    now: OffsetDateTime,
) -> Result<ServingCertificate, PkiError> {
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    let key = generate_key(KeyAlgorithm::EcdsaP256)?;
    let not_after = now + SERVING_LIFETIME;
    let spec = LeafCertificateSpec {
        subject: webhook_subject(
            names
                .dns_names
                .first()
                .map(String::as_str)
                .unwrap_or("iamra webhook"),
        ),
        uris: Vec::new(),
        dns_names: names.dns_names.clone(),
        ip_addresses: names.ip_addresses.clone(),
        purpose: LeafPurpose::Server,
        serial_number: random_serial_number()?,
        not_before: now - NOT_BEFORE_BACKDATE,
        not_after,
        crl_distribution_point: None,
    };
    let certificate = issue_leaf(&spec, &key, ca_pem, &ca_key)?;
    Ok(ServingCertificate {
        ca_pem: ca_pem.to_string(),
        certificate_pem: certificate.pem(),
        private_key_pem: key.serialize_pem(),
        not_after,
    })
}

/// Whether `certificate` is signed by the CA, names everything in `names` and is not due for
/// renewal at `now`.
pub fn still_good(
    certificate: &ServingCertificate,
    ca_pem: &str,
    names: &ServingNames,
    now: OffsetDateTime,
) -> bool {
    let (Ok(leaf), Ok(ca)) = (
        parse_certificate_pem(&certificate.certificate_pem),
        parse_certificate_pem(ca_pem),
    ) else {
        return false;
    };
    certificate.ca_pem == ca_pem
        && leaf.is_signed_by(&ca.public_key_info)
        && names.dns_names.iter().all(|n| leaf.dns_names.contains(n))
        && names
            .ip_addresses
            .iter()
            .all(|a| leaf.ip_addresses.contains(a))
        && now < certificate.renewal_time()
}

fn text(secret: &Secret, key: &'static str) -> Result<String, ServingCertificateError> {
    secret
        .data
        .as_ref()
        .and_then(|data| data.get(key))
        .and_then(|value| String::from_utf8(value.0.clone()).ok())
        .ok_or_else(|| {
            ServingCertificateError::Incomplete(
                secret.metadata.name.clone().unwrap_or_default(),
                key,
            )
        })
}

fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_string(),
                MANAGED_BY_VALUE.to_string(),
            )])),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".to_string()),
        data: Some(
            data.iter()
                .map(|(key, value)| (key.to_string(), ByteString(value.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

/// Reads a Secret, creating it with `make` when missing. Another replica creating it first wins
/// and its Secret is read back, so replicas agree on one CA.
async fn get_or_create(
    api: &Api<Secret>,
    name: &str,
    make: impl FnOnce() -> Result<Secret, ServingCertificateError>,
) -> Result<Secret, ServingCertificateError> {
    if let Some(existing) = api.get_opt(name).await? {
        return Ok(existing);
    }
    match api.create(&PostParams::default(), &make()?).await {
        Ok(created) => Ok(created),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(api.get(name).await?),
        Err(error) => Err(error.into()),
    }
}

/// The CA and a current serving certificate for `names`, from the Secrets in `namespace`,
/// creating or renewing what is missing, stale or does not match.
pub async fn ensure(
    client: &kube::Client,
    namespace: &str,
    names: &ServingNames,
) -> Result<ServingCertificate, ServingCertificateError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let now = OffsetDateTime::now_utc();
    let ca_secret = get_or_create(&api, CA_SECRET, || {
        let (certificate, key) = new_webhook_ca(now)?;
        Ok(secret(
            CA_SECRET,
            &[
                (TLS_CERTIFICATE_KEY, &certificate),
                (TLS_PRIVATE_KEY_KEY, &key),
            ],
        ))
    })
    .await?;
    let ca_pem = text(&ca_secret, TLS_CERTIFICATE_KEY)?;
    let ca_key_pem = text(&ca_secret, TLS_PRIVATE_KEY_KEY)?;
    let make_serving = || -> Result<(ServingCertificate, Secret), ServingCertificateError> {
        let serving = new_serving_certificate(&ca_pem, &ca_key_pem, names, now)?;
        let secret = secret(
            SERVING_SECRET,
            &[
                (TLS_CERTIFICATE_KEY, &serving.certificate_pem),
                (TLS_PRIVATE_KEY_KEY, &serving.private_key_pem),
                (CA_CERTIFICATE_KEY, &serving.ca_pem),
            ],
        );
        Ok((serving, secret))
    };
    let current = get_or_create(&api, SERVING_SECRET, || Ok(make_serving()?.1)).await?;
    let loaded = serving_from_secret(&current);
    if let Some(loaded) = loaded.filter(|s| still_good(s, &ca_pem, names, now)) {
        return Ok(loaded);
    }
    let (serving, mut replacement) = make_serving()?;
    replacement.metadata.resource_version = current.metadata.resource_version.clone();
    match api
        .replace(SERVING_SECRET, &PostParams::default(), &replacement)
        .await
    {
        Ok(_) => Ok(serving),
        // Another replica renewed it first: use theirs.
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let theirs = api.get(SERVING_SECRET).await?;
            serving_from_secret(&theirs).ok_or(ServingCertificateError::Incomplete(
                SERVING_SECRET.into(),
                TLS_CERTIFICATE_KEY,
            ))
        }
        Err(error) => Err(error.into()),
    }
}

fn serving_from_secret(secret: &Secret) -> Option<ServingCertificate> {
    let certificate_pem = text(secret, TLS_CERTIFICATE_KEY).ok()?;
    let not_after = OffsetDateTime::from_unix_timestamp(
        parse_certificate_pem(&certificate_pem).ok()?.not_after,
    )
    .ok()?;
    Some(ServingCertificate {
        ca_pem: text(secret, CA_CERTIFICATE_KEY).ok()?,
        private_key_pem: text(secret, TLS_PRIVATE_KEY_KEY).ok()?,
        certificate_pem,
        not_after,
    })
}
