//! The MutatingWebhookConfiguration the controller owns: how the API server reaches the
//! webhook, which pods it sends, and the caBundle that must match the serving certificate.

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::{INJECTION_LABEL, INJECTION_LABEL_VALUE, MUTATE_PODS_PATH, WebhookOptions};
use crate::api::well_known::{FIELD_MANAGER, MANAGED_BY_LABEL, MANAGED_BY_VALUE};

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
/// A controller watching one namespace only takes pods of that namespace. With `owner`, the
/// configuration is deleted by Kubernetes' garbage collector together with that object.
pub fn webhook_configuration(
    name: &str,
    endpoint: &WebhookEndpoint,
    ca_pem: &str,
    namespace: Option<&str>,
    owner: Option<&OwnerReference>,
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
    let mut expressions = Vec::new();
    if let Some(namespace) = namespace {
        expressions.push(json!({
            "key": "kubernetes.io/metadata.name",
            "operator": "In",
            "values": [namespace],
        }));
    }
    // The controller's own pods never wait for the controller: with the namespace opted in by
    // mistake and the webhook down, they could otherwise never start again.
    if let WebhookEndpoint::Service { namespace, .. } = endpoint {
        expressions.push(json!({
            "key": "kubernetes.io/metadata.name",
            "operator": "NotIn",
            "values": [namespace],
        }));
    }
    if !expressions.is_empty() {
        namespace_selector["matchExpressions"] = Value::Array(expressions);
    }
    let mut metadata = json!({"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE}});
    if let Some(owner) = owner {
        metadata["ownerReferences"] = json!([owner]);
    }
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": metadata,
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

/// The ClusterRole `name` as the owner of the configuration. A webhook left behind after the
/// controller is uninstalled would refuse every pod of opted-in namespaces (failurePolicy Fail);
/// owned by the installation's ClusterRole, it goes when that does.
async fn cluster_role_owner(
    client: &kube::Client,
    name: &str,
) -> Result<OwnerReference, kube::Error> {
    let role = Api::<ClusterRole>::all(client.clone()).get(name).await?;
    Ok(OwnerReference {
        api_version: "rbac.authorization.k8s.io/v1".into(),
        kind: "ClusterRole".into(),
        name: name.into(),
        uid: role.metadata.uid.unwrap_or_default(),
        ..Default::default()
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
    let owner = match &options.owner_cluster_role {
        Some(role) => Some(cluster_role_owner(client, role).await?),
        None => None,
    };
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(webhook_configuration(
            name,
            &options.endpoint,
            ca_pem,
            options.namespace.as_deref(),
            owner.as_ref(),
        )),
    )
    .await?;
    Ok(())
}
