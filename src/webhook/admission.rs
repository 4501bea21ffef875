//! `POST /mutate-pods`: the AdmissionReview handler. Bindings and certificates come from
//! watch caches, so an admission costs no API call.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::runtime::reflector::{ObjectRef, Store};

use super::mutation::{InjectionTarget, SidecarImage, already_injected, inject};
use super::pod_shape::check_pod_shape;
use super::target::{choose_binding, injection_target, pod_service_account};
use crate::api::{RolesAnywhereBinding, WorkloadCertificate};

/// What the handler reads.
pub struct AdmissionState {
    pub bindings: Store<RolesAnywhereBinding>,
    pub certificates: Store<WorkloadCertificate>,
    pub image: SidecarImage,
    /// Roles Anywhere endpoint the sidecar calls: the platform's, never a tenant's.
    pub sidecar_endpoint: Option<String>,
}

/// The response to one pod admission.
pub fn admit(state: &AdmissionState, request: &AdmissionRequest<Pod>) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    let (Operation::Create, Some(pod)) = (&request.operation, &request.object) else {
        return response;
    };
    let Some(namespace) = request.namespace.as_deref() else {
        return response;
    };
    // Already carrying the sidecar (a pod created from an injected spec): nothing to add.
    if already_injected(pod) {
        return response;
    }
    let pod_name = pod
        .metadata
        .name
        .clone()
        .or_else(|| pod.metadata.generate_name.clone())
        .unwrap_or_default();
    let bindings: Vec<Arc<RolesAnywhereBinding>> = state
        .bindings
        .state()
        .into_iter()
        .filter(|binding| binding.namespace().as_deref() == Some(namespace))
        .collect();
    let binding_refs: Vec<&RolesAnywhereBinding> = bindings.iter().map(Arc::as_ref).collect();
    let binding = match choose_binding(&binding_refs, pod) {
        Ok(Some(binding)) => binding,
        Ok(None) => return response,
        Err(refusal) => {
            tracing::info!(namespace, pod = pod_name, %refusal, "pod refused");
            return response.deny(refusal);
        }
    };
    let certificate = state
        .certificates
        .get(&ObjectRef::new(&binding.certificate_name()).within(namespace));
    if let Err(refusal) = check_pod_shape(pod) {
        tracing::info!(namespace, pod = pod_name, %refusal, "pod refused");
        return response.deny(refusal);
    }
    let target = match injection_target(
        binding,
        certificate.as_deref(),
        namespace,
        pod_service_account(pod),
    ) {
        Ok(target) => InjectionTarget {
            endpoint: state.sidecar_endpoint.clone(),
            ..target
        },
        Err(refusal) => {
            tracing::info!(namespace, pod = pod_name, %refusal, "pod refused");
            return response.deny(refusal);
        }
    };
    let injected = inject(pod, &target, &state.image);
    let patch = match (serde_json::to_value(pod), serde_json::to_value(&injected)) {
        (Ok(before), Ok(after)) => json_patch::diff(&before, &after),
        (Err(error), _) | (_, Err(error)) => {
            return response.deny(format!("iamra could not serialize the pod: {error}"));
        }
    };
    match response.clone().with_patch(patch) {
        Ok(patched) => {
            tracing::info!(
                namespace,
                pod = pod_name,
                binding = target.binding,
                secret = target.certificate_secret,
                "credential sidecar injected"
            );
            patched
        }
        Err(error) => response.deny(format!("iamra could not encode the patch: {error}")),
    }
}

pub async fn mutate_pods(
    State(state): State<Arc<AdmissionState>>,
    Json(review): Json<AdmissionReview<Pod>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let request: AdmissionRequest<Pod> = match review.try_into() {
        Ok(request) => request,
        Err(error) => {
            return Json(AdmissionResponse::invalid(error.to_string()).into_review());
        }
    };
    Json(admit(&state, &request).into_review())
}
