//! Issuer and WorkloadCertificate reconciled by a real `iamra controller` process: bootstrap,
//! issuance (ECDSA and RSA), renewal, re-issue after deletion, tampering and spec changes,
//! problems reported in status and events, and a restart that neither loses nor duplicates.

use std::time::{Duration, Instant};

use anyhow::Context;
use iamra::api::*;
use iamra::controller::{REVISION_ANNOTATION, SERIAL_ANNOTATION};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use libtest_mimic::Trial;
use serde_json::json;

use crate::cluster::{TestCluster, trial, wait_for};
use crate::openssl;

/// Upper bound for anything the controller should do "at once"; not a performance assertion.
pub const SETTLE: Duration = Duration::from_secs(60);

pub fn trials(cluster: &TestCluster) -> Vec<Trial> {
    vec![
        trial(
            "issuance::local_issuer_bootstraps_a_ca",
            cluster,
            local_issuer_bootstraps_a_ca,
        ),
        trial(
            "issuance::issues_ecdsa_and_rsa_certificates",
            cluster,
            issues_ecdsa_and_rsa_certificates,
        ),
        trial(
            "issuance::renews_before_expiry_with_a_new_key",
            cluster,
            renews_before_expiry_with_a_new_key,
        ),
        trial(
            "issuance::reissues_after_secret_deletion",
            cluster,
            reissues_after_secret_deletion,
        ),
        trial(
            "issuance::reissues_after_tampering",
            cluster,
            reissues_after_tampering,
        ),
        trial(
            "issuance::reissues_on_spec_change",
            cluster,
            reissues_on_spec_change,
        ),
        trial(
            "issuance::reports_missing_issuer_then_recovers",
            cluster,
            reports_missing_issuer_then_recovers,
        ),
        trial(
            "issuance::reports_missing_ca_secret_without_bootstrap",
            cluster,
            reports_missing_ca_secret_without_bootstrap,
        ),
        trial(
            "issuance::refuses_certificate_outliving_its_ca",
            cluster,
            refuses_certificate_outliving_its_ca,
        ),
        trial(
            "issuance::leaves_foreign_secret_untouched",
            cluster,
            leaves_foreign_secret_untouched,
        ),
        trial(
            "issuance::restart_adopts_instead_of_reissuing",
            cluster,
            restart_adopts_instead_of_reissuing,
        ),
        trial(
            "issuance::killed_controller_neither_loses_nor_duplicates",
            cluster,
            killed_controller_neither_loses_nor_duplicates,
        ),
    ]
}

pub async fn apply<K>(api: &Api<K>, object: &K) -> anyhow::Result<K>
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = object.meta().name.clone().context("object has no name")?;
    Ok(api
        .patch(
            &name,
            &PatchParams::apply("iamra-tests").force(),
            &Patch::Apply(object),
        )
        .await?)
}

pub fn local_issuer(name: &str, secret_name: &str) -> Issuer {
    Issuer::new(name, IssuerSpec::local(secret_name))
}

pub fn workload_certificate(
    name: &str,
    issuer: &str,
    key_algorithm: WorkloadKeyAlgorithm,
) -> WorkloadCertificate {
    WorkloadCertificate::new(
        name,
        WorkloadCertificateSpec {
            issuer_ref: IssuerReference::issuer(issuer),
            service_account_name: None,
            subject: Some(Subject {
                common_name: Some(name.into()),
                organization: Some("iamra tests".into()),
                ..Default::default()
            }),
            uris: vec![format!("spiffe://cluster.local/ns/test/sa/{name}")],
            dns_names: vec![format!("{name}.test.svc")],
            key_algorithm: Some(key_algorithm),
            duration: Some("24h".into()),
            renew_before: None,
            secret_name: format!("{name}-tls"),
            private_key_rotation_policy: None,
            secret_template: None,
        },
    )
}

fn condition_of<'a>(
    conditions: &'a [k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

pub async fn wait_issuer_ready(api: &Api<Issuer>, name: &str) -> anyhow::Result<Issuer> {
    wait_for(&format!("Issuer {name} Ready"), SETTLE, || async {
        let issuer = api.get(name).await?;
        let ready = issuer
            .status
            .as_ref()
            .and_then(|s| condition_of(&s.conditions, CONDITION_READY))
            .is_some_and(|c| c.status == "True");
        Ok(ready.then_some(issuer))
    })
    .await
}

/// Waits until the certificate is Ready at `revision` or later.
pub async fn wait_certificate_ready(
    api: &Api<WorkloadCertificate>,
    name: &str,
    revision: i64,
) -> anyhow::Result<WorkloadCertificate> {
    wait_for(
        &format!("WorkloadCertificate {name} Ready at revision {revision}"),
        SETTLE,
        || async {
            let certificate = api.get(name).await?;
            let Some(status) = &certificate.status else {
                return Ok(None);
            };
            let ready = condition_of(&status.conditions, CONDITION_READY)
                .is_some_and(|c| c.status == "True");
            Ok((ready && status.revision.unwrap_or(0) >= revision).then_some(certificate))
        },
    )
    .await
}

/// The condition `type_` once it has `reason`.
async fn wait_condition_reason(
    api: &Api<WorkloadCertificate>,
    name: &str,
    reason: &str,
) -> anyhow::Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    wait_for(
        &format!("WorkloadCertificate {name} Ready reason {reason}"),
        SETTLE,
        || async {
            let certificate = api.get(name).await?;
            Ok(certificate
                .status
                .as_ref()
                .and_then(|s| condition_of(&s.conditions, CONDITION_READY))
                .filter(|c| c.reason == reason)
                .cloned())
        },
    )
    .await
}

pub fn secret_text(secret: &Secret, key: &str) -> anyhow::Result<String> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .with_context(|| format!("Secret has no {key}"))?;
    Ok(String::from_utf8(bytes.0.clone())?)
}

/// Checks the Secret of a Ready certificate with openssl; returns (tls.crt, tls.key).
pub async fn check_issued(
    secrets: &Api<Secret>,
    certificate: &WorkloadCertificate,
    ca_pem: &str,
) -> anyhow::Result<(String, String)> {
    let secret = secrets.get(&certificate.spec.secret_name).await?;
    anyhow::ensure!(
        secret.type_.as_deref() == Some("kubernetes.io/tls"),
        "Secret type is {:?}",
        secret.type_
    );
    let chain = secret_text(&secret, "tls.crt")?;
    let key = secret_text(&secret, "tls.key")?;
    anyhow::ensure!(
        secret_text(&secret, "ca.crt")? == ca_pem,
        "ca.crt is not the Issuer's CA certificate"
    );
    openssl::verify_client_certificate(ca_pem, &chain)?;
    anyhow::ensure!(
        openssl::key_matches_certificate(&key, &chain)?,
        "tls.key does not match tls.crt"
    );
    let serial = openssl::serial(&chain)?;
    let status = certificate.status.as_ref().context("no status")?;
    anyhow::ensure!(
        status.serial_number.as_deref() == Some(serial.as_str()),
        "status serial {:?} is not the Secret's {serial}",
        status.serial_number
    );
    anyhow::ensure!(
        serial.len() == 2 * iamra::pki::SERIAL_NUMBER_BYTES,
        "serial {serial} is not {} octets",
        iamra::pki::SERIAL_NUMBER_BYTES
    );
    let owner = secret
        .owner_references()
        .first()
        .context("Secret has no owner reference")?;
    anyhow::ensure!(
        owner.uid == certificate.uid().unwrap_or_default() && owner.controller == Some(true),
        "Secret is not owned by the certificate"
    );
    let text = openssl::certificate_text(&chain)?;
    for expected in [
        "X509v3 Key Usage: critical",
        "Digital Signature",
        "TLS Web Client Authentication",
        "CA:FALSE",
        "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier",
        "URI:spiffe://cluster.local/ns/test/sa/",
        "Signature Algorithm: ",
    ] {
        anyhow::ensure!(
            text.contains(expected),
            "certificate lacks {expected:?}:\n{text}"
        );
    }
    anyhow::ensure!(text.contains("Version: 3"), "not an X.509 v3 certificate");
    Ok((chain, key))
}

/// Waits until an event about `name` with `reason` is recorded; events are written after status.
pub async fn wait_event(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    reason: &str,
) -> anyhow::Result<Vec<Event>> {
    wait_for(&format!("{reason} event for {name}"), SETTLE, || async {
        let events = events_for(client, namespace, name, reason).await?;
        Ok((!events.is_empty()).then_some(events))
    })
    .await
}

/// Events recorded about the object `name` with `reason`.
pub async fn events_for(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    reason: &str,
) -> anyhow::Result<Vec<Event>> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    Ok(events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.reason.as_deref() == Some(reason)
        })
        .collect())
}

struct Setup {
    client: kube::Client,
    namespace: String,
    issuers: Api<Issuer>,
    certificates: Api<WorkloadCertificate>,
    secrets: Api<Secret>,
}

async fn setup(cluster: &TestCluster, prefix: &str) -> anyhow::Result<Setup> {
    let client = cluster.client().await?;
    let namespace = cluster.namespace(&client, prefix).await?;
    Ok(Setup {
        issuers: Api::namespaced(client.clone(), &namespace),
        certificates: Api::namespaced(client.clone(), &namespace),
        secrets: Api::namespaced(client.clone(), &namespace),
        client,
        namespace,
    })
}

/// Written into the certificates of the Issuers these tests create.
const CRL_DISTRIBUTION_POINT: &str = "http://iamra.test/crl/ca.crl";

/// A Ready local Issuer named `ca`; returns its CA certificate PEM.
async fn ready_local_issuer(s: &Setup) -> anyhow::Result<String> {
    let mut issuer = local_issuer("ca", "ca-key");
    issuer.spec.crl = Some(CrlSettings {
        distribution_point_url: Some(CRL_DISTRIBUTION_POINT.into()),
        ..Default::default()
    });
    apply(&s.issuers, &issuer).await?;
    let issuer = wait_issuer_ready(&s.issuers, "ca").await?;
    issuer
        .status
        .and_then(|st| st.ca_certificate)
        .context("Ready Issuer without caCertificate")
}

async fn local_issuer_bootstraps_a_ca(cluster: TestCluster) -> anyhow::Result<()> {
    let s = setup(&cluster, "bootstrap").await?;
    let _controller = cluster.start_controller(&s.namespace)?;
    let ca_pem = ready_local_issuer(&s).await?;
    let issuer = s.issuers.get("ca").await?;
    let status = issuer.status.context("no status")?;
    anyhow::ensure!(status.key_source.as_deref() == Some("Local"));
    let secret = s.secrets.get("ca-key").await?;
    anyhow::ensure!(
        secret_text(&secret, "tls.crt")? == ca_pem,
        "status CA differs from the Secret's"
    );
    anyhow::ensure!(
        openssl::key_matches_certificate(&secret_text(&secret, "tls.key")?, &ca_pem)?,
        "CA key does not match"
    );
    openssl::verify_self_signed_ca(&ca_pem)?;
    let text = openssl::certificate_text(&ca_pem)?;
    for expected in [
        "X509v3 Basic Constraints: critical",
        "CA:TRUE",
        "X509v3 Key Usage: critical",
        "Certificate Sign, CRL Sign",
        "X509v3 Subject Key Identifier",
        &format!("CN = iamra {}/ca", s.namespace),
    ] {
        anyhow::ensure!(
            text.contains(expected),
            "CA certificate lacks {expected:?}:\n{text}"
        );
    }
    let fingerprint = status.ca_fingerprint_sha256.context("no fingerprint")?;
    anyhow::ensure!(
        fingerprint.len() == 95,
        "fingerprint {fingerprint} is not colon-separated SHA-256"
    );
    wait_event(&s.client, &s.namespace, "ca", "CACreated").await?;
    Ok(())
}

async fn issues_ecdsa_and_rsa_certificates(cluster: TestCluster) -> anyhow::Result<()> {
    let s = setup(&cluster, "issue").await?;
    let _controller = cluster.start_controller(&s.namespace)?;
    let ca_pem = ready_local_issuer(&s).await?;
    for (name, algorithm, expected_key) in [
        (
            "ecdsa",
            WorkloadKeyAlgorithm::EcdsaP256,
            "NIST CURVE: P-256",
        ),
        (
            "rsa",
            WorkloadKeyAlgorithm::Rsa2048,
            "Public-Key: (2048 bit)",
        ),
        (
            "rsa3072",
            WorkloadKeyAlgorithm::Rsa3072,
            "Public-Key: (3072 bit)",
        ),
    ] {
        let applied = Instant::now();
        apply(
            &s.certificates,
            &workload_certificate(name, "ca", algorithm),
        )
        .await?;
        let certificate = wait_certificate_ready(&s.certificates, name, 1).await?;
        eprintln!(
            "issuance::{name}: apply to Ready with Secret took {:?}",
            applied.elapsed()
        );
        let (chain, _) = check_issued(&s.secrets, &certificate, &ca_pem).await?;
        let text = openssl::certificate_text(&chain)?;
        anyhow::ensure!(
            text.contains(expected_key),
            "{name}: expected {expected_key}:\n{text}"
        );
        anyhow::ensure!(
            text.contains(&format!("DNS:{name}.test.svc")),
            "{name}: DNS SAN missing"
        );
        anyhow::ensure!(
            text.contains("sha256WithRSAEncryption") || text.contains("ecdsa-with-SHA256"),
            "{name}: not signed with SHA-256"
        );
        let status = certificate.status.context("no status")?;
        anyhow::ensure!(
            status.revision == Some(1),
            "{name}: revision {:?}",
            status.revision
        );
        let (not_before, not_after, renewal) = (
            status.not_before.context("notBefore")?.0,
            status.not_after.context("notAfter")?.0,
            status.renewal_time.context("renewalTime")?.0,
        );
        let lifetime = (not_after - not_before).get_seconds();
        anyhow::ensure!(
            (24 * 3600..=24 * 3600 + 120).contains(&lifetime),
            "{name}: lifetime {lifetime}s"
        );
        // Default renewBefore is a third of the 24h lifetime.
        anyhow::ensure!(
            (not_after - renewal).get_seconds() == 8 * 3600,
            "{name}: renewal not at 2/3 of the lifetime"
        );
        wait_event(&s.client, &s.namespace, name, "Issued").await?;
    }
    Ok(())
}

async fn renews_before_expiry_with_a_new_key(cluster: TestCluster) -> anyhow::Result<()> {
    let s = setup(&cluster, "renew").await?;
    let _controller = cluster.start_controller_for_short_lifetimes(&s.namespace)?;
    let ca_pem = ready_local_issuer(&s).await?;
    let mut short = workload_certificate("short", "ca", WorkloadKeyAlgorithm::EcdsaP256);
    short.spec.duration = Some("1m".into());
    short.spec.renew_before = Some("50s".into());
    apply(&s.certificates, &short).await?;
    let first = wait_certificate_ready(&s.certificates, "short", 1).await?;
    let (_, first_key) = check_issued(&s.secrets, &first, &ca_pem).await?;
    let renewed = wait_certificate_ready(&s.certificates, "short", 2).await?;
    let (_, second_key) = check_issued(&s.secrets, &renewed, &ca_pem).await?;
    let (first_status, renewed_status) = (
        first.status.context("status")?,
        renewed.status.context("status")?,
    );
    anyhow::ensure!(
        first_status.serial_number != renewed_status.serial_number,
        "renewal kept the serial"
    );
    anyhow::ensure!(
        first_key != second_key,
        "rotation policy Always kept the key"
    );
    anyhow::ensure!(
        renewed_status.not_after > first_status.not_after,
        "renewal did not extend validity"
    );
    Ok(())
}

async fn reissues_after_secret_deletion(cluster: TestCluster) -> anyhow::Result<()> {
    let s = setup(&cluster, "deleted").await?;
    let _controller = cluster.start_controller(&s.namespace)?;
    let ca_pem = ready_local_issuer(&s).await?;
    apply(
        &s.certificates,
        &workload_certificate("app", "ca", WorkloadKeyAlgorithm::EcdsaP256),
    )
    .await?;
    let first = wait_certificate_ready(&s.certificates, "app", 1).await?;
    s.secrets
        .delete("app-tls", &DeleteParams::default())
        .await?;
    let second = wait_certificate_ready(&s.certificates, "app", 2).await?;
    check_issued(&s.secrets, &second, &ca_pem).await?;
    anyhow::ensure!(
        first.status.and_then(|st| st.serial_number)
            != second.status.and_then(|st| st.serial_number)
    );
    let events = wait_for(
        "an Issued event naming the deleted Secret",
        SETTLE,
        || async {
            let events = events_for(&s.client, &s.namespace, "app", "Issued").await?;
            Ok(events
                .iter()
                .any(|e| {
                    e.note
                        .as_deref()
                        .unwrap_or_default()
                        .contains("the certificate Secret does not exist")
                })
                .then_some(events))
        },
    )
    .await?;
    anyhow::ensure!(
        events.iter().any(|e| e
            .note
            .as_deref()
            .unwrap_or_default()
            .contains("the certificate Secret does not exist")),
        "no Issued event names the deleted Secret: {:?}",
        events.iter().map(|e| e.note.clone()).collect::<Vec<_>>()
    );
    Ok(())
}

async fn reissues_after_tampering(cluster: TestCluster) -> anyhow::Result<()> {
    let s = setup(&cluster, "tamper").await?;
    let _controller = cluster.start_controller(&s.namespace)?;
    let ca_pem = ready_local_issuer(&s).await?;
    apply(
        &s.certificates,
        &workload_certificate("app", "ca", WorkloadKeyAlgorithm::EcdsaP256),
    )
    .await?;
    apply(
        &s.certificates,
        &workload_certificate("other", "ca", WorkloadKeyAlgorithm::EcdsaP256),
    )
    .await?;
    wait_certificate_ready(&s.certificates, "app", 1).await?;
    let other = wait_certificate_ready(&s.certificates, "other", 1).await?;
    let other_secret = s.secrets.get(&other.spec.secret_name).await?;

    // Another valid certificate and key of the same CA swapped in: not the one issued last.
    let swap = json!({"data": {
        "tls.crt": ByteString(secret_text(&other_secret, "tls.crt")?.into_bytes()),
        "tls.key": ByteString(secret_text(&other_secret, "tls.key")?.into_bytes()),
    }});
    s.secrets
        .patch("app-tls", &PatchParams::default(), &Patch::Merge(&swap))
        .await?;
    let second = wait_certificate_ready(&s.certificates, "app", 2).await?;
    check_issued(&s.secrets, &second, &ca_pem).await?;

    // A key that does not belong to the certificate.
    let wrong_key = json!({"data": {"tls.key": ByteString(secret_text(&other_secret, "tls.key")?.into_bytes())}});
    s.secrets
        .patch(
            "app-tls",
            &PatchParams::default(),
            &Patch::Merge(&wrong_key),
        )
        .await?;
    let third = wait_certificate_ready(&s.certificates, "app", 3).await?;
    check_issued(&s.secrets, &third, &ca_pem).await?;

    // Garbage in tls.crt.
    let garbage = json!({"data": {"tls.crt": ByteString(b"not a certificate".to_vec())}});
    s.secrets
        .patch("app-tls", &PatchParams::default(), &Patch::Merge(&garbage))
        .await?;
    let fourth = wait_certificate_ready(&s.certificates, "app", 4).await?;
    check_issued(&s.secrets, &fourth, &ca_pem).await?;
    Ok(())
}

async fn reissues_on_spec_change(cluster: TestCluster) -> anyhow::Result<()> {
    let s = setup(&cluster, "specchange").await?;
    let _controller = cluster.start_controller(&s.namespace)?;
    let ca_pem = ready_local_issuer(&s).await?;
    let mut certificate = workload_certificate("app", "ca", WorkloadKeyAlgorithm::EcdsaP256);
    apply(&s.certificates, &certificate).await?;
    wait_certificate_ready(&s.certificates, "app", 1).await?;
    if let Some(subject) = certificate.spec.subject.as_mut() {
        subject.common_name = Some("renamed".into());
    }
    certificate.spec.key_algorithm = Some(WorkloadKeyAlgorithm::Rsa2048);
    apply(&s.certificates, &certificate).await?;
    let second = wait_certificate_ready(&s.certificates, "app", 2).await?;
    let (chain, _) = check_issued(&s.secrets, &second, &ca_pem).await?;
    let text = openssl::certificate_text(&chain)?;
    anyhow::ensure!(
        text.contains("CN = renamed") && text.contains("Public-Key: (2048 bit)"),
        "spec change not applied:\n{text}"
    );
    Ok(())
}

async fn reports_missing_issuer_then_recovers(cluster: TestCluster) -> anyhow::Result<()> {
    let s = setup(&cluster, "noissuer").await?;
    let _controller = cluster.start_controller(&s.namespace)?;
    apply(
        &s.certificates,
        &workload_certificate("app", "ca", WorkloadKeyAlgorithm::EcdsaP256),
    )
    .await?;
    let condition = wait_condition_reason(&s.certificates, "app", "IssuerNotFound").await?;
    anyhow::ensure!(
        condition.status == "False" && condition.message.contains("Issuer ca does not exist"),
        "{condition:?}"
    );
    anyhow::ensure!(
        s.secrets.get_opt("app-tls").await?.is_none(),
        "a Secret was written without an Issuer"
    );
    wait_event(&s.client, &s.namespace, "app", "IssuerNotFound").await?;
    // Creating the Issuer is enough: its readiness re-triggers the waiting certificate.
    let ca_pem = ready_local_issuer(&s).await?;
    let certificate = wait_certificate_ready(&s.certificates, "app", 1).await?;
    check_issued(&s.secrets, &certificate, &ca_pem).await?;
    Ok(())
}

async fn reports_missing_ca_secret_without_bootstrap(cluster: TestCluster) -> anyhow::Result<()> {
    let s = setup(&cluster, "nobootstrap").await?;
    let _controller = cluster.start_controller(&s.namespace)?;
    let mut issuer = local_issuer("ca", "absent");
    if let Some(local) = issuer.spec.local.as_mut() {
        local.bootstrap = Some(false);
    }
    apply(&s.issuers, &issuer).await?;
    let condition = wait_for("Issuer reports SecretNotFound", SETTLE, || async {
        let issuer = s.issuers.get("ca").await?;
        Ok(issuer
            .status
            .and_then(|st| condition_of(&st.conditions, CONDITION_READY).cloned())
            .filter(|c| c.reason == "SecretNotFound"))
    })
    .await?;
    anyhow::ensure!(
        condition.status == "False" && condition.message.contains("bootstrap is false"),
        "{condition:?}"
    );
    anyhow::ensure!(
        s.secrets.get_opt("absent").await?.is_none(),
        "the operator created a CA despite bootstrap: false"
    );
    wait_event(&s.client, &s.namespace, "ca", "SecretNotFound").await?;
    Ok(())
}

async fn leaves_foreign_secret_untouched(cluster: TestCluster) -> anyhow::Result<()> {
    let s = setup(&cluster, "foreign").await?;
    let _controller = cluster.start_controller(&s.namespace)?;
    ready_local_issuer(&s).await?;
    let foreign: Secret = serde_json::from_value(json!({
        "metadata": {"name": "app-tls"},
        "stringData": {"password": "hunter2"},
    }))?;
    s.secrets.create(&Default::default(), &foreign).await?;
    apply(
        &s.certificates,
        &workload_certificate("app", "ca", WorkloadKeyAlgorithm::EcdsaP256),
    )
    .await?;
    let condition = wait_condition_reason(&s.certificates, "app", "SecretInUse").await?;
    anyhow::ensure!(
        condition.message.contains("left untouched"),
        "{condition:?}"
    );
    let secret = s.secrets.get("app-tls").await?;
    anyhow::ensure!(
        secret_text(&secret, "password")? == "hunter2"
            && secret.data.as_ref().is_some_and(|d| d.len() == 1),
        "the foreign Secret was changed"
    );
    Ok(())
}

async fn restart_adopts_instead_of_reissuing(cluster: TestCluster) -> anyhow::Result<()> {
    let s = setup(&cluster, "adopt").await?;
    let controller = cluster.start_controller(&s.namespace)?;
    let ca_pem = ready_local_issuer(&s).await?;
    apply(
        &s.certificates,
        &workload_certificate("app", "ca", WorkloadKeyAlgorithm::EcdsaP256),
    )
    .await?;
    let issued = wait_certificate_ready(&s.certificates, "app", 1).await?;
    controller.kill();
    // As if the controller died between writing the Secret and writing the status.
    let lost = json!({"status": {"serialNumber": null, "revision": null, "notAfter": null}});
    s.certificates
        .patch_status("app", &PatchParams::default(), &Patch::Merge(&lost))
        .await?;
    let _controller = cluster.start_controller(&s.namespace)?;
    let adopted = wait_for("status restored from the Secret", SETTLE, || async {
        let certificate = s.certificates.get("app").await?;
        Ok(certificate
            .status
            .as_ref()
            .and_then(|st| st.serial_number.clone())
            .map(|_| certificate))
    })
    .await?;
    let (issued_status, adopted_status) = (
        issued.status.context("status")?,
        adopted.status.clone().context("status")?,
    );
    anyhow::ensure!(
        adopted_status.serial_number == issued_status.serial_number,
        "re-issued instead of adopting"
    );
    anyhow::ensure!(
        adopted_status.revision == Some(1),
        "revision {:?}",
        adopted_status.revision
    );
    check_issued(&s.secrets, &adopted, &ca_pem).await?;
    Ok(())
}

async fn killed_controller_neither_loses_nor_duplicates(
    cluster: TestCluster,
) -> anyhow::Result<()> {
    const COUNT: usize = 20;
    let s = setup(&cluster, "crash").await?;
    let controller = cluster.start_controller(&s.namespace)?;
    let ca_pem = ready_local_issuer(&s).await?;
    controller.kill();
    for index in 0..COUNT {
        apply(
            &s.certificates,
            &workload_certificate(
                &format!("app-{index}"),
                "ca",
                WorkloadKeyAlgorithm::EcdsaP256,
            ),
        )
        .await?;
    }
    // Kill the controller mid-burst, a few times, then let one finish.
    for delay_ms in [400, 700, 1000] {
        let controller = cluster.start_controller(&s.namespace)?;
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        controller.kill();
    }
    let _controller = cluster.start_controller(&s.namespace)?;
    for index in 0..COUNT {
        let name = format!("app-{index}");
        let certificate = wait_certificate_ready(&s.certificates, &name, 1).await?;
        check_issued(&s.secrets, &certificate, &ca_pem).await?;
        let status = certificate.status.context("status")?;
        anyhow::ensure!(
            status.revision == Some(1),
            "{name} was issued {:?} times",
            status.revision
        );
        let secret = s.secrets.get(&certificate.spec.secret_name).await?;
        let annotations = secret.annotations();
        anyhow::ensure!(
            annotations.get(REVISION_ANNOTATION).map(String::as_str) == Some("1"),
            "{name}: Secret revision {:?}",
            annotations.get(REVISION_ANNOTATION)
        );
        anyhow::ensure!(
            annotations.get(SERIAL_ANNOTATION) == status.serial_number.as_ref(),
            "{name}: Secret and status disagree"
        );
    }
    Ok(())
}

async fn refuses_certificate_outliving_its_ca(cluster: TestCluster) -> anyhow::Result<()> {
    let s = setup(&cluster, "outlive").await?;
    let _controller = cluster.start_controller(&s.namespace)?;
    let mut issuer = local_issuer("ca", "ca-key");
    issuer.spec.duration = Some("2h".into());
    apply(&s.issuers, &issuer).await?;
    wait_issuer_ready(&s.issuers, "ca").await?;
    let mut certificate = workload_certificate("app", "ca", WorkloadKeyAlgorithm::EcdsaP256);
    certificate.spec.duration = Some("3h".into());
    apply(&s.certificates, &certificate).await?;
    let condition = wait_condition_reason(&s.certificates, "app", "CertificateOutlivesCA").await?;
    anyhow::ensure!(
        condition.status == "False" && condition.message.contains("would expire after its CA"),
        "{condition:?}"
    );
    anyhow::ensure!(
        s.secrets.get_opt("app-tls").await?.is_none(),
        "a Secret was written"
    );
    wait_event(&s.client, &s.namespace, "app", "CertificateOutlivesCA").await?;
    Ok(())
}
