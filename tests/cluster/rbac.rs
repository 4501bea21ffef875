//! The control plane enforces RBAC: a user without bindings is refused.

use kube::api::{DynamicObject, PostParams};
use libtest_mimic::Trial;
use serde::Deserialize;

use crate::cluster::{TestCluster, api_for, sample, trial};
use iamra::localenv::UNPRIVILEGED_CONTEXT;

pub fn trials(cluster: &TestCluster) -> Vec<Trial> {
    vec![
        trial(
            "rbac::unbound_user_cannot_create_issuers",
            cluster,
            unbound_user_cannot_create_issuers,
        ),
        trial(
            "rbac::tenant_role_grants_no_status_cluster_issuers_or_ledger",
            cluster,
            tenant_role_grants_no_status_cluster_issuers_or_ledger,
        ),
    ]
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

/// The chart's tenant ClusterRoles (aggregated into edit/admin and view) as rendered into
/// `config/default/iamra.yaml`, bound in one namespace to a user with no other rights: the
/// namespaced kinds are writable, status, ClusterIssuers and the ledger are not.
async fn tenant_role_grants_no_status_cluster_issuers_or_ledger(
    cluster: TestCluster,
) -> anyhow::Result<()> {
    use iamra::api::{CertificateRecord, ClusterIssuer, WorkloadCertificate};
    use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
    use kube::api::{Api, Patch, PatchParams};
    let admin = cluster.client().await?;
    let namespace = cluster.namespace(&admin, "tenant-rbac").await?;
    let rendered = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default/iamra.yaml"),
    )?;
    let mut role: ClusterRole = serde_yaml_ng::Deserializer::from_str(&rendered)
        .filter_map(|document| serde_yaml_ng::Value::deserialize(document).ok())
        .filter(|value| value["kind"] == "ClusterRole")
        .filter_map(|value| serde_yaml_ng::from_value::<ClusterRole>(value).ok())
        .find(|role| role.metadata.name.as_deref() == Some("iamra-tenant-edit"))
        .ok_or_else(|| anyhow::anyhow!("config/default has no iamra-tenant-edit ClusterRole"))?;
    // The test cluster has no aggregation controller: bind the role itself, under a name of its own.
    let role_name = format!("iamra-tenant-edit-{namespace}");
    role.metadata = kube::api::ObjectMeta {
        name: Some(role_name.clone()),
        ..Default::default()
    };
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &role)
        .await?;
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "tenant"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "iamra-unprivileged"}],
    }))?;
    Api::<RoleBinding>::namespaced(admin.clone(), &namespace)
        .create(&PostParams::default(), &binding)
        .await?;

    let tenant = cluster.client_for(UNPRIVILEGED_CONTEXT).await?;
    let forbidden = |what: &str, result: Result<(), kube::Error>| match result {
        Err(kube::Error::Api(status)) if status.code == 403 => Ok(()),
        other => Err(anyhow::anyhow!("the tenant could {what}: {other:?}")),
    };
    let certificates: Api<WorkloadCertificate> = Api::namespaced(tenant.clone(), &namespace);
    let manifest = sample("workloadcertificate.yaml")?;
    let certificate: WorkloadCertificate = serde_json::from_value(manifest)?;
    // Binding the role takes effect at once, but allow the authorizer a moment.
    crate::cluster::wait_for(
        "the tenant may create a WorkloadCertificate",
        crate::issuance::SETTLE,
        || async {
            Ok(certificates
                .create(&PostParams::default(), &certificate)
                .await
                .ok())
        },
    )
    .await?;
    let status = serde_json::json!({"status": {"serialNumber": "01"}});
    forbidden(
        "write a status",
        certificates
            .patch_status(
                "payments-api",
                &PatchParams::default(),
                &Patch::Merge(&status),
            )
            .await
            .map(|_| ()),
    )?;
    let record: CertificateRecord = serde_json::from_value(serde_json::json!({
        "apiVersion": "iamra.dev/v1alpha1", "kind": "CertificateRecord",
        "metadata": {"name": format!("{}-01", "a".repeat(32))},
        "spec": {"authority": "a".repeat(32), "serialNumber": "01", "notAfter": "2030-01-01T00:00:00Z"},
    }))?;
    forbidden(
        "write the ledger",
        Api::<CertificateRecord>::all(tenant.clone())
            .create(&PostParams::default(), &record)
            .await
            .map(|_| ()),
    )?;
    forbidden(
        "read the ledger",
        Api::<CertificateRecord>::all(tenant.clone())
            .list(&Default::default())
            .await
            .map(|_| ()),
    )?;
    let issuer: ClusterIssuer = serde_json::from_value(sample("clusterissuer.yaml")?)?;
    forbidden(
        "create a ClusterIssuer",
        Api::<ClusterIssuer>::all(tenant.clone())
            .create(&PostParams::default(), &issuer)
            .await
            .map(|_| ()),
    )?;
    Ok(())
}
