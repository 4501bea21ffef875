//! `CertificateRecord`: the controller's own, append-only record of one serial of one CA: what it
//! issued (to whom, until when, with which key) and, once accepted, that it is revoked.
//!
//! Revocation objects are requests; these records are the ledger every CRL is built from. They are
//! cluster-scoped and only the controller's ClusterRole may write them, so nothing a tenant can
//! edit (a Revocation, its status or finalizer, a ConfigMap) can take an entry off a CRL. The API
//! server itself refuses any change but adding the revocation once.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::revocation::RevocationReason;
use super::shared::{OBJECT_NAME_PATTERN, SERIAL_NUMBER_PATTERN};

/// A CA's identity in the ledger: the first 32 lowercase hex digits of the SHA-256 of its
/// SubjectPublicKeyInfo, so an Issuer deleted and re-created with the same key keeps its records.
pub const AUTHORITY_ID_PATTERN: &str = r"^[0-9a-f]{32}$";

/// What the controller recorded about one serial of one CA.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "iamra.dev",
    version = "v1alpha1",
    kind = "CertificateRecord",
    plural = "certificaterecords",
    singular = "certificaterecord",
    doc = "The controller's append-only record of one certificate serial of one CA: whom it was issued to, until when, with which key, and whether it is revoked. Written by the controller alone; every CRL is built from these records, never from Revocation objects or their status.",
    shortname = "crec",
    category = "iamra",
    printcolumn = r#"{"name":"Namespace","type":"string","jsonPath":".spec.issued.namespace"}"#,
    printcolumn = r#"{"name":"Certificate","type":"string","jsonPath":".spec.issued.certificate"}"#,
    printcolumn = r#"{"name":"Serial","type":"string","jsonPath":".spec.serialNumber"}"#,
    printcolumn = r#"{"name":"Revoked","type":"date","jsonPath":".spec.revocation.acceptedAt"}"#,
    printcolumn = r#"{"name":"Expires","type":"date","jsonPath":".spec.notAfter"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.authority == oldSelf.authority && self.serialNumber == oldSelf.serialNumber && self.notAfter == oldSelf.notAfter").message("a CertificateRecord's authority, serialNumber and notAfter never change"))]
#[x_kube(validation = Rule::new("has(self.issued) == has(oldSelf.issued) && (!has(self.issued) || self.issued == oldSelf.issued)").message("a CertificateRecord's issuance never changes"))]
#[x_kube(validation = Rule::new("!has(oldSelf.revocation) || (has(self.revocation) && self.revocation == oldSelf.revocation)").message("a revocation, once recorded, is permanent"))]
pub struct CertificateRecordSpec {
    /// The CA that signed (or would have signed) the serial: the first 32 hex digits of the
    /// SHA-256 of the CA's SubjectPublicKeyInfo.
    #[schemars(regex(pattern = AUTHORITY_ID_PATTERN))]
    pub authority: String,
    /// Serial number, lowercase hex without leading zeros.
    #[schemars(regex(pattern = SERIAL_NUMBER_PATTERN))]
    pub serial_number: String,
    /// Until when a certificate with this serial can be valid: the certificate's own notAfter,
    /// or, for a serial the controller never issued, the CA's notAfter. The record (and a
    /// revoked entry on the CRL) is kept until then.
    pub not_after: Time,
    /// The issuance, when this controller issued the serial. Absent for a serial revoked
    /// without ever being issued here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued: Option<IssuedCertificate>,
    /// The accepted revocation, when the serial is revoked. Set once, never changed or removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<RecordedRevocation>,
}

/// Whom a certificate was issued to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedCertificate {
    /// Namespace of the WorkloadCertificate the certificate was issued for.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Name of that WorkloadCertificate.
    #[schemars(length(min = 1, max = 253), regex(pattern = OBJECT_NAME_PATTERN))]
    pub certificate: String,
    /// Lowercase hex SHA-256 of the certificate's SubjectPublicKeyInfo (its public key): every
    /// certificate sharing a revoked key is revoked with it.
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub key_fingerprint: String,
    /// When the certificate was signed (microseconds: a re-issue right after a revocation must
    /// sort after it).
    pub issued_at: MicroTime,
}

/// A revocation the controller accepted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordedRevocation {
    /// RFC 5280 reason code written into the CRL.
    pub reason: RevocationReason,
    /// Revocation date written into the CRL.
    pub revocation_time: Time,
    /// When the controller accepted it (microseconds, compared with `issued.issuedAt`).
    pub accepted_at: MicroTime,
    /// The Revocation that asked for it.
    pub requested_by: RevocationRequester,
}

/// The Revocation object a revocation was requested by.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevocationRequester {
    /// Namespace of the Revocation.
    pub namespace: String,
    /// Name of the Revocation.
    pub name: String,
    /// uid of the Revocation.
    pub uid: String,
}
