//! `WorkloadCertificate`: one workload identity's certificate, kept issued and renewed in a Secret.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::shared::{DURATION_PATTERN, IssuerReference, OBJECT_NAME_PATTERN, Subject};

/// A URI subject alternative name such as `spiffe://cluster.local/ns/app/sa/api`.
pub const URI_SAN_PATTERN: &str = r"^[a-zA-Z][a-zA-Z0-9+.-]*:[^\s]+$";
/// A DNS subject alternative name, optionally with one leading wildcard label.
pub const DNS_SAN_PATTERN: &str =
    r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// Desired state of a WorkloadCertificate.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "iamra.dev",
    version = "v1alpha1",
    kind = "WorkloadCertificate",
    plural = "workloadcertificates",
    singular = "workloadcertificate",
    namespaced,
    doc = "A leaf certificate for one workload identity, issued by an Issuer, renewed before it expires and written to a Secret in the cert-manager layout (tls.crt, tls.key, ca.crt).",
    status = "WorkloadCertificateStatus",
    shortname = "wcert",
    shortname = "wc",
    category = "iamra",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Secret","type":"string","jsonPath":".spec.secretName"}"#,
    printcolumn = r#"{"name":"Serial","type":"string","priority":1,"jsonPath":".status.serialNumber"}"#,
    printcolumn = r#"{"name":"Expires","type":"date","jsonPath":".status.notAfter"}"#,
    printcolumn = r#"{"name":"Renews","type":"date","priority":1,"jsonPath":".status.renewalTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.renewBefore) || duration(self.renewBefore) < duration(has(self.duration) ? self.duration : '24h')").message("renewBefore must be shorter than duration (default 24h)"))]
#[x_kube(validation = Rule::new("has(self.subject) || (has(self.issuerRef.kind) && self.issuerRef.kind == 'ClusterIssuer')").message("spec.subject is required with an Issuer (a ClusterIssuer's identity policy supplies it)"))]
#[x_kube(validation = Rule::new("!has(self.issuerRef.kind) || self.issuerRef.kind != 'ClusterIssuer' || has(self.serviceAccountName)").message("spec.serviceAccountName is required with a ClusterIssuer: the identity is derived from the namespace and service account"))]
pub struct WorkloadCertificateSpec {
    /// The CA that signs the certificate: an Issuer of this namespace, or a ClusterIssuer.
    pub issuer_ref: IssuerReference,
    /// The service account the certificate is for. The webhook mounts the certificate only into
    /// pods running as it. Required with a ClusterIssuer, whose identity policy derives the
    /// subject and SANs from it (by default `spiffe://<trustDomain>/ns/<namespace>/sa/<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = OBJECT_NAME_PATTERN))]
    pub service_account_name: Option<String>,
    /// Subject of the certificate. IAM Roles Anywhere requires a non-empty subject and maps its
    /// attributes to `aws:PrincipalTag/x509Subject/…` for role trust policies. Required with an
    /// Issuer. With a ClusterIssuer it comes from the identity policy: leave it out, or it must be
    /// exactly what the policy gives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
    /// URI subject alternative names, such as SPIFFE ids. With a ClusterIssuer they come from the
    /// identity policy: leave them out, or they must be exactly what the policy gives.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = URI_SAN_PATTERN)))]
    pub uris: Vec<String>,
    /// DNS subject alternative names. With a ClusterIssuer, as for `uris`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = DNS_SAN_PATTERN)))]
    pub dns_names: Vec<String>,
    /// Algorithm of the workload's private key. Default: `EcdsaP256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_algorithm: Option<WorkloadKeyAlgorithm>,
    /// Lifetime of each certificate, as a duration such as `24h` or `168h`. Short lifetimes limit
    /// what a stolen key is worth. Default: `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1m')").message("duration must be at least 1m"))]
    pub duration: Option<String>,
    /// How long before expiry the certificate is renewed. Default: one third of `duration`
    /// (renewal at two thirds of the lifetime, as cert-manager does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub renew_before: Option<String>,
    /// Name of the Secret, in this namespace, that receives `tls.crt` (leaf and chain), `tls.key`
    /// and `ca.crt`. The WorkloadCertificate owns it.
    #[schemars(length(min = 1, max = 253), regex(pattern = OBJECT_NAME_PATTERN))]
    pub secret_name: String,
    /// Whether each renewal generates a new private key. Default: `Always`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_rotation_policy: Option<PrivateKeyRotationPolicy>,
    /// Extra labels and annotations for the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_template: Option<SecretTemplate>,
}

// Algorithms of workload keys. Roles Anywhere signs with SHA-256, so there is no P-384 option.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum WorkloadKeyAlgorithm {
    /// ECDSA on NIST P-256 (`AWS4-X509-ECDSA-SHA256`).
    #[default]
    EcdsaP256,
    /// RSA 2048-bit (`AWS4-X509-RSA-SHA256`).
    Rsa2048,
    /// RSA 3072-bit (`AWS4-X509-RSA-SHA256`).
    Rsa3072,
    /// RSA 4096-bit (`AWS4-X509-RSA-SHA256`).
    Rsa4096,
}

// When a new private key is generated.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PrivateKeyRotationPolicy {
    /// Every issuance, including renewals, uses a fresh key.
    #[default]
    Always,
    /// Renewals reuse the key in the Secret while it is valid and matches `keyAlgorithm`.
    Never,
}

/// Metadata copied onto the certificate Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    /// Labels added to the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Observed state of a WorkloadCertificate.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadCertificateStatus {
    /// `Ready` is True while the Secret holds a valid certificate matching the spec; `Issuing`
    /// gives the outcome of the last issuance and its reason (the status is written once per
    /// issuance, when it is done).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Serial number of the current certificate, lowercase hex without separators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// Start of the current certificate's validity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Time>,
    /// End of the current certificate's validity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Time>,
    /// When the certificate will be renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<Time>,
    /// Incremented on every issuance, starting at 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
}

impl From<WorkloadKeyAlgorithm> for crate::pki::KeyAlgorithm {
    fn from(algorithm: WorkloadKeyAlgorithm) -> Self {
        match algorithm {
            WorkloadKeyAlgorithm::EcdsaP256 => Self::EcdsaP256,
            WorkloadKeyAlgorithm::Rsa2048 => Self::Rsa2048,
            WorkloadKeyAlgorithm::Rsa3072 => Self::Rsa3072,
            WorkloadKeyAlgorithm::Rsa4096 => Self::Rsa4096,
        }
    }
}
