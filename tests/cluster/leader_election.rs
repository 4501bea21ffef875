//! Two `iamra controller` replicas on one Lease: only the holder reconciles, both serve HTTP,
//! the standby takes over after the leader is killed, and a terminated leader hands the Lease
//! back. The leader's `/metrics` reflect what it did.

use std::time::{Duration, Instant};

use anyhow::Context;
use iamra::api::{Issuer, WorkloadCertificate, WorkloadKeyAlgorithm};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use libtest_mimic::Trial;

use crate::cluster::{TestCluster, trial, wait_for};
use crate::issuance::{
    SETTLE, apply, local_issuer, wait_certificate_ready, wait_issuer_ready, workload_certificate,
};
use crate::metrics::{sample, scrape as metrics};
use crate::processes::TestProcess;

pub const LEASE_NAME: &str = "iamra-controller";
/// Short timings so a takeover happens within seconds; the defaults are 15 s / 10 s / 2 s.
pub const SHORT_LEASE: &[&str] = &[
    "--leader-election-lease-duration=4s",
    "--leader-election-renew-deadline=3s",
    "--leader-election-retry-period=1s",
];

pub fn trials(cluster: &TestCluster) -> Vec<Trial> {
    vec![trial(
        "leader_election::one_leader_reconciles_and_the_standby_takes_over",
        cluster,
        one_leader_reconciles_and_the_standby_takes_over,
    )]
}

fn replica(cluster: &TestCluster, namespace: &str, name: &str) -> anyhow::Result<TestProcess> {
    cluster.start_controller_with(namespace, SHORT_LEASE, &[("POD_NAME", name)])
}

pub async fn holder(leases: &Api<Lease>) -> anyhow::Result<Option<String>> {
    Ok(leases
        .get_opt(LEASE_NAME)
        .await?
        .and_then(|lease| lease.spec)
        .and_then(|spec| spec.holder_identity)
        .filter(|holder| !holder.is_empty()))
}

pub async fn wait_holder(leases: &Api<Lease>, expected: &str) -> anyhow::Result<()> {
    wait_for(&format!("Lease held by {expected}"), SETTLE, || async {
        Ok((holder(leases).await?.as_deref() == Some(expected)).then_some(()))
    })
    .await
}

async fn one_leader_reconciles_and_the_standby_takes_over(
    cluster: TestCluster,
) -> anyhow::Result<()> {
    let client = cluster.client().await?;
    let namespace = cluster.namespace(&client, "leader").await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);
    let issuers: Api<Issuer> = Api::namespaced(client.clone(), &namespace);
    let certificates: Api<WorkloadCertificate> = Api::namespaced(client.clone(), &namespace);

    // The first replica leads before the second starts, so the roles are known.
    let first = replica(&cluster, &namespace, "replica-a")?;
    wait_holder(&leases, "replica-a").await?;
    let second = replica(&cluster, &namespace, "replica-b")?;
    wait_for("replica-b standing by", SETTLE, || async {
        Ok(second.log_text().contains("standing by").then_some(()))
    })
    .await?;

    apply(&issuers, &local_issuer("ca", "ca-key")).await?;
    wait_issuer_ready(&issuers, "ca").await?;
    apply(
        &certificates,
        &workload_certificate("before", "ca", WorkloadKeyAlgorithm::EcdsaP256),
    )
    .await?;
    wait_certificate_ready(&certificates, "before", 1).await?;
    anyhow::ensure!(
        holder(&leases).await?.as_deref() == Some("replica-a"),
        "the Lease changed hands while both replicas ran"
    );

    // Both serve HTTP; only the leader reconciled.
    let leader_metrics = metrics(&first).await?;
    let standby_metrics = metrics(&second).await?;
    for (series, expected) in [
        ("iamra_leader", 1.0),
        ("iamra_certificates{state=\"ready\"}", 1.0),
        ("iamra_certificate_issuance_duration_seconds_count", 1.0),
        ("iamra_crl_signing_duration_seconds_count", 1.0),
    ] {
        anyhow::ensure!(
            sample(&leader_metrics, series).is_some_and(|v| v >= expected),
            "leader: {series} below {expected}:\n{leader_metrics}"
        );
    }
    let expiry = sample(
        &leader_metrics,
        &format!("iamra_certificate_expiry_seconds{{namespace=\"{namespace}\",name=\"before\"}}"),
    )
    .context("no expiry series for the certificate")?;
    // 24h certificates: somewhere below a day, far above zero.
    anyhow::ensure!((3600.0..=86_400.0).contains(&expiry), "expiry {expiry}");
    for (series, expected) in [
        ("iamra_leader", 0.0),
        ("iamra_certificates{state=\"ready\"}", 0.0),
        ("iamra_certificate_issuance_duration_seconds_count", 0.0),
    ] {
        anyhow::ensure!(
            sample(&standby_metrics, series) == Some(expected),
            "standby: {series} is not {expected}:\n{standby_metrics}"
        );
    }
    anyhow::ensure!(
        !second.log_text().contains("issuing certificate"),
        "the standby reconciled:\n{}",
        second.log_text()
    );

    // A crashed leader (no release): the standby takes over once the lease has expired.
    first.kill();
    let killed_at = Instant::now();
    wait_holder(&leases, "replica-b").await?;
    eprintln!(
        "leader_election: replica-b took over {:?} after replica-a was killed (lease duration 4s, retry period 1s)",
        killed_at.elapsed()
    );
    apply(
        &certificates,
        &workload_certificate("after", "ca", WorkloadKeyAlgorithm::EcdsaP256),
    )
    .await?;
    wait_certificate_ready(&certificates, "after", 1).await?;
    let new_leader_metrics = metrics(&second).await?;
    for (series, expected) in [
        ("iamra_leader", 1.0),
        ("iamra_certificates{state=\"ready\"}", 2.0),
        ("iamra_certificate_issuance_duration_seconds_count", 1.0),
    ] {
        anyhow::ensure!(
            sample(&new_leader_metrics, series) == Some(expected),
            "new leader: {series} is not {expected}:\n{new_leader_metrics}"
        );
    }

    // A terminated leader stops cleanly and hands the Lease back at once.
    let exit = second.terminate(Duration::from_secs(30))?;
    anyhow::ensure!(exit == Some(0), "SIGTERM exit status {exit:?}");
    anyhow::ensure!(
        holder(&leases).await?.is_none(),
        "the Lease still names a holder after a graceful shutdown"
    );
    Ok(())
}
