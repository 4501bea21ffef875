//! The RolesAnywhereBinding controller: its certificates and its injected pods revisit it.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use super::reconcile;
use crate::api::scoped_api as api;
use crate::api::well_known::{INJECTED_BY_ANNOTATION, INJECTED_LABEL};
use crate::api::{RolesAnywhereBinding, WorkloadCertificate};
use crate::controller::{Context, ReconcilerScope, error_policy, guarded, log_outcome, queued};

/// RolesAnywhereBindings, until a shutdown signal.
pub(crate) async fn run_bindings(client: kube::Client, scope: &ReconcilerScope, ctx: Arc<Context>) {
    let bindings = Controller::new(
        api::<RolesAnywhereBinding>(&client, &scope.namespace),
        watcher::Config::default(),
    );
    let binding_store = bindings.store();
    bindings
        .with_config(queued())
        .owns(
            api::<WorkloadCertificate>(&client, &scope.namespace),
            watcher::Config::default(),
        )
        // A referenced certificate becoming Ready (or not) changes the binding's Ready.
        .watches(
            api::<WorkloadCertificate>(&client, &scope.namespace),
            watcher::Config::default(),
            move |certificate| {
                let namespace = certificate.namespace();
                let name = certificate.name_any();
                binding_store
                    .state()
                    .into_iter()
                    .filter(|binding| {
                        binding.namespace() == namespace
                            && binding.spec.certificate_ref.as_ref().map(|r| &r.name) == Some(&name)
                    })
                    .map(|binding| ObjectRef::from_obj(binding.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        // Injected pods (labelled by the webhook) update the count of the binding they name.
        .watches(
            api::<Pod>(&client, &scope.namespace),
            watcher::Config::default().labels(&format!("{INJECTED_LABEL}=true")),
            |pod| {
                let namespace = pod.namespace()?;
                let binding = pod.annotations().get(INJECTED_BY_ANNOTATION)?;
                Some(ObjectRef::<RolesAnywhereBinding>::new(binding).within(&namespace))
            },
        )
        .shutdown_on_signal()
        .run(
            guarded("binding", &ctx, reconcile),
            error_policy("binding"),
            ctx.clone(),
        )
        .for_each(log_outcome("binding"))
        .await;
}
