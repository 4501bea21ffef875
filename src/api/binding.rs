//! `RolesAnywhereBinding`: which pods get AWS credentials, for which role, from which certificate.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::core::{Selector, SelectorExt};
use kube::{CustomResource, KubeSchema, ResourceExt};
use serde::{Deserialize, Serialize};

use super::shared::{
    CertificateReference, OBJECT_NAME_PATTERN, PROFILE_ARN_PATTERN, REGION_PATTERN,
    ROLE_ARN_PATTERN, TRUST_ANCHOR_ARN_PATTERN,
};
use super::workload_certificate::WorkloadCertificateSpec;

/// Desired state of a RolesAnywhereBinding.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "iamra.dev",
    version = "v1alpha1",
    kind = "RolesAnywhereBinding",
    plural = "rolesanywherebindings",
    singular = "rolesanywherebinding",
    namespaced,
    doc = "Gives the pods it selects AWS credentials for one IAM role through IAM Roles Anywhere: they get the iamra credential sidecar, which trades the workload certificate for temporary credentials that unmodified AWS SDKs pick up.",
    status = "RolesAnywhereBindingStatus",
    shortname = "rab",
    category = "iamra",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Role","type":"string","jsonPath":".spec.roleArn"}"#,
    printcolumn = r#"{"name":"Certificate","type":"string","jsonPath":".status.certificateName"}"#,
    printcolumn = r#"{"name":"Pods","type":"integer","jsonPath":".status.matchedPods"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.selector) || has(self.serviceAccountName)").message("at least one of spec.selector and spec.serviceAccountName must be set, or the binding would select no pod"))]
#[x_kube(validation = Rule::new("has(self.certificateRef) != has(self.certificateTemplate)").message("exactly one of spec.certificateRef and spec.certificateTemplate must be set"))]
pub struct RolesAnywhereBindingSpec {
    /// Pods in this namespace whose labels match get the credential sidecar. When
    /// `serviceAccountName` is also set, a pod must match both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Pods in this namespace running as this service account get the credential sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = OBJECT_NAME_PATTERN))]
    pub service_account_name: Option<String>,
    /// An existing WorkloadCertificate, in this namespace, whose Secret the sidecar mounts.
    /// Exactly one of `certificateRef` and `certificateTemplate` must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_ref: Option<CertificateReference>,
    /// The spec of a WorkloadCertificate the binding creates and owns, named after the binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_template: Option<WorkloadCertificateSpec>,
    /// ARN of the Roles Anywhere trust anchor that trusts the certificate's Issuer.
    #[schemars(regex(pattern = TRUST_ANCHOR_ARN_PATTERN))]
    pub trust_anchor_arn: String,
    /// ARN of the Roles Anywhere profile that lists `roleArn`.
    #[schemars(regex(pattern = PROFILE_ARN_PATTERN))]
    pub profile_arn: String,
    /// ARN of the IAM role to assume; its trust policy must trust `rolesanywhere.amazonaws.com`.
    #[schemars(regex(pattern = ROLE_ARN_PATTERN))]
    pub role_arn: String,
    /// Region of the Roles Anywhere endpoint. Default: the region in `trustAnchorArn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = REGION_PATTERN))]
    pub region: Option<String>,
    /// Lifetime of each set of temporary credentials, in seconds (900 to 43200; the profile's
    /// own limit also applies). Default: 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 900, max = 43200))]
    pub session_duration_seconds: Option<i32>,
    /// Role session name recorded in CloudTrail (the profile must accept custom names).
    /// Default: the certificate serial number, as Roles Anywhere does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 64), regex(pattern = r"^[\w+=,.@-]*$"))]
    pub role_session_name: Option<String>,
}

/// Observed state of a RolesAnywhereBinding.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolesAnywhereBindingStatus {
    /// `Ready` is True when the certificate is Ready and the binding can inject pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The WorkloadCertificate whose Secret the sidecar mounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_name: Option<String>,
    /// How many existing pods the binding selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_pods: Option<i32>,
    /// Service accounts of the selected pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
}

impl RolesAnywhereBinding {
    /// The WorkloadCertificate the sidecar uses: the referenced one, or the one created from
    /// the template, which is named after the binding.
    pub fn certificate_name(&self) -> String {
        match &self.spec.certificate_ref {
            Some(reference) => reference.name.clone(),
            None => self.name_any(),
        }
    }

    /// Whether the binding selects `pod`: its label selector and its service account, each when set.
    pub fn selects(&self, pod: &Pod) -> bool {
        let labels: BTreeMap<String, String> = pod.labels().clone();
        let by_labels = match &self.spec.selector {
            Some(selector) => match Selector::try_from(selector.clone()) {
                Ok(selector) => selector.matches(&labels),
                // An unparseable selector selects nothing rather than everything.
                Err(_) => false,
            },
            None => true,
        };
        let service_account = pod
            .spec
            .as_ref()
            .and_then(|spec| spec.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        let by_account = self
            .spec
            .service_account_name
            .as_ref()
            .is_none_or(|name| *name == service_account);
        by_labels && by_account
    }
}
