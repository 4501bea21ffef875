//! AdmissionReview → pod patch: any pod a tenant creates in an opted-in namespace. Property: a
//! pod the API server would accept comes back either refused with a message, untouched, or
//! patched into a pod the API server would still accept, carrying the sidecar, and admitting the
//! patched pod again changes nothing.
#![no_main]

use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;

use iamra::api::{
    CertificateReference, IssuerReference, RolesAnywhereBinding, RolesAnywhereBindingSpec,
    WorkloadCertificate, WorkloadCertificateSpec,
};
use iamra::webhook::{AdmissionState, SidecarImage, admit, already_injected};
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::core::admission::{AdmissionRequest, AdmissionReview};
use kube::runtime::reflector::store;
use kube::runtime::watcher;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

const NAMESPACE: &str = "payments";

fn state() -> &'static AdmissionState {
    static STATE: OnceLock<AdmissionState> = OnceLock::new();
    STATE.get_or_init(|| {
        let mut binding = RolesAnywhereBinding::new(
            "payments",
            RolesAnywhereBindingSpec {
                selector: None,
                service_account_name: None,
                certificate_ref: Some(CertificateReference {
                    name: "payments-cert".into(),
                }),
                certificate_template: None,
                trust_anchor_arn: "arn:aws:rolesanywhere:eu-west-1:111122223333:trust-anchor/a"
                    .into(),
                profile_arn: "arn:aws:rolesanywhere:eu-west-1:111122223333:profile/p".into(),
                role_arn: "arn:aws:iam::111122223333:role/payments".into(),
                region: Some("eu-west-1".into()),
                session_duration_seconds: Some(900),
                role_session_name: None,
            },
        );
        binding.metadata.namespace = Some(NAMESPACE.into());
        let mut certificate = WorkloadCertificate::new(
            "payments-cert",
            WorkloadCertificateSpec {
                issuer_ref: IssuerReference::issuer("issuer"),
                service_account_name: None,
                subject: Default::default(),
                uris: vec!["spiffe://example/payments".into()],
                dns_names: Vec::new(),
                key_algorithm: None,
                duration: None,
                renew_before: None,
                secret_name: "payments-tls".into(),
                private_key_rotation_policy: None,
                secret_template: None,
            },
        );
        certificate.metadata.namespace = Some(NAMESPACE.into());
        let (bindings, mut bindings_writer) = store::<RolesAnywhereBinding>();
        bindings_writer.apply_watcher_event(&watcher::Event::Apply(binding));
        let (certificates, mut certificates_writer) = store::<WorkloadCertificate>();
        certificates_writer.apply_watcher_event(&watcher::Event::Apply(certificate));
        // The stores stay readable after their writers are gone.
        std::mem::forget((bindings_writer, certificates_writer));
        AdmissionState {
            bindings,
            certificates,
            image: SidecarImage {
                image: "iamra:fuzz".into(),
                pull_policy: None,
            },
            sidecar_endpoint: None,
        }
    })
}

fn admission_request(pod: &Value) -> Option<AdmissionRequest<Pod>> {
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "fuzz",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": NAMESPACE,
            "userInfo": {},
            "object": pod,
        }
    });
    let review: AdmissionReview<Pod> = serde_json::from_value(review).ok()?;
    review.try_into().ok()
}

/// The part of the API server's pod validation that injection could break.
fn valid(pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else {
        return false;
    };
    let containers: Vec<&Container> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .collect();
    let volumes: Vec<&str> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    let unique = |names: &[&str]| names.iter().collect::<HashSet<_>>().len() == names.len();
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    !spec.containers.is_empty()
        && names.iter().all(|name| !name.is_empty())
        && unique(&names)
        && unique(&volumes)
        && containers.iter().all(|container| {
            let mounts = container.volume_mounts.iter().flatten();
            let paths: Vec<&str> = mounts.clone().map(|m| m.mount_path.as_str()).collect();
            unique(&paths)
                && mounts
                    .into_iter()
                    .all(|m| volumes.contains(&m.name.as_str()))
        })
        && containers.iter().all(|container| {
            let ports: Vec<i32> = container
                .ports
                .iter()
                .flatten()
                .map(|p| p.container_port)
                .collect();
            ports.iter().collect::<HashSet<_>>().len() == ports.len()
        })
}

/// How often each variable name occurs in each app container (by position: names may repeat).
fn env_names(pod: &Pod) -> BTreeMap<(usize, String), usize> {
    let mut counts = BTreeMap::new();
    for (index, container) in pod.spec.iter().flat_map(|s| &s.containers).enumerate() {
        for env in container.env.iter().flatten() {
            *counts.entry((index, env.name.clone())).or_default() += 1;
        }
    }
    counts
}

fuzz_target!(|data: &[u8]| {
    let Ok(pod_json) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(pod) = serde_json::from_value::<Pod>(pod_json.clone()) else {
        return;
    };
    let Some(request) = admission_request(&pod_json) else {
        return;
    };
    let response = admit(state(), &request);
    if !response.allowed {
        assert!(
            !response.result.message.is_empty(),
            "a refusal without a message"
        );
        return;
    }
    let Some(patch) = response.patch else {
        return;
    };
    let patch: json_patch::Patch = serde_json::from_slice(&patch).expect("the patch is JSON Patch");
    // The patch is computed against the pod as the webhook decoded it.
    let mut patched = serde_json::to_value(&pod).expect("a decoded pod encodes");
    json_patch::patch(&mut patched, &patch).expect("the patch applies to the pod it was made for");
    let patched: Pod = serde_json::from_value(patched).expect("the patched pod decodes");
    if valid(&pod) {
        assert!(
            valid(&patched),
            "injection made a valid pod invalid: {patched:?}"
        );
    }
    assert!(already_injected(&patched));
    // Injection never duplicates an environment variable of an app container.
    assert!(
        env_names(&patched).values().all(|count| *count == 1)
            || !env_names(&pod).values().all(|count| *count == 1)
    );
    let again =
        admission_request(&serde_json::to_value(&patched).expect("encodes")).expect("a request");
    let second = admit(state(), &again);
    assert!(
        second.allowed && second.patch.is_none(),
        "a second admission changed the pod"
    );
});
