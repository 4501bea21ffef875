//! Issuers whose CA key is in KMS (moto's server): the CA certificate and every leaf are signed
//! through KMS and pass openssl; unusable keys are reported on the Issuer.

use anyhow::Context;
use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use iamra::api::*;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use libtest_mimic::Trial;

use crate::cluster::{TestCluster, trial, wait_for};
use crate::issuance::{
    SETTLE, apply, check_issued, local_issuer, secret_text, wait_certificate_ready, wait_event,
    wait_issuer_ready, workload_certificate,
};
use crate::metrics::{sample, scrape};
use crate::openssl;

pub fn trials(cluster: &TestCluster) -> Vec<Trial> {
    vec![
        trial("kms::ecc_p256_key_signs_ca_and_leaves", cluster, |c| {
            signs_ca_and_leaves(c, KeySpec::EccNistP256, "ecdsa-with-SHA256")
        }),
        trial("kms::rsa_2048_key_signs_ca_and_leaves", cluster, |c| {
            signs_ca_and_leaves(c, KeySpec::Rsa2048, "sha256WithRSAEncryption")
        }),
        trial("kms::rejects_encryption_key", cluster, |c| {
            rejects_key(
                c,
                Some((KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt)),
                None,
                "key usage is ENCRYPT_DECRYPT, SIGN_VERIFY is required",
            )
        }),
        trial("kms::rejects_p384_key", cluster, |c| {
            rejects_key(
                c,
                Some((KeySpec::EccNistP384, KeyUsageType::SignVerify)),
                None,
                "key spec ECC_NIST_P384 cannot sign with SHA-256",
            )
        }),
        trial("kms::reports_missing_key", cluster, |c| {
            rejects_key(
                c,
                None,
                None,
                "KMS GetPublicKey for alias/does-not-exist failed",
            )
        }),
        trial(
            "kms::a_key_not_granted_to_the_namespace_is_refused",
            cluster,
            a_key_not_granted_to_the_namespace_is_refused,
        ),
        trial(
            "kms::large_messages_are_signed_as_verified_digests",
            cluster,
            large_messages_are_signed_as_verified_digests,
        ),
        trial(
            "kms::a_kms_that_never_answers_times_out_and_stalls_nothing_else",
            cluster,
            a_kms_that_never_answers_times_out_and_stalls_nothing_else,
        ),
        trial("kms::reports_unreachable_kms", cluster, |c| {
            rejects_key(
                c,
                Some((KeySpec::EccNistP256, KeyUsageType::SignVerify)),
                Some("http://127.0.0.1:9"),
                "KMS GetPublicKey for",
            )
        }),
    ]
}

fn kms_client(endpoint: &str) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

pub async fn create_key(
    endpoint: &str,
    spec: KeySpec,
    usage: KeyUsageType,
) -> anyhow::Result<String> {
    let key = kms_client(endpoint)
        .create_key()
        .key_spec(spec)
        .key_usage(usage)
        .send()
        .await?;
    Ok(key
        .key_metadata()
        .context("no key metadata")?
        .key_id()
        .to_string())
}

pub fn kms_issuer(key_id: &str) -> Issuer {
    Issuer::new(
        "kms-ca",
        IssuerSpec {
            local: None,
            kms: Some(KmsKeySource {
                key_id: key_id.into(),
                region: "eu-west-1".into(),
                certificate_secret_name: "kms-ca-certificate".into(),
            }),
            subject: Some(Subject {
                common_name: Some("iamra KMS test CA".into()),
                ..Default::default()
            }),
            duration: None,
            crl: None,
            roles_anywhere: None,
        },
    )
}

async fn signs_ca_and_leaves(
    cluster: TestCluster,
    spec: KeySpec,
    signature_algorithm: &str,
) -> anyhow::Result<()> {
    let endpoint = cluster.kms_endpoint()?;
    let key_id = create_key(&endpoint, spec, KeyUsageType::SignVerify).await?;
    let client = cluster.client().await?;
    let namespace = cluster.namespace(&client, "kms").await?;
    let issuers: Api<Issuer> = Api::namespaced(client.clone(), &namespace);
    let certificates: Api<WorkloadCertificate> = Api::namespaced(client.clone(), &namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let grant = format!("--kms-key-grant={namespace}={key_id}");
    let controller = cluster.start_controller_with(&namespace, &[&grant], &[])?;

    apply(&issuers, &kms_issuer(&key_id)).await?;
    let issuer = wait_issuer_ready(&issuers, "kms-ca").await?;
    let status = issuer.status.context("status")?;
    anyhow::ensure!(
        status.key_source.as_deref() == Some("KMS"),
        "key source {:?}",
        status.key_source
    );
    let ca_pem = status.ca_certificate.context("no CA certificate")?;
    let stored = secrets.get("kms-ca-certificate").await?;
    anyhow::ensure!(
        secret_text(&stored, "ca.crt")? == ca_pem,
        "stored CA differs from status"
    );
    anyhow::ensure!(
        stored
            .data
            .as_ref()
            .is_some_and(|d| !d.contains_key("tls.key")),
        "a KMS CA Secret must hold no private key"
    );

    // The self-signed CA's signature was made by KMS: openssl checks it with the KMS public key.
    openssl::verify_self_signed_ca(&ca_pem)?;
    let public_key = kms_client(&endpoint)
        .get_public_key()
        .key_id(&key_id)
        .send()
        .await?;
    let ca = iamra::pki::parse_certificate_pem(&ca_pem)?;
    anyhow::ensure!(
        public_key.public_key().map(|b| b.as_ref().to_vec()) == Some(ca.public_key_info),
        "CA certificate is not for the KMS key"
    );
    let ca_text = openssl::certificate_text(&ca_pem)?;
    anyhow::ensure!(
        ca_text.contains(signature_algorithm) && ca_text.contains("CA:TRUE"),
        "{ca_text}"
    );

    for (name, algorithm) in [
        ("ecdsa", WorkloadKeyAlgorithm::EcdsaP256),
        ("rsa", WorkloadKeyAlgorithm::Rsa2048),
    ] {
        apply(
            &certificates,
            &workload_certificate(name, "kms-ca", algorithm),
        )
        .await?;
        let certificate = wait_certificate_ready(&certificates, name, 1).await?;
        let (chain, _) = check_issued(&secrets, &certificate, &ca_pem).await?;
        anyhow::ensure!(
            openssl::certificate_text(&chain)?.contains(signature_algorithm),
            "{name}: not signed by the KMS key's algorithm"
        );
    }
    // CA self-signature, first CRL and two leaves: at least four KMS signatures.
    let metrics = scrape(&controller).await?;
    for (series, at_least) in [
        (
            "iamra_kms_requests_total{operation=\"GetPublicKey\",outcome=\"success\"}",
            1.0,
        ),
        (
            "iamra_kms_requests_total{operation=\"Sign\",outcome=\"success\"}",
            4.0,
        ),
    ] {
        anyhow::ensure!(
            sample(&metrics, series).is_some_and(|count| count >= at_least),
            "{series} below {at_least}:\n{metrics}"
        );
    }
    Ok(())
}

async fn rejects_key(
    cluster: TestCluster,
    key: Option<(KeySpec, KeyUsageType)>,
    endpoint_override: Option<&'static str>,
    expected: &'static str,
) -> anyhow::Result<()> {
    let endpoint = cluster.kms_endpoint()?;
    // A missing key or an unreachable KMS fails GetPublicKey itself.
    let get_public_key_fails = key.is_none() || endpoint_override.is_some();
    let key_id = match key {
        Some((spec, usage)) => create_key(&endpoint, spec, usage).await?,
        None => "alias/does-not-exist".to_string(),
    };
    let client = cluster.client().await?;
    let namespace = cluster.namespace(&client, "kmsbad").await?;
    let issuers: Api<Issuer> = Api::namespaced(client.clone(), &namespace);
    let grant = format!("--kms-key-grant={namespace}={key_id}");
    let kms_endpoint = endpoint_override.unwrap_or(&endpoint);
    let controller = cluster.start_controller_with(
        &namespace,
        &[&grant],
        &[("IAMRA_KMS_ENDPOINT", kms_endpoint)],
    )?;
    apply(&issuers, &kms_issuer(&key_id)).await?;
    let condition = wait_not_ready(&issuers, "Issuer reports the unusable key").await?;
    anyhow::ensure!(
        condition.reason == "KMSKeyUnusable",
        "reason {}",
        condition.reason
    );
    anyhow::ensure!(
        condition.message.contains(expected),
        "message does not say {expected:?}: {}",
        condition.message
    );
    wait_event(&client, &namespace, "kms-ca", "KMSKeyUnusable").await?;
    if get_public_key_fails {
        let metrics = scrape(&controller).await?;
        anyhow::ensure!(
            metrics.lines().any(|line| {
                line.starts_with("iamra_kms_requests_total{operation=\"GetPublicKey\"")
                    && !line.contains("outcome=\"success\"")
            }),
            "no failed GetPublicKey counted:\n{metrics}"
        );
    }
    Ok(())
}

/// The Issuer `kms-ca`'s Ready condition once it is False.
async fn wait_not_ready(
    issuers: &Api<Issuer>,
    what: &str,
) -> anyhow::Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    wait_for(what, SETTLE, || async {
        let issuer = issuers.get("kms-ca").await?;
        Ok(issuer.status.and_then(|s| {
            s.conditions
                .into_iter()
                .find(|c| c.type_ == CONDITION_READY && c.status == "False")
        }))
    })
    .await
}

/// A tenant naming the platform's KMS key in its own Issuer gets nothing signed: only keys the
/// controller's flags grant to the namespace are used, and this one is granted elsewhere.
async fn a_key_not_granted_to_the_namespace_is_refused(cluster: TestCluster) -> anyhow::Result<()> {
    let endpoint = cluster.kms_endpoint()?;
    let key_id = create_key(&endpoint, KeySpec::EccNistP256, KeyUsageType::SignVerify).await?;
    let client = cluster.client().await?;
    let namespace = cluster.namespace(&client, "kms-tenant").await?;
    let issuers: Api<Issuer> = Api::namespaced(client.clone(), &namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let grant = format!("--kms-key-grant=platform={key_id}");
    let controller = cluster.start_controller_with(&namespace, &[&grant], &[])?;
    apply(&issuers, &kms_issuer(&key_id)).await?;
    let condition = wait_not_ready(&issuers, "KMSKeyNotGranted").await?;
    anyhow::ensure!(condition.reason == "KMSKeyNotGranted", "{condition:?}");
    anyhow::ensure!(
        condition
            .message
            .contains(&format!("--kms-key-grant {namespace}=")),
        "the refusal does not say how the platform grants it: {}",
        condition.message
    );
    wait_event(&client, &namespace, "kms-ca", "KMSKeyNotGranted").await?;
    anyhow::ensure!(
        secrets.get_opt("kms-ca-certificate").await?.is_none(),
        "a CA certificate was signed with a key the namespace was not granted"
    );
    let metrics = scrape(&controller).await?;
    anyhow::ensure!(
        !metrics
            .lines()
            .any(|line| line.starts_with("iamra_kms_requests_total{") && !line.ends_with(" 0")),
        "the controller called KMS for an ungranted key:\n{metrics}"
    );
    Ok(())
}

/// Above KMS's 4096-byte RAW limit the signer sends a SHA-256 DIGEST. Against a KMS that signs
/// digests correctly the signature verifies; against moto as released (which hashes the digest
/// again) the signer's own check refuses the bad signature instead of passing it on.
async fn large_messages_are_signed_as_verified_digests(cluster: TestCluster) -> anyhow::Result<()> {
    use iamra::signer::{KMS_RAW_MESSAGE_LIMIT, KmsError, KmsSigningKey, KmsSigningOptions};
    let large = vec![0x5a_u8; KMS_RAW_MESSAGE_LIMIT * 3];
    let small = vec![0x5a_u8; KMS_RAW_MESSAGE_LIMIT];
    for spec in [KeySpec::EccNistP256, KeySpec::Rsa2048] {
        let endpoint = cluster.kms_endpoint()?;
        let key_id = create_key(&endpoint, spec.clone(), KeyUsageType::SignVerify).await?;
        let key = KmsSigningKey::connect(
            kms_client(&endpoint),
            &key_id,
            &KmsSigningOptions::default(),
        )
        .await?;
        key.sign_async(&large)
            .await
            .with_context(|| format!("{spec:?}: DIGEST signing"))?;
        key.sign_async(&small)
            .await
            .with_context(|| format!("{spec:?}: RAW signing"))?;

        let released = cluster.start_moto(crate::processes::MotoFlavor::AsReleased)?;
        let key_id = create_key(&released.url, spec.clone(), KeyUsageType::SignVerify).await?;
        let key = KmsSigningKey::connect(
            kms_client(&released.url),
            &key_id,
            &KmsSigningOptions::default(),
        )
        .await?;
        key.sign_async(&small)
            .await
            .with_context(|| format!("{spec:?}: RAW signing with released moto"))?;
        match key.sign_async(&large).await {
            Err(KmsError::SignatureDoesNotVerify { .. }) => {}
            other => anyhow::bail!("{spec:?}: a wrong DIGEST signature was not caught: {other:?}"),
        }
    }
    Ok(())
}

/// A KMS endpoint that accepts connections and never answers: the KMS Issuer is reported within
/// the controller's AWS operation timeout, and meanwhile a local Issuer of the same controller
/// issues as usual (no lock or slot is held for everyone across the hanging call).
async fn a_kms_that_never_answers_times_out_and_stalls_nothing_else(
    cluster: TestCluster,
) -> anyhow::Result<()> {
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let endpoint = format!("http://{}", silent.local_addr()?);
    let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let held = connections.clone();
    std::thread::spawn(move || {
        for stream in silent.incoming().flatten() {
            if let Ok(mut held) = held.lock() {
                held.push(stream);
            }
        }
    });
    let client = cluster.client().await?;
    let namespace = cluster.namespace(&client, "kms-silent").await?;
    let issuers: Api<Issuer> = Api::namespaced(client.clone(), &namespace);
    let certificates: Api<WorkloadCertificate> = Api::namespaced(client.clone(), &namespace);
    let key_id = "arn:aws:kms:eu-west-1:111122223333:key/0b7e8d2c-silent";
    let grant = format!("--kms-key-grant={namespace}={key_id}");
    let controller = cluster.start_controller_with(
        &namespace,
        &[&grant],
        &[("IAMRA_KMS_ENDPOINT", endpoint.as_str())],
    )?;
    let started = std::time::Instant::now();
    apply(&issuers, &kms_issuer(key_id)).await?;
    apply(&issuers, &local_issuer("local-ca", "local-ca-key")).await?;
    apply(
        &certificates,
        &workload_certificate("app", "local-ca", WorkloadKeyAlgorithm::EcdsaP256),
    )
    .await?;
    wait_certificate_ready(&certificates, "app", 1).await?;
    let local_ready = started.elapsed();
    let kms_ready = issuers.get("kms-ca").await?.status.is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == CONDITION_READY && c.status == "True")
    });
    anyhow::ensure!(
        !kms_ready,
        "the KMS Issuer is Ready with a KMS that never answers"
    );
    let condition = wait_not_ready(&issuers, "the silent KMS reported").await?;
    let reported = started.elapsed();
    anyhow::ensure!(condition.reason == "KMSKeyUnusable", "{condition:?}");
    anyhow::ensure!(
        condition.message.to_lowercase().contains("timeout")
            || condition.message.to_lowercase().contains("timed out"),
        "the condition does not say it timed out: {}",
        condition.message
    );
    let made = connections.lock().map(|c| c.len()).unwrap_or(0);
    anyhow::ensure!(made > 0, "the controller never connected to the silent KMS");
    println!(
        "silent KMS: local certificate Ready after {local_ready:.1?}; KMS Issuer reported after \
         {reported:.1?} ({made} connection(s)): {}",
        condition.message
    );

    // SIGTERM while the retry's call hangs: the process exits after its shutdown grace (4 s)
    // instead of waiting out the call.
    wait_for("the KMS Issuer's retry to connect", SETTLE, || async {
        Ok((connections.lock().map(|c| c.len()).unwrap_or(0) > made).then_some(()))
    })
    .await?;
    let terminated = std::time::Instant::now();
    let exit = controller.terminate(std::time::Duration::from_secs(10))?;
    let took = terminated.elapsed();
    anyhow::ensure!(exit == Some(0), "exit status {exit:?} after SIGTERM");
    println!("silent KMS: SIGTERM with a KMS call in flight, exited in {took:.1?}");
    Ok(())
}
