//! Ending live sessions: with `--end-live-sessions`, a Revocation writes an inline Deny on the
//! role of every binding of the revoked certificate, for that certificate's sessions (named by
//! its serial). IAM here is moto's, which stores and returns the policy but cannot
//! evaluate it against a Roles Anywhere session (it ignores conditions and has no Roles Anywhere):
//! the test checks the policy written, the unit tests its shape, the README what it does in AWS.

use anyhow::Context;
use aws_sdk_iam::config::{BehaviorVersion, Credentials, Region};
use iamra::api::*;
use kube::api::Api;
use libtest_mimic::Trial;
use serde_json::{Value, json};

use crate::cluster::{TestCluster, trial, wait_for};
use crate::issuance::{SETTLE, apply};
use crate::revocation::{RevocationTarget, scene, start_emulator};

pub fn trials(cluster: &TestCluster) -> Vec<Trial> {
    vec![trial(
        "live_sessions::a_revocation_denies_the_certificates_sessions_on_its_roles",
        cluster,
        a_revocation_denies_the_certificates_sessions_on_its_roles,
    )]
}

fn iam(endpoint: &str) -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .build(),
    )
}

async fn a_revocation_denies_the_certificates_sessions_on_its_roles(
    cluster: TestCluster,
) -> anyhow::Result<()> {
    let s = scene(&cluster, "live-sessions").await?;
    let moto = cluster.kms_endpoint()?;
    let iam = iam(&moto);
    let role_name = format!("workload-{}", s.namespace);
    let role = iam
        .create_role()
        .role_name(&role_name)
        .assume_role_policy_document(
            json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow",
                "Principal": {"Service": "rolesanywhere.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
            }]})
            .to_string(),
        )
        .send()
        .await?;
    let role_arn = role.role().context("role")?.arn().to_string();
    let emulator = start_emulator("127.0.0.1:0".parse()?, None).await?;
    let _controller = cluster.start_controller_with(
        &s.namespace,
        &["--end-live-sessions"],
        &[
            ("IAMRA_ROLESANYWHERE_ENDPOINT", &emulator.endpoint()),
            ("IAMRA_IAM_ENDPOINT", &moto),
        ],
    )?;
    let (_, arns) = s.issuer(Some(&emulator), None).await?;
    let arns = arns.context("seeded")?;
    let (_, _, serial) = s.certificate("app").await?;
    let bindings: Api<RolesAnywhereBinding> = Api::namespaced(s.client.clone(), &s.namespace);
    let binding: RolesAnywhereBinding = serde_json::from_value(json!({
        "apiVersion": "iamra.dev/v1alpha1",
        "kind": "RolesAnywhereBinding",
        "metadata": {"name": "app"},
        "spec": {
            "serviceAccountName": "app",
            "certificateRef": {"name": "app"},
            "trustAnchorArn": arns.trust_anchor_arn,
            "profileArn": arns.profile_arn,
            "roleArn": role_arn,
        },
    }))?;
    apply(&bindings, &binding).await?;

    s.revoke("stolen", RevocationTarget::Certificate("app"), false)
        .await?;
    let revocation = wait_for("LiveSessionsEnded", SETTLE, || async {
        let revocation = s.revocations.get("stolen").await?;
        let ended = revocation.status.as_ref().is_some_and(|st| {
            st.conditions
                .iter()
                .any(|c| c.type_ == "LiveSessionsEnded" && c.status == "True")
        });
        Ok(ended.then_some(revocation))
    })
    .await?;
    let denied_on = revocation
        .status
        .map(|st| st.live_sessions_denied_on)
        .unwrap_or_default();
    anyhow::ensure!(denied_on == [role_arn.clone()], "{denied_on:?}");

    let policy = iam
        .get_role_policy()
        .role_name(&role_name)
        .policy_name("iamra-revoked-sessions")
        .send()
        .await?;
    let text = percent_encoding::percent_decode_str(policy.policy_document()).decode_utf8()?;
    let document: Value = serde_json::from_str(&text)?;
    let statements = document["Statement"].as_array().context("statements")?;
    let deny = statements
        .iter()
        .find(|st| st["Condition"]["StringLike"]["aws:userid"] == format!("*:{serial}"))
        .with_context(|| format!("no Deny for the sessions of {serial}: {document}"))?;
    anyhow::ensure!(deny["Effect"] == "Deny" && deny["Action"] == "*", "{deny}");

    Ok(())
}
