//! `Issuer`: a certificate authority whose key lives in a Kubernetes Secret or in AWS KMS.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::shared::{
    DURATION_PATTERN, HTTP_URL_PATTERN, OBJECT_NAME_PATTERN, REGION_PATTERN, Subject,
    TRUST_ANCHOR_ARN_PATTERN,
};

/// Desired state of an Issuer.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "iamra.dev",
    version = "v1alpha1",
    kind = "Issuer",
    plural = "issuers",
    singular = "issuer",
    namespaced,
    doc = "A certificate authority that signs WorkloadCertificates and the CRL of its Revocations, and optionally keeps that CRL imported into an IAM Roles Anywhere trust anchor.",
    status = "IssuerStatus",
    shortname = "iiss",
    category = "iamra",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Key","type":"string","jsonPath":".status.keySource"}"#,
    printcolumn = r#"{"name":"CRL","type":"integer","jsonPath":".status.crlNumber"}"#,
    printcolumn = r#"{"name":"Imported","type":"integer","priority":1,"jsonPath":".status.importedCrlNumber"}"#,
    printcolumn = r#"{"name":"CA Expires","type":"date","jsonPath":".status.caNotAfter"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.local) != has(self.kms)").message("exactly one key source must be set: spec.local or spec.kms"))]
pub struct IssuerSpec {
    /// The CA key and certificate are kept in a Kubernetes Secret. Exactly one of `local` and
    /// `kms` must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalKeySource>,
    /// The CA key is an asymmetric AWS KMS key that never leaves KMS; every certificate and CRL is
    /// signed by a KMS `Sign` call. Exactly one of `local` and `kms` must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<KmsKeySource>,
    /// Subject of a CA certificate the operator creates. Default: `CN=iamra <namespace>/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
    /// Validity of a CA certificate the operator creates, as a duration (`87600h` is ten years).
    /// Default: `87600h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1h')").message("CA duration must be at least 1h"))]
    pub duration: Option<String>,
    /// How the CRL of this Issuer's Revocations is built and published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl: Option<CrlSettings>,
    /// An IAM Roles Anywhere trust anchor whose imported CRL this Issuer keeps up to date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles_anywhere: Option<RolesAnywhereCrlTarget>,
}

// Key algorithms a CA created by the operator can use.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum CaKeyAlgorithm {
    /// ECDSA on NIST P-256 with SHA-256.
    #[default]
    EcdsaP256,
    /// ECDSA on NIST P-384 with SHA-384.
    EcdsaP384,
    /// RSA 2048-bit, PKCS#1 v1.5 with SHA-256.
    Rsa2048,
    /// RSA 3072-bit, PKCS#1 v1.5 with SHA-256.
    Rsa3072,
    /// RSA 4096-bit, PKCS#1 v1.5 with SHA-256.
    Rsa4096,
}

/// A CA whose key is stored in a Kubernetes Secret of type `kubernetes.io/tls`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalKeySource {
    /// Name of the Secret, in the Issuer's namespace, holding the CA as `tls.crt` and `tls.key`
    /// (PEM; PKCS#8, SEC1 or PKCS#1 keys).
    #[schemars(length(min = 1, max = 253), regex(pattern = OBJECT_NAME_PATTERN))]
    pub secret_name: String,
    /// When the Secret does not exist, create a self-signed CA and store it there. When false, a
    /// missing Secret is reported in the Ready condition instead. Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<bool>,
    /// Key algorithm of a bootstrapped CA. Ignored for a CA that already exists. Default: `EcdsaP256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_algorithm: Option<CaKeyAlgorithm>,
    /// Once this Issuer has established a CA, losing its Secret makes the Issuer not Ready
    /// (`CASecretLost`) instead of bootstrapping a new CA that the trust anchor does not trust.
    /// To replace the lost CA with a new one anyway, set this to the SHA-256 fingerprint of the
    /// lost CA (as the `CASecretLost` condition shows it): a deliberate, one-time decision.
    /// Restoring the Secret from a backup needs no opt-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9A-F]{2}:){31}[0-9A-F]{2}$"))]
    pub replace_lost_ca: Option<String>,
}

/// A CA whose private key is an AWS KMS key (`SIGN_VERIFY`, `ECC_NIST_P256` or `RSA_2048`/`3072`/`4096`).
/// A namespaced Issuer may use only a key the controller's configuration grants to its namespace
/// (`--kms-key-grant <namespace>=<key>`); the KMS endpoint is the controller's too
/// (`--kms-endpoint`), never a tenant's.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KmsKeySource {
    /// The KMS key: key id, key ARN, alias name (`alias/…`) or alias ARN.
    #[schemars(length(min = 1, max = 2048))]
    pub key_id: String,
    /// AWS region of the key, such as `eu-west-1`.
    #[schemars(regex(pattern = REGION_PATTERN))]
    pub region: String,
    /// Name of the Secret, in the Issuer's namespace, holding the CA certificate as `ca.crt`
    /// (PEM). If it does not exist, the operator builds a self-signed CA certificate from the
    /// key's public key, signs it through KMS and stores it there, so the CA stays the same across
    /// restarts. Supply your own to use a CA certificate signed elsewhere.
    #[schemars(length(min = 1, max = 253), regex(pattern = OBJECT_NAME_PATTERN))]
    pub certificate_secret_name: String,
}

/// How the certificate revocation list (CRL) is built and published.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.validity) || !has(self.refreshInterval) || duration(self.refreshInterval) < duration(self.validity)").message("crl.refreshInterval must be shorter than crl.validity, or relying parties see an expired CRL"))]
pub struct CrlSettings {
    /// How long each CRL is valid: its `nextUpdate` is `thisUpdate` plus this duration. Default: `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('5m')").message("crl.validity must be at least 5m"))]
    pub validity: Option<String>,
    /// A new CRL is issued at least this often, even without new revocations, so it never
    /// reaches its `nextUpdate`. Default: one third of `validity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1m')").message("crl.refreshInterval must be at least 1m"))]
    pub refresh_interval: Option<String>,
    /// URL written as the CRL distribution point of every certificate this Issuer signs, where
    /// the controller serves the CRL. IAM Roles Anywhere never fetches it (it uses the imported
    /// CRL); other relying parties can. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = HTTP_URL_PATTERN))]
    pub distribution_point_url: Option<String>,
}

/// The IAM Roles Anywhere trust anchor into which this Issuer's CRL is imported (`ImportCrl`
/// the first time, `UpdateCrl` on every change). The endpoint is the controller's
/// (`--rolesanywhere-endpoint`), never a tenant's.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolesAnywhereCrlTarget {
    /// ARN of the trust anchor whose source is this Issuer's CA certificate.
    #[schemars(regex(pattern = TRUST_ANCHOR_ARN_PATTERN))]
    pub trust_anchor_arn: String,
    /// Region of the Roles Anywhere API. Default: the region in `trustAnchorArn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = REGION_PATTERN))]
    pub region: Option<String>,
    /// Name of the imported CRL; an existing CRL with this name on the trust anchor is updated
    /// rather than imported again. One CA owns a name on a trust anchor: another Issuer naming
    /// it is refused (`CrlNameTaken`). Default: `iamra <namespace> <issuer name>` (dots become
    /// underscores). A CRL too large for one import (over 80% of the 300,000-byte limit) is
    /// split by serial across the trust anchor's two CRL slots; the second is `<crlName> 2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), regex(pattern = r"^[ a-zA-Z0-9-_]*$"))]
    pub crl_name: Option<String>,
}

/// Observed state of an Issuer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerStatus {
    /// `Ready` is True when the CA key and certificate are loaded and match. `CrlPublished` and
    /// `CrlImported` report the CRL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where the key is: `Local` or `KMS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_source: Option<String>,
    /// The CA certificate (PEM): the source of the Roles Anywhere trust anchor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<String>,
    /// SHA-256 fingerprint of the CA certificate (DER), colon-separated hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_fingerprint_sha256: Option<String>,
    /// When the CA certificate expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_not_after: Option<Time>,
    /// Number of the most recent CRL (strictly increasing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_number: Option<i64>,
    /// When the most recent CRL was published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_crl_publish_time: Option<Time>,
    /// Number of the CRL Roles Anywhere last accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_crl_number: Option<i64>,
    /// When Roles Anywhere last accepted the CRL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_crl_import_time: Option<Time>,
    /// Id of the CRL imported into Roles Anywhere (the first, when the CRL is split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_id: Option<String>,
    /// Ids of every CRL imported into Roles Anywhere: two when the CRL is split across the
    /// trust anchor's two slots.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crl_ids: Vec<String>,
}

impl IssuerSpec {
    /// A CA whose key lives in the Secret `secret_name`, bootstrapped there when missing: the
    /// embedded default.
    pub fn local(secret_name: &str) -> Self {
        Self {
            local: Some(LocalKeySource {
                secret_name: secret_name.into(),
                bootstrap: None,
                key_algorithm: None,
                replace_lost_ca: None,
            }),
            kms: None,
            subject: None,
            duration: None,
            crl: None,
            roles_anywhere: None,
        }
    }
}

impl From<CaKeyAlgorithm> for crate::pki::KeyAlgorithm {
    fn from(algorithm: CaKeyAlgorithm) -> Self {
        match algorithm {
            CaKeyAlgorithm::EcdsaP256 => Self::EcdsaP256,
            CaKeyAlgorithm::EcdsaP384 => Self::EcdsaP384,
            CaKeyAlgorithm::Rsa2048 => Self::Rsa2048,
            CaKeyAlgorithm::Rsa3072 => Self::Rsa3072,
            CaKeyAlgorithm::Rsa4096 => Self::Rsa4096,
        }
    }
}
