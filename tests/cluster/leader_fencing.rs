//! Two leaders never act at once, measured from the API server's own audit log: a leader frozen
//! (SIGSTOP) while certificates and Revocations keep arriving wakes up (SIGCONT) after the
//! standby took over and writes nothing more; a deleted Lease changes no leader and lets no
//! standby act. CRL numbers never go back meanwhile. Half the certificates are signed by a KMS
//! that answers slowly (through `fault_proxy`), so the frozen leader has signatures in flight
//! that complete the moment it wakes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use iamra::api::{
    CertificateReference, Issuer, IssuerReference, Revocation, RevocationReason, RevocationSpec,
    WorkloadCertificate, WorkloadKeyAlgorithm,
};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams};
use libtest_mimic::Trial;
use serde_json::Value;

use aws_sdk_kms::types::{KeySpec, KeyUsageType};

use crate::cluster::{TestCluster, trial, wait_for};
use crate::fault_proxy::{Fault, FaultProxy};
use crate::issuance::{
    SETTLE, apply, local_issuer, wait_certificate_ready, wait_issuer_ready, workload_certificate,
};
use crate::kms::{create_key, kms_issuer};
use crate::leader_election::{LEASE_NAME, SHORT_LEASE, holder, wait_holder};
use crate::processes::TestProcess;

/// [`SHORT_LEASE`]'s lease duration.
const LEASE_DURATION: Duration = Duration::from_secs(4);

pub fn trials(cluster: &TestCluster) -> Vec<Trial> {
    vec![trial(
        "leader_election::a_frozen_leader_writes_nothing_once_the_standby_leads_and_a_deleted_lease_moves_nothing",
        cluster,
        a_frozen_leader_writes_nothing_once_the_standby_leads_and_a_deleted_lease_moves_nothing,
    )]
}

/// A replica whose KMS is `kms` (and the key granted).
fn replica(
    cluster: &TestCluster,
    namespace: &str,
    name: &str,
    kms: &Kms,
) -> anyhow::Result<TestProcess> {
    let grant = format!("--kms-key-grant={namespace}={}", kms.key_id);
    let mut args = SHORT_LEASE.to_vec();
    args.push(&grant);
    cluster.start_controller_with(
        namespace,
        &args,
        &[
            ("POD_NAME", name),
            ("IAMRA_KMS_ENDPOINT", &kms.endpoint),
            // Each write the fence lets through is logged, with its time.
            ("RUST_LOG", "info,iamra=debug,iamra::fence=trace"),
        ],
    )
}

struct Kms {
    key_id: String,
    endpoint: String,
}

/// One write in the audit log.
#[derive(Debug)]
struct Write {
    replica: String,
    verb: String,
    resource: String,
    received: jiff::Timestamp,
    code: i64,
}

/// The writes made in `namespace` by controller replicas, in the order the API server took them.
fn controller_writes(audit_log: &std::path::Path, namespace: &str) -> anyhow::Result<Vec<Write>> {
    let text = std::fs::read_to_string(audit_log)
        .with_context(|| format!("reading {}", audit_log.display()))?;
    let mut writes = Vec::new();
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let text = |pointer: &str| event.pointer(pointer).and_then(Value::as_str);
        if text("/objectRef/namespace") != Some(namespace) {
            continue;
        }
        // `iamra/<version> (<replica>)`, set by the controller on every request.
        let Some(replica) = text("/userAgent")
            .and_then(|agent| agent.strip_prefix("iamra/"))
            .and_then(|rest| rest.split_once(" ("))
            .and_then(|(_, rest)| rest.strip_suffix(')'))
        else {
            continue;
        };
        writes.push(Write {
            replica: replica.to_owned(),
            verb: text("/verb").unwrap_or_default().to_owned(),
            resource: text("/objectRef/resource").unwrap_or_default().to_owned(),
            received: text("/requestReceivedTimestamp")
                .context("an audit event without requestReceivedTimestamp")?
                .parse()?,
            code: event
                .pointer("/responseStatus/code")
                .and_then(Value::as_i64)
                .unwrap_or(0),
        });
    }
    writes.sort_by_key(|write| write.received);
    Ok(writes)
}

async fn a_frozen_leader_writes_nothing_once_the_standby_leads_and_a_deleted_lease_moves_nothing(
    cluster: TestCluster,
) -> anyhow::Result<()> {
    let client = cluster.client().await?;
    let namespace = cluster.namespace(&client, "fencing").await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);
    let issuers: Api<Issuer> = Api::namespaced(client.clone(), &namespace);
    let certificates: Api<WorkloadCertificate> = Api::namespaced(client.clone(), &namespace);
    let revocations: Api<Revocation> = Api::namespaced(client.clone(), &namespace);

    let moto = cluster.kms_endpoint()?;
    let slow_kms = FaultProxy::start(
        moto.trim_start_matches("http://")
            .parse()
            .context("moto's address")?,
    )
    .await?;
    let kms = Kms {
        key_id: create_key(&moto, KeySpec::EccNistP256, KeyUsageType::SignVerify).await?,
        endpoint: slow_kms.url("http"),
    };
    let mut first = replica(&cluster, &namespace, "replica-a", &kms)?;
    wait_holder(&leases, "replica-a").await?;
    let second = replica(&cluster, &namespace, "replica-b", &kms)?;
    wait_for("replica-b standing by", SETTLE, || async {
        Ok(second.log_text().contains("standing by").then_some(()))
    })
    .await?;
    apply(&issuers, &local_issuer("ca", "ca-key")).await?;
    apply(&issuers, &kms_issuer(&kms.key_id)).await?;
    wait_issuer_ready(&issuers, "ca").await?;
    wait_issuer_ready(&issuers, "kms-ca").await?;
    slow_kms.set(Fault::Delay(Duration::from_millis(700)));

    // Work keeps arriving the whole time: a certificate every 250 ms (of the slow KMS Issuer
    // and the local one in turn), a Revocation of an earlier local one every fourth step, and
    // the local Issuer's CRL number sampled at every step.
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let (certificates, revocations, issuers, stop) = (
            certificates.clone(),
            revocations.clone(),
            issuers.clone(),
            stop.clone(),
        );
        async move {
            let mut created = 0usize;
            let mut crl_numbers = Vec::new();
            while !stop.load(Ordering::Acquire) {
                let name = format!("load-{created}");
                let issuer = if created.is_multiple_of(2) {
                    "kms-ca"
                } else {
                    "ca"
                };
                apply(
                    &certificates,
                    &workload_certificate(&name, issuer, WorkloadKeyAlgorithm::EcdsaP256),
                )
                .await?;
                if created % 4 == 3 {
                    let target = format!("load-{}", created - 2);
                    let revocation = Revocation::new(
                        &format!("revoke-{target}"),
                        RevocationSpec {
                            issuer_ref: IssuerReference::issuer("ca"),
                            serial_number: None,
                            certificate_ref: Some(CertificateReference { name: target }),
                            reason: Some(RevocationReason::KeyCompromise),
                            revocation_time: None,
                            reissue: None,
                        },
                    );
                    apply(&revocations, &revocation).await?;
                }
                created += 1;
                if let Some(number) = issuers
                    .get("ca")
                    .await?
                    .status
                    .and_then(|status| status.crl_number)
                {
                    crl_numbers.push(number);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            anyhow::Ok((created, crl_numbers))
        }
    });

    tokio::time::sleep(Duration::from_secs(3)).await;
    first.signal(libc::SIGSTOP)?;
    wait_holder(&leases, "replica-b").await?;
    // The new leader works while the old one is frozen, then the old one wakes up with its
    // reconciles, timers and open connections as they were.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let woken_at = jiff::Timestamp::now();
    first.signal(libc::SIGCONT)?;
    let exit = first.wait_exit(Duration::from_secs(15))?;
    let woken_log = first.log_text();
    anyhow::ensure!(
        exit == Some(1) && woken_log.contains("lost the leader Lease"),
        "the woken leader should exit (status 1) once it sees its lapsed Lease, got {exit:?}:\n{woken_log}"
    );
    let held_back = woken_log.matches("a write was not sent").count();
    // Writes the fence let through after the leader woke: none may be (a write let through
    // before the freeze and sent after it is the residual window, measured below).
    let passed_after_waking: Vec<&str> = woken_log
        .lines()
        .filter(|line| line.contains("write passed the leadership fence"))
        .filter(|line| {
            line.split_whitespace()
                .next()
                .and_then(|at| at.parse::<jiff::Timestamp>().ok())
                .is_some_and(|at| at >= woken_at)
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Release);
    let (created, crl_numbers) = load.await??;
    // Those revoked (every index 1 mod 4) stay revoked; the others are all issued.
    for index in (0..created).filter(|index| index % 4 != 1) {
        wait_certificate_ready(&certificates, &format!("load-{index}"), 1).await?;
    }

    // A deleted Lease: the leader re-creates it, and a standby that saw it held waits.
    let third = replica(&cluster, &namespace, "replica-c", &kms)?;
    wait_for("replica-c standing by", SETTLE, || async {
        Ok(third.log_text().contains("standing by").then_some(()))
    })
    .await?;
    leases.delete(LEASE_NAME, &DeleteParams::default()).await?;
    tokio::time::sleep(LEASE_DURATION * 3).await;
    apply(
        &certificates,
        &workload_certificate(
            "after-lease-deletion",
            "ca",
            WorkloadKeyAlgorithm::EcdsaP256,
        ),
    )
    .await?;
    wait_certificate_ready(&certificates, "after-lease-deletion", 1).await?;
    anyhow::ensure!(
        holder(&leases).await?.as_deref() == Some("replica-b"),
        "after the Lease was deleted the leader changed to {:?}",
        holder(&leases).await?
    );

    let writes = controller_writes(&cluster.audit_log_path()?, &namespace)?;
    let is_lease = |write: &Write| write.resource == "leases";
    let took_over = writes
        .iter()
        .find(|w| w.replica == "replica-b" && is_lease(w) && (200..300).contains(&w.code))
        .context("no Lease write by replica-b in the audit log")?
        .received;
    let last_of_first = writes
        .iter()
        .filter(|w| w.replica == "replica-a")
        .map(|w| w.received)
        .max()
        .context("no write by replica-a in the audit log")?;
    let overlap_ms = last_of_first.duration_since(took_over).as_secs_f64() * 1000.0;
    let late: Vec<&Write> = writes
        .iter()
        .filter(|w| w.replica == "replica-a" && w.received >= took_over)
        .collect();
    let by_standby: Vec<&Write> = writes.iter().filter(|w| w.replica == "replica-c").collect();
    let recreated = writes
        .iter()
        .any(|w| w.replica == "replica-b" && is_lease(w) && w.verb == "create");
    let mut per_replica: BTreeMap<&str, usize> = BTreeMap::new();
    for write in &writes {
        *per_replica.entry(write.replica.as_str()).or_default() += 1;
    }
    let regressions = crl_numbers.windows(2).filter(|w| w[1] < w[0]).count();
    eprintln!(
        "leader_fencing: {created} certificates, writes per replica {per_replica:?}; replica-a's last write {overlap_ms:.0} ms after replica-b took the Lease (negative: before), {} of its writes in flight at the freeze landed after the takeover, {held_back} held back by the fence after it woke, {} let through after it woke; {} CRL numbers sampled ({:?}..{:?}), {regressions} regressions",
        late.len(),
        passed_after_waking.len(),
        crl_numbers.len(),
        crl_numbers.first(),
        crl_numbers.last()
    );
    anyhow::ensure!(
        passed_after_waking.is_empty(),
        "the fence let writes through after the leader woke: {passed_after_waking:?}"
    );
    // What was in flight when it froze can land after the takeover; never more than the
    // reconciles it was running.
    anyhow::ensure!(
        late.len() <= 4,
        "replica-a wrote {} times after replica-b led: {late:?}",
        late.len()
    );
    anyhow::ensure!(
        by_standby.is_empty(),
        "the standby wrote while replica-b led: {by_standby:?}"
    );
    anyhow::ensure!(recreated, "replica-b did not re-create the deleted Lease");
    anyhow::ensure!(regressions == 0, "CRL numbers went back: {crl_numbers:?}");
    anyhow::ensure!(
        crl_numbers.last() > crl_numbers.first(),
        "the CRL never changed: {crl_numbers:?}"
    );
    Ok(())
}
