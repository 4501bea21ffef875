//! A bad-input campaign on the real API server: hundreds of malformed objects, hostile
//! annotations, corrupted Secrets and forged statuses, written while a controller runs. Each must
//! be refused at admission or answered with a condition on the object; none may change a
//! bystander (a Ready certificate and a revoked one, whose serial stays on the CRL), panic the
//! controller or restart it.

use std::collections::BTreeMap;

use anyhow::Context;
use iamra::api::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use libtest_mimic::Trial;
use serde_json::{Value, json};

use crate::cluster::{TestCluster, api_for, sample, trial, wait_for};
use crate::issuance::{SETTLE, apply, local_issuer, wait_certificate_ready, wait_issuer_ready};
use crate::openssl;

pub fn trials(cluster: &TestCluster) -> Vec<Trial> {
    vec![trial(
        "bad_input::hundreds_of_malformed_inputs_are_refused_or_reported_and_change_nothing_else",
        cluster,
        hundreds_of_malformed_inputs_are_refused_or_reported_and_change_nothing_else,
    )]
}

/// Values a hostile or careless tenant might write into any field.
fn hostile_values() -> Vec<Value> {
    vec![
        json!(""),
        json!(" "),
        json!("a".repeat(5_000)),
        json!("\u{0000}nul"),
        json!("../../etc/passwd"),
        json!("${HOME}$(id)`id`"),
        json!("🙂ünïcödé"),
        json!("-1"),
        json!("1e999"),
        json!(-1),
        json!(1_u64 << 62),
        json!(true),
        json!(null),
        json!([]),
        json!({"nested": {"deeper": [1, 2, 3]}}),
    ]
}

/// (sample, fields) — every field of every kind a tenant writes.
fn fields() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        (
            "issuer-local.yaml",
            vec![
                "/spec/local/secretName",
                "/spec/local/keyAlgorithm",
                "/spec/local/bootstrap",
                "/spec/local/replaceLostCA",
                "/spec/subject",
                "/spec/subject/commonName",
                "/spec/subject/organization",
                "/spec/duration",
                "/spec/crl",
                "/spec/crl/validity",
                "/spec/crl/refreshInterval",
                "/spec/crl/distributionPointUrl",
                "/spec/rolesAnywhere/trustAnchorArn",
                "/spec/rolesAnywhere/crlName",
                "/spec/rolesAnywhere/region",
                "/spec/kms",
            ],
        ),
        (
            "workloadcertificate.yaml",
            vec![
                "/spec/issuerRef/name",
                "/spec/issuerRef/kind",
                "/spec/subject/commonName",
                "/spec/uris",
                "/spec/dnsNames",
                "/spec/keyAlgorithm",
                "/spec/duration",
                "/spec/renewBefore",
                "/spec/secretName",
                "/spec/privateKeyRotationPolicy",
                "/spec/secretTemplate",
                "/spec/serviceAccountName",
                "/metadata/annotations/iamra.dev~1reissue-serial",
            ],
        ),
        (
            "revocation.yaml",
            vec![
                "/spec/issuerRef/name",
                "/spec/certificateRef/name",
                "/spec/serialNumber",
                "/spec/reason",
                "/spec/revocationTime",
                "/spec/reissue",
            ],
        ),
        (
            "rolesanywherebinding.yaml",
            vec![
                "/spec/selector",
                "/spec/certificateRef/name",
                "/spec/trustAnchorArn",
                "/spec/profileArn",
                "/spec/roleArn",
                "/spec/sessionDurationSeconds",
                "/spec/region",
                "/spec/roleSessionName",
            ],
        ),
    ]
}

/// Sets `pointer` (JSON pointer, `~1` for `/`) to `value`, creating objects on the way.
fn set(object: &mut Value, pointer: &str, value: Value) {
    let mut target = object;
    for key in pointer.trim_start_matches('/').split('/') {
        let key = key.replace("~1", "/").replace("~0", "~");
        if !target.is_object() {
            *target = json!({});
        }
        target = target
            .as_object_mut()
            .map(|map| map.entry(key).or_insert(Value::Null))
            .expect("made an object above");
    }
    *target = value;
}

/// The sample as a bad case starts from: its own name and Secret, and nothing that points at
/// the bystanders (a Revocation of a certificate that does not exist).
fn base(file: &str, name: &str) -> anyhow::Result<Value> {
    let mut object = sample(file)?;
    set(&mut object, "/metadata/name", json!(name));
    match file {
        "issuer-local.yaml" => {
            set(
                &mut object,
                "/spec/local/secretName",
                json!(format!("{name}-key")),
            );
            if let Some(spec) = object["spec"].as_object_mut() {
                spec.remove("rolesAnywhere");
            }
        }
        "workloadcertificate.yaml" => {
            set(&mut object, "/spec/issuerRef/name", json!("ca"));
            set(
                &mut object,
                "/spec/secretName",
                json!(format!("{name}-tls")),
            );
        }
        "revocation.yaml" => {
            set(&mut object, "/spec/issuerRef/name", json!("ca"));
            set(&mut object, "/spec/certificateRef/name", json!("ghost"));
        }
        "rolesanywherebinding.yaml" => {
            set(&mut object, "/spec/certificateRef/name", json!("ghost"));
        }
        _ => {}
    }
    Ok(object)
}

/// The `Ready` condition's (status, reason), if the object has one.
fn ready(object: &DynamicObject) -> Option<(String, String)> {
    object.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == CONDITION_READY)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
}

async fn hundreds_of_malformed_inputs_are_refused_or_reported_and_change_nothing_else(
    cluster: TestCluster,
) -> anyhow::Result<()> {
    let client = cluster.client().await?;
    let namespace = cluster.namespace(&client, "badinput").await?;
    let mut controller = cluster.start_controller(&namespace)?;
    let issuers: Api<Issuer> = Api::namespaced(client.clone(), &namespace);
    let certificates: Api<WorkloadCertificate> = Api::namespaced(client.clone(), &namespace);
    let revocations: Api<Revocation> = Api::namespaced(client.clone(), &namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);

    // The bystanders.
    apply(&issuers, &local_issuer("ca", "ca-key")).await?;
    let ca_pem = wait_issuer_ready(&issuers, "ca")
        .await?
        .status
        .and_then(|s| s.ca_certificate)
        .context("no CA certificate")?;
    apply(&issuers, &local_issuer("broken-ca", "broken-ca-key")).await?;
    wait_issuer_ready(&issuers, "broken-ca").await?;
    for name in ["bystander", "victim", "tampered", "forged"] {
        apply(
            &certificates,
            &crate::issuance::workload_certificate(name, "ca", WorkloadKeyAlgorithm::EcdsaP256),
        )
        .await?;
    }
    let mut issued = BTreeMap::new();
    for name in ["bystander", "victim", "tampered", "forged"] {
        let certificate = wait_certificate_ready(&certificates, name, 1).await?;
        let status = certificate.status.context("no status")?;
        issued.insert(
            name,
            (status.serial_number.context("no serial")?, status.revision),
        );
    }
    let victim_serial = issued["victim"].0.clone();
    revocations
        .create(
            &PostParams::default(),
            &Revocation::new(
                "victim-revoked",
                RevocationSpec {
                    issuer_ref: IssuerReference::issuer("ca"),
                    serial_number: Some(victim_serial.clone()),
                    certificate_ref: None,
                    reason: Some(RevocationReason::KeyCompromise),
                    revocation_time: None,
                    reissue: None,
                },
            ),
        )
        .await?;
    let crl_lists_victim = || async {
        let der = config_maps
            .get("ca-crl")
            .await?
            .binary_data
            .and_then(|d| d.get("ca.crl").map(|b| b.0.clone()))
            .context("no CRL")?;
        let pem = iamra::pki::pem::encode_pem("X509 CRL", &der);
        openssl::verify_crl(&ca_pem, &pem)?;
        Ok::<_, anyhow::Error>(
            openssl::crl_serials(&pem)?
                .iter()
                .any(|s| s.trim_start_matches('0') == victim_serial.trim_start_matches('0')),
        )
    };
    wait_for("the victim's serial on the CRL", SETTLE, || async {
        Ok(crl_lists_victim().await?.then_some(()))
    })
    .await?;

    // Malformed objects: every field of every kind, every hostile value.
    let mut tried = 0;
    let mut refused_at_admission = 0;
    let mut accepted: Vec<(Api<DynamicObject>, String, String)> = Vec::new();
    for (file, paths) in fields() {
        for path in paths {
            for (index, value) in hostile_values().into_iter().enumerate() {
                tried += 1;
                let name = format!("bad-{tried}");
                let mut object = base(file, &name)?;
                set(&mut object, path, value);
                let api = api_for(&client, &namespace, &object)?;
                // Raw JSON: a typed object could not even carry a number where a string goes.
                let request = http::Request::post(api.resource_url())
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(serde_json::to_vec(&object)?)?;
                match client.request::<Value>(request).await {
                    Ok(_) => accepted.push((api, name, format!("{file} {path} #{index}"))),
                    Err(kube::Error::Api(status)) if (400..500).contains(&status.code) => {
                        refused_at_admission += 1
                    }
                    Err(error) => anyhow::bail!("{file} {path} #{index}: {error}"),
                }
            }
        }
    }

    // Whatever the API server stores, the controller must be able to read: one object its
    // types cannot decode fails every LIST and watch of that kind, for every tenant.
    let mut unreadable = Vec::new();
    for (_, name, case) in &accepted {
        let kind = case.split(' ').next().unwrap_or_default();
        let read = match kind {
            "issuer-local.yaml" => issuers.get(name).await.map(|_| ()),
            "workloadcertificate.yaml" => certificates.get(name).await.map(|_| ()),
            "revocation.yaml" => revocations.get(name).await.map(|_| ()),
            _ => Api::<RolesAnywhereBinding>::namespaced(client.clone(), &namespace)
                .get(name)
                .await
                .map(|_| ()),
        };
        if let Err(error) = read {
            unreadable.push(format!("{case}: {error}"));
        }
    }
    anyhow::ensure!(
        unreadable.is_empty(),
        "stored but not readable by the controller's types: {unreadable:#?}"
    );

    // Corrupted Secrets and a forged status: each must be noticed, not believed.
    let mut tampered = secrets.get("tampered-tls").await?;
    if let Some(data) = tampered.data.as_mut() {
        data.insert(
            "tls.crt".into(),
            ByteString(b"-----BEGIN CERTIFICATE-----\ngarbage\n".to_vec()),
        );
    }
    secrets
        .replace("tampered-tls", &PostParams::default(), &tampered)
        .await?;
    tried += 1;
    let mut broken = secrets.get("broken-ca-key").await?;
    if let Some(data) = broken.data.as_mut() {
        data.insert("tls.key".into(), ByteString(b"not a key".to_vec()));
    }
    secrets
        .replace("broken-ca-key", &PostParams::default(), &broken)
        .await?;
    tried += 1;
    certificates
        .patch_status(
            "forged",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"serialNumber": victim_serial, "revision": 999}})),
        )
        .await?;
    tried += 1;

    // Every accepted object gets a Ready condition, True or False with a reason.
    let mut reported = 0;
    let mut ready_true = 0;
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut unreported = Vec::new();
    for (api, name, case) in &accepted {
        let answer = wait_for(&format!("{case} ({name}) answered"), SETTLE, || async {
            Ok(ready(&api.get(name).await?))
        })
        .await;
        match answer {
            Ok((status, reason)) => {
                if status == "True" {
                    ready_true += 1;
                } else {
                    reported += 1;
                }
                *reasons.entry(reason).or_default() += 1;
            }
            Err(_) => unreported.push(case.clone()),
        }
    }
    let tampered = wait_certificate_ready(
        &certificates,
        "tampered",
        issued["tampered"].1.unwrap_or(1) + 1,
    )
    .await?;
    anyhow::ensure!(
        tampered
            .status
            .as_ref()
            .and_then(|s| s.serial_number.clone())
            != Some(issued["tampered"].0.clone()),
        "a garbage tls.crt was kept"
    );
    reported += 1;
    // The Issuer looks at its CA Secret again at its next resync; a certificate asking for it
    // now must be refused, not signed with whatever is there.
    apply(
        &certificates,
        &crate::issuance::workload_certificate(
            "on-broken",
            "broken-ca",
            WorkloadKeyAlgorithm::EcdsaP256,
        ),
    )
    .await?;
    let broken = wait_for("a certificate of broken-ca refused", SETTLE, || async {
        let status = certificates
            .get("on-broken")
            .await?
            .status
            .unwrap_or_default();
        Ok(status
            .conditions
            .iter()
            .find(|c| c.type_ == CONDITION_READY && c.status == "False")
            .map(|c| (c.reason.clone(), c.message.clone())))
    })
    .await?;
    anyhow::ensure!(
        secrets.get_opt("on-broken-tls").await?.is_none(),
        "a certificate was issued with a garbage CA key"
    );
    reported += 1;
    let forged = wait_for("the forged status corrected", SETTLE, || async {
        let status = certificates.get("forged").await?.status.unwrap_or_default();
        Ok(
            (status.serial_number.as_deref() != Some(victim_serial.as_str())
                && status.revision != Some(999)
                && status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == CONDITION_READY && c.status == "True"))
            .then_some(status),
        )
    })
    .await?;
    reported += 1;

    // Nothing else changed: the bystander keeps its certificate, the victim stays revoked.
    let bystander = certificates
        .get("bystander")
        .await?
        .status
        .context("no status")?;
    let bystander_changed = (
        bystander.serial_number.clone().unwrap_or_default(),
        bystander.revision,
    ) != issued["bystander"];
    let victim_still_revoked = crl_lists_victim().await?;
    let log = controller.log_text();
    let panics = log.matches("panicked").count();
    let running = controller.is_running();
    println!(
        "bad_input: tried {tried}; refused at admission {refused_at_admission}; accepted {} \
         ({ready_true} valid after all, {reported} reported as a condition); unreported {}; \
         bystander changed {bystander_changed}; revoked serial still on the CRL {victim_still_revoked}; \
         panics {panics}; controller running {running}",
        accepted.len() + 3,
        unreported.len()
    );
    println!(
        "bad_input: reasons {reasons:?}; broken CA {broken:?}; forged status now revision {:?}",
        forged.revision
    );
    anyhow::ensure!(tried >= 500, "only {tried} inputs tried");
    anyhow::ensure!(
        unreported.is_empty(),
        "accepted without a condition: {unreported:?}"
    );
    anyhow::ensure!(!bystander_changed, "the bystander changed: {bystander:?}");
    anyhow::ensure!(victim_still_revoked, "the revoked serial left the CRL");
    anyhow::ensure!(panics == 0, "the controller panicked {panics} time(s)");
    anyhow::ensure!(running, "the controller is not running:\n{log}");
    Ok(())
}
