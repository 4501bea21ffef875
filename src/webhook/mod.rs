//! The mutating admission webhook: pods a RolesAnywhereBinding selects get the credential
//! sidecar. Served over TLS with a certificate from the operator's own CA; the controller keeps
//! the MutatingWebhookConfiguration and its caBundle current.

mod admission;
mod configuration;
mod mutation;
mod pod_shape;
mod serving_certificate;
mod target;
mod tls;

pub use admission::{AdmissionState, admit};
pub use configuration::{WEBHOOK_NAME, WebhookEndpoint, webhook_configuration};
pub use mutation::{
    CREDENTIALS_URL, HEALTH_PORT, INJECTED_BY_ANNOTATION, INJECTED_LABEL, InjectionTarget,
    SIDECAR_CONTAINER, SidecarImage, TOKEN_FILE, already_injected, inject,
};
pub use serving_certificate::{
    CA_SECRET, SERVING_SECRET, ServingCertificate, ServingCertificateError, ServingNames,
    new_serving_certificate, new_webhook_ca, still_good,
};
pub use target::{
    INJECT_ANNOTATION, Refusal, choose_binding, injection_target, pod_service_account,
};
pub use tls::{ReloadableCertificate, TlsError};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use time::OffsetDateTime;

use crate::shared_watch::SharedWatches;

pub use crate::api::well_known::{INJECTION_LABEL, INJECTION_LABEL_VALUE};
/// Path the API server posts AdmissionReviews of pods to.
pub const MUTATE_PODS_PATH: &str = "/mutate-pods";
/// The serving certificate is checked at least this often (another replica may have renewed it).
const RECHECK_INTERVAL: Duration = Duration::from_secs(600);
const RETRY_INTERVAL: Duration = Duration::from_secs(30);

/// Where and how the webhook runs.
#[derive(Clone, Debug)]
pub struct WebhookOptions {
    pub address: SocketAddr,
    pub endpoint: WebhookEndpoint,
    /// Name of the MutatingWebhookConfiguration the controller owns.
    pub configuration_name: String,
    /// Namespace of the webhook CA and serving certificate Secrets.
    pub secret_namespace: String,
    pub sidecar_image: SidecarImage,
    /// Roles Anywhere endpoint written into injected sidecars; None: the regional endpoint.
    pub sidecar_endpoint: Option<String>,
    /// Watch bindings of this namespace only.
    pub namespace: Option<String>,
    /// ClusterRole that owns the MutatingWebhookConfiguration, so uninstalling removes it.
    pub owner_cluster_role: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook serving certificate: {0}")]
    Certificate(#[from] ServingCertificateError),
    #[error("webhook TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("MutatingWebhookConfiguration: {0}")]
    Configuration(kube::Error),
    #[error("webhook URL {0:?} has no host")]
    UrlWithoutHost(String),
}

fn serving_names(endpoint: &WebhookEndpoint) -> Result<ServingNames, WebhookError> {
    match endpoint {
        WebhookEndpoint::Service { namespace, name } => {
            Ok(ServingNames::for_service(namespace, name))
        }
        WebhookEndpoint::Url(url) => url
            .parse::<http::Uri>()
            .ok()
            .and_then(|uri| uri.host().map(ServingNames::for_host))
            .ok_or_else(|| WebhookError::UrlWithoutHost(url.clone())),
    }
}

/// Starts the webhook: serving certificate, the TLS server (answering from the shared watches), then the
/// MutatingWebhookConfiguration pointing at it; keeps both current in the background.
/// Returns the address it listens on.
pub async fn start(
    client: kube::Client,
    options: WebhookOptions,
    watches: &SharedWatches,
) -> Result<SocketAddr, WebhookError> {
    let names = serving_names(&options.endpoint)?;
    let serving = serving_certificate::ensure(&client, &options.secret_namespace, &names).await?;
    let certificate = Arc::new(tls::ReloadableCertificate::new(
        &serving.certificate_pem,
        &serving.private_key_pem,
    )?);
    let state = Arc::new(AdmissionState {
        bindings: watches.bindings.store(),
        certificates: watches.certificates.store(),
        image: options.sidecar_image.clone(),
        sidecar_endpoint: options.sidecar_endpoint.clone(),
    });
    let bound = serve_admissions(options.address, certificate.clone(), state).await?;
    configuration::apply(&client, &options, &serving.ca_pem)
        .await
        .map_err(WebhookError::Configuration)?;
    tracing::info!(address = %bound, configuration = options.configuration_name, "webhook serving");
    tokio::spawn(keep_current(client, options, names, certificate, serving));
    Ok(bound)
}

/// Serves `POST /mutate-pods` for `state` over TLS on `address` in the background, within the
/// default [`tls::ServeLimits`]; returns the bound address. What [`start`] runs once its
/// certificate and caches are ready (the benches call it directly).
pub async fn serve_admissions(
    address: SocketAddr,
    certificate: Arc<ReloadableCertificate>,
    state: Arc<AdmissionState>,
) -> Result<SocketAddr, TlsError> {
    let router = axum::Router::new()
        .route(
            MUTATE_PODS_PATH,
            axum::routing::post(admission::mutate_pods),
        )
        .with_state(state);
    tls::serve(address, certificate, router, tls::ServeLimits::default()).await
}

/// Whether the configuration in the cluster is the one this controller applies (its caBundle
/// and where it points); None (deleted) is not.
fn configuration_is_current(
    existing: Option<&MutatingWebhookConfiguration>,
    options: &WebhookOptions,
    ca_pem: &str,
) -> bool {
    let Some(existing) = existing else {
        return false;
    };
    let desired = webhook_configuration(
        &options.configuration_name,
        &options.endpoint,
        ca_pem,
        options.namespace.as_deref(),
        None,
    );
    let Ok(existing) = serde_json::to_value(existing) else {
        return false;
    };
    let webhook = |value: &serde_json::Value| value["webhooks"][0].clone();
    let (existing, desired) = (webhook(&existing), webhook(&desired));
    existing["clientConfig"] == desired["clientConfig"]
        && existing["namespaceSelector"] == desired["namespaceSelector"]
        && existing["failurePolicy"] == desired["failurePolicy"]
        && existing["rules"] == desired["rules"]
}

/// Renews the serving certificate before it expires, and puts the configuration back at once
/// when it is deleted or edited, so its caBundle always matches the serving certificate.
async fn keep_current(
    client: kube::Client,
    options: WebhookOptions,
    names: ServingNames,
    certificate: Arc<tls::ReloadableCertificate>,
    mut serving: ServingCertificate,
) {
    let configurations: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let mut changes = watcher(
        configurations.clone(),
        watcher::Config::default().fields(&format!("metadata.name={}", options.configuration_name)),
    )
    .default_backoff()
    .boxed();
    loop {
        let until_renewal = (serving.renewal_time() - OffsetDateTime::now_utc())
            .try_into()
            .unwrap_or(Duration::ZERO);
        let existing = tokio::select! {
            _ = tokio::time::sleep(until_renewal.min(RECHECK_INTERVAL)) => {
                match serving_certificate::ensure(&client, &options.secret_namespace, &names).await {
                    Ok(renewed) if renewed != serving => {
                        if let Err(error) =
                            certificate.replace(&renewed.certificate_pem, &renewed.private_key_pem)
                        {
                            tracing::warn!(%error, "renewed webhook certificate unusable; keeping the old one");
                            tokio::time::sleep(RETRY_INTERVAL).await;
                            continue;
                        }
                        tracing::info!(not_after = %renewed.not_after, "webhook serving certificate renewed");
                        serving = renewed;
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "webhook serving certificate check failed; retrying");
                        tokio::time::sleep(RETRY_INTERVAL).await;
                        continue;
                    }
                }
                // Applied below when the renewal changed the CA.
                configurations.get_opt(&options.configuration_name).await.ok().flatten()
            }
            event = changes.next() => match event {
                Some(Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object))) => {
                    Some(object)
                }
                Some(Ok(watcher::Event::Delete(_))) => None,
                // Init markers and watch errors (retried by the backoff) need no action.
                Some(_) => continue,
                // The watch only ends with the process.
                None => return,
            },
        };
        if configuration_is_current(existing.as_ref(), &options, &serving.ca_pem) {
            continue;
        }
        match configuration::apply(&client, &options, &serving.ca_pem).await {
            Ok(()) => tracing::info!(
                configuration = options.configuration_name,
                "MutatingWebhookConfiguration restored"
            ),
            Err(error) => {
                tracing::warn!(%error, "could not update the MutatingWebhookConfiguration; retrying");
                tokio::time::sleep(RETRY_INTERVAL).await;
            }
        }
    }
}

#[cfg(test)]
mod tests;
