//! A CRL too large for one Roles Anywhere import: whole in the first slot while the second is
//! taken, then split by serial across the trust anchor's two CRL slots, both enforced, and joined
//! again (the second slot deleted) once entries expire.
//! The ledger is filled the way the controller fills it (revoked CertificateRecords), because
//! thousands of Revocations would test the API server rather than the split.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use iamra::api::*;
use iamra::controller::{AUTHORITY_LABEL, REVOKED_LABEL, record_name};
use iamra::rolesanywhere::emulator::RunningEmulator;
use iamra::rolesanywhere::errors::CreateSessionError;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{Api, ObjectMeta, PostParams};
use libtest_mimic::Trial;

use crate::cluster::{TestCluster, trial, wait_for};
use crate::issuance::SETTLE;
use crate::openssl;
use crate::revocation::{RevocationTarget, Scene, scene, session, start_emulator};

/// Revoked entries added to the ledger: with keyCompromise reasons about 262,000 PEM bytes, over
/// the 240,000 at which a CRL is split, each half well under the 300,000-byte limit.
const BULK_ENTRIES: usize = 4_600;
/// How long the bulk entries' certificates live: the test moves the controller's clock past it
/// to see them expire and the CRL joined again.
const BULK_LIFETIME: Duration = Duration::from_secs(3600);

pub fn trials(cluster: &TestCluster) -> Vec<Trial> {
    vec![trial(
        "crl_split::a_crl_too_large_for_one_import_uses_both_slots_then_one_again",
        cluster,
        a_crl_too_large_for_one_import_uses_both_slots_then_one_again,
    )]
}

/// The enabled CRLs Roles Anywhere holds for the anchor: (name, PEM).
fn held_crls(emulator: &RunningEmulator, anchor: &str) -> Vec<(String, String)> {
    emulator.shared.read(|state| {
        let mut crls: Vec<(String, String)> = state
            .crls_of(anchor)
            .filter(|crl| crl.enabled)
            .map(|crl| {
                (
                    crl.name.clone(),
                    String::from_utf8_lossy(&crl.crl_data).into_owned(),
                )
            })
            .collect();
        crls.sort();
        crls
    })
}

/// The serials of each held CRL, each checked by openssl against the CA and under the limit.
fn held_serials(
    emulator: &RunningEmulator,
    anchor: &str,
    ca_pem: &str,
) -> anyhow::Result<Vec<(String, BTreeSet<String>)>> {
    held_crls(emulator, anchor)
        .into_iter()
        .map(|(name, pem)| {
            anyhow::ensure!(pem.len() <= 300_000, "CRL {name:?} is {} bytes", pem.len());
            openssl::verify_crl(ca_pem, &pem)?;
            Ok((name, openssl::crl_serials(&pem)?.into_iter().collect()))
        })
        .collect()
}

/// The ledger authority of the scene's Issuer `ca`.
async fn authority_of(s: &Scene) -> anyhow::Result<String> {
    let records: Api<CertificateAuthorityRecord> = Api::all(s.client.clone());
    wait_for("the CA's ledger record", SETTLE, || async {
        Ok(records
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .find_map(|r| {
                r.spec
                    .issuers
                    .iter()
                    .any(|i| i.namespace == s.namespace && i.name == "ca")
                    .then(|| r.spec.authority.clone())
            }))
    })
    .await
}

/// Revoked records of serials the CA never issued, expiring after `lifetime`; their serials.
async fn fill_ledger(
    client: &kube::Client,
    authority: &str,
    count: usize,
    lifetime: Duration,
) -> anyhow::Result<BTreeSet<String>> {
    let records: Api<CertificateRecord> = Api::all(client.clone());
    let now = jiff::Timestamp::now();
    let not_after = now + jiff::SignedDuration::try_from(lifetime)?;
    let serials: BTreeSet<String> = (0..count)
        .map(|_| {
            iamra::pki::random_serial_number()
                .map(|s| iamra::pki::serial_hex(&s.to_bytes()))
                .map_err(anyhow::Error::from)
        })
        .collect::<anyhow::Result<_>>()?;
    futures::stream::iter(serials.iter().cloned())
        .map(|serial| {
            let records = records.clone();
            async move {
                let record = CertificateRecord {
                    metadata: ObjectMeta {
                        name: Some(record_name(authority, &serial)),
                        labels: Some(
                            [
                                (AUTHORITY_LABEL.to_string(), authority.to_string()),
                                (REVOKED_LABEL.to_string(), "true".to_string()),
                            ]
                            .into(),
                        ),
                        ..Default::default()
                    },
                    spec: CertificateRecordSpec {
                        authority: authority.to_string(),
                        serial_number: serial,
                        not_after: Time(not_after),
                        issued: None,
                        revocation: Some(RecordedRevocation {
                            reason: RevocationReason::KeyCompromise,
                            revocation_time: Time(now),
                            accepted_at: MicroTime(now),
                            requested_by: RevocationRequester {
                                namespace: "crl-split".into(),
                                name: "bulk".into(),
                                uid: "bulk".into(),
                            },
                        }),
                    },
                };
                records.create(&PostParams::default(), &record).await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(serials)
}

async fn a_crl_too_large_for_one_import_uses_both_slots_then_one_again(
    cluster: TestCluster,
) -> anyhow::Result<()> {
    let s = scene(&cluster, "crl-split").await?;
    let emulator = start_emulator("127.0.0.1:0".parse()?, None).await?;
    let controller =
        cluster.start_controller_for_rolesanywhere(&s.namespace, &emulator.endpoint(), &[])?;
    let (ca_pem, arns) = s.issuer(Some(&emulator), None).await?;
    let arns = arns.context("seeded")?;
    let anchor = arns.trust_anchor_arn.clone();
    let authority = authority_of(&s).await?;

    // Real certificates until both shards have one (a serial's last bit picks its shard).
    let mut revoked = Vec::new();
    for index in 0..12 {
        let name = format!("app-{index}");
        let (pem, key, serial) = s.certificate(&name).await?;
        let odd = u8::from_str_radix(&serial[serial.len() - 1..], 16)? & 1;
        s.revoke(&name, RevocationTarget::Certificate(&name), false)
            .await?;
        revoked.push((pem, key, serial, odd));
        if revoked.iter().any(|r| r.3 == 0) && revoked.iter().any(|r| r.3 == 1) {
            break;
        }
    }
    anyhow::ensure!(
        revoked.iter().any(|r| r.3 == 0) && revoked.iter().any(|r| r.3 == 1),
        "twelve certificates, all in one shard"
    );
    let refused = |pem: String, key: String| {
        let emulator = &emulator;
        let arns = &arns;
        async move {
            matches!(
                session(emulator, arns, &pem, &key).await,
                Err(CreateSessionError::CertificateRevoked { .. })
            )
        }
    };

    // Another CRL holds the anchor's second slot (disabled, so it revokes nothing): the split
    // cannot happen, and the whole CRL goes to the first slot instead of being left out.
    let occupant = emulator.shared.mutate(|state| {
        let id = iamra::rolesanywhere::emulator::state::new_resource_id();
        let at = time::OffsetDateTime::now_utc();
        let crl = iamra::rolesanywhere::emulator::state::Crl {
            arn: state.arn("crl", &id),
            id: id.clone(),
            name: "someone else's".into(),
            enabled: false,
            trust_anchor_arn: anchor.clone(),
            crl_data: Vec::new(),
            created_at: at,
            updated_at: at,
        };
        state.crls.insert(id.clone(), crl);
        Ok(id)
    })?;
    let bulk = fill_ledger(&s.client, &authority, BULK_ENTRIES, BULK_LIFETIME).await?;
    let mut everything: BTreeSet<String> = bulk.clone();
    everything.extend(revoked.iter().map(|r| r.2.clone()));
    // A new revocation makes the next CRL; it carries the bulk too, so it is split.
    let (extra_pem, extra_key, extra_serial) = s.certificate("trigger").await?;
    s.revoke("trigger", RevocationTarget::Certificate("trigger"), false)
        .await?;
    everything.insert(extra_serial.clone());
    wait_for("the whole CRL in the first slot", SETTLE, || async {
        let held = held_serials(&emulator, &anchor, &ca_pem)?;
        Ok((held.len() == 1 && held[0].1 == everything).then_some(()))
    })
    .await?;
    let imported = wait_for("CrlImported naming the refused slot", SETTLE, || async {
        let issuer = s.issuers.get("ca").await?;
        Ok(issuer.status.and_then(|st| {
            st.conditions
                .into_iter()
                .find(|c| c.type_ == "CrlImported" && c.message.contains("second slot was refused"))
        }))
    })
    .await?;
    println!("second slot taken: {}", imported.message);
    anyhow::ensure!(
        refused(extra_pem.clone(), extra_key.clone()).await,
        "the trigger certificate not refused with the whole CRL in one slot"
    );
    // The slot freed: the next retry splits.
    emulator.shared.mutate(|state| {
        state.crls.remove(&occupant);
        Ok(())
    })?;
    let gap = std::sync::Mutex::new(Vec::new());
    let split = wait_for("the CRL split across both slots", SETTLE, || async {
        let held = held_serials(&emulator, &anchor, &ca_pem)?;
        let union: BTreeSet<String> = held.iter().flat_map(|(_, s)| s.clone()).collect();
        // Until the first slot gets its half it still holds everything: overlap, never a gap.
        if let Ok(mut gap) = gap.lock() {
            gap.extend(everything.difference(&union).cloned());
        }
        let halves = held.len() == 2 && held[0].1.is_disjoint(&held[1].1);
        Ok((halves && union == everything).then_some(held))
    })
    .await?;
    let gap = gap.into_inner().unwrap_or_default();
    anyhow::ensure!(
        gap.is_empty(),
        "revoked serials on neither CRL while splitting: {gap:?}"
    );
    let (first, second) = (&split[0], &split[1]);
    anyhow::ensure!(
        second.0 == format!("{} 2", first.0),
        "slots named {:?} and {:?}",
        first.0,
        second.0
    );
    for (pem, key, serial, _) in revoked.iter().cloned() {
        anyhow::ensure!(refused(pem, key).await, "{serial} not refused while split");
    }
    anyhow::ensure!(
        refused(extra_pem.clone(), extra_key.clone()).await,
        "the trigger certificate not refused"
    );
    let issuer = s.issuers.get("ca").await?;
    let status = issuer.status.context("no status")?;
    anyhow::ensure!(
        status.crl_ids.len() == 2,
        "status.crlIds: {:?}",
        status.crl_ids
    );
    let capacity = status
        .conditions
        .iter()
        .find(|c| c.type_ == "CrlCapacity")
        .context("no CrlCapacity")?;
    anyhow::ensure!(
        capacity.status == "True" && capacity.message.contains("split by serial"),
        "CrlCapacity: {} {}",
        capacity.status,
        capacity.message
    );
    println!(
        "split: {} entries as {} + {}; {}",
        everything.len(),
        first.1.len(),
        second.1.len(),
        capacity.message
    );

    // The bulk expires: the next CRL fits one import; the second slot goes, nothing else does.
    controller.move_clock_ahead(BULK_LIFETIME + Duration::from_secs(60))?;
    s.revoke(
        "after-expiry",
        RevocationTarget::Serial("7eadbeef01"),
        false,
    )
    .await?;
    let mut remaining: BTreeSet<String> = revoked.iter().map(|r| r.2.clone()).collect();
    remaining.insert(extra_serial);
    remaining.insert("7eadbeef01".into());
    let joined = wait_for("the CRL joined in one slot", SETTLE, || async {
        let held = held_serials(&emulator, &anchor, &ca_pem)?;
        Ok((held.len() == 1 && held[0].1 == remaining).then_some(held))
    })
    .await?;
    anyhow::ensure!(joined[0].0 == first.0, "joined under {:?}", joined[0].0);
    let all_crls = emulator.shared.read(|state| state.crls_of(&anchor).count());
    anyhow::ensure!(
        all_crls == 1,
        "the second slot was not deleted ({all_crls} CRLs)"
    );
    for (pem, key, serial, _) in revoked {
        anyhow::ensure!(refused(pem, key).await, "{serial} not refused once joined");
    }
    let shards = s.config_maps.get("ca-crl-shards").await?;
    anyhow::ensure!(
        shards.data.unwrap_or_default().is_empty(),
        "the shards ConfigMap still holds shards once joined"
    );
    let (pem, _) = s.published_crl().await?;
    anyhow::ensure!(
        openssl::crl_serials(&pem)?.len() == remaining.len(),
        "the ConfigMap's PEM is not the whole CRL again"
    );
    Ok(())
}
