//! `CertificateAuthorityRecord`: the controller's own state of one CA, kept apart from anything a
//! tenant can write: the CRL number (which the API server refuses to lower), the CRL last
//! published and imported, and the Issuers that established the CA (so a lost CA Secret is never
//! silently replaced).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::certificate_record::AUTHORITY_ID_PATTERN;

/// The controller's state of one CA, named by its authority id.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "iamra.dev",
    version = "v1alpha1",
    kind = "CertificateAuthorityRecord",
    plural = "certificateauthorityrecords",
    singular = "certificateauthorityrecord",
    doc = "The controller's own state of one CA: the highest CRL number ever reserved (never lowered: the API server refuses it), the CRL last published and where it is imported, and the Issuers that established this CA. Written by the controller alone.",
    shortname = "carec",
    category = "iamra",
    printcolumn = r#"{"name":"Fingerprint","type":"string","priority":1,"jsonPath":".spec.caFingerprintSha256"}"#,
    printcolumn = r#"{"name":"CRL","type":"integer","jsonPath":".spec.crlNumber"}"#,
    printcolumn = r#"{"name":"Published","type":"integer","jsonPath":".spec.published.number"}"#,
    printcolumn = r#"{"name":"CA Expires","type":"date","jsonPath":".spec.caNotAfter"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.authority == oldSelf.authority").message("a CertificateAuthorityRecord's authority never changes"))]
#[x_kube(validation = Rule::new("self.crlNumber >= oldSelf.crlNumber").message("CRL numbers never go back"))]
#[x_kube(validation = Rule::new("!has(self.published) || self.published.number <= self.crlNumber").message("a CRL is published only under a reserved number"))]
pub struct CertificateAuthorityRecordSpec {
    /// First 32 hex digits of the SHA-256 of the CA's SubjectPublicKeyInfo.
    #[schemars(regex(pattern = AUTHORITY_ID_PATTERN))]
    pub authority: String,
    /// SHA-256 fingerprint of the CA certificate last seen with this key.
    pub ca_fingerprint_sha256: String,
    /// When that CA certificate expires; no certificate of the CA outlives it.
    pub ca_not_after: Time,
    /// Highest CRL number ever reserved. A number is reserved here before anything is signed
    /// with it, so a crash, a failover or a paused leader can skip a number but never reuse one.
    pub crl_number: i64,
    /// The CRL last published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<PublishedCrlRecord>,
    /// Where the CRL is imported into IAM Roles Anywhere. The CRL id is kept here, not in the
    /// Issuer's status, so no edit of a status can point the controller at another CRL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<CrlImportRecord>,
    /// Issuers that use this CA. An Issuer listed here has established it: losing its CA
    /// Secret makes it not Ready instead of bootstrapping a new CA.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issuers: Vec<EstablishedIssuer>,
}

/// A CRL as signed and published.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishedCrlRecord {
    /// Its CRL number.
    pub number: i64,
    /// Lowercase hex SHA-256 of its DER: a copy read back from a ConfigMap is used only when it
    /// is exactly this CRL.
    pub sha256: String,
    /// Hash of what it was built from (CA, entries, validity): unchanged content is not re-signed.
    pub content_hash: String,
    /// Its thisUpdate.
    pub this_update: Time,
    /// How many revoked entries it carries.
    pub entries: i64,
    /// When it was too large for one Roles Anywhere import: the CRLs it was split into (same
    /// number, entries divided by serial), in slot order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    pub shards: Vec<PublishedShardRecord>,
}

/// One of the CRLs a published CRL was split into for Roles Anywhere.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishedShardRecord {
    /// Lowercase hex SHA-256 of its PEM: a copy read back from a ConfigMap is used only when it
    /// is exactly this CRL.
    pub pem_sha256: String,
    /// How many revoked entries it carries.
    pub entries: i64,
}

/// An Issuer that established a CA.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EstablishedIssuer {
    /// Namespace of the Issuer.
    pub namespace: String,
    /// Name of the Issuer.
    pub name: String,
    /// When the CA was first used by it.
    pub since: Time,
}

/// One CRL imported into a Roles Anywhere trust anchor.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrlImportRecord {
    /// The trust anchor.
    pub trust_anchor_arn: String,
    /// Name of the imported CRL.
    pub crl_name: String,
    /// When this CA claimed the name on the trust anchor; the earliest claim owns it.
    pub claimed_at: Time,
    /// Its id in Roles Anywhere, once imported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_id: Option<String>,
    /// Number of the CRL Roles Anywhere last accepted (0 before the first import).
    pub number: i64,
    /// Lowercase hex SHA-256 of the PEM it accepted: with one number a slot can hold the whole
    /// CRL or one of its halves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem_sha256: Option<String>,
    /// When it last accepted one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_at: Option<Time>,
    /// When the controller last checked that Roles Anywhere still holds it, enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<Time>,
}
