//! Revocations end to end: a real controller, the real API server and the Roles Anywhere
//! emulator. A revoked certificate must be refused by CreateSession within seconds, the CRL must
//! satisfy openssl, CRL numbers must only grow, bursts must coalesce, an unreachable Roles
//! Anywhere must be retried until it takes the CRL, and expired entries must leave.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use iamra::api::*;
use iamra::rolesanywhere::emulator::{self, EmulatorConfig, RunningEmulator, SeededArns};
use iamra::rolesanywhere::errors::CreateSessionError;
use iamra::rolesanywhere::session::{SessionRequest, SigningIdentity, create_session};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, PostParams};
use libtest_mimic::Trial;

use crate::cluster::{TestCluster, trial, wait_for};
use crate::issuance::{
    SETTLE, apply, local_issuer, secret_text, wait_certificate_ready, wait_event,
    wait_issuer_ready, workload_certificate,
};
use crate::openssl;

pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/workload";
const REGION: &str = "eu-west-1";

pub fn trials(cluster: &TestCluster) -> Vec<Trial> {
    vec![
        trial(
            "revocation::by_reference_is_refused_by_roles_anywhere",
            cluster,
            by_reference_is_refused_by_roles_anywhere,
        ),
        trial(
            "revocation::by_serial_and_unknown_serials",
            cluster,
            by_serial_and_unknown_serials,
        ),
        trial(
            "revocation::reissue_replaces_the_key",
            cluster,
            reissue_replaces_the_key,
        ),
        trial(
            "revocation::crl_numbers_increase_across_restarts",
            cluster,
            crl_numbers_increase_across_restarts,
        ),
        trial(
            "revocation::burst_is_coalesced_and_complete",
            cluster,
            burst_is_coalesced_and_complete,
        ),
        trial(
            "revocation::unreachable_roles_anywhere_is_retried",
            cluster,
            unreachable_roles_anywhere_is_retried,
        ),
        trial(
            "revocation::lost_crl_id_updates_the_crl_of_the_same_name",
            cluster,
            lost_crl_id_updates_the_crl_of_the_same_name,
        ),
        trial(
            "revocation::kms_signed_crl_above_raw_limit",
            cluster,
            kms_signed_crl_above_raw_limit,
        ),
        trial(
            "revocation::expired_entries_leave_and_release",
            cluster,
            expired_entries_leave_and_release,
        ),
        trial(
            "revocation::a_terminating_namespace_releases_its_revocations",
            cluster,
            a_terminating_namespace_releases_its_revocations,
        ),
    ]
}

pub async fn start_emulator(
    listen: SocketAddr,
    state_file: Option<std::path::PathBuf>,
) -> anyhow::Result<RunningEmulator> {
    Ok(emulator::start(EmulatorConfig {
        listen,
        region: REGION.into(),
        state_file,
        // The controller paces its CRL calls; a throttled call would show it does not.
        enforce_crl_quota: true,
        // The tests ask CreateSession many times a second as their oracle (is this serial
        // refused?); the sidecar's pacing is tested against the quota in tests/sidecar.
        enforce_session_quota: false,
    })
    .await?)
}

pub fn seed(emulator: &RunningEmulator, ca_pem: &str) -> anyhow::Result<SeededArns> {
    Ok(emulator::seed(
        &emulator.shared,
        ca_pem,
        &[ROLE_ARN.to_string()],
    )?)
}

pub struct Scene {
    pub client: kube::Client,
    pub namespace: String,
    pub issuers: Api<Issuer>,
    pub certificates: Api<WorkloadCertificate>,
    pub revocations: Api<Revocation>,
    pub secrets: Api<Secret>,
    pub config_maps: Api<ConfigMap>,
}

pub async fn scene(cluster: &TestCluster, prefix: &str) -> anyhow::Result<Scene> {
    let client = cluster.client().await?;
    let namespace = cluster.namespace(&client, prefix).await?;
    Ok(Scene {
        issuers: Api::namespaced(client.clone(), &namespace),
        certificates: Api::namespaced(client.clone(), &namespace),
        revocations: Api::namespaced(client.clone(), &namespace),
        secrets: Api::namespaced(client.clone(), &namespace),
        config_maps: Api::namespaced(client.clone(), &namespace),
        client,
        namespace,
    })
}

impl Scene {
    /// A local Issuer; its CA becomes the emulator's trust anchor when `emulator` is given, and
    /// the Issuer's CRL goes there. Returns the CA PEM and the seeded ARNs.
    pub async fn issuer(
        &self,
        emulator: Option<&RunningEmulator>,
        crl: Option<CrlSettings>,
    ) -> anyhow::Result<(String, Option<SeededArns>)> {
        let mut issuer = local_issuer("ca", "ca-key");
        issuer.spec.crl = crl;
        apply(&self.issuers, &issuer).await?;
        let ca_pem = wait_issuer_ready(&self.issuers, "ca")
            .await?
            .status
            .and_then(|s| s.ca_certificate)
            .context("no CA")?;
        let Some(emulator) = emulator else {
            return Ok((ca_pem, None));
        };
        let arns = seed(emulator, &ca_pem)?;
        issuer.spec.roles_anywhere = Some(RolesAnywhereCrlTarget {
            trust_anchor_arn: arns.trust_anchor_arn.clone(),
            region: None,
            crl_name: None,
        });
        apply(&self.issuers, &issuer).await?;
        Ok((ca_pem, Some(arns)))
    }

    pub async fn certificate(&self, name: &str) -> anyhow::Result<(String, String, String)> {
        apply(
            &self.certificates,
            &workload_certificate(name, "ca", WorkloadKeyAlgorithm::EcdsaP256),
        )
        .await?;
        let issued = wait_certificate_ready(&self.certificates, name, 1).await?;
        let secret = self.secrets.get(&issued.spec.secret_name).await?;
        let serial = issued
            .status
            .and_then(|s| s.serial_number)
            .context("no serial")?;
        Ok((
            secret_text(&secret, "tls.crt")?,
            secret_text(&secret, "tls.key")?,
            serial,
        ))
    }

    pub async fn revoke(
        &self,
        name: &str,
        target: RevocationTarget<'_>,
        reissue: bool,
    ) -> anyhow::Result<()> {
        let (serial_number, certificate_ref) = match target {
            RevocationTarget::Serial(serial) => (Some(serial.to_string()), None),
            RevocationTarget::Certificate(name) => {
                (None, Some(CertificateReference { name: name.into() }))
            }
        };
        let revocation = Revocation::new(
            name,
            RevocationSpec {
                issuer_ref: IssuerReference::issuer("ca"),
                serial_number,
                certificate_ref,
                reason: Some(RevocationReason::KeyCompromise),
                revocation_time: None,
                reissue: reissue.then_some(true),
            },
        );
        self.revocations
            .create(&PostParams::default(), &revocation)
            .await?;
        Ok(())
    }

    pub async fn wait_revocation_ready(&self, name: &str) -> anyhow::Result<Revocation> {
        wait_for(&format!("Revocation {name} Ready"), SETTLE, || async {
            let revocation = self.revocations.get(name).await?;
            let ready = revocation.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == CONDITION_READY && c.status == "True")
            });
            Ok(ready.then_some(revocation))
        })
        .await
    }

    /// The published CRL (PEM) and its number.
    pub async fn published_crl(&self) -> anyhow::Result<(String, i64)> {
        let config_map = self.config_maps.get("ca-crl").await?;
        let pem = config_map
            .data
            .as_ref()
            .and_then(|d| d.get("ca.crl.pem"))
            .cloned()
            .context("no ca.crl.pem")?;
        let number = config_map
            .annotations()
            .get("iamra.dev/crl-number")
            .and_then(|n| n.parse().ok())
            .context("no CRL number")?;
        Ok((pem, number))
    }
}

use kube::ResourceExt;

pub enum RevocationTarget<'a> {
    Serial(&'a str),
    Certificate(&'a str),
}

pub async fn session(
    emulator: &RunningEmulator,
    arns: &SeededArns,
    certificate: &str,
    key: &str,
) -> Result<(), CreateSessionError> {
    session_as(emulator, arns, ROLE_ARN, certificate, key).await
}

/// CreateSession for `role` with the certificate and key.
pub async fn session_as(
    emulator: &RunningEmulator,
    arns: &SeededArns,
    role: &str,
    certificate: &str,
    key: &str,
) -> Result<(), CreateSessionError> {
    let identity = SigningIdentity::from_pem(certificate, key, None)?;
    let request = SessionRequest::new(
        &arns.trust_anchor_arn,
        &arns.profile_arn,
        role,
        None,
        None,
        None,
        Some(&emulator.endpoint()),
    )?;
    create_session(&identity, &request).await.map(|_| ())
}

async fn by_reference_is_refused_by_roles_anywhere(cluster: TestCluster) -> anyhow::Result<()> {
    let s = scene(&cluster, "revoke").await?;
    let emulator = start_emulator("127.0.0.1:0".parse()?, None).await?;
    let controller =
        cluster.start_controller_for_rolesanywhere(&s.namespace, &emulator.endpoint(), &[])?;
    let (ca_pem, arns) = s.issuer(Some(&emulator), None).await?;
    let arns = arns.context("seeded")?;
    let (certificate, key, serial) = s.certificate("app").await?;
    let (other_certificate, other_key, _) = s.certificate("other").await?;
    session(&emulator, &arns, &certificate, &key)
        .await
        .context("before revocation")?;

    let started = Instant::now();
    s.revoke("app-leak", RevocationTarget::Certificate("app"), false)
        .await?;
    let refused = wait_for("CreateSession refused", SETTLE, || async {
        match session(&emulator, &arns, &certificate, &key).await {
            Err(CreateSessionError::CertificateRevoked { message }) => Ok(Some(message)),
            Ok(()) => Ok(None),
            Err(other) => Err(other.into()),
        }
    })
    .await?;
    eprintln!(
        "revocation::by_reference: apply to refusal took {:?}",
        started.elapsed()
    );
    anyhow::ensure!(refused == "Certificate revoked", "message {refused:?}");
    session(&emulator, &arns, &other_certificate, &other_key)
        .await
        .context("an unrevoked certificate must still work")?;

    let revocation = s.wait_revocation_ready("app-leak").await?;
    let status = revocation.status.context("status")?;
    anyhow::ensure!(
        status.serial_number.as_deref() == Some(serial.as_str()),
        "resolved {:?}, issued {serial}",
        status.serial_number
    );
    anyhow::ensure!(
        status.crl_number.is_some() && status.import_time.is_some(),
        "{status:?}"
    );
    wait_event(&s.client, &s.namespace, "app-leak", "Imported").await?;

    let (crl_pem, number) = s.published_crl().await?;
    openssl::verify_with_crl(&ca_pem, &crl_pem, &certificate, false)?;
    openssl::verify_with_crl(&ca_pem, &crl_pem, &other_certificate, true)?;
    let issuer = s.issuers.get("ca").await?.status.context("status")?;
    anyhow::ensure!(
        issuer.crl_number == Some(number) && issuer.imported_crl_number == Some(number),
        "{issuer:?}"
    );
    anyhow::ensure!(issuer.crl_id.is_some(), "no crlId");

    // The CRL distribution point serves the same CRL.
    let address = controller.http_address.clone().context("no HTTP address")?;
    let served = http_get(&format!("http://{address}/crl/{}/ca.pem", s.namespace)).await?;
    anyhow::ensure!(
        served == crl_pem.as_bytes(),
        "the HTTP CRL differs from the ConfigMap's"
    );
    let config_map = s.config_maps.get("ca-crl").await?;
    let der = config_map
        .binary_data
        .and_then(|d| d.get("ca.crl").cloned())
        .context("no DER CRL")?;
    anyhow::ensure!(
        http_get(&format!("http://{address}/crl/{}/ca.crl", s.namespace)).await? == der.0,
        "DER differs"
    );

    // The import is counted.
    let metrics = crate::metrics::scrape(&controller).await?;
    let series = "iamra_rolesanywhere_requests_total{operation=\"ImportCrl\",outcome=\"success\"}";
    anyhow::ensure!(
        crate::metrics::sample(&metrics, series).is_some_and(|count| count >= 1.0),
        "{series} missing:\n{metrics}"
    );
    Ok(())
}

/// A plain HTTP GET on loopback; the body.
pub async fn http_get(url: &str) -> anyhow::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").context("http only")?;
    let (host, path) = rest.split_once('/').context("no path")?;
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    stream
        .write_all(
            format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no header end")?;
    let head = String::from_utf8_lossy(&response[..split]);
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "GET {url}: {head}");
    Ok(response[split + 4..].to_vec())
}

async fn by_serial_and_unknown_serials(cluster: TestCluster) -> anyhow::Result<()> {
    let s = scene(&cluster, "serial").await?;
    let _controller = cluster.start_controller(&s.namespace)?;
    let (ca_pem, _) = s.issuer(None, None).await?;
    let (certificate, _, serial) = s.certificate("app").await?;
    // Uppercase, and leading zeros: the same serials as far as the CRL is concerned.
    s.revoke(
        "by-serial",
        RevocationTarget::Serial(&serial.to_uppercase()),
        false,
    )
    .await?;
    s.revoke(
        "stranger",
        RevocationTarget::Serial("00000badc0ffee"),
        false,
    )
    .await?;
    let known = s
        .wait_revocation_ready("by-serial")
        .await?
        .status
        .context("status")?;
    anyhow::ensure!(
        known.serial_number.as_deref() == Some(serial.as_str()),
        "normalised to {:?}",
        known.serial_number
    );
    anyhow::ensure!(
        known
            .conditions
            .iter()
            .any(|c| c.type_ == "SerialKnown" && c.status == "True"),
        "{known:?}"
    );
    let unknown = s
        .wait_revocation_ready("stranger")
        .await?
        .status
        .context("status")?;
    anyhow::ensure!(
        unknown.serial_number.as_deref() == Some("0badc0ffee"),
        "normalised to {:?}",
        unknown.serial_number
    );
    let flag = unknown
        .conditions
        .iter()
        .find(|c| c.type_ == "SerialKnown")
        .context("no SerialKnown")?;
    anyhow::ensure!(
        flag.status == "False" && flag.reason == "UnknownSerial",
        "{flag:?}"
    );
    wait_event(&s.client, &s.namespace, "stranger", "UnknownSerial").await?;
    let (crl_pem, _) = wait_for("a CRL with both entries", SETTLE, || async {
        let (pem, number) = s.published_crl().await?;
        Ok((openssl::crl_serials(&pem)?.len() == 2).then_some((pem, number)))
    })
    .await?;
    let serials = openssl::crl_serials(&crl_pem)?;
    anyhow::ensure!(
        serials.contains(&serial) && serials.contains(&"0badc0ffee".to_string()),
        "{serials:?}"
    );
    openssl::verify_with_crl(&ca_pem, &crl_pem, &certificate, false)?;
    Ok(())
}

async fn reissue_replaces_the_key(cluster: TestCluster) -> anyhow::Result<()> {
    let s = scene(&cluster, "reissue").await?;
    let emulator = start_emulator("127.0.0.1:0".parse()?, None).await?;
    let _controller =
        cluster.start_controller_for_rolesanywhere(&s.namespace, &emulator.endpoint(), &[])?;
    let (ca_pem, arns) = s.issuer(Some(&emulator), None).await?;
    let arns = arns.context("seeded")?;
    let (certificate, key, serial) = s.certificate("app").await?;
    s.revoke("rotate", RevocationTarget::Certificate("app"), true)
        .await?;
    let renewed = wait_certificate_ready(&s.certificates, "app", 2).await?;
    let secret = s.secrets.get("app-tls").await?;
    let (new_certificate, new_key) = (
        secret_text(&secret, "tls.crt")?,
        secret_text(&secret, "tls.key")?,
    );
    anyhow::ensure!(
        renewed.status.and_then(|st| st.serial_number) != Some(serial),
        "same serial after reissue"
    );
    anyhow::ensure!(new_key != key, "the revoked key was reused");
    s.wait_revocation_ready("rotate").await?;
    anyhow::ensure!(
        matches!(
            session(&emulator, &arns, &certificate, &key).await,
            Err(CreateSessionError::CertificateRevoked { .. })
        ),
        "old certificate not refused"
    );
    session(&emulator, &arns, &new_certificate, &new_key)
        .await
        .context("the re-issued certificate must work")?;
    let (crl_pem, _) = s.published_crl().await?;
    openssl::verify_with_crl(&ca_pem, &crl_pem, &new_certificate, true)?;
    // Resolved once: the Revocation still names the old serial, not the new certificate.
    let revocation = s
        .revocations
        .get("rotate")
        .await?
        .status
        .context("status")?;
    anyhow::ensure!(
        openssl::crl_serials(&crl_pem)? == vec![revocation.serial_number.context("serial")?],
        "CRL follows the re-issue"
    );
    Ok(())
}

async fn crl_numbers_increase_across_restarts(cluster: TestCluster) -> anyhow::Result<()> {
    let s = scene(&cluster, "numbers").await?;
    let mut numbers = Vec::new();
    let controller = cluster.start_controller(&s.namespace)?;
    s.issuer(None, None).await?;
    for round in 0..3 {
        s.revoke(
            &format!("r{round}"),
            RevocationTarget::Serial(&format!("{:02x}", 0x10 + round)),
            false,
        )
        .await?;
        s.wait_revocation_ready(&format!("r{round}")).await?;
        let number = wait_for("a CRL carrying the new entry", SETTLE, || async {
            let (pem, number) = s.published_crl().await?;
            Ok((openssl::crl_serials(&pem)?.len() == round as usize + 1).then_some(number))
        })
        .await?;
        numbers.push(number);
    }
    controller.kill();
    // A fresh controller must continue from the persisted number, not from 1.
    let _controller = cluster.start_controller(&s.namespace)?;
    s.revoke("after-restart", RevocationTarget::Serial("20"), false)
        .await?;
    s.wait_revocation_ready("after-restart").await?;
    let after = wait_for("a CRL after the restart", SETTLE, || async {
        let (pem, number) = s.published_crl().await?;
        Ok((openssl::crl_serials(&pem)?.len() == 4).then_some(number))
    })
    .await?;
    numbers.push(after);
    anyhow::ensure!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "CRL numbers not strictly increasing: {numbers:?}"
    );
    let (pem, number) = s.published_crl().await?;
    anyhow::ensure!(
        openssl::crl_number(&pem)? == number,
        "CRL number in the CRL differs from the annotation"
    );
    Ok(())
}

async fn burst_is_coalesced_and_complete(cluster: TestCluster) -> anyhow::Result<()> {
    const BURST: usize = 50;
    let s = scene(&cluster, "burst").await?;
    let emulator = start_emulator("127.0.0.1:0".parse()?, None).await?;
    let _controller =
        cluster.start_controller_for_rolesanywhere(&s.namespace, &emulator.endpoint(), &[])?;
    let (ca_pem, _) = s.issuer(Some(&emulator), None).await?;
    wait_for("the first (empty) CRL imported", SETTLE, || async {
        Ok(s.issuers
            .get("ca")
            .await?
            .status
            .and_then(|st| st.imported_crl_number))
    })
    .await?;
    let before = s.published_crl().await?.1;
    for index in 0..BURST {
        s.revoke(
            &format!("burst-{index}"),
            RevocationTarget::Serial(&format!("{:04x}", 0x1000 + index)),
            false,
        )
        .await?;
    }
    for index in 0..BURST {
        s.wait_revocation_ready(&format!("burst-{index}")).await?;
    }
    let (crl_pem, after) = s.published_crl().await?;
    anyhow::ensure!(
        openssl::crl_serials(&crl_pem)?.len() == BURST,
        "not every revocation is in the CRL"
    );
    openssl::verify_crl(&ca_pem, &crl_pem)?;
    let crls = after - before;
    eprintln!("revocation::burst: {BURST} revocations in {crls} CRLs");
    anyhow::ensure!(
        crls >= 1 && crls <= (BURST / 5) as i64,
        "{BURST} revocations took {crls} CRLs: not coalesced"
    );
    Ok(())
}

async fn unreachable_roles_anywhere_is_retried(cluster: TestCluster) -> anyhow::Result<()> {
    let s = scene(&cluster, "retry").await?;
    let state = tempfile::tempdir()?;
    let state_file = state.path().join("emulator.json");
    let emulator = start_emulator("127.0.0.1:0".parse()?, Some(state_file.clone())).await?;
    let _controller =
        cluster.start_controller_for_rolesanywhere(&s.namespace, &emulator.endpoint(), &[])?;
    let address = emulator.addr;
    let (_, arns) = s.issuer(Some(&emulator), None).await?;
    let arns = arns.context("seeded")?;
    wait_for("first import", SETTLE, || async {
        Ok(s.issuers
            .get("ca")
            .await?
            .status
            .and_then(|st| st.imported_crl_number))
    })
    .await?;
    let (certificate, key, _) = s.certificate("app").await?;
    emulator.shutdown().await;

    s.revoke("while-down", RevocationTarget::Certificate("app"), false)
        .await?;
    let failed = wait_for("CrlImported False", SETTLE, || async {
        let issuer = s.issuers.get("ca").await?;
        Ok(issuer.status.and_then(|st| {
            st.conditions
                .into_iter()
                .find(|c| c.type_ == "CrlImported" && c.status == "False")
        }))
    })
    .await?;
    anyhow::ensure!(failed.reason == "ImportFailed", "{failed:?}");
    let revocation = s
        .revocations
        .get("while-down")
        .await?
        .status
        .context("status")?;
    anyhow::ensure!(
        revocation.import_time.is_none() && revocation.crl_number.is_some(),
        "published but must not claim import: {revocation:?}"
    );

    let emulator = start_emulator(address, Some(state_file)).await?;
    s.wait_revocation_ready("while-down").await?;
    anyhow::ensure!(
        matches!(
            session(&emulator, &arns, &certificate, &key).await,
            Err(CreateSessionError::CertificateRevoked { .. })
        ),
        "not refused after recovery"
    );
    Ok(())
}

async fn kms_signed_crl_above_raw_limit(cluster: TestCluster) -> anyhow::Result<()> {
    use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
    const ENTRIES: usize = 120;
    let s = scene(&cluster, "kmscrl").await?;
    let endpoint = cluster.kms_endpoint()?;
    let kms = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .build(),
    );
    let key = kms
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .send()
        .await?;
    let key_id = key.key_metadata().context("metadata")?.key_id().to_string();
    let grant = format!("--kms-key-grant={}={key_id}", s.namespace);
    let _controller = cluster.start_controller_with(&s.namespace, &[&grant], &[])?;
    let issuer = Issuer::new(
        "ca",
        IssuerSpec {
            local: None,
            kms: Some(KmsKeySource {
                key_id,
                region: REGION.into(),
                certificate_secret_name: "ca-certificate".into(),
            }),
            subject: None,
            duration: None,
            crl: None,
            roles_anywhere: None,
        },
    );
    apply(&s.issuers, &issuer).await?;
    let ca_pem = wait_issuer_ready(&s.issuers, "ca")
        .await?
        .status
        .and_then(|st| st.ca_certificate)
        .context("no CA")?;
    for index in 0..ENTRIES {
        // 20-octet serials, as issued certificates have.
        s.revoke(
            &format!("e{index}"),
            RevocationTarget::Serial(&format!("4{index:039x}")),
            false,
        )
        .await?;
    }
    let crl_pem = wait_for("a CRL with every entry", SETTLE, || async {
        let (pem, _) = s.published_crl().await?;
        Ok((openssl::crl_serials(&pem)?.len() == ENTRIES).then_some(pem))
    })
    .await?;
    let der_len = s
        .config_maps
        .get("ca-crl")
        .await?
        .binary_data
        .and_then(|d| d.get("ca.crl").map(|b| b.0.len()))
        .unwrap_or(0);
    anyhow::ensure!(
        der_len > iamra::signer::KMS_RAW_MESSAGE_LIMIT,
        "CRL of {der_len} bytes does not exercise DIGEST signing"
    );
    openssl::verify_crl(&ca_pem, &crl_pem)?;
    Ok(())
}

async fn expired_entries_leave_and_release(cluster: TestCluster) -> anyhow::Result<()> {
    let s = scene(&cluster, "expiry").await?;
    let controller = cluster.start_controller_for_short_lifetimes(&s.namespace)?;
    let crl = CrlSettings {
        validity: Some("5m".into()),
        refresh_interval: Some("1m".into()),
        distribution_point_url: None,
    };
    s.issuer(None, Some(crl)).await?;
    let mut short = workload_certificate("short", "ca", WorkloadKeyAlgorithm::EcdsaP256);
    short.spec.duration = Some("1m".into());
    short.spec.renew_before = Some("10s".into());
    apply(&s.certificates, &short).await?;
    wait_certificate_ready(&s.certificates, "short", 1).await?;
    s.revoke("short-lived", RevocationTarget::Certificate("short"), false)
        .await?;
    let revocation = s.wait_revocation_ready("short-lived").await?;
    let serial = revocation
        .status
        .as_ref()
        .and_then(|st| st.serial_number.clone())
        .context("serial")?;
    anyhow::ensure!(
        openssl::crl_serials(&s.published_crl().await?.0)?.contains(&serial),
        "not in the CRL"
    );

    // Deleting it while the certificate is valid is held back, and said so.
    s.revocations
        .delete("short-lived", &DeleteParams::default())
        .await?;
    let blocked = wait_for("DeletionBlocked", SETTLE, || async {
        let revocation = s.revocations.get("short-lived").await?;
        Ok(revocation.status.and_then(|st| {
            st.conditions
                .into_iter()
                .find(|c| c.type_ == "DeletionBlocked" && c.status == "True")
        }))
    })
    .await?;
    anyhow::ensure!(blocked.message.contains("valid until"), "{blocked:?}");
    anyhow::ensure!(
        openssl::crl_serials(&s.published_crl().await?.0)?.contains(&serial),
        "left the CRL before expiry"
    );

    // After expiry (1m; the controller's clock moved past it rather than waited for) the
    // Revocation goes, and the entry leaves the next CRL.
    controller.move_clock_ahead(Duration::from_secs(90))?;
    wait_for("the Revocation released after expiry", SETTLE, || async {
        Ok(s.revocations
            .get_opt("short-lived")
            .await?
            .is_none()
            .then_some(()))
    })
    .await?;
    wait_for("the expired entry dropped from the CRL", SETTLE, || async {
        Ok((!openssl::crl_serials(&s.published_crl().await?.0)?.contains(&serial)).then_some(()))
    })
    .await?;

    // Its ledger record stays an hour past notAfter; the sweep after that (at the next CRL,
    // at most hourly) removes it.
    let records: Api<CertificateRecord> = Api::all(s.client.clone());
    let recorded = || async {
        Ok::<_, anyhow::Error>(
            records
                .list(&Default::default())
                .await?
                .items
                .into_iter()
                .any(|r| r.spec.serial_number == serial),
        )
    };
    anyhow::ensure!(recorded().await?, "the record went before its grace hour");
    controller.move_clock_ahead(Duration::from_secs(90 + 3600 + 120))?;
    wait_for("the expired record swept", SETTLE, || async {
        Ok((!recorded().await?).then_some(()))
    })
    .await?;
    Ok(())
}

/// A Revocation held back because its certificate is still valid does not keep its namespace
/// terminating: once the namespace is being deleted it is released (the ledger keeps the entry on
/// the CRL).
async fn a_terminating_namespace_releases_its_revocations(
    cluster: TestCluster,
) -> anyhow::Result<()> {
    let s = scene(&cluster, "terminating").await?;
    let _controller = cluster.start_controller(&s.namespace)?;
    s.issuer(None, None).await?;
    let (_, _, serial) = s.certificate("app").await?;
    s.revoke("app", RevocationTarget::Certificate("app"), false)
        .await?;
    s.wait_revocation_ready("app").await?;
    s.revocations
        .delete("app", &DeleteParams::default())
        .await?;
    wait_for("DeletionBlocked", SETTLE, || async {
        let revocation = s.revocations.get("app").await?;
        Ok(revocation.status.and_then(|st| {
            st.conditions
                .into_iter()
                .find(|c| c.type_ == "DeletionBlocked" && c.status == "True")
        }))
    })
    .await?;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(s.client.clone());
    namespaces
        .delete(&s.namespace, &DeleteParams::default())
        .await?;
    wait_for(
        "the Revocation released in a terminating namespace",
        Duration::from_secs(120),
        || async { Ok(s.revocations.get_opt("app").await?.is_none().then_some(())) },
    )
    .await?;
    let records: Api<CertificateRecord> = Api::all(s.client.clone());
    let revoked = records
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .any(|r| r.spec.serial_number == serial && r.spec.revocation.is_some());
    anyhow::ensure!(
        revoked,
        "the ledger lost the revocation with the Revocation object"
    );
    Ok(())
}

/// After the Issuer's status (and with it the crlId) is lost, the controller finds its CRL by
/// name and updates it: a trust anchor holds at most two CRLs, so importing again would
/// eventually fail.
async fn lost_crl_id_updates_the_crl_of_the_same_name(cluster: TestCluster) -> anyhow::Result<()> {
    use kube::api::{Patch, PatchParams};
    let s = scene(&cluster, "crlname").await?;
    let emulator = start_emulator("127.0.0.1:0".parse()?, None).await?;
    let _controller =
        cluster.start_controller_for_rolesanywhere(&s.namespace, &emulator.endpoint(), &[])?;
    let (_, arns) = s.issuer(Some(&emulator), None).await?;
    let arns = arns.context("seeded")?;
    let crl_id = wait_for("first import", SETTLE, || async {
        Ok(s.issuers.get("ca").await?.status.and_then(|st| st.crl_id))
    })
    .await?;
    let lost = serde_json::json!({"status": {"crlId": null, "importedCrlNumber": null}});
    s.issuers
        .patch_status("ca", &PatchParams::default(), &Patch::Merge(&lost))
        .await?;
    let (certificate, key, _) = s.certificate("app").await?;
    s.revoke("after-loss", RevocationTarget::Certificate("app"), false)
        .await?;
    s.wait_revocation_ready("after-loss").await?;
    anyhow::ensure!(
        matches!(
            session(&emulator, &arns, &certificate, &key).await,
            Err(CreateSessionError::CertificateRevoked { .. })
        ),
        "not refused"
    );
    // The Revocation turns Ready in the same reconcile that writes the Issuer's status after it.
    let recovered = wait_for("the Issuer's crlId written again", SETTLE, || async {
        Ok(s.issuers.get("ca").await?.status.and_then(|st| st.crl_id))
    })
    .await
    .ok();
    anyhow::ensure!(
        recovered.as_deref() == Some(crl_id.as_str()),
        "imported a second CRL {recovered:?} instead of updating {crl_id}"
    );
    let crls = emulator.shared.read(|state| state.crls.len());
    anyhow::ensure!(crls == 1, "the emulator holds {crls} CRLs");
    Ok(())
}
