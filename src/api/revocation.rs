//! `Revocation`: a request to revoke certificates permanently. Once accepted, the revocation is
//! recorded in the controller's ledger (CertificateRecords), which every CRL is built from.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::shared::{CertificateReference, IssuerReference, SERIAL_NUMBER_PATTERN};

/// Desired state of a Revocation.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "iamra.dev",
    version = "v1alpha1",
    kind = "Revocation",
    plural = "revocations",
    singular = "revocation",
    namespaced,
    doc = "Asks for a certificate of an Issuer to be revoked. Once accepted, the revocation is recorded in the controller's own ledger (CertificateRecords), which every CRL is built from: editing or deleting the Revocation, its status or its finalizer never takes an entry off the CRL before the certificate expires. Its spec cannot change, and its deletion is held back until the revoked certificates have expired.",
    status = "RevocationStatus",
    shortname = "rev",
    category = "iamra",
    printcolumn = r#"{"name":"Issuer","type":"string","jsonPath":".spec.issuerRef.name"}"#,
    printcolumn = r#"{"name":"Serial","type":"string","jsonPath":".status.serialNumber"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".spec.reason"}"#,
    printcolumn = r#"{"name":"CRL","type":"integer","jsonPath":".status.crlNumber"}"#,
    printcolumn = r#"{"name":"Imported","type":"date","jsonPath":".status.importTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.serialNumber) != has(self.certificateRef)").message("exactly one target must be set: spec.serialNumber or spec.certificateRef"))]
#[x_kube(validation = Rule::new("!has(self.reissue) || !self.reissue || has(self.certificateRef)").message("spec.reissue needs spec.certificateRef: only a WorkloadCertificate can be re-issued"))]
#[x_kube(validation = Rule::new("self == oldSelf").message("a Revocation is permanent: its spec cannot be changed"))]
pub struct RevocationSpec {
    /// The Issuer, in this namespace, that signed the certificate; its CRL carries the revocation.
    pub issuer_ref: IssuerReference,
    /// Serial number of the certificate to revoke, in hex (colons and leading zeros omitted), as
    /// `openssl x509 -noout -serial` prints it. Exactly one of `serialNumber` and
    /// `certificateRef` must be set. A serial this Issuer never issued is still revoked, and
    /// flagged in the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SERIAL_NUMBER_PATTERN))]
    pub serial_number: Option<String>,
    /// A WorkloadCertificate, in this namespace, whose certificates are revoked: every unexpired
    /// certificate issued for it before this Revocation was created, and every certificate
    /// sharing one of their keys. Certificates issued later (a re-issue) are never included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_ref: Option<CertificateReference>,
    /// Why the certificate is revoked (RFC 5280 reason code). Default: `unspecified`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RevocationReason>,
    /// When the certificate is considered revoked, as an RFC 3339 time
    /// (`2026-12-01T09:30:00Z`). Default: when the Revocation was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "rfc3339_time_schema")]
    pub revocation_time: Option<Time>,
    /// Re-issue the referenced WorkloadCertificate with a new key right after revoking it, so the
    /// workload keeps working with a fresh certificate. Needs `certificateRef`. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reissue: Option<bool>,
}

// RFC 5280 CRL reason codes. `certificateHold` and `removeFromCRL` are left out on purpose:
// revocation here is permanent.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RevocationReason {
    /// No reason given (code 0).
    #[default]
    Unspecified,
    /// The private key was, or may have been, exposed (code 1).
    KeyCompromise,
    /// The CA key was, or may have been, exposed (code 2).
    #[serde(rename = "cACompromise")]
    CaCompromise,
    /// The subject's name or other information changed (code 3).
    AffiliationChanged,
    /// The certificate was replaced by another (code 4).
    Superseded,
    /// The certificate is no longer needed (code 5).
    CessationOfOperation,
    /// A privilege in the certificate was withdrawn (code 9).
    PrivilegeWithdrawn,
    /// The attribute authority was compromised (code 10).
    #[serde(rename = "aACompromise")]
    AaCompromise,
}

/// Observed state of a Revocation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevocationStatus {
    /// `Ready` is True once a CRL carrying this revocation is published and, when the Issuer has a
    /// Roles Anywhere target, imported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The revoked serial number, lowercase hex (the first of `revokedCertificates`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// Every certificate this Revocation revoked: for `certificateRef`, each unexpired
    /// certificate issued for the WorkloadCertificate before the Revocation was created, and
    /// every certificate sharing one of their keys. A view of the controller's ledger
    /// (CertificateRecords): editing it changes nothing on the CRL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoked_certificates: Vec<RevokedCertificateStatus>,
    /// The effective revocation time written into the CRL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_time: Option<Time>,
    /// Expiry of the last revoked certificate; after that the entries leave the CRL and the
    /// Revocation may be deleted. Read from the ledger, never from this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_not_after: Option<Time>,
    /// Number of the first CRL that carried this revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_number: Option<i64>,
    /// When Roles Anywhere first accepted a CRL carrying this revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_time: Option<Time>,
    /// IAM roles on which the live sessions of the revoked certificates are denied (with
    /// `--end-live-sessions`): a CRL stops only new sessions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub live_sessions_denied_on: Vec<String>,
}

/// One certificate a Revocation revoked.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevokedCertificateStatus {
    /// Serial number, lowercase hex.
    pub serial_number: String,
    /// Until when the certificate is valid (and its entry stays on the CRL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Time>,
    /// The WorkloadCertificate it was issued for; absent for a serial this CA never issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Another Revocation that had revoked it first, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_revoked_by: Option<String>,
}

/// An RFC 3339 time by pattern rather than `format: date-time`: the API server stores an empty
/// array for a `date-time` field, which no client can then decode, and a single such
/// Revocation would fail every LIST and watch of Revocations, every tenant's.
fn rfc3339_time_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "nullable": true,
        "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$",
    })
}

impl From<RevocationReason> for crate::pki::RevocationReason {
    fn from(reason: RevocationReason) -> Self {
        match reason {
            RevocationReason::Unspecified => Self::Unspecified,
            RevocationReason::KeyCompromise => Self::KeyCompromise,
            RevocationReason::CaCompromise => Self::CaCompromise,
            RevocationReason::AffiliationChanged => Self::AffiliationChanged,
            RevocationReason::Superseded => Self::Superseded,
            RevocationReason::CessationOfOperation => Self::CessationOfOperation,
            RevocationReason::PrivilegeWithdrawn => Self::PrivilegeWithdrawn,
            RevocationReason::AaCompromise => Self::AaCompromise,
        }
    }
}
