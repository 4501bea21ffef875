//! Rotating a CA: an in-place change that would leave the old CA's certificates unrevocable is
//! refused, and the supported rotation (a new Issuer for the new CA, on the same trust anchor)
//! keeps both CAs' CRLs on the anchor, each refusing its own revoked certificates.

use anyhow::Context;
use iamra::api::*;
use iamra::rolesanywhere::errors::CreateSessionError;
use k8s_openapi::ByteString;
use kube::api::{Patch, PatchParams, PostParams};
use libtest_mimic::Trial;
use serde_json::json;
use time::OffsetDateTime;

use crate::cluster::{TestCluster, trial, wait_for};
use crate::issuance::{
    SETTLE, apply, local_issuer, secret_text, wait_certificate_ready, wait_issuer_ready,
    workload_certificate,
};
use crate::revocation::{RevocationTarget, scene, session, start_emulator};

pub fn trials(cluster: &TestCluster) -> Vec<Trial> {
    vec![trial(
        "ca_rotation::a_new_ca_takes_a_new_issuer_and_both_crls_hold",
        cluster,
        a_new_ca_takes_a_new_issuer_and_both_crls_hold,
    )]
}

/// A CA certificate and key (PEM) made outside the controller, as someone swapping the CA
/// Secret's contents would.
fn foreign_ca() -> anyhow::Result<(String, String)> {
    let key = iamra::pki::generate_key(iamra::pki::KeyAlgorithm::EcdsaP256)?;
    let now = OffsetDateTime::now_utc();
    let subject = iamra::pki::SubjectName {
        common_name: Some("swapped in".into()),
        ..Default::default()
    };
    let certificate = iamra::pki::self_signed_ca(
        &iamra::pki::CaCertificateSpec {
            subject,
            not_before: now,
            not_after: now + time::Duration::days(30),
        },
        &key,
    )?;
    Ok((certificate.pem(), key.serialize_pem()))
}

fn ready_reason(issuer: &Issuer) -> Option<(String, String, String)> {
    issuer
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION_READY)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

async fn a_new_ca_takes_a_new_issuer_and_both_crls_hold(
    cluster: TestCluster,
) -> anyhow::Result<()> {
    let s = scene(&cluster, "ca-rotation").await?;
    let emulator = start_emulator("127.0.0.1:0".parse()?, None).await?;
    let _controller =
        cluster.start_controller_for_rolesanywhere(&s.namespace, &emulator.endpoint(), &[])?;
    let (old_ca, arns) = s.issuer(Some(&emulator), None).await?;
    let arns = arns.context("seeded")?;
    let (old_pem, old_key, _) = s.certificate("old-app").await?;

    // 1. The CA Secret's contents swapped for another CA: refused while old-app is valid.
    let original = s.secrets.get("ca-key").await?;
    let (swapped_pem, swapped_key) = foreign_ca()?;
    let swap = |certificate: String, key: String| {
        json!({"data": {
            "tls.crt": ByteString(certificate.into_bytes()),
            "tls.key": ByteString(key.into_bytes()),
        }})
    };
    s.secrets
        .patch(
            "ca-key",
            &PatchParams::default(),
            &Patch::Merge(&swap(swapped_pem, swapped_key)),
        )
        .await?;
    let refused = wait_for("the swapped CA refused", SETTLE, || async {
        let issuer = s.issuers.get("ca").await?;
        Ok(ready_reason(&issuer).filter(|(_, reason, _)| reason == "CAChangeStrandsCertificates"))
    })
    .await?;
    anyhow::ensure!(refused.0 == "False", "{refused:?}");
    anyhow::ensure!(refused.2.contains("new Issuer"), "{}", refused.2);
    println!("in-place change: {}", refused.2);
    // Restored: Ready again, same CA.
    s.secrets
        .patch(
            "ca-key",
            &PatchParams::default(),
            &Patch::Merge(&swap(
                secret_text(&original, "tls.crt")?,
                secret_text(&original, "tls.key")?,
            )),
        )
        .await?;
    let restored = wait_issuer_ready(&s.issuers, "ca").await?;
    anyhow::ensure!(
        restored.status.and_then(|st| st.ca_certificate) == Some(old_ca.clone()),
        "not the original CA after the restore"
    );

    // 2. The rotation: a new Issuer on the same trust anchor (the platform team adds its CA
    //    to the anchor's bundle, as UpdateTrustAnchor would).
    let mut next = local_issuer("ca-next", "ca-next-key");
    apply(&s.issuers, &next).await?;
    let new_ca = wait_issuer_ready(&s.issuers, "ca-next")
        .await?
        .status
        .and_then(|st| st.ca_certificate)
        .context("no CA")?;
    emulator.shared.mutate(|state| {
        for anchor in state.trust_anchors.values_mut() {
            if anchor.arn == arns.trust_anchor_arn {
                anchor.certificate_bundle_pem.push_str(&new_ca);
            }
        }
        Ok(())
    })?;
    next.spec.roles_anywhere = Some(RolesAnywhereCrlTarget {
        trust_anchor_arn: arns.trust_anchor_arn.clone(),
        region: None,
        crl_name: None,
    });
    apply(&s.issuers, &next).await?;
    let issued = |name: &'static str| {
        let s = &s;
        async move {
            apply(
                &s.certificates,
                &workload_certificate(name, "ca-next", WorkloadKeyAlgorithm::EcdsaP256),
            )
            .await?;
            let certificate = wait_certificate_ready(&s.certificates, name, 1).await?;
            let secret = s.secrets.get(&certificate.spec.secret_name).await?;
            anyhow::Ok((
                secret_text(&secret, "tls.crt")?,
                secret_text(&secret, "tls.key")?,
            ))
        }
    };
    let (new_pem, new_key) = issued("new-app").await?;
    let (healthy_pem, healthy_key) = issued("healthy-app").await?;

    s.revoke("old-app", RevocationTarget::Certificate("old-app"), false)
        .await?;
    let revocation = Revocation::new(
        "new-app",
        RevocationSpec {
            issuer_ref: IssuerReference::issuer("ca-next"),
            serial_number: None,
            certificate_ref: Some(CertificateReference {
                name: "new-app".into(),
            }),
            reason: Some(RevocationReason::KeyCompromise),
            revocation_time: None,
            reissue: None,
        },
    );
    s.revocations
        .create(&PostParams::default(), &revocation)
        .await?;
    s.wait_revocation_ready("old-app").await?;
    s.wait_revocation_ready("new-app").await?;

    let crls = emulator.shared.read(|state| {
        state
            .crls_of(&arns.trust_anchor_arn)
            .filter(|crl| crl.enabled)
            .count()
    });
    anyhow::ensure!(crls == 2, "the trust anchor holds {crls} enabled CRLs");
    let revoked = |result: Result<(), CreateSessionError>| {
        matches!(result, Err(CreateSessionError::CertificateRevoked { .. }))
    };
    anyhow::ensure!(
        revoked(session(&emulator, &arns, &old_pem, &old_key).await),
        "the old CA's revoked certificate was not refused"
    );
    anyhow::ensure!(
        revoked(session(&emulator, &arns, &new_pem, &new_key).await),
        "the new CA's revoked certificate was not refused"
    );
    session(&emulator, &arns, &healthy_pem, &healthy_key)
        .await
        .context("a healthy certificate of the new CA was refused")?;
    Ok(())
}
