//! The revocation ledger against tampering, loss and drift: a real controller, the real API
//! server and the Roles Anywhere emulator. Nothing a tenant can edit (a Revocation, its status or
//! finalizer, the CRL ConfigMap) takes a revoked serial off the CRL; the API server itself refuses
//! to rewrite the ledger; a lost CA Secret is not silently replaced; CRL numbers continue across
//! an Issuer deleted and re-created; a CRL disabled or deleted in Roles Anywhere comes back.

use anyhow::Context;
use iamra::api::*;
use iamra::rolesanywhere::errors::CreateSessionError;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use libtest_mimic::Trial;
use serde_json::json;

use crate::cluster::{TestCluster, trial, wait_for};
use crate::issuance::{
    SETTLE, apply, local_issuer, secret_text, wait_certificate_ready, wait_issuer_ready,
    workload_certificate,
};
use crate::openssl;
use crate::revocation::{RevocationTarget, Scene, scene, session, start_emulator};

pub fn trials(cluster: &TestCluster) -> Vec<Trial> {
    vec![
        trial(
            "ledger::edits_deletions_and_wipes_never_unrevoke",
            cluster,
            edits_deletions_and_wipes_never_unrevoke,
        ),
        trial(
            "ledger::by_reference_revokes_earlier_certificates_and_shared_keys",
            cluster,
            by_reference_revokes_earlier_certificates_and_shared_keys,
        ),
        trial(
            "ledger::lost_ca_secret_needs_an_explicit_opt_in",
            cluster,
            lost_ca_secret_needs_an_explicit_opt_in,
        ),
        trial(
            "ledger::recreated_issuer_continues_numbers_and_entries",
            cluster,
            recreated_issuer_continues_numbers_and_entries,
        ),
        trial(
            "ledger::drift_in_roles_anywhere_is_repaired",
            cluster,
            drift_in_roles_anywhere_is_repaired,
        ),
        trial(
            "ledger::a_crl_name_has_one_owner",
            cluster,
            a_crl_name_has_one_owner,
        ),
        trial(
            "ledger::a_foreign_crl_of_the_same_name_is_not_taken_over",
            cluster,
            a_foreign_crl_of_the_same_name_is_not_taken_over,
        ),
    ]
}

/// The serials on the published CRL and its number, checked by openssl against the CA.
async fn crl_state(s: &Scene, ca_pem: &str) -> anyhow::Result<(Vec<String>, i64)> {
    let (pem, number) = s.published_crl().await?;
    openssl::verify_crl(ca_pem, &pem)?;
    anyhow::ensure!(
        openssl::crl_number(&pem)? == number,
        "the ConfigMap's number annotation is not the CRL's number"
    );
    Ok((openssl::crl_serials(&pem)?, number))
}

/// Waits until the published CRL has a number above `after`, then returns its state.
async fn next_crl(s: &Scene, ca_pem: &str, after: i64) -> anyhow::Result<(Vec<String>, i64)> {
    wait_for(&format!("a CRL numbered above {after}"), SETTLE, || async {
        let state = crl_state(s, ca_pem).await?;
        Ok((state.1 > after).then_some(state))
    })
    .await
}

/// Triggers a new CRL (a revocation of a serial never issued) and returns it.
async fn force_new_crl(
    s: &Scene,
    ca_pem: &str,
    name: &str,
    serial: &str,
    after: i64,
) -> anyhow::Result<(Vec<String>, i64)> {
    s.revoke(name, RevocationTarget::Serial(serial), false)
        .await?;
    wait_for(&format!("{serial} on the CRL"), SETTLE, || async {
        let state = crl_state(s, ca_pem).await?;
        Ok((state.1 > after && state.0.iter().any(|x| x == serial)).then_some(state))
    })
    .await
}

async fn edits_deletions_and_wipes_never_unrevoke(cluster: TestCluster) -> anyhow::Result<()> {
    let s = scene(&cluster, "ledger-tamper").await?;
    let emulator = start_emulator("127.0.0.1:0".parse()?, None).await?;
    let mut controller =
        cluster.start_controller_for_rolesanywhere(&s.namespace, &emulator.endpoint(), &[])?;
    let (ca_pem, arns) = s.issuer(Some(&emulator), None).await?;
    let arns = arns.context("seeded")?;
    let (compromised_pem, compromised_key, compromised) = s.certificate("app").await?;
    s.revoke("compromised", RevocationTarget::Certificate("app"), true)
        .await?;
    s.wait_revocation_ready("compromised").await?;
    let reissued = wait_certificate_ready(&s.certificates, "app", 2).await?;
    let healthy = reissued
        .status
        .and_then(|st| st.serial_number)
        .context("reissued serial")?;
    anyhow::ensure!(healthy != compromised, "not re-issued");
    let secret = s.secrets.get("app-tls").await?;
    let (healthy_pem, healthy_key) = (
        secret_text(&secret, "tls.crt")?,
        secret_text(&secret, "tls.key")?,
    );
    let (serials, mut number) = crl_state(&s, &ca_pem).await?;
    anyhow::ensure!(serials.contains(&compromised), "not on the CRL");
    let refused = |result: Result<(), CreateSessionError>| {
        matches!(result, Err(CreateSessionError::CertificateRevoked { .. }))
    };
    anyhow::ensure!(
        refused(session(&emulator, &arns, &compromised_pem, &compromised_key).await),
        "the compromised certificate was not refused"
    );

    // 1. The status rewritten: expiry in the past, the list emptied, the serial pointed at the
    //    healthy certificate, and a serial that is not hex at all (it once crash-looped every
    //    replica). None of it is read for the CRL.
    let forged = json!({"status": {
        "serialNumber": "é",
        "certificateNotAfter": "2000-01-01T00:00:00Z",
        "revokedCertificates": [{"serialNumber": healthy, "notAfter": "2000-01-01T00:00:00Z"}],
    }});
    s.revocations
        .patch_status(
            "compromised",
            &PatchParams::default(),
            &Patch::Merge(&forged),
        )
        .await?;
    let (serials, next) = force_new_crl(&s, &ca_pem, "probe-1", "1001", number).await?;
    number = next;
    anyhow::ensure!(
        serials.contains(&compromised),
        "a forged status took the compromised serial off CRL {number}"
    );
    anyhow::ensure!(
        !serials.contains(&healthy),
        "a forged status revoked the healthy certificate"
    );
    anyhow::ensure!(
        controller.is_running(),
        "the controller died on a forged status"
    );

    // 2. The whole status wiped (a backup restored without status): resolving again revokes
    //    nothing issued after the Revocation was created.
    let wiped = json!({"status": null});
    s.revocations
        .patch_status(
            "compromised",
            &PatchParams::default(),
            &Patch::Merge(&wiped),
        )
        .await?;
    let relisted = wait_for("the status rebuilt from the ledger", SETTLE, || async {
        let revocation = s.revocations.get("compromised").await?;
        Ok(revocation
            .status
            .filter(|st| !st.revoked_certificates.is_empty())
            .map(|st| st.revoked_certificates))
    })
    .await?;
    let relisted: Vec<&str> = relisted.iter().map(|r| r.serial_number.as_str()).collect();
    anyhow::ensure!(
        relisted == [compromised.as_str()],
        "after a wiped status the Revocation lists {relisted:?}, not only {compromised}"
    );

    // 3. The finalizer removed by hand and the Revocation deleted.
    let unfinalized = json!({"metadata": {"finalizers": null}});
    s.revocations
        .patch(
            "compromised",
            &PatchParams::default(),
            &Patch::Merge(&unfinalized),
        )
        .await?;
    s.revocations
        .delete("compromised", &DeleteParams::default())
        .await?;
    wait_for("the Revocation gone", SETTLE, || async {
        Ok(s.revocations
            .get_opt("compromised")
            .await?
            .is_none()
            .then_some(()))
    })
    .await?;
    let (serials, next) = force_new_crl(&s, &ca_pem, "probe-2", "1002", number).await?;
    number = next;
    anyhow::ensure!(
        serials.contains(&compromised),
        "deleting the Revocation took the serial off CRL {number}"
    );

    // 4. The CRL ConfigMap overwritten with garbage: repaired with a newer CRL.
    let garbage = json!({"binaryData": {"ca.crl": "AAAA"}, "data": {"ca.crl.pem": "garbage"}});
    s.config_maps
        .patch("ca-crl", &PatchParams::default(), &Patch::Merge(&garbage))
        .await?;
    let (serials, next) = next_crl(&s, &ca_pem, number).await?;
    number = next;
    anyhow::ensure!(serials.contains(&compromised), "repaired CRL lacks it");

    // 5. The ledger itself: the API server refuses to take the revocation off, to change the
    //    expiry, or to lower the CRL number.
    let records: Api<CertificateRecord> = Api::all(s.client.clone());
    let record = records
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .find(|r| r.spec.serial_number == compromised)
        .context("no ledger record of the compromised serial")?;
    for (what, patch) in [
        (
            "remove the revocation",
            json!({"spec": {"revocation": null}}),
        ),
        (
            "move notAfter",
            json!({"spec": {"notAfter": "2000-01-01T00:00:00Z"}}),
        ),
        (
            "change the reason",
            json!({"spec": {"revocation": {"reason": "superseded"}}}),
        ),
    ] {
        let result = records
            .patch(
                &record.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await;
        anyhow::ensure!(
            matches!(&result, Err(kube::Error::Api(status)) if status.code == 422),
            "the API server let an admin {what}: {result:?}"
        );
    }
    let authorities: Api<CertificateAuthorityRecord> = Api::all(s.client.clone());
    let authority = authorities
        .get(&record.spec.authority)
        .await
        .context("no CA record")?;
    let lowered = json!({"spec": {"crlNumber": 1}});
    let result = authorities
        .patch(
            &authority.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&lowered),
        )
        .await;
    anyhow::ensure!(
        matches!(&result, Err(kube::Error::Api(status)) if status.code == 422),
        "the API server let the CRL number go back: {result:?}"
    );

    // Through all of it Roles Anywhere refused the compromised certificate and took the healthy one.
    anyhow::ensure!(
        refused(session(&emulator, &arns, &compromised_pem, &compromised_key).await),
        "the compromised certificate was accepted after the tampering"
    );
    session(&emulator, &arns, &healthy_pem, &healthy_key)
        .await
        .context("the healthy re-issued certificate was refused")?;
    anyhow::ensure!(number > 1, "CRL numbers did not advance");
    Ok(())
}

async fn by_reference_revokes_earlier_certificates_and_shared_keys(
    cluster: TestCluster,
) -> anyhow::Result<()> {
    let s = scene(&cluster, "ledger-history").await?;
    let _controller = cluster.start_controller(&s.namespace)?;
    let (ca_pem, _) = s.issuer(None, None).await?;
    let mut certificate = workload_certificate("app", "ca", WorkloadKeyAlgorithm::EcdsaP256);
    certificate.spec.private_key_rotation_policy = Some(PrivateKeyRotationPolicy::Never);
    apply(&s.certificates, &certificate).await?;
    let first = wait_certificate_ready(&s.certificates, "app", 1).await?;
    let first_serial = first
        .status
        .and_then(|st| st.serial_number)
        .context("serial")?;
    let first_key = secret_text(&s.secrets.get("app-tls").await?, "tls.key")?;
    // A spec change re-issues; the Never policy keeps the key.
    if let Some(subject) = certificate.spec.subject.as_mut() {
        subject.organizational_unit = Some("moved".into());
    }
    apply(&s.certificates, &certificate).await?;
    let second = wait_certificate_ready(&s.certificates, "app", 2).await?;
    let second_serial = second
        .status
        .and_then(|st| st.serial_number)
        .context("serial")?;
    anyhow::ensure!(
        secret_text(&s.secrets.get("app-tls").await?, "tls.key")? == first_key,
        "the Never policy did not keep the key"
    );

    s.revoke("stolen", RevocationTarget::Certificate("app"), true)
        .await?;
    let revocation = s.wait_revocation_ready("stolen").await?;
    let listed: Vec<String> = revocation
        .status
        .map(|st| st.revoked_certificates)
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.serial_number)
        .collect();
    for serial in [&first_serial, &second_serial] {
        anyhow::ensure!(listed.contains(serial), "{serial} not revoked: {listed:?}");
    }
    let (serials, _) = crl_state(&s, &ca_pem).await?;
    for serial in [&first_serial, &second_serial] {
        anyhow::ensure!(serials.contains(serial), "{serial} not on the CRL");
    }
    // The re-issue after the revocation never reuses the revoked key, Never policy or not.
    let reissued = wait_certificate_ready(&s.certificates, "app", 3).await?;
    let third = reissued
        .status
        .and_then(|st| st.serial_number)
        .context("serial")?;
    anyhow::ensure!(
        !listed.contains(&third),
        "the re-issued certificate is revoked"
    );
    anyhow::ensure!(
        secret_text(&s.secrets.get("app-tls").await?, "tls.key")? != first_key,
        "the revoked key was reused"
    );
    Ok(())
}

async fn lost_ca_secret_needs_an_explicit_opt_in(cluster: TestCluster) -> anyhow::Result<()> {
    let s = scene(&cluster, "ledger-lostca").await?;
    let _controller = cluster.start_controller(&s.namespace)?;
    let (_, _) = s.issuer(None, None).await?;
    let fingerprint = s
        .issuers
        .get("ca")
        .await?
        .status
        .and_then(|st| st.ca_fingerprint_sha256)
        .context("fingerprint")?;
    s.secrets.delete("ca-key", &DeleteParams::default()).await?;
    let lost = wait_for("CASecretLost", SETTLE, || async {
        let issuer = s.issuers.get("ca").await?;
        Ok(issuer.status.and_then(|st| {
            st.conditions
                .into_iter()
                .find(|c| c.type_ == CONDITION_READY && c.reason == "CASecretLost")
        }))
    })
    .await?;
    anyhow::ensure!(lost.status == "False", "{lost:?}");
    anyhow::ensure!(lost.message.contains(&fingerprint), "{}", lost.message);
    anyhow::ensure!(
        s.secrets.get_opt("ca-key").await?.is_none(),
        "a new CA was bootstrapped silently"
    );

    let mut issuer = local_issuer("ca", "ca-key");
    if let Some(local) = issuer.spec.local.as_mut() {
        local.replace_lost_ca = Some(fingerprint.clone());
    }
    apply(&s.issuers, &issuer).await?;
    let replaced = wait_for("a new CA after the opt-in", SETTLE, || async {
        let issuer = s.issuers.get("ca").await?;
        let status = issuer.status.unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == CONDITION_READY && c.status == "True");
        Ok(status
            .ca_fingerprint_sha256
            .filter(|f| ready && f != &fingerprint))
    })
    .await?;
    anyhow::ensure!(replaced != fingerprint);
    Ok(())
}

async fn recreated_issuer_continues_numbers_and_entries(
    cluster: TestCluster,
) -> anyhow::Result<()> {
    let s = scene(&cluster, "ledger-recreate").await?;
    let _controller = cluster.start_controller(&s.namespace)?;
    let (ca_pem, _) = s.issuer(None, None).await?;
    let (_, _, serial) = s.certificate("app").await?;
    s.revoke("gone", RevocationTarget::Certificate("app"), false)
        .await?;
    s.wait_revocation_ready("gone").await?;
    let (_, before) = force_new_crl(&s, &ca_pem, "probe", "2001", 0).await?;

    // Issuer and published CRL deleted (no garbage collector runs here, so by hand); the CA key
    // stays. The Revocations go too, finalizers and all.
    for name in ["gone", "probe"] {
        let unfinalized = json!({"metadata": {"finalizers": null}});
        s.revocations
            .patch(name, &PatchParams::default(), &Patch::Merge(&unfinalized))
            .await?;
        s.revocations.delete(name, &DeleteParams::default()).await?;
    }
    s.issuers.delete("ca", &DeleteParams::default()).await?;
    let config_maps: &Api<ConfigMap> = &s.config_maps;
    config_maps
        .delete("ca-crl", &DeleteParams::default())
        .await?;
    wait_for("the Issuer gone", SETTLE, || async {
        Ok(s.issuers.get_opt("ca").await?.is_none().then_some(()))
    })
    .await?;

    apply(&s.issuers, &local_issuer("ca", "ca-key")).await?;
    wait_issuer_ready(&s.issuers, "ca").await?;
    let (serials, after) = wait_for("a CRL after re-creation", SETTLE, || async {
        Ok(crl_state(&s, &ca_pem).await.ok())
    })
    .await?;
    anyhow::ensure!(
        after > before,
        "CRL numbering restarted: {after} after {before}"
    );
    anyhow::ensure!(
        serials.contains(&serial),
        "the re-created Issuer's CRL lost the revoked serial"
    );
    let capacity = wait_for("CrlCapacity", SETTLE, || async {
        Ok(s.issuers
            .get("ca")
            .await?
            .status
            .and_then(|st| st.conditions.into_iter().find(|c| c.type_ == "CrlCapacity")))
    })
    .await?;
    anyhow::ensure!(
        capacity.status == "True"
            && capacity.reason == "WithinImportLimit"
            && capacity
                .message
                .contains("of Roles Anywhere's 300000-byte import limit"),
        "{capacity:?}"
    );
    Ok(())
}

async fn drift_in_roles_anywhere_is_repaired(cluster: TestCluster) -> anyhow::Result<()> {
    let s = scene(&cluster, "ledger-drift").await?;
    let emulator = start_emulator("127.0.0.1:0".parse()?, None).await?;
    let _controller = cluster.start_controller_for_rolesanywhere(
        &s.namespace,
        &emulator.endpoint(),
        &["--crl-drift-check-interval=2s"],
    )?;
    let (_, arns) = s.issuer(Some(&emulator), None).await?;
    let arns = arns.context("seeded")?;
    let (pem, key, _) = s.certificate("app").await?;
    s.revoke("revoked", RevocationTarget::Certificate("app"), false)
        .await?;
    s.wait_revocation_ready("revoked").await?;
    let refused = || async {
        matches!(
            session(&emulator, &arns, &pem, &key).await,
            Err(CreateSessionError::CertificateRevoked { .. })
        )
    };
    anyhow::ensure!(refused().await, "not refused after the import");

    // Disabled out of band: the revoked certificate gets in until the controller notices.
    emulator.shared.mutate(|state| {
        state.crls.values_mut().for_each(|crl| crl.enabled = false);
        Ok(())
    })?;
    anyhow::ensure!(
        !refused().await,
        "the emulator still refuses with its CRL disabled"
    );
    wait_for("the disabled CRL enabled again", SETTLE, || async {
        Ok(refused().await.then_some(()))
    })
    .await?;

    // Deleted out of band: imported again.
    emulator.shared.mutate(|state| {
        state.crls.clear();
        Ok(())
    })?;
    wait_for("the deleted CRL imported again", SETTLE, || async {
        Ok(refused().await.then_some(()))
    })
    .await?;
    let crls = emulator.shared.read(|state| state.crls.len());
    anyhow::ensure!(crls == 1, "the emulator holds {crls} CRLs");
    Ok(())
}

async fn a_crl_name_has_one_owner(cluster: TestCluster) -> anyhow::Result<()> {
    let first = scene(&cluster, "ledger-owner-a").await?;
    let second = scene(&cluster, "ledger-owner-b").await?;
    let emulator = start_emulator("127.0.0.1:0".parse()?, None).await?;
    let _first_controller =
        cluster.start_controller_for_rolesanywhere(&first.namespace, &emulator.endpoint(), &[])?;
    let _second_controller =
        cluster.start_controller_for_rolesanywhere(&second.namespace, &emulator.endpoint(), &[])?;
    let (_, arns) = first.issuer(Some(&emulator), None).await?;
    let arns = arns.context("seeded")?;
    wait_for("the first Issuer's import", SETTLE, || async {
        Ok(first
            .issuers
            .get("ca")
            .await?
            .status
            .and_then(|st| st.crl_id))
    })
    .await?;
    let name = iamra::controller::default_crl_name(&first.namespace, "ca");
    let imported_name = emulator
        .shared
        .read(|state| state.crls.values().next().map(|crl| crl.name.clone()));
    anyhow::ensure!(
        imported_name.as_deref() == Some(name.as_str()),
        "{imported_name:?}"
    );

    // Another namespace's Issuer names the same trust anchor and CRL name.
    let mut intruder = local_issuer("ca", "ca-key");
    intruder.spec.roles_anywhere = Some(RolesAnywhereCrlTarget {
        trust_anchor_arn: arns.trust_anchor_arn.clone(),
        region: None,
        crl_name: Some(name.clone()),
    });
    apply(&second.issuers, &intruder).await?;
    let refused = wait_for("CrlNameTaken", SETTLE, || async {
        let issuer = second.issuers.get("ca").await?;
        Ok(issuer.status.and_then(|st| {
            st.conditions
                .into_iter()
                .find(|c| c.type_ == "CrlImported" && c.reason == "CrlNameTaken")
        }))
    })
    .await?;
    anyhow::ensure!(refused.status == "False", "{refused:?}");
    let first_ca = first
        .issuers
        .get("ca")
        .await?
        .status
        .and_then(|st| st.ca_certificate)
        .context("CA")?;
    // The emulator's one CRL is still the first Issuer's, signed by its CA.
    let held = emulator.shared.read(|state| {
        state
            .crls
            .values()
            .map(|crl| crl.crl_data.clone())
            .collect::<Vec<_>>()
    });
    anyhow::ensure!(held.len() == 1, "{} CRLs", held.len());
    let held_pem = String::from_utf8(held[0].clone())?;
    openssl::verify_crl(&first_ca, &held_pem).context("the CRL was overwritten")?;
    Ok(())
}

/// A CRL already on the trust anchor under the Issuer's CRL name, not signed by its CA (someone
/// else's, made by hand or before the ledger): the controller refuses to overwrite it.
async fn a_foreign_crl_of_the_same_name_is_not_taken_over(
    cluster: TestCluster,
) -> anyhow::Result<()> {
    let s = scene(&cluster, "ledger-foreign").await?;
    let emulator = start_emulator("127.0.0.1:0".parse()?, None).await?;
    let _controller =
        cluster.start_controller_for_rolesanywhere(&s.namespace, &emulator.endpoint(), &[])?;
    let (ca_pem, _) = s.issuer(None, None).await?;
    let arns = crate::revocation::seed(&emulator, &ca_pem)?;
    let name = iamra::controller::default_crl_name(&s.namespace, "ca");
    let foreign = b"-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n".to_vec();
    let anchor = arns.trust_anchor_arn.clone();
    emulator.shared.mutate(|state| {
        let id = iamra::rolesanywhere::emulator::state::new_resource_id();
        let now = time::OffsetDateTime::now_utc();
        let crl = iamra::rolesanywhere::emulator::state::Crl {
            id: id.clone(),
            arn: state.arn("crl", &id),
            name: name.clone(),
            enabled: true,
            trust_anchor_arn: anchor.clone(),
            crl_data: foreign.clone(),
            created_at: now,
            updated_at: now,
        };
        state.crls.insert(id, crl);
        Ok(())
    })?;
    let mut issuer = local_issuer("ca", "ca-key");
    issuer.spec.roles_anywhere = Some(RolesAnywhereCrlTarget {
        trust_anchor_arn: arns.trust_anchor_arn.clone(),
        region: None,
        crl_name: None,
    });
    apply(&s.issuers, &issuer).await?;
    let refused = wait_for("CrlNameTaken", SETTLE, || async {
        let issuer = s.issuers.get("ca").await?;
        Ok(issuer.status.and_then(|st| {
            st.conditions
                .into_iter()
                .find(|c| c.type_ == "CrlImported" && c.reason == "CrlNameTaken")
        }))
    })
    .await?;
    anyhow::ensure!(
        refused.message.contains("did not sign"),
        "{}",
        refused.message
    );
    let held: Vec<Vec<u8>> = emulator
        .shared
        .read(|state| state.crls.values().map(|c| c.crl_data.clone()).collect());
    anyhow::ensure!(
        held == [foreign],
        "the foreign CRL was overwritten or another imported"
    );
    Ok(())
}
