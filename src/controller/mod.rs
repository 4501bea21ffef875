//! The operator: one reconciler per custom resource, sharing one [`Context`].

mod backoff;
mod ca;
mod conditions;
mod context;
mod error;
mod issuance_policy;
mod issuer;
mod secret_layout;
mod workload_certificate;

pub use context::{Context, FIELD_MANAGER};
pub use error::Error;
pub use secret_layout::{
    CA_CERTIFICATE_KEY, CERTIFICATE_NAME_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE,
    REVISION_ANNOTATION, SERIAL_ANNOTATION, TLS_CERTIFICATE_KEY, TLS_PRIVATE_KEY_KEY,
};

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use crate::api::{Issuer, WorkloadCertificate};

/// Where the controller works.
#[derive(Clone, Debug, Default)]
pub struct ControllerOptions {
    /// Watch one namespace only; None watches the whole cluster.
    pub namespace: Option<String>,
    /// Reconciles of one kind running at once.
    pub concurrency: u16,
}

fn api<K>(client: &kube::Client, namespace: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// Runs the reconcilers until a shutdown signal (SIGTERM, Ctrl-C).
pub async fn run(client: kube::Client, aws: aws_config::SdkConfig, options: ControllerOptions) {
    let instance =
        std::env::var("POD_NAME").unwrap_or_else(|_| format!("iamra-{}", std::process::id()));
    let ctx = Arc::new(Context::new(client.clone(), aws, instance));
    let config = kube::runtime::controller::Config::default().concurrency(options.concurrency);

    let issuers = Controller::new(
        api::<Issuer>(&client, &options.namespace),
        watcher::Config::default(),
    )
    .with_config(config.clone())
    .shutdown_on_signal()
    .run(issuer::reconcile, issuer::error_policy, ctx.clone())
    .for_each(|result| async move {
        if let Err(error) = result {
            tracing::debug!(%error, "issuer reconcile error");
        }
    });

    let certificates = Controller::new(
        api::<WorkloadCertificate>(&client, &options.namespace),
        watcher::Config::default(),
    );
    let certificate_store = certificates.store();
    let certificates = certificates
        .with_config(config)
        .owns(
            api::<Secret>(&client, &options.namespace),
            watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")),
        )
        // A change of an Issuer (it became Ready, its CA changed) revisits its certificates.
        .watches(
            api::<Issuer>(&client, &options.namespace),
            watcher::Config::default(),
            move |issuer| {
                let namespace = issuer.namespace();
                let name = issuer.name_any();
                certificate_store
                    .state()
                    .into_iter()
                    .filter(|certificate| {
                        certificate.namespace() == namespace
                            && certificate.spec.issuer_ref.name == name
                    })
                    .map(|certificate| ObjectRef::from_obj(certificate.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .shutdown_on_signal()
        .run(
            workload_certificate::reconcile,
            workload_certificate::error_policy,
            ctx,
        )
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "workload certificate reconcile error");
            }
        });

    futures::join!(issuers, certificates);
}
