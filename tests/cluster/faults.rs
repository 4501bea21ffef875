//! Faults between the controller and what it calls, injected by a TCP proxy (`fault_proxy`)
//! while work keeps arriving: KMS answering 5xx, throttling and slowly; Roles Anywhere
//! answering 5xx, throttling, black-holed and slow; the API server partitioned, resetting and
//! slow. Each time: the object affected says so in its status within a minute (no reconcile
//! hangs), nothing else stops, and everything recovers by itself once the fault clears. CRL
//! numbers never go back, and the CRL calls stay at one per second.

use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use iamra::api::*;
use kube::api::Api;
use libtest_mimic::Trial;

use crate::cluster::{TestCluster, trial, wait_for};
use crate::fault_proxy::{Fault, FaultProxy};
use crate::issuance::{
    SETTLE, apply, local_issuer, wait_certificate_ready, wait_issuer_ready, workload_certificate,
};
use crate::kms::{create_key, kms_issuer};
use crate::revocation::{RevocationTarget, scene, start_emulator};

/// The most a reconcile may go without saying what is wrong.
const REPORTED_WITHIN: Duration = Duration::from_secs(60);

pub fn trials(cluster: &TestCluster) -> Vec<Trial> {
    vec![
        trial(
            "faults::kms_errors_throttling_and_slow_answers_hold_up_one_issuer_which_recovers_alone",
            cluster,
            kms_errors_throttling_and_slow_answers_hold_up_one_issuer_which_recovers_alone,
        ),
        trial(
            "faults::roles_anywhere_faults_delay_the_import_never_the_crl",
            cluster,
            roles_anywhere_faults_delay_the_import_never_the_crl,
        ),
        trial(
            "faults::an_api_server_partition_resets_and_slow_answers_stop_nothing_for_good",
            cluster,
            an_api_server_partition_resets_and_slow_answers_stop_nothing_for_good,
        ),
    ]
}

fn upstream(url: &str) -> anyhow::Result<std::net::SocketAddr> {
    let authority = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .context("no authority in the URL")?;
    Ok(authority.parse()?)
}

/// The certificate's Ready condition when it is False for a failure (not while issuing).
async fn failure_reported(
    certificates: &Api<WorkloadCertificate>,
    name: &str,
) -> anyhow::Result<Option<(String, String)>> {
    Ok(certificates.get(name).await?.status.and_then(|s| {
        s.conditions
            .into_iter()
            .find(|c| c.type_ == CONDITION_READY && c.status == "False" && c.reason != "Issuing")
            .map(|c| (c.reason, c.message))
    }))
}

async fn kms_errors_throttling_and_slow_answers_hold_up_one_issuer_which_recovers_alone(
    cluster: TestCluster,
) -> anyhow::Result<()> {
    let moto = cluster.kms_endpoint()?;
    let proxy = FaultProxy::start(upstream(&moto)?).await?;
    let client = cluster.client().await?;
    let namespace = cluster.namespace(&client, "faults-kms").await?;
    let issuers: Api<Issuer> = Api::namespaced(client.clone(), &namespace);
    let certificates: Api<WorkloadCertificate> = Api::namespaced(client.clone(), &namespace);
    let key_id = create_key(&moto, KeySpec::EccNistP256, KeyUsageType::SignVerify).await?;
    let grant = format!("--kms-key-grant={namespace}={key_id}");
    let endpoint = proxy.url("http");
    let _controller = cluster.start_controller_with(
        &namespace,
        &[&grant],
        &[("IAMRA_KMS_ENDPOINT", endpoint.as_str())],
    )?;
    apply(&issuers, &kms_issuer(&key_id)).await?;
    apply(&issuers, &local_issuer("local-ca", "local-ca-key")).await?;
    wait_issuer_ready(&issuers, "kms-ca").await?;
    wait_issuer_ready(&issuers, "local-ca").await?;

    let faults = [
        (
            "HTTP 500",
            Fault::HttpError(500, "KMSInternalException", "injected by the test"),
        ),
        (
            "throttling",
            Fault::HttpError(400, "ThrottlingException", "Rate exceeded"),
        ),
        ("reset connections", Fault::Reset),
    ];
    for (index, (what, fault)) in faults.into_iter().enumerate() {
        proxy.set(fault);
        let started = Instant::now();
        let name = format!("kms-{index}");
        apply(
            &certificates,
            &workload_certificate(&name, "kms-ca", WorkloadKeyAlgorithm::EcdsaP256),
        )
        .await?;
        // Another Issuer of the same controller goes on issuing meanwhile.
        let bystander = format!("local-{index}");
        apply(
            &certificates,
            &workload_certificate(&bystander, "local-ca", WorkloadKeyAlgorithm::EcdsaP256),
        )
        .await?;
        wait_certificate_ready(&certificates, &bystander, 1).await?;
        let (reason, message) = wait_for(&format!("{name} reported ({what})"), SETTLE, || {
            failure_reported(&certificates, &name)
        })
        .await?;
        let reported = started.elapsed();
        anyhow::ensure!(
            reported <= REPORTED_WITHIN,
            "{what}: reported after {reported:?}"
        );
        proxy.set(Fault::None);
        let cleared = Instant::now();
        wait_certificate_ready(&certificates, &name, 1).await?;
        eprintln!(
            "faults: KMS {what}: reported after {reported:.1?} ({reason}: {message}); Ready {:.1?} after the fault cleared",
            cleared.elapsed()
        );
    }

    // Slow answers that still come within the timeouts are waited for, not failed.
    proxy.set(Fault::Trickle {
        bytes: 32,
        every: Duration::from_millis(250),
    });
    let started = Instant::now();
    apply(
        &certificates,
        &workload_certificate("kms-slow", "kms-ca", WorkloadKeyAlgorithm::EcdsaP256),
    )
    .await?;
    wait_certificate_ready(&certificates, "kms-slow", 1).await?;
    eprintln!(
        "faults: KMS answering 32 bytes every 250 ms: issued in {:.1?}, {} canned errors served in all",
        started.elapsed(),
        proxy
            .errors_served
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(())
}

async fn roles_anywhere_faults_delay_the_import_never_the_crl(
    cluster: TestCluster,
) -> anyhow::Result<()> {
    let emulator = start_emulator("127.0.0.1:0".parse()?, None).await?;
    let proxy = FaultProxy::start(emulator.addr).await?;
    let scene = scene(&cluster, "faults-ra").await?;
    let _controller =
        cluster.start_controller_for_rolesanywhere(&scene.namespace, &proxy.url("http"), &[])?;
    scene.issuer(Some(&emulator), None).await?;
    let imported = |number: i64| {
        let issuers = scene.issuers.clone();
        async move {
            let status = issuers.get("ca").await?.status.unwrap_or_default();
            Ok((status.imported_crl_number >= Some(number)).then_some(status))
        }
    };
    wait_for("the first CRL imported", SETTLE, || imported(1)).await?;

    let mut crl_numbers = Vec::new();
    // (what, fault, what the import failure says while it lasts; None: the import succeeds)
    let faults = [
        (
            "HTTP 503",
            Fault::HttpError(503, "InternalServerException", "injected by the test"),
            Some("InternalServerException"),
        ),
        (
            "throttling",
            Fault::HttpError(429, "ThrottlingException", "Rate exceeded"),
            Some("ThrottlingException"),
        ),
        ("a black hole", Fault::BlackHole, Some("timeout")),
        (
            "slow answers",
            Fault::Trickle {
                bytes: 64,
                every: Duration::from_millis(100),
            },
            None,
        ),
    ];
    for (index, (what, fault, failure)) in faults.into_iter().enumerate() {
        let certificate = format!("app-{index}");
        scene.certificate(&certificate).await?;
        proxy.set(fault);
        let started = Instant::now();
        scene
            .revoke(
                &format!("revoke-{index}"),
                RevocationTarget::Certificate(&certificate),
                false,
            )
            .await?;
        // The CRL is signed and published whatever Roles Anywhere does.
        let (_, published) = wait_for("the CRL published", SETTLE, || async {
            let (pem, number) = scene.published_crl().await?;
            Ok((number > crl_numbers.last().copied().unwrap_or(1)).then_some((pem, number)))
        })
        .await?;
        let published_after = started.elapsed();
        crl_numbers.push(published);
        if let Some(failure) = failure {
            let condition = wait_for(
                &format!("the import failure reported ({what})"),
                SETTLE,
                || async {
                    let status = scene.issuers.get("ca").await?.status.unwrap_or_default();
                    Ok(status.conditions.into_iter().find(|c| {
                        c.type_ == "CrlImported"
                            && c.status == "False"
                            && c.message.contains(failure)
                    }))
                },
            )
            .await?;
            anyhow::ensure!(
                started.elapsed() <= REPORTED_WITHIN,
                "{what}: the import failure was reported after {:?}",
                started.elapsed()
            );
            eprintln!(
                "faults: Roles Anywhere {what}: CRL {published} published after {published_after:.1?}, import failure reported after {:.1?} ({}: {})",
                started.elapsed(),
                condition.reason,
                condition.message
            );
        } else {
            // Slow answers within the timeouts: the import completes while the fault lasts.
            wait_for(
                &format!("CRL {published} imported ({what})"),
                SETTLE,
                || imported(published),
            )
            .await?;
            eprintln!(
                "faults: Roles Anywhere {what}: CRL {published} imported {:.1?} after the revocation, while the fault lasted",
                started.elapsed()
            );
        }
        proxy.set(Fault::None);
        let cleared = Instant::now();
        wait_for(&format!("CRL {published} imported"), SETTLE, || {
            imported(published)
        })
        .await?;
        eprintln!(
            "faults: Roles Anywhere {what}: CRL {published} imported {:.1?} after the fault cleared ({} CRL calls throttled by the emulator so far)",
            cleared.elapsed(),
            emulator.shared.crl_quota.log().throttled
        );
    }
    anyhow::ensure!(
        crl_numbers.windows(2).all(|pair| pair[0] < pair[1]),
        "CRL numbers went back: {crl_numbers:?}"
    );
    let log = emulator.shared.crl_quota.log();
    anyhow::ensure!(
        log.most_in_one_second() <= 1 && log.throttled == 0,
        "CRL calls: at most {} in one second, {} throttled by the emulator",
        log.most_in_one_second(),
        log.throttled
    );
    eprintln!(
        "faults: Roles Anywhere: CRL numbers {crl_numbers:?}, {} CRL calls reached the emulator, at most {} in one second",
        log.admitted.len(),
        log.most_in_one_second()
    );
    Ok(())
}

async fn an_api_server_partition_resets_and_slow_answers_stop_nothing_for_good(
    cluster: TestCluster,
) -> anyhow::Result<()> {
    let server = cluster.url()?;
    let proxy = FaultProxy::start(upstream(&server)?).await?;
    let kubeconfig = std::fs::read_to_string(cluster.admin_kubeconfig())?;
    anyhow::ensure!(
        kubeconfig.contains(&server),
        "the kubeconfig names {server}"
    );
    let client = cluster.client().await?;
    let namespace = cluster.namespace(&client, "faults-api").await?;
    let through_proxy = cluster
        .admin_kubeconfig()
        .with_file_name(format!("kubeconfig-{namespace}"));
    std::fs::write(
        &through_proxy,
        kubeconfig.replace(&server, &proxy.url("https")),
    )?;
    // One replica without leader election first: it must ride out the faults by itself.
    let single = cluster.start_controller_as(
        &through_proxy,
        &namespace,
        &["--leader-election=false"],
        &[],
    )?;
    let issuers: Api<Issuer> = Api::namespaced(client.clone(), &namespace);
    let certificates: Api<WorkloadCertificate> = Api::namespaced(client.clone(), &namespace);
    apply(&issuers, &local_issuer("ca", "ca-key")).await?;
    wait_issuer_ready(&issuers, "ca").await?;

    let faults = [
        (
            "a 20 s partition",
            Fault::BlackHole,
            Duration::from_secs(20),
        ),
        ("10 s of resets", Fault::Reset, Duration::from_secs(10)),
        (
            "20 s of slow answers",
            Fault::Trickle {
                bytes: 64,
                every: Duration::from_millis(100),
            },
            Duration::from_secs(20),
        ),
    ];
    for (index, (what, fault, lasting)) in faults.into_iter().enumerate() {
        proxy.set(fault);
        // Created during the fault, straight at the API server: the controller learns of it
        // only through its (faulty) watch.
        let name = format!("during-{index}");
        apply(
            &certificates,
            &workload_certificate(&name, "ca", WorkloadKeyAlgorithm::EcdsaP256),
        )
        .await?;
        tokio::time::sleep(lasting).await;
        proxy.set(Fault::None);
        let cleared = Instant::now();
        wait_certificate_ready(&certificates, &name, 1).await?;
        eprintln!(
            "faults: API server {what}: the certificate created meanwhile was Ready {:.1?} after it cleared",
            cleared.elapsed()
        );
    }
    drop(single);

    // A leader cut off from the API server stops before a standby could take over (it cannot
    // renew), and its restart (the kubelet's, here the test's) leads once the partition heals.
    let short_lease = [
        "--leader-election-lease-duration=4s",
        "--leader-election-renew-deadline=3s",
        "--leader-election-retry-period=1s",
    ];
    let mut leader = cluster.start_controller_as(&through_proxy, &namespace, &short_lease, &[])?;
    wait_for("the leader leading", SETTLE, || async {
        Ok(leader
            .log_text()
            .contains("acquired the leader Lease")
            .then_some(()))
    })
    .await?;
    proxy.set(Fault::BlackHole);
    let partitioned = Instant::now();
    let exit = leader.wait_exit(Duration::from_secs(30))?;
    let stopped_after = partitioned.elapsed();
    anyhow::ensure!(
        exit == Some(1) && stopped_after < Duration::from_secs(4) + Duration::from_secs(1),
        "a partitioned leader should exit (status 1) within its renew deadline and a retry period, got {exit:?} after {stopped_after:?}"
    );
    apply(
        &certificates,
        &workload_certificate("after-partition", "ca", WorkloadKeyAlgorithm::EcdsaP256),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    proxy.set(Fault::None);
    let _restarted = cluster.start_controller_as(&through_proxy, &namespace, &short_lease, &[])?;
    let healed = Instant::now();
    wait_certificate_ready(&certificates, "after-partition", 1).await?;
    eprintln!(
        "faults: API server partition of a leader: it exited after {stopped_after:.1?} (renew deadline 3 s); its restart issued the certificate created meanwhile {:.1?} after the partition healed",
        healed.elapsed()
    );
    Ok(())
}
