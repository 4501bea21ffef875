//! `ClusterIssuer`: the platform team's CA, shared by the namespaces it selects, with an identity
//! policy that derives every certificate's subject and SANs from who asks for it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::issuer::{
    CrlSettings, IssuerSpec, IssuerStatus, KmsKeySource, LocalKeySource, RolesAnywhereCrlTarget,
};
use super::shared::{DURATION_PATTERN, Subject};

/// A template: text with `{namespace}`, `{serviceAccount}`, `{name}` (the WorkloadCertificate's
/// name) and `{trustDomain}`, and no other braces.
pub const IDENTITY_TEMPLATE_PATTERN: &str =
    r"^([^{}]|\{namespace\}|\{serviceAccount\}|\{name\}|\{trustDomain\})+$";

/// Desired state of a ClusterIssuer.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "iamra.dev",
    version = "v1alpha1",
    kind = "ClusterIssuer",
    plural = "clusterissuers",
    singular = "clusterissuer",
    doc = "The platform team's certificate authority, offered to the namespaces its namespaceSelector selects. Its identity policy derives each certificate's subject and SANs from the requesting namespace and service account, so no tenant can obtain another namespace's identity. Its key lives in a Secret of the controller's namespace or in AWS KMS.",
    status = "IssuerStatus",
    shortname = "ciss",
    category = "iamra",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Key","type":"string","jsonPath":".status.keySource"}"#,
    printcolumn = r#"{"name":"CRL","type":"integer","jsonPath":".status.crlNumber"}"#,
    printcolumn = r#"{"name":"CA Expires","type":"date","jsonPath":".status.caNotAfter"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.local) != has(self.kms)").message("exactly one key source must be set: spec.local or spec.kms"))]
pub struct ClusterIssuerSpec {
    /// The CA key and certificate are kept in a Secret of the controller's namespace
    /// (`--cluster-resource-namespace`). Exactly one of `local` and `kms` must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalKeySource>,
    /// The CA key is an AWS KMS key; the CA certificate is kept in a Secret of the controller's
    /// namespace. A ClusterIssuer needs no `--kms-key-grant`: it is the platform's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<KmsKeySource>,
    /// Subject of a CA certificate the operator creates. Default: `CN=iamra <name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
    /// Validity of a CA certificate the operator creates. Default: `87600h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1h')").message("CA duration must be at least 1h"))]
    pub duration: Option<String>,
    /// How the CRL is built and published (its ConfigMap lives in the controller's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl: Option<CrlSettings>,
    /// The IAM Roles Anywhere trust anchor whose imported CRL this ClusterIssuer keeps current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles_anywhere: Option<RolesAnywhereCrlTarget>,
    /// The namespaces that may use this CA. `{}` selects every namespace.
    pub namespace_selector: LabelSelector,
    /// Which subject and SANs a certificate gets. Default: the SPIFFE identity of the service
    /// account, with the namespace as organizational unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityPolicy>,
}

/// How a certificate's identity is derived from who asks for it. Every field is a template over
/// `{namespace}` and `{serviceAccount}` (of the WorkloadCertificate), `{name}` (the
/// WorkloadCertificate's name) and `{trustDomain}`; every URI and DNS template, and the subject,
/// must contain `{namespace}`. Put `/` or `.` between `{namespace}` and another variable (names
/// may contain `-`, so `{namespace}-{serviceAccount}` could be read two ways). A WorkloadCertificate may leave subject and SANs
/// out (they are filled in) or state exactly these; anything else is refused.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityPolicy {
    /// The SPIFFE trust domain. Default: `cluster.local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), regex(pattern = r"^[a-z0-9._-]+$"))]
    pub trust_domain: Option<String>,
    /// URI SAN templates. Default: `["spiffe://{trustDomain}/ns/{namespace}/sa/{serviceAccount}"]`.
    /// Roles Anywhere maps the first URI SAN to `aws:PrincipalTag/x509SAN/URI`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8), inner(length(min = 1, max = 512), regex(pattern = IDENTITY_TEMPLATE_PATTERN)))]
    #[x_kube(validation = Rule::new("self.all(t, t.contains('{namespace}'))").message("every URI template must contain {namespace}, or two namespaces could get the same identity"))]
    pub uris: Option<Vec<String>>,
    /// DNS SAN templates, such as `{serviceAccount}.{namespace}.svc`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8), inner(length(min = 1, max = 512), regex(pattern = IDENTITY_TEMPLATE_PATTERN)))]
    #[x_kube(validation = Rule::new("self.all(t, t.contains('{namespace}'))").message("every DNS template must contain {namespace}, or two namespaces could get the same identity"))]
    pub dns_names: Option<Vec<String>>,
    /// Subject templates. Default: `CN={serviceAccount}`, `OU={namespace}`. Roles Anywhere maps
    /// them to `aws:PrincipalTag/x509Subject/CN`, `…/OU` for role trust policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<SubjectTemplate>,
}

/// Templates of the subject's attributes; an attribute left out is not in the subject.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.commonName) || has(self.organization) || has(self.organizationalUnit)").message("the subject template needs at least one of commonName, organization, organizationalUnit: Roles Anywhere refuses an empty subject"))]
#[x_kube(validation = Rule::new("(has(self.commonName) && self.commonName.contains('{namespace}')) || (has(self.organization) && self.organization.contains('{namespace}')) || (has(self.organizationalUnit) && self.organizationalUnit.contains('{namespace}'))").message("the subject template must contain {namespace} in commonName, organization or organizationalUnit, or two namespaces could get the same subject"))]
pub struct SubjectTemplate {
    /// Common name (CN) template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = IDENTITY_TEMPLATE_PATTERN))]
    pub common_name: Option<String>,
    /// Organization (O) template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = IDENTITY_TEMPLATE_PATTERN))]
    pub organization: Option<String>,
    /// Organizational unit (OU) template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = IDENTITY_TEMPLATE_PATTERN))]
    pub organizational_unit: Option<String>,
}

impl ClusterIssuerSpec {
    /// The CA part, in the shape the CA and CRL steps share with namespaced Issuers.
    pub fn ca_spec(&self) -> IssuerSpec {
        IssuerSpec {
            local: self.local.clone(),
            kms: self.kms.clone(),
            subject: self.subject.clone(),
            duration: self.duration.clone(),
            crl: self.crl.clone(),
            roles_anywhere: self.roles_anywhere.clone(),
        }
    }
}
