//! One CA for many tenants, and identities no tenant can widen: a ClusterIssuer whose key is in
//! KMS (moto), two tenant namespaces whose roles trust only their own namespace's SPIFFE ids (the
//! emulator evaluates the trust policies), and every attempt of tenant B to get at tenant A's
//! identity refused with a reason naming the policy that refused it.

use std::net::TcpListener;
use std::time::Duration;

use anyhow::Context;
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use iamra::api::*;
use iamra::rolesanywhere::emulator::{self, RunningEmulator, SeededArns, set_role_trust_policy};
use iamra::rolesanywhere::errors::CreateSessionError;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use libtest_mimic::Trial;
use serde_json::json;

use crate::cluster::{TestCluster, trial, wait_for};
use crate::issuance::{SETTLE, apply, secret_text, wait_certificate_ready, wait_event};
use crate::kms::create_key;
use crate::openssl;
use crate::revocation::{session_as, start_emulator};

const ROLE_A: &str = "arn:aws:iam::123456789012:role/tenant-a";
const ROLE_B: &str = "arn:aws:iam::123456789012:role/tenant-b";

pub fn trials(cluster: &TestCluster) -> Vec<Trial> {
    vec![trial(
        "tenancy::tenant_b_cannot_reach_tenant_a_under_a_shared_ca",
        cluster,
        tenant_b_cannot_reach_tenant_a_under_a_shared_ca,
    )]
}

/// A role that trusts exactly one namespace's workloads of the CA behind `anchor`.
fn trust_policy_for(namespace: &str, anchor: &str) -> serde_json::Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "rolesanywhere.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
            "Condition": {
                "ArnEquals": {"aws:SourceArn": anchor},
                "StringLike": {
                    "aws:PrincipalTag/x509SAN/URI": format!("spiffe://cluster.local/ns/{namespace}/sa/*")
                },
                "StringEquals": {"aws:PrincipalTag/x509Subject/OU": namespace}
            }
        }]
    })
}

async fn session(
    emulator: &RunningEmulator,
    arns: &SeededArns,
    role: &str,
    (certificate, key): (&str, &str),
) -> Result<(), CreateSessionError> {
    session_as(emulator, arns, role, certificate, key).await
}

/// A WorkloadCertificate of the ClusterIssuer for `service_account`, with `edit` applied.
fn shared_certificate(
    name: &str,
    issuer: &str,
    service_account: &str,
    edit: impl FnOnce(&mut WorkloadCertificateSpec),
) -> WorkloadCertificate {
    let mut spec: WorkloadCertificateSpec = serde_json::from_value(json!({
        "issuerRef": {"name": issuer, "kind": "ClusterIssuer"},
        "serviceAccountName": service_account,
        "secretName": format!("{name}-tls"),
    }))
    .expect("a valid spec");
    edit(&mut spec);
    WorkloadCertificate::new(name, spec)
}

/// The condition `type_` of `object` once its reason is `reason`.
async fn wait_reason<K>(
    api: &Api<K>,
    name: &str,
    type_: &str,
    reason: &str,
) -> anyhow::Result<Condition>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + serde::Serialize,
{
    wait_for(
        &format!("{name}: {type_} reason {reason}"),
        SETTLE,
        || async {
            let object = serde_json::to_value(api.get(name).await?)?;
            let conditions: Vec<Condition> =
                serde_json::from_value(object["status"]["conditions"].clone()).unwrap_or_default();
            Ok(conditions
                .into_iter()
                .find(|c| c.type_ == type_ && c.reason == reason))
        },
    )
    .await
}

struct Tenant {
    namespace: String,
    certificates: Api<WorkloadCertificate>,
    secrets: Api<Secret>,
    issuers: Api<Issuer>,
    revocations: Api<Revocation>,
    bindings: Api<RolesAnywhereBinding>,
}

async fn tenant(
    cluster: &TestCluster,
    client: &kube::Client,
    prefix: &str,
    selector_label: Option<&str>,
) -> anyhow::Result<Tenant> {
    let namespace = cluster.namespace(client, prefix).await?;
    if let Some(label) = selector_label {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let patch = json!({"metadata": {"labels": {label: "tenant"}}});
        namespaces
            .patch(&namespace, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(Tenant {
        certificates: Api::namespaced(client.clone(), &namespace),
        secrets: Api::namespaced(client.clone(), &namespace),
        issuers: Api::namespaced(client.clone(), &namespace),
        revocations: Api::namespaced(client.clone(), &namespace),
        bindings: Api::namespaced(client.clone(), &namespace),
        namespace,
    })
}

impl Tenant {
    /// Issues `certificate` and returns its PEM, key and serial.
    async fn issued(
        &self,
        certificate: &WorkloadCertificate,
    ) -> anyhow::Result<(String, String, String)> {
        apply(&self.certificates, certificate).await?;
        let ready = wait_certificate_ready(&self.certificates, &certificate.name_any(), 1).await?;
        let secret = self.secrets.get(&certificate.spec.secret_name).await?;
        Ok((
            secret_text(&secret, "tls.crt")?,
            secret_text(&secret, "tls.key")?,
            ready
                .status
                .and_then(|s| s.serial_number)
                .context("serial")?,
        ))
    }

    async fn revoke_serial(&self, name: &str, issuer: &str, serial: &str) -> anyhow::Result<()> {
        let revocation: Revocation = serde_json::from_value(json!({
            "apiVersion": "iamra.dev/v1alpha1",
            "kind": "Revocation",
            "metadata": {"name": name},
            "spec": {
                "issuerRef": {"name": issuer, "kind": "ClusterIssuer"},
                "serialNumber": serial,
                "reason": "keyCompromise",
            },
        }))?;
        self.revocations
            .create(&PostParams::default(), &revocation)
            .await?;
        Ok(())
    }
}

async fn tenant_b_cannot_reach_tenant_a_under_a_shared_ca(
    cluster: TestCluster,
) -> anyhow::Result<()> {
    let client = cluster.client().await?;
    let platform = tenant(&cluster, &client, "tenancy-platform", None).await?;
    let label = format!("iamra-test-tenancy-{}", platform.namespace);
    let a = tenant(&cluster, &client, "tenancy-a", Some(&label)).await?;
    let b = tenant(&cluster, &client, "tenancy-b", Some(&label)).await?;
    let outsider = tenant(&cluster, &client, "tenancy-outsider", None).await?;
    let issuer_name = format!("platform-{}", platform.namespace);

    // The platform's CA key in KMS; the platform grants it to no namespace.
    let kms_endpoint = cluster.kms_endpoint()?;
    let platform_key = create_key(
        &kms_endpoint,
        KeySpec::EccNistP256,
        KeyUsageType::SignVerify,
    )
    .await?;
    let emulator = start_emulator("127.0.0.1:0".parse()?, None).await?;
    let endpoint = emulator.endpoint();
    let resources = format!("--cluster-resource-namespace={}", platform.namespace);
    // A tenant-written endpoint: any connection here is the controller obeying a tenant.
    let trap = TcpListener::bind("127.0.0.1:0")?;
    trap.set_nonblocking(true)?;
    let trap_url = format!("http://{}", trap.local_addr()?);
    let mut controllers = Vec::new();
    for (namespace, extra) in [
        (&a.namespace, Some("--reconcile-cluster-issuers")),
        (&b.namespace, None),
        (&platform.namespace, None),
        (&outsider.namespace, None),
    ] {
        let mut args = vec![resources.as_str()];
        args.extend(extra);
        // Tenants are granted a trust anchor of their own, not the platform's.
        let own_anchor =
            format!("{namespace}=arn:aws:rolesanywhere:eu-west-1:111122223333:trust-anchor/0");
        controllers.push(cluster.start_controller_with(
            namespace,
            &args,
            &[
                ("IAMRA_ROLESANYWHERE_ENDPOINT", endpoint.as_str()),
                ("IAMRA_TRUST_ANCHOR_GRANTS", own_anchor.as_str()),
            ],
        )?);
    }

    let cluster_issuers: Api<ClusterIssuer> = Api::all(client.clone());
    let mut issuer: ClusterIssuer = serde_json::from_value(json!({
        "apiVersion": "iamra.dev/v1alpha1",
        "kind": "ClusterIssuer",
        "metadata": {"name": issuer_name},
        "spec": {
            "kms": {
                "keyId": platform_key,
                "region": "eu-west-1",
                "certificateSecretName": "platform-ca-certificate",
            },
            "namespaceSelector": {"matchLabels": {label.clone(): "tenant"}},
        },
    }))?;
    apply(&cluster_issuers, &issuer).await?;
    let ca_pem = wait_for("the ClusterIssuer Ready", SETTLE, || async {
        let issuer = cluster_issuers.get(&issuer_name).await?;
        let status = issuer.status.unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == CONDITION_READY && c.status == "True");
        Ok(status.ca_certificate.filter(|_| ready))
    })
    .await?;
    let arns = emulator::seed(
        &emulator.shared,
        &ca_pem,
        &[ROLE_A.to_string(), ROLE_B.to_string()],
    )?;
    set_role_trust_policy(
        &emulator.shared,
        ROLE_A,
        &trust_policy_for(&a.namespace, &arns.trust_anchor_arn),
    )?;
    set_role_trust_policy(
        &emulator.shared,
        ROLE_B,
        &trust_policy_for(&b.namespace, &arns.trust_anchor_arn),
    )?;
    issuer.spec.roles_anywhere = Some(RolesAnywhereCrlTarget {
        trust_anchor_arn: arns.trust_anchor_arn.clone(),
        region: None,
        crl_name: None,
    });
    apply(&cluster_issuers, &issuer).await?;
    wait_for("the ClusterIssuer's CRL imported", SETTLE, || async {
        Ok(cluster_issuers
            .get(&issuer_name)
            .await?
            .status
            .and_then(|s| s.crl_id))
    })
    .await?;

    // Tenant A's own flow: the identity comes from the policy, and A's role takes it.
    let (a_pem, a_key, a_serial) = a
        .issued(&shared_certificate("app", &issuer_name, "app", |_| {}))
        .await?;
    openssl::verify_client_certificate(&ca_pem, &a_pem)?;
    let text = openssl::certificate_text(&a_pem)?;
    let a_uri = format!("spiffe://cluster.local/ns/{}/sa/app", a.namespace);
    anyhow::ensure!(text.contains(&format!("URI:{a_uri}")), "{text}");
    anyhow::ensure!(
        text.contains(&format!("OU = {}", a.namespace)) && text.contains("CN = app"),
        "{text}"
    );
    session(&emulator, &arns, ROLE_A, (&a_pem, &a_key))
        .await
        .context("tenant A's certificate for tenant A's role")?;
    let mut refusals: Vec<(String, String)> = Vec::new();

    // 1. B asks for A's URI in a WorkloadCertificate, 2. for A's namespace in the subject.
    for (name, edit) in [
        (
            "claims-a-uri",
            Box::new(|s: &mut WorkloadCertificateSpec| s.uris = vec![a_uri.clone()])
                as Box<dyn FnOnce(&mut WorkloadCertificateSpec)>,
        ),
        (
            "claims-a-subject",
            Box::new(|s: &mut WorkloadCertificateSpec| {
                s.subject = Some(Subject {
                    common_name: Some("app".into()),
                    organizational_unit: Some(a.namespace.clone()),
                    ..Default::default()
                })
            }),
        ),
    ] {
        apply(
            &b.certificates,
            &shared_certificate(name, &issuer_name, "app", edit),
        )
        .await?;
        let refused = wait_reason(
            &b.certificates,
            name,
            CONDITION_READY,
            "IdentityPolicyViolation",
        )
        .await?;
        anyhow::ensure!(
            refused
                .message
                .contains(&format!("ClusterIssuer {issuer_name}'s identity policy")),
            "{name}: {}",
            refused.message
        );
        wait_event(&client, &b.namespace, name, "IdentityPolicyViolation").await?;
        anyhow::ensure!(
            b.secrets.get_opt(&format!("{name}-tls")).await?.is_none(),
            "{name}: a certificate was issued"
        );
        refusals.push((format!("WorkloadCertificate {name}"), refused.message));
    }

    // 3. The same through a binding's certificateTemplate.
    let template = shared_certificate("unused", &issuer_name, "app", |s| {
        s.uris = vec![a_uri.clone()];
        s.secret_name = "templated-tls".into();
    });
    let binding: RolesAnywhereBinding = serde_json::from_value(json!({
        "apiVersion": "iamra.dev/v1alpha1",
        "kind": "RolesAnywhereBinding",
        "metadata": {"name": "templated"},
        "spec": {
            "serviceAccountName": "app",
            "certificateTemplate": template.spec,
            "trustAnchorArn": arns.trust_anchor_arn,
            "profileArn": arns.profile_arn,
            "roleArn": ROLE_A,
        },
    }))?;
    apply(&b.bindings, &binding).await?;
    let refused = wait_reason(
        &b.certificates,
        "templated",
        CONDITION_READY,
        "IdentityPolicyViolation",
    )
    .await?;
    anyhow::ensure!(b.secrets.get_opt("templated-tls").await?.is_none());
    refusals.push(("binding certificateTemplate".into(), refused.message));

    // 4. B's own, valid certificate is no key to A's role: A's trust policy refuses it.
    let (b_pem, b_key, b_serial) = b
        .issued(&shared_certificate("app", &issuer_name, "app", |_| {}))
        .await?;
    session(&emulator, &arns, ROLE_B, (&b_pem, &b_key))
        .await
        .context("tenant B's certificate for tenant B's role")?;
    match session(&emulator, &arns, ROLE_A, (&b_pem, &b_key)).await {
        Err(CreateSessionError::AccessDenied { message }) if message.contains("trust policy") => {
            refusals.push((
                "CreateSession for A's role with B's certificate".into(),
                message,
            ));
        }
        other => anyhow::bail!("B's certificate for A's role: {other:?}"),
    }

    // 5. An Issuer of B naming the platform's KMS key.
    let kms_issuer: Issuer = serde_json::from_value(json!({
        "apiVersion": "iamra.dev/v1alpha1",
        "kind": "Issuer",
        "metadata": {"name": "stolen-key"},
        "spec": {"kms": {
            "keyId": platform_key,
            "region": "eu-west-1",
            "certificateSecretName": "stolen-ca",
        }},
    }))?;
    apply(&b.issuers, &kms_issuer).await?;
    let refused = wait_reason(
        &b.issuers,
        "stolen-key",
        CONDITION_READY,
        "KMSKeyNotGranted",
    )
    .await?;
    anyhow::ensure!(
        b.secrets.get_opt("stolen-ca").await?.is_none(),
        "signed with it"
    );
    refusals.push(("Issuer with the platform's KMS key".into(), refused.message));

    // 6. An Issuer of B naming the ClusterIssuer's trust anchor and CRL name, with an endpoint
    //    override of its own (7.), which the schema prunes and the controller never calls. The
    //    anchor is not granted to B: no CRL call is made (a CRL name another CA claimed would be
    //    refused too, `ledger::a_crl_name_has_one_owner`).
    let crl_name = iamra::controller::default_crl_name("", &issuer_name);
    let squatter = json!({
        "apiVersion": "iamra.dev/v1alpha1",
        "kind": "Issuer",
        "metadata": {"name": "squatter"},
        "spec": {
            "local": {"secretName": "squatter-ca"},
            "rolesAnywhere": {
                "trustAnchorArn": arns.trust_anchor_arn,
                "crlName": crl_name,
                "endpoint": trap_url,
            },
        },
    });
    let dynamic: DynamicObject = serde_json::from_value(squatter)?;
    let issuers_dynamic =
        crate::cluster::api_for(&client, &b.namespace, &json!({"kind": "Issuer"}))?;
    let stored = issuers_dynamic
        .create(&PostParams::default(), &dynamic)
        .await?;
    anyhow::ensure!(
        stored.data["spec"]["rolesAnywhere"]
            .get("endpoint")
            .is_none(),
        "the API server kept a tenant's endpoint: {}",
        stored.data
    );
    let refused = wait_reason(
        &b.issuers,
        "squatter",
        "CrlImported",
        "TrustAnchorNotGranted",
    )
    .await?;
    refusals.push((
        "Issuer naming the shared trust anchor and CRL name".into(),
        refused.message,
    ));
    let held = emulator.shared.read(|state| {
        state
            .crls
            .values()
            .filter(|crl| crl.trust_anchor_arn == arns.trust_anchor_arn)
            .map(|crl| crl.crl_data.clone())
            .collect::<Vec<_>>()
    });
    anyhow::ensure!(held.len() == 1, "{} CRLs on the shared anchor", held.len());
    openssl::verify_crl(&ca_pem, &String::from_utf8(held[0].clone())?)
        .context("the shared CRL was overwritten")?;

    // 8. A Revocation in B of A's serial.
    b.revoke_serial("revoke-a", &issuer_name, &a_serial).await?;
    let refused = wait_reason(
        &b.revocations,
        "revoke-a",
        CONDITION_READY,
        "NotYourCertificate",
    )
    .await?;
    refusals.push(("Revocation of A's serial".into(), refused.message));
    // 9. A namespace the ClusterIssuer does not select.
    apply(
        &outsider.certificates,
        &shared_certificate("app", &issuer_name, "app", |_| {}),
    )
    .await?;
    let refused = wait_reason(
        &outsider.certificates,
        "app",
        CONDITION_READY,
        "NamespaceNotAllowed",
    )
    .await?;
    refusals.push((
        "certificate in an unselected namespace".into(),
        refused.message,
    ));

    // Nothing of it reached A: A's certificate still works, and nobody called the trap.
    session(&emulator, &arns, ROLE_A, (&a_pem, &a_key))
        .await
        .context("tenant A's certificate after B's attempts")?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    anyhow::ensure!(
        trap.accept().is_err(),
        "the controller connected to a tenant-written endpoint"
    );

    // The platform team may revoke any serial of its CA: B's, from its own namespace.
    platform
        .revoke_serial("platform-revokes-b", &issuer_name, &b_serial)
        .await?;
    wait_reason(
        &platform.revocations,
        "platform-revokes-b",
        CONDITION_READY,
        "Imported",
    )
    .await?;
    anyhow::ensure!(
        matches!(
            session(&emulator, &arns, ROLE_B, (&b_pem, &b_key)).await,
            Err(CreateSessionError::CertificateRevoked { .. })
        ),
        "B's certificate revoked by the platform was not refused"
    );
    // And tenant A revokes its own, after which Roles Anywhere refuses it.
    let revocation: Revocation = serde_json::from_value(json!({
        "apiVersion": "iamra.dev/v1alpha1",
        "kind": "Revocation",
        "metadata": {"name": "a-revokes-own"},
        "spec": {
            "issuerRef": {"name": issuer_name, "kind": "ClusterIssuer"},
            "certificateRef": {"name": "app"},
        },
    }))?;
    a.revocations
        .create(&PostParams::default(), &revocation)
        .await?;
    wait_reason(&a.revocations, "a-revokes-own", CONDITION_READY, "Imported").await?;
    anyhow::ensure!(
        matches!(
            session(&emulator, &arns, ROLE_A, (&a_pem, &a_key)).await,
            Err(CreateSessionError::CertificateRevoked { .. })
        ),
        "A's revoked certificate was not refused"
    );
    for controller in &mut controllers {
        anyhow::ensure!(controller.is_running(), "a controller died");
    }
    eprintln!("tenant B's attempts and their refusals:");
    for (attempt, message) in &refusals {
        eprintln!("  {attempt}: {message}");
    }
    Ok(())
}
