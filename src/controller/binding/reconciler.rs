//! RolesAnywhereBinding reconciler: checks the binding can work (consistent ARNs, a Ready
//! certificate), creates the WorkloadCertificate of a template, and reports which pods and
//! service accounts it covers.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::instrument;

use crate::api::well_known::{INJECTION_LABEL, INJECTION_LABEL_VALUE};
use crate::api::{
    CONDITION_READY, RolesAnywhereBinding, RolesAnywhereBindingStatus, WorkloadCertificate,
};
use crate::controller::conditions::{condition, is_true, status_changed};
use crate::controller::context::{Context, FIELD_MANAGER};
use crate::controller::error::Error;
use crate::controller::reasons;
use crate::controller::runtime::backoff::TRANSIENT_RETRY;
use crate::controller::status::apply_status;

/// Condition type: whether the binding's namespace has opted in to sidecar injection.
pub const CONDITION_INJECTION_ENABLED: &str = "InjectionEnabled";
/// Pod counts in the status are refreshed this often. Only injected pods are watched (a
/// cluster's pods are too many to cache for a count), so selected pods that predate the binding
/// are counted on this timer.
const POD_COUNT_REFRESH: Duration = Duration::from_secs(60);

/// Region and account of a Roles Anywhere ARN (`arn:partition:rolesanywhere:region:account:…`).
fn region_and_account(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.split(':');
    let region = parts.nth(3)?;
    let account = parts.next()?;
    Some((region, account))
}

/// Checks what the schema cannot: the trust anchor and the profile live in the same region and
/// account, as CreateSession requires.
pub fn check_arns(binding: &RolesAnywhereBinding) -> Result<(), String> {
    let spec = &binding.spec;
    match (
        region_and_account(&spec.trust_anchor_arn),
        region_and_account(&spec.profile_arn),
    ) {
        (Some(anchor), Some(profile)) if anchor == profile => Ok(()),
        (Some((anchor_region, anchor_account)), Some((profile_region, profile_account))) => {
            Err(format!(
                "trustAnchorArn is in region {anchor_region} account {anchor_account} but \
                 profileArn is in region {profile_region} account {profile_account}; \
                 CreateSession needs both in the same region and account"
            ))
        }
        _ => Err("trustAnchorArn or profileArn is not a Roles Anywhere ARN".into()),
    }
}

/// Checks the label selector can be evaluated; one that cannot selects no pod.
pub fn check_selector(binding: &RolesAnywhereBinding) -> Result<(), String> {
    match &binding.spec.selector {
        Some(selector) => kube::core::Selector::try_from(selector.clone())
            .map(|_| ())
            .map_err(|error| format!("spec.selector selects no pod: {error}")),
        None => Ok(()),
    }
}

/// What the binding's certificate looks like right now.
enum CertificateState {
    Ready,
    NotReady(String),
    Missing,
    /// A WorkloadCertificate of the template's name exists but another owner has it.
    Conflict,
}

/// Whether `certificate` is the one `binding` created from its template.
fn owned_by(binding: &RolesAnywhereBinding, certificate: &WorkloadCertificate) -> bool {
    certificate
        .owner_references()
        .iter()
        .any(|owner| Some(&owner.uid) == binding.uid().as_ref())
}

async fn ensure_template_certificate(
    binding: &RolesAnywhereBinding,
    api: &Api<WorkloadCertificate>,
) -> Result<Option<WorkloadCertificate>, Error> {
    let Some(template) = &binding.spec.certificate_template else {
        return Ok(None);
    };
    let name = binding.certificate_name();
    if let Some(existing) = api.get_opt(&name).await? {
        // Another owner's certificate is reported as a conflict; ours, already as the template
        // says, needs no write.
        if !owned_by(binding, &existing) || existing.spec == *template {
            return Ok(Some(existing));
        }
    }
    let owner = binding
        .controller_owner_ref(&())
        .ok_or(Error::MissingObjectKey("uid"))?;
    let certificate = json!({
        "apiVersion": "iamra.dev/v1alpha1",
        "kind": "WorkloadCertificate",
        "metadata": {"name": name, "ownerReferences": [owner]},
        "spec": template,
    });
    let applied = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&certificate),
        )
        .await?;
    Ok(Some(applied))
}

fn certificate_state(
    binding: &RolesAnywhereBinding,
    certificate: Option<&WorkloadCertificate>,
) -> CertificateState {
    let Some(certificate) = certificate else {
        return CertificateState::Missing;
    };
    if binding.spec.certificate_template.is_some() && !owned_by(binding, certificate) {
        return CertificateState::Conflict;
    }
    let conditions = certificate
        .status
        .as_ref()
        .map(|status| status.conditions.as_slice())
        .unwrap_or_default();
    if is_true(conditions, CONDITION_READY) {
        CertificateState::Ready
    } else {
        let why = conditions
            .iter()
            .find(|c| c.type_ == CONDITION_READY)
            .map(|c| format!("{}: {}", c.reason, c.message))
            .unwrap_or_else(|| "not issued yet".into());
        CertificateState::NotReady(why)
    }
}

/// The pods of the namespace the binding selects, and their service accounts.
async fn covered_pods(
    binding: &RolesAnywhereBinding,
    pods: &Api<Pod>,
) -> Result<(i32, Vec<String>), Error> {
    let mut params = ListParams::default();
    if let Some(selector) = &binding.spec.selector {
        // The selector was checked by the schema; a selector the client cannot express falls
        // back to filtering every pod locally.
        if let Ok(selector) = kube::core::Selector::try_from(selector.clone()) {
            params = params.labels_from(&selector);
        }
    }
    let mut count = 0;
    let mut accounts = BTreeSet::new();
    for pod in pods.list(&params).await?.items {
        if binding.selects(&pod) {
            count += 1;
            accounts.insert(
                pod.spec
                    .as_ref()
                    .and_then(|spec| spec.service_account_name.clone())
                    .unwrap_or_else(|| "default".into()),
            );
        }
    }
    Ok((count, accounts.into_iter().collect()))
}

async fn namespace_opted_in(ctx: &Context, namespace: &str) -> Result<bool, Error> {
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    Ok(namespaces.get_opt(namespace).await?.is_some_and(|ns| {
        ns.labels().get(INJECTION_LABEL).map(String::as_str) == Some(INJECTION_LABEL_VALUE)
    }))
}

#[instrument(skip_all, fields(namespace = binding.namespace(), name = binding.name_any()))]
pub async fn reconcile(
    binding: Arc<RolesAnywhereBinding>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let namespace = binding
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let api: Api<RolesAnywhereBinding> = Api::namespaced(ctx.client.clone(), &namespace);
    let certificates: Api<WorkloadCertificate> = Api::namespaced(ctx.client.clone(), &namespace);
    let previous = binding.status.clone().unwrap_or_default();
    let generation = binding.meta().generation;

    let certificate = match ensure_template_certificate(&binding, &certificates).await? {
        Some(certificate) => Some(certificate),
        None => certificates.get_opt(&binding.certificate_name()).await?,
    };
    let (matched_pods, service_accounts) =
        covered_pods(&binding, &Api::namespaced(ctx.client.clone(), &namespace)).await?;
    let opted_in = namespace_opted_in(&ctx, &namespace).await?;

    let certificate_name = binding.certificate_name();
    let (ready, reason, message) = match (check_arns(&binding), check_selector(&binding)) {
        (Err(message), _) => (false, reasons::INVALID_ARNS, message),
        (_, Err(message)) => (false, reasons::INVALID_SELECTOR, message),
        (Ok(()), Ok(())) => match certificate_state(&binding, certificate.as_ref()) {
            CertificateState::Ready => (
                true,
                "Ready",
                format!(
                    "pods it selects get credentials for {}",
                    binding.spec.role_arn
                ),
            ),
            CertificateState::NotReady(why) => (
                false,
                reasons::CERTIFICATE_NOT_READY,
                format!("WorkloadCertificate {certificate_name} is not Ready ({why})"),
            ),
            CertificateState::Missing => (
                false,
                reasons::CERTIFICATE_NOT_FOUND,
                format!(
                    "WorkloadCertificate {certificate_name} does not exist in namespace {namespace}"
                ),
            ),
            CertificateState::Conflict => (
                false,
                reasons::CERTIFICATE_CONFLICT,
                format!(
                    "a WorkloadCertificate named {certificate_name} already exists and is not owned by this binding; rename the binding or delete that certificate"
                ),
            ),
        },
    };
    let injection = if opted_in {
        condition(
            &previous.conditions,
            CONDITION_INJECTION_ENABLED,
            true,
            reasons::NAMESPACE_LABELLED,
            format!("namespace {namespace} has {INJECTION_LABEL}={INJECTION_LABEL_VALUE}"),
            generation,
        )
    } else {
        condition(
            &previous.conditions,
            CONDITION_INJECTION_ENABLED,
            false,
            reasons::NAMESPACE_NOT_LABELLED,
            format!(
                "pods are not injected until namespace {namespace} is labelled {INJECTION_LABEL}={INJECTION_LABEL_VALUE}"
            ),
            generation,
        )
    };
    let status = RolesAnywhereBindingStatus {
        conditions: vec![
            condition(
                &previous.conditions,
                CONDITION_READY,
                ready,
                reason,
                message.clone(),
                generation,
            ),
            injection,
        ],
        observed_generation: generation,
        certificate_name: Some(certificate_name),
        matched_pods: Some(matched_pods),
        service_accounts,
    };
    if status_changed(&previous, &status) {
        let was_ready = is_true(&previous.conditions, CONDITION_READY);
        apply_status(&api, &binding.name_any(), &status).await?;
        if ready != was_ready || previous.conditions.is_empty() {
            ctx.publish_event(binding.as_ref(), !ready, reason, "Reconcile", message)
                .await;
        }
    }
    Ok(Action::requeue(if ready {
        POD_COUNT_REFRESH
    } else {
        TRANSIENT_RETRY.min(POD_COUNT_REFRESH)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::CertificateReference;
    use crate::api::RolesAnywhereBindingSpec;

    fn binding(anchor: &str, profile: &str) -> RolesAnywhereBinding {
        RolesAnywhereBinding::new(
            "b",
            RolesAnywhereBindingSpec {
                selector: None,
                service_account_name: Some("app".into()),
                certificate_ref: Some(CertificateReference { name: "c".into() }),
                certificate_template: None,
                trust_anchor_arn: anchor.into(),
                profile_arn: profile.into(),
                role_arn: "arn:aws:iam::111122223333:role/app".into(),
                region: None,
                session_duration_seconds: None,
                role_session_name: None,
            },
        )
    }

    const ANCHOR: &str = "arn:aws:rolesanywhere:eu-west-1:111122223333:trust-anchor/0e4a1f5a-5c3b-4a9c-8a63-2f7d0c1b9e11";

    #[test]
    fn trust_anchor_and_profile_must_share_region_and_account() {
        let same = "arn:aws:rolesanywhere:eu-west-1:111122223333:profile/6f1c2b3a-9d8e-4f7a-b6c5-d4e3f2a1b0c9";
        assert_eq!(check_arns(&binding(ANCHOR, same)), Ok(()));
        let other_region = "arn:aws:rolesanywhere:us-east-1:111122223333:profile/6f1c2b3a-9d8e-4f7a-b6c5-d4e3f2a1b0c9";
        let error = check_arns(&binding(ANCHOR, other_region)).unwrap_err();
        assert!(
            error.contains("eu-west-1") && error.contains("us-east-1"),
            "{error}"
        );
        let other_account = "arn:aws:rolesanywhere:eu-west-1:444455556666:profile/6f1c2b3a-9d8e-4f7a-b6c5-d4e3f2a1b0c9";
        let error = check_arns(&binding(ANCHOR, other_account)).unwrap_err();
        assert!(error.contains("444455556666"), "{error}");
    }

    #[test]
    fn a_selector_that_cannot_be_evaluated_is_reported() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
            LabelSelector, LabelSelectorRequirement,
        };
        let mut bad = binding(ANCHOR, ANCHOR);
        bad.spec.selector = Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "app".into(),
                operator: "Near".into(),
                values: Some(vec!["x".into()]),
            }]),
            ..Default::default()
        });
        let error = check_selector(&bad).unwrap_err();
        assert!(error.starts_with("spec.selector selects no pod"), "{error}");
        bad.spec.selector = None;
        assert_eq!(check_selector(&bad), Ok(()));
    }
}
