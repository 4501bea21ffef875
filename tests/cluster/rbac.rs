//! The control plane enforces RBAC: a user without bindings is refused.

use kube::api::{DynamicObject, PostParams};
use libtest_mimic::Trial;

use crate::cluster::{TestCluster, api_for, sample, trial};
use iamra::localenv::UNPRIVILEGED_CONTEXT;

pub fn trials(cluster: &TestCluster) -> Vec<Trial> {
    vec![trial(
        "rbac::unbound_user_cannot_create_issuers",
        cluster,
        unbound_user_cannot_create_issuers,
    )]
}

async fn unbound_user_cannot_create_issuers(cluster: TestCluster) -> anyhow::Result<()> {
    let admin = cluster.client().await?;
    let namespace = cluster.namespace(&admin, "rbac").await?;
    let unprivileged = cluster.client_for(UNPRIVILEGED_CONTEXT).await?;
    let manifest = sample("issuer-local.yaml")?;
    let object: DynamicObject = serde_json::from_value(manifest.clone())?;
    let result = api_for(&unprivileged, &namespace, &manifest)?
        .create(&PostParams::default(), &object)
        .await;
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => Ok(()),
        Err(other) => anyhow::bail!("expected 403 Forbidden, got {other}"),
        Ok(_) => anyhow::bail!("a user without RBAC bindings created an Issuer"),
    }
}
