//! The platform's floors (`--min-*`) under what a tenant may ask for, and the bound on what an
//! object that can never succeed costs the API server.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use iamra::api::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::core::ObjectList;
use kube::{Resource, ResourceExt};
use libtest_mimic::Trial;
use serde_json::json;

use crate::cluster::{TestCluster, trial, wait_for};
use crate::issuance::{
    SETTLE, apply, events_for, local_issuer, wait_event, wait_issuer_ready, workload_certificate,
};
use crate::openssl;

pub fn trials(cluster: &TestCluster) -> Vec<Trial> {
    vec![
        trial(
            "minimums::certificates_under_the_floors_are_refused_and_crl_refresh_is_raised",
            cluster,
            certificates_under_the_floors_are_refused_and_crl_refresh_is_raised,
        ),
        trial(
            "minimums::a_permanently_failing_object_writes_its_status_at_most_twice_a_minute",
            cluster,
            a_permanently_failing_object_writes_its_status_at_most_twice_a_minute,
        ),
    ]
}

/// The Ready condition of a WorkloadCertificate once its reason is `reason`.
async fn wait_refused(
    api: &Api<WorkloadCertificate>,
    name: &str,
    reason: &str,
) -> anyhow::Result<String> {
    wait_for(&format!("{name} refused with {reason}"), SETTLE, || async {
        let certificate = api.get(name).await?;
        Ok(certificate
            .status
            .iter()
            .flat_map(|s| s.conditions.iter())
            .find(|c| c.type_ == CONDITION_READY && c.status == "False" && c.reason == reason)
            .map(|c| c.message.clone()))
    })
    .await
}

async fn certificates_under_the_floors_are_refused_and_crl_refresh_is_raised(
    cluster: TestCluster,
) -> anyhow::Result<()> {
    let client = cluster.client().await?;
    let namespace = cluster.namespace(&client, "floors").await?;
    // The production floors: 1h lifetime, 5m renewBefore, 30m of use, 15m CRL refresh.
    let _controller = cluster.start_controller(&namespace)?;
    let issuers: Api<Issuer> = Api::namespaced(client.clone(), &namespace);
    let certificates: Api<WorkloadCertificate> = Api::namespaced(client.clone(), &namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);

    let mut issuer = local_issuer("ca", "ca-key");
    issuer.spec.crl = Some(CrlSettings {
        validity: Some("10m".into()),
        refresh_interval: Some("1m".into()),
        distribution_point_url: None,
    });
    apply(&issuers, &issuer).await?;
    let ca_pem = wait_issuer_ready(&issuers, "ca")
        .await?
        .status
        .and_then(|s| s.ca_certificate)
        .context("no CA certificate")?;

    let cases = [
        (
            "short",
            "10m",
            None,
            "spec.duration is 10m",
            "--min-certificate-duration",
        ),
        (
            "late",
            "2h",
            Some("1m"),
            "spec.renewBefore is 1m",
            "--min-renew-before",
        ),
        // A new certificate every minute.
        (
            "busy",
            "1h",
            Some("59m"),
            "is 1m and the platform's minimum is 30m",
            "--min-renewal-interval",
        ),
    ];
    for (name, duration, renew_before, _, _) in cases {
        let mut certificate = workload_certificate(name, "ca", WorkloadKeyAlgorithm::EcdsaP256);
        certificate.spec.duration = Some(duration.into());
        certificate.spec.renew_before = renew_before.map(String::from);
        apply(&certificates, &certificate).await?;
    }
    for (name, _, _, says, flag) in cases {
        let message = wait_refused(&certificates, name, "BelowPlatformMinimum").await?;
        anyhow::ensure!(
            message.contains(says) && message.contains(flag),
            "{name}: {message}"
        );
        wait_event(&client, &namespace, name, "BelowPlatformMinimum").await?;
        anyhow::ensure!(
            secrets.get_opt(&format!("{name}-tls")).await?.is_none(),
            "{name}: a certificate was issued under the floor"
        );
        println!("minimums: {name} refused: {message}");
    }
    // At the floors it is issued.
    let mut exact = workload_certificate("exact", "ca", WorkloadKeyAlgorithm::EcdsaP256);
    exact.spec.duration = Some("1h".into());
    exact.spec.renew_before = Some("30m".into());
    apply(&certificates, &exact).await?;
    crate::issuance::wait_certificate_ready(&certificates, "exact", 1).await?;

    // The CRL is still published; its refresh is raised, and with it its validity.
    let condition = wait_for(
        "CRLPublished says the refresh was raised",
        SETTLE,
        || async {
            let issuer = issuers.get("ca").await?;
            Ok(issuer
                .status
                .iter()
                .flat_map(|s| s.conditions.iter())
                .find(|c| {
                    c.type_ == "CrlPublished"
                        && c.status == "True"
                        && c.message.contains("re-signed every 15m")
                })
                .map(|c| c.message.clone()))
        },
    )
    .await?;
    anyhow::ensure!(
        condition.contains("crl.refreshInterval is 1m")
            && condition.contains("valid for 45m instead of crl.validity 10m"),
        "{condition}"
    );
    wait_event(&client, &namespace, "ca", "BelowPlatformMinimum").await?;
    let der = config_maps
        .get("ca-crl")
        .await?
        .binary_data
        .and_then(|d| d.get("ca.crl").map(|b| b.0.clone()))
        .context("no CRL in the ConfigMap")?;
    let pem = iamra::pki::pem::encode_pem("X509 CRL", &der);
    openssl::verify_crl(&ca_pem, &pem)?;
    let (_, crl) = x509_parser::parse_x509_crl(&der).map_err(|e| anyhow::anyhow!("CRL: {e}"))?;
    let next_update = crl.next_update().context("no nextUpdate")?;
    let validity = next_update.timestamp() - crl.last_update().timestamp();
    anyhow::ensure!(validity == 45 * 60, "CRL valid for {validity}s");
    Ok(())
}

/// Counts the writes to each object of `api` during `window`, from a watch started at the
/// list's resourceVersion (a poll would miss two writes in one interval).
async fn writes_during<K>(api: &Api<K>, window: Duration) -> anyhow::Result<BTreeMap<String, u32>>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let list: ObjectList<K> = api.list(&ListParams::default()).await?;
    let mut counts: BTreeMap<String, u32> = list.items.iter().map(|o| (o.name_any(), 0)).collect();
    let version = list
        .metadata
        .resource_version
        .context("the list has no resourceVersion")?;
    let params = WatchParams::default().timeout(window.as_secs() as u32 + 5);
    let mut stream = api.watch(&params, &version).await?.boxed();
    let deadline = tokio::time::Instant::now() + window;
    loop {
        let next = tokio::time::timeout_at(deadline, stream.try_next()).await;
        let Ok(event) = next else { break };
        match event? {
            Some(WatchEvent::Modified(object)) => {
                *counts.entry(object.name_any()).or_default() += 1;
            }
            Some(WatchEvent::Error(error)) => anyhow::bail!("watch: {error:?}"),
            Some(_) => {}
            None => anyhow::bail!("the watch ended before the window did"),
        }
    }
    Ok(counts)
}

async fn a_permanently_failing_object_writes_its_status_at_most_twice_a_minute(
    cluster: TestCluster,
) -> anyhow::Result<()> {
    let client = cluster.client().await?;
    let namespace = cluster.namespace(&client, "permanent").await?;
    let _controller = cluster.start_controller(&namespace)?;
    let issuers: Api<Issuer> = Api::namespaced(client.clone(), &namespace);
    let certificates: Api<WorkloadCertificate> = Api::namespaced(client.clone(), &namespace);
    let revocations: Api<Revocation> = Api::namespaced(client.clone(), &namespace);
    let bindings: Api<RolesAnywhereBinding> = Api::namespaced(client.clone(), &namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);

    // Issuers: one that works, one whose CA Secret is missing and may not be created.
    apply(&issuers, &local_issuer("ca", "ca-key")).await?;
    let mut absent = local_issuer("absent", "absent-key");
    if let Some(local) = absent.spec.local.as_mut() {
        local.bootstrap = Some(false);
    }
    apply(&issuers, &absent).await?;
    wait_issuer_ready(&issuers, "ca").await?;

    // WorkloadCertificates: under a floor, with no Issuer, with a Secret that is not theirs.
    let mut short = workload_certificate("short", "ca", WorkloadKeyAlgorithm::EcdsaP256);
    short.spec.duration = Some("10m".into());
    apply(&certificates, &short).await?;
    apply(
        &certificates,
        &workload_certificate("orphan", "missing", WorkloadKeyAlgorithm::EcdsaP256),
    )
    .await?;
    let foreign: Secret = serde_json::from_value(json!({
        "metadata": {"name": "squatter-tls"},
        "stringData": {"note": "not a certificate"},
    }))?;
    secrets.create(&PostParams::default(), &foreign).await?;
    apply(
        &certificates,
        &workload_certificate("squatter", "ca", WorkloadKeyAlgorithm::EcdsaP256),
    )
    .await?;

    // A Revocation of a serial the Issuer never issued; a binding of a missing certificate.
    let revocation = Revocation::new(
        "unknown",
        RevocationSpec {
            issuer_ref: IssuerReference::issuer("ca"),
            serial_number: Some("7f3a9c0e5b2d4f61a8e07c39d5b1f2a4".into()),
            certificate_ref: None,
            reason: Some(RevocationReason::KeyCompromise),
            revocation_time: None,
            reissue: None,
        },
    );
    revocations
        .create(&PostParams::default(), &revocation)
        .await?;
    bindings
        .create(
            &PostParams::default(),
            &crate::webhook::binding("nocert", Some("app"), None, "missing"),
        )
        .await?;

    let failing = [
        ("Issuer", "absent", "SecretNotFound"),
        ("WorkloadCertificate", "short", "BelowPlatformMinimum"),
        ("WorkloadCertificate", "orphan", "IssuerNotFound"),
        ("WorkloadCertificate", "squatter", "SecretInUse"),
        ("Revocation", "unknown", "UnknownSerial"),
        ("RolesAnywhereBinding", "nocert", "CertificateNotFound"),
    ];
    for (kind, name, reason) in failing {
        wait_for(
            &format!("{kind} {name} reports {reason}"),
            SETTLE,
            || async {
                Ok((!events_for(&client, &namespace, name, reason)
                    .await?
                    .is_empty())
                .then_some(()))
            },
        )
        .await?;
    }

    let window = Duration::from_secs(60);
    let (issuer_writes, certificate_writes, revocation_writes, binding_writes) = tokio::try_join!(
        writes_during(&issuers, window),
        writes_during(&certificates, window),
        writes_during(&revocations, window),
        writes_during(&bindings, window),
    )?;
    let writes = |kind: &str, name: &str| -> u32 {
        let counts = match kind {
            "Issuer" => &issuer_writes,
            "WorkloadCertificate" => &certificate_writes,
            "Revocation" => &revocation_writes,
            _ => &binding_writes,
        };
        counts.get(name).copied().unwrap_or(0)
    };
    let mut report = Vec::new();
    for (kind, name, reason) in failing {
        let count = writes(kind, name);
        report.push(format!("{kind} {name} ({reason}): {count}"));
    }
    println!(
        "minimums: writes in {window:?} of permanently failing objects: {}",
        report.join(", ")
    );
    for (kind, name, reason) in failing {
        let count = writes(kind, name);
        anyhow::ensure!(
            count <= 2,
            "{kind} {name} ({reason}) was written {count} times in {window:?}"
        );
        let events = events_for(&client, &namespace, name, reason).await?;
        anyhow::ensure!(
            events.len() == 1,
            "{kind} {name}: {} {reason} events instead of one series",
            events.len()
        );
    }
    Ok(())
}
