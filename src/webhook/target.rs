//! Which binding, if any, a new pod falls under, and what its sidecar needs. Pure functions of
//! the pod, the namespace's bindings and their certificates: table-tested without a cluster.

use k8s_openapi::api::core::v1::Pod;
use kube::{Resource, ResourceExt};

use super::mutation::InjectionTarget;
use crate::api::{RolesAnywhereBinding, WorkloadCertificate};

pub use crate::api::well_known::INJECT_ANNOTATION;

/// Why a pod is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "pod matches {count} RolesAnywhereBindings ({names}); a pod can act as one IAM role only: narrow their selectors or serviceAccountName"
    )]
    Ambiguous { count: usize, names: String },
    #[error(
        "RolesAnywhereBinding {binding} refers to WorkloadCertificate {certificate}, which does not exist in namespace {namespace}"
    )]
    CertificateNotFound {
        binding: String,
        certificate: String,
        namespace: String,
    },
    #[error(
        "WorkloadCertificate {certificate} is for service account {wanted} and this pod runs as {actual}: set the pod's spec.serviceAccountName to {wanted}, or bind a certificate issued for {actual}"
    )]
    WrongServiceAccount {
        certificate: String,
        wanted: String,
        actual: String,
    },
    #[error(
        "pod uses hostNetwork: the sidecar's loopback credentials endpoint would be the node's, serving this role to every process on the node; run the pod without hostNetwork, or opt it out with the annotation iamra.dev/inject: \"false\""
    )]
    HostNetwork,
    #[error(
        "the pod already has a {what} named {name}, which the credential sidecar adds: rename it"
    )]
    NameTaken { what: &'static str, name: String },
    #[error(
        "container {container} declares port {port}, where the credential sidecar listens (9911 credentials, 9912 health): move it to another port"
    )]
    PortTaken { container: String, port: i32 },
    #[error(
        "container {container} sets {variable} ({provider}): the AWS SDKs would use those credentials instead of the sidecar's; remove it (and the service account's IRSA or Pod Identity association), or opt the pod out with the annotation iamra.dev/inject: \"false\""
    )]
    CompetingCredentials {
        container: String,
        variable: String,
        provider: &'static str,
    },
}

/// The service account a pod runs as (Kubernetes' default when it names none).
pub fn pod_service_account(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|spec| spec.service_account_name.as_deref())
        .filter(|name| !name.is_empty())
        .unwrap_or("default")
}

/// The binding that selects `pod` among `bindings` (all in the pod's namespace): None when no
/// binding does or the pod opted out, an error when more than one does.
pub fn choose_binding<'a>(
    bindings: &'a [&'a RolesAnywhereBinding],
    pod: &Pod,
) -> Result<Option<&'a RolesAnywhereBinding>, Refusal> {
    if pod.annotations().get(INJECT_ANNOTATION).map(String::as_str) == Some("false") {
        return Ok(None);
    }
    let mut matching: Vec<&RolesAnywhereBinding> = bindings
        .iter()
        .copied()
        .filter(|binding| binding.meta().deletion_timestamp.is_none() && binding.selects(pod))
        .collect();
    match matching.len() {
        0 => Ok(None),
        1 => Ok(matching.pop()),
        count => {
            let mut names: Vec<String> = matching.iter().map(|b| b.name_any()).collect();
            names.sort();
            Err(Refusal::Ambiguous {
                count,
                names: names.join(", "),
            })
        }
    }
}

/// What the sidecar of `binding` needs, for a pod running as `service_account`. The template's
/// Secret name is known before its WorkloadCertificate exists; a referenced certificate must
/// exist. A certificate issued for a service account is mounted only into pods running as it.
pub fn injection_target(
    binding: &RolesAnywhereBinding,
    certificate: Option<&WorkloadCertificate>,
    namespace: &str,
    service_account: &str,
) -> Result<InjectionTarget, Refusal> {
    let spec = match (&binding.spec.certificate_template, certificate) {
        (_, Some(certificate)) => &certificate.spec,
        (Some(template), None) => template,
        (None, None) => {
            return Err(Refusal::CertificateNotFound {
                binding: binding.name_any(),
                certificate: binding.certificate_name(),
                namespace: namespace.to_string(),
            });
        }
    };
    if let Some(wanted) = &spec.service_account_name
        && wanted != service_account
    {
        return Err(Refusal::WrongServiceAccount {
            certificate: binding.certificate_name(),
            wanted: wanted.clone(),
            actual: service_account.to_string(),
        });
    }
    let secret = spec.secret_name.clone();
    let spec = &binding.spec;
    Ok(InjectionTarget {
        binding: binding.name_any(),
        certificate_secret: secret,
        trust_anchor_arn: spec.trust_anchor_arn.clone(),
        profile_arn: spec.profile_arn.clone(),
        role_arn: spec.role_arn.clone(),
        region: spec.region.clone(),
        // The platform's endpoint is set by the admission from the webhook's configuration.
        endpoint: None,
        session_duration_seconds: spec.session_duration_seconds,
        role_session_name: spec.role_session_name.clone(),
    })
}
