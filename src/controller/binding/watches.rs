//! The RolesAnywhereBinding controller: its certificates and its injected pods revisit it.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use super::reconcile;
use crate::api::scoped_api as api;
use crate::api::well_known::{INJECTED_BY_ANNOTATION, INJECTED_LABEL};
use crate::api::{RolesAnywhereBinding, WorkloadCertificate};
use crate::controller::{Context, ReconcilerScope, error_policy, guarded, log_outcome, queued};
use crate::shared_watch::SharedWatches;

/// RolesAnywhereBindings, until a shutdown signal. Their watch is the webhook's; the
/// certificates that revisit them arrive from the certificate controller's watch.
pub(crate) async fn run_bindings(
    client: kube::Client,
    scope: &ReconcilerScope,
    ctx: Arc<Context>,
    watches: &SharedWatches,
    binding_triggers: tokio::sync::mpsc::UnboundedReceiver<ObjectRef<RolesAnywhereBinding>>,
) {
    let binding_store = watches.bindings.store();
    let Some(bindings) = watches.bindings.take_objects(|_| {}).await else {
        tracing::error!("the bindings' watch was taken twice; not reconciling bindings");
        return;
    };
    let binding_triggers = futures::stream::unfold(binding_triggers, |mut triggers| async {
        let binding = triggers.recv().await?;
        Some((binding, triggers))
    });
    Controller::for_stream(bindings, binding_store.clone())
        .with_config(queued())
        // A certificate it created changed or went (it is made again), or a referenced one
        // became Ready or not (the binding's Ready follows): sent by the certificates' watch.
        .reconcile_on(binding_triggers)
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

/// The bindings a certificate matters to: the one that created it, and those that refer to it.
pub(crate) fn bindings_of(
    store: &Store<RolesAnywhereBinding>,
    certificate: &WorkloadCertificate,
) -> Vec<ObjectRef<RolesAnywhereBinding>> {
    let namespace = certificate.namespace();
    let name = certificate.name_any();
    let creators = certificate
        .owner_references()
        .iter()
        .filter(|owner| owner.kind == "RolesAnywhereBinding")
        .map(|owner| owner.name.clone());
    let mut names: Vec<String> = creators.collect();
    names.extend(
        store
            .state()
            .into_iter()
            .filter(|binding| {
                binding.namespace() == namespace
                    && binding.spec.certificate_ref.as_ref().map(|r| &r.name) == Some(&name)
            })
            .map(|binding| binding.name_any()),
    );
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|binding| {
            let reference = ObjectRef::new(&binding);
            match &namespace {
                Some(namespace) => reference.within(namespace),
                None => reference,
            }
        })
        .collect()
}
