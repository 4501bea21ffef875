//! Types and validation patterns shared by more than one resource.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Go-style duration as Kubernetes users write them (`2160h`, `90m`, `1h30m`, `45s`), parsed by
/// the API server's CEL `duration()` and by [`crate::api::parse_duration`].
pub const DURATION_PATTERN: &str = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$";

/// The ARN of a Roles Anywhere trust anchor: `arn:<partition>:rolesanywhere:<region>:<account>:trust-anchor/<uuid>`.
pub const TRUST_ANCHOR_ARN_PATTERN: &str = r"^arn:aws[a-z-]*:rolesanywhere:[a-z]{2}(-[a-z]+)+-[0-9]:[0-9]{12}:trust-anchor/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";

/// The ARN of a Roles Anywhere profile: `arn:<partition>:rolesanywhere:<region>:<account>:profile/<uuid>`.
pub const PROFILE_ARN_PATTERN: &str = r"^arn:aws[a-z-]*:rolesanywhere:[a-z]{2}(-[a-z]+)+-[0-9]:[0-9]{12}:profile/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";

/// The ARN of an IAM role: `arn:<partition>:iam::<account>:role/<path and name>`.
pub const ROLE_ARN_PATTERN: &str =
    r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$";

/// An AWS region name such as `eu-west-1` or `us-gov-west-1`.
pub const REGION_PATTERN: &str = r"^[a-z]{2}(-[a-z]+)+-[0-9]$";

/// An `http(s)://` URL, for endpoint overrides and CRL distribution points.
pub const HTTP_URL_PATTERN: &str = r"^https?://[^\s/$.?#][^\s]*$";

/// A Kubernetes object name (DNS-1123 subdomain).
pub const OBJECT_NAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A certificate serial number in hexadecimal, up to the 20 octets RFC 5280 allows.
pub const SERIAL_NUMBER_PATTERN: &str = r"^[0-9a-fA-F]{1,40}$";

/// Refers to an Issuer in the same namespace, or to a ClusterIssuer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerReference {
    /// Name of the Issuer (in the namespace of the referring object) or of the ClusterIssuer.
    #[schemars(length(min = 1, max = 253), regex(pattern = OBJECT_NAME_PATTERN))]
    pub name: String,
    /// `Issuer` (a CA of this namespace) or `ClusterIssuer` (the platform's CA, whose identity
    /// policy decides the certificate's subject and SANs). Default: `Issuer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<IssuerKind>,
}

/// The two kinds of CA.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum IssuerKind {
    /// A namespaced Issuer: a team's own CA.
    #[default]
    Issuer,
    /// A cluster-scoped ClusterIssuer: the platform team's CA, shared by the namespaces it selects.
    ClusterIssuer,
}

impl IssuerReference {
    /// An Issuer of the referring object's namespace.
    pub fn issuer(name: &str) -> Self {
        Self {
            name: name.to_string(),
            kind: None,
        }
    }

    /// The kind, with the default applied.
    pub fn kind(&self) -> IssuerKind {
        self.kind.unwrap_or_default()
    }
}

impl std::fmt::Display for IssuerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IssuerKind::Issuer => "Issuer",
            IssuerKind::ClusterIssuer => "ClusterIssuer",
        })
    }
}

/// Refers to a WorkloadCertificate in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateReference {
    /// Name of the WorkloadCertificate, in the namespace of the referring object.
    #[schemars(length(min = 1, max = 253), regex(pattern = OBJECT_NAME_PATTERN))]
    pub name: String,
}

/// An X.509 distinguished name. Attributes are written in the order C, ST, L, O, OU, CN.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.commonName) || has(self.organization) || has(self.organizationalUnit) || has(self.country) || has(self.locality) || has(self.province)").message("subject must have at least one attribute: IAM Roles Anywhere refuses certificates with an empty subject"))]
pub struct Subject {
    /// Common name (CN). IAM Roles Anywhere exposes it to IAM policies as `aws:PrincipalTag/x509Subject/CN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub common_name: Option<String>,
    /// Organization (O).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub organization: Option<String>,
    /// Organizational unit (OU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub organizational_unit: Option<String>,
    /// Country (C), a two-letter ISO 3166 code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Z]{2}$"))]
    pub country: Option<String>,
    /// Locality (L).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub locality: Option<String>,
    /// State or province (ST).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub province: Option<String>,
}

/// The standard `Ready` condition type every iamra resource reports.
pub const CONDITION_READY: &str = "Ready";

impl From<&Subject> for crate::pki::SubjectName {
    fn from(subject: &Subject) -> Self {
        Self {
            common_name: subject.common_name.clone(),
            organization: subject.organization.clone(),
            organizational_unit: subject.organizational_unit.clone(),
            country: subject.country.clone(),
            locality: subject.locality.clone(),
            province: subject.province.clone(),
        }
    }
}
