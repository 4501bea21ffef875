//! The MutatingWebhookConfiguration the controller owns: how the API server reaches the
//! webhook, which pods it sends, and the caBundle that must match the serving certificate.

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::{INJECTION_LABEL, INJECTION_LABEL_VALUE, MUTATE_PODS_PATH, WebhookOptions};
use crate::controller::{FIELD_MANAGER, MANAGED_BY_LABEL, MANAGED_BY_VALUE};

/// Name of the single webhook in the configuration.
pub const WEBHOOK_NAME: &str = "pods.iamra.dev";

/// How the API server reaches the webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookEndpoint {
    /// In a cluster: a Service in front of the controller (port 443).
    Service { namespace: String, name: String },
    /// Outside a cluster (local runs, tests): an https URL, the `/mutate-pods` path appended.
    Url(String),
}

/// The configuration as a server-side-apply body.
/// A controller watching one namespace only takes pods of that namespace.
pub fn webhook_configuration(
    name: &str,
    endpoint: &WebhookEndpoint,
    ca_pem: &str,
    namespace: Option<&str>,
) -> Value {
    let ca_bundle = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes())
    };
    let client_config = match endpoint {
        WebhookEndpoint::Service { namespace, name } => json!({
            "service": {"namespace": namespace, "name": name, "path": MUTATE_PODS_PATH, "port": 443},
            "caBundle": ca_bundle,
        }),
        WebhookEndpoint::Url(url) => json!({
            "url": format!("{}{MUTATE_PODS_PATH}", url.trim_end_matches('/')),
            "caBundle": ca_bundle,
        }),
    };
    let mut namespace_selector = json!({"matchLabels": {INJECTION_LABEL: INJECTION_LABEL_VALUE}});
    if let Some(namespace) = namespace {
        namespace_selector["matchExpressions"] = json!([{
            "key": "kubernetes.io/metadata.name",
            "operator": "In",
            "values": [namespace],
        }]);
    }
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE}},
        "webhooks": [{
            "name": WEBHOOK_NAME,
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            // A pod that should get credentials and silently does not is worse than a pod
            // refused with a message while the webhook is down.
            "failurePolicy": "Fail",
            "timeoutSeconds": 10,
            "reinvocationPolicy": "Never",
            "namespaceSelector": namespace_selector,
            "rules": [{
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
                "scope": "Namespaced",
            }],
            "clientConfig": client_config,
        }],
    })
}

/// Creates or updates the configuration, taking ownership of every field it sets.
pub async fn apply(
    client: &kube::Client,
    options: &WebhookOptions,
    ca_pem: &str,
) -> Result<(), kube::Error> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let name = &options.configuration_name;
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(webhook_configuration(
            name,
            &options.endpoint,
            ca_pem,
            options.namespace.as_deref(),
        )),
    )
    .await?;
    Ok(())
}
