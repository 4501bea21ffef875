//! Objects the API server itself must reject, each with a message that says what is wrong.
//! Every case starts from a sample that is accepted (see `samples`) and changes one thing, so a
//! rejection can only come from the schema or a CEL rule on the type.

use anyhow::Context;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use libtest_mimic::Trial;
use serde_json::{Value, json};

use crate::cluster::{TestCluster, api_for, sample, trial};

struct RejectedCase {
    name: &'static str,
    sample: &'static str,
    mutate: fn(&mut Value),
    /// Every fragment must appear in the API server's message.
    expected: &'static [&'static str],
}

/// Sets `pointer` (a JSON pointer below the root) to `value`, creating objects on the way.
fn set(object: &mut Value, pointer: &str, value: Value) {
    let mut target = object;
    for key in pointer.trim_start_matches('/').split('/') {
        if !target.is_object() {
            *target = json!({});
        }
        target = target
            .as_object_mut()
            .map(|map| map.entry(key.to_string()).or_insert(Value::Null))
            .expect("made an object above");
    }
    *target = value;
}

/// Removes the field at `pointer`.
fn remove(object: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
    if let Some(map) = object.pointer_mut(parent).and_then(Value::as_object_mut) {
        map.remove(key);
    }
}

const CASES: &[RejectedCase] = &[
    RejectedCase {
        name: "cluster_issuer_uri_template_without_namespace",
        sample: "clusterissuer.yaml",
        mutate: |o| {
            set(
                o,
                "/spec/identity/uris",
                json!(["spiffe://{trustDomain}/sa/{serviceAccount}"]),
            )
        },
        expected: &["every URI template must contain {namespace}"],
    },
    RejectedCase {
        name: "cluster_issuer_subject_template_without_namespace",
        sample: "clusterissuer.yaml",
        mutate: |o| {
            set(
                o,
                "/spec/identity/subject",
                json!({"commonName": "{serviceAccount}"}),
            )
        },
        expected: &["the subject template must contain {namespace}"],
    },
    RejectedCase {
        name: "cluster_issuer_without_namespace_selector",
        sample: "clusterissuer.yaml",
        mutate: |o| remove(o, "/spec/namespaceSelector"),
        expected: &["spec.namespaceSelector: Required value"],
    },
    RejectedCase {
        name: "shared_certificate_without_service_account",
        sample: "workloadcertificate-shared.yaml",
        mutate: |o| remove(o, "/spec/serviceAccountName"),
        expected: &["spec.serviceAccountName is required with a ClusterIssuer"],
    },
    RejectedCase {
        name: "certificate_of_an_issuer_without_subject",
        sample: "workloadcertificate.yaml",
        mutate: |o| remove(o, "/spec/subject"),
        expected: &["spec.subject is required with an Issuer"],
    },
    RejectedCase {
        // With `format: date-time` the API server stored an empty array here, which no typed
        // client could read back: every LIST of Revocations then failed.
        name: "revocation_time_of_the_wrong_type",
        sample: "revocation.yaml",
        mutate: |o| set(o, "/spec/revocationTime", json!([])),
        expected: &["spec.revocationTime"],
    },
    RejectedCase {
        name: "revocation_time_not_rfc3339",
        sample: "revocation.yaml",
        mutate: |o| set(o, "/spec/revocationTime", json!("yesterday")),
        expected: &["spec.revocationTime", "should match"],
    },
    RejectedCase {
        name: "workload_certificate_without_issuer_ref",
        sample: "workloadcertificate.yaml",
        mutate: |o| remove(o, "/spec/issuerRef"),
        expected: &["spec.issuerRef: Required value"],
    },
    RejectedCase {
        name: "workload_certificate_with_empty_subject",
        sample: "workloadcertificate.yaml",
        mutate: |o| set(o, "/spec/subject", json!({})),
        expected: &["spec.subject", "subject must have at least one attribute"],
    },
    RejectedCase {
        name: "workload_certificate_with_p384_key",
        sample: "workloadcertificate.yaml",
        mutate: |o| set(o, "/spec/keyAlgorithm", json!("EcdsaP384")),
        expected: &["spec.keyAlgorithm", "Unsupported value: \"EcdsaP384\""],
    },
    RejectedCase {
        name: "workload_certificate_with_unparseable_duration",
        sample: "workloadcertificate.yaml",
        mutate: |o| set(o, "/spec/duration", json!("1 day")),
        expected: &["spec.duration", "should match"],
    },
    RejectedCase {
        name: "workload_certificate_renewing_before_issuance",
        sample: "workloadcertificate.yaml",
        mutate: |o| set(o, "/spec/renewBefore", json!("48h")),
        expected: &["renewBefore must be shorter than duration"],
    },
    RejectedCase {
        name: "workload_certificate_with_bad_uri_san",
        sample: "workloadcertificate.yaml",
        mutate: |o| set(o, "/spec/uris", json!(["not a uri"])),
        expected: &["spec.uris[0]", "should match"],
    },
    RejectedCase {
        name: "workload_certificate_with_bad_secret_name",
        sample: "workloadcertificate.yaml",
        mutate: |o| set(o, "/spec/secretName", json!("Payments_TLS")),
        expected: &["spec.secretName", "should match"],
    },
    RejectedCase {
        name: "issuer_with_two_key_sources",
        sample: "issuer-local.yaml",
        mutate: |o| {
            set(
                o,
                "/spec/kms",
                json!({"keyId": "alias/ca", "region": "eu-west-1", "certificateSecretName": "ca"}),
            )
        },
        expected: &["exactly one key source must be set"],
    },
    RejectedCase {
        name: "issuer_without_key_source",
        sample: "issuer-local.yaml",
        mutate: |o| remove(o, "/spec/local"),
        expected: &["exactly one key source must be set"],
    },
    RejectedCase {
        name: "issuer_kms_with_bad_region",
        sample: "issuer-kms.yaml",
        mutate: |o| set(o, "/spec/kms/region", json!("Europe (Ireland)")),
        expected: &["spec.kms.region", "should match"],
    },
    RejectedCase {
        name: "issuer_with_bad_trust_anchor_arn",
        sample: "issuer-local.yaml",
        mutate: |o| {
            set(
                o,
                "/spec/rolesAnywhere/trustAnchorArn",
                json!(
                    "arn:aws:rolesanywhere:eu-west-1:111122223333:profile/6f1c2b3a-9d8e-4f7a-b6c5-d4e3f2a1b0c9"
                ),
            )
        },
        expected: &["spec.rolesAnywhere.trustAnchorArn", "should match"],
    },
    RejectedCase {
        name: "issuer_crl_refreshed_after_it_expires",
        sample: "issuer-local.yaml",
        mutate: |o| {
            set(
                o,
                "/spec/crl",
                json!({"validity": "1h", "refreshInterval": "2h"}),
            )
        },
        expected: &["crl.refreshInterval must be shorter than crl.validity"],
    },
    RejectedCase {
        name: "issuer_ca_duration_too_short",
        sample: "issuer-local.yaml",
        mutate: |o| set(o, "/spec/duration", json!("30m")),
        expected: &["CA duration must be at least 1h"],
    },
    RejectedCase {
        name: "revocation_with_non_hex_serial",
        sample: "revocation.yaml",
        mutate: |o| {
            remove(o, "/spec/certificateRef");
            remove(o, "/spec/reissue");
            set(o, "/spec/serialNumber", json!("not-a-serial"));
        },
        expected: &["spec.serialNumber", "should match"],
    },
    RejectedCase {
        name: "revocation_with_serial_longer_than_20_octets",
        sample: "revocation.yaml",
        mutate: |o| {
            remove(o, "/spec/certificateRef");
            remove(o, "/spec/reissue");
            set(
                o,
                "/spec/serialNumber",
                json!("0123456789abcdef0123456789abcdef0123456789"),
            );
        },
        expected: &["spec.serialNumber", "should match"],
    },
    RejectedCase {
        name: "revocation_with_unknown_reason",
        sample: "revocation.yaml",
        mutate: |o| set(o, "/spec/reason", json!("certificateHold")),
        expected: &["spec.reason", "Unsupported value: \"certificateHold\""],
    },
    RejectedCase {
        name: "revocation_with_two_targets",
        sample: "revocation.yaml",
        mutate: |o| set(o, "/spec/serialNumber", json!("0a1b2c")),
        expected: &["exactly one target must be set"],
    },
    RejectedCase {
        name: "revocation_without_target",
        sample: "revocation.yaml",
        mutate: |o| {
            remove(o, "/spec/certificateRef");
            remove(o, "/spec/reissue");
        },
        expected: &["exactly one target must be set"],
    },
    RejectedCase {
        name: "revocation_reissue_by_serial",
        sample: "revocation.yaml",
        mutate: |o| {
            remove(o, "/spec/certificateRef");
            set(o, "/spec/serialNumber", json!("0a1b2c"));
        },
        expected: &["spec.reissue needs spec.certificateRef"],
    },
    RejectedCase {
        name: "revocation_without_issuer_ref",
        sample: "revocation.yaml",
        mutate: |o| remove(o, "/spec/issuerRef"),
        expected: &["spec.issuerRef: Required value"],
    },
    RejectedCase {
        name: "binding_with_malformed_trust_anchor_arn",
        sample: "rolesanywherebinding.yaml",
        mutate: |o| {
            set(
                o,
                "/spec/trustAnchorArn",
                json!("arn:aws:rolesanywhere:eu-west-1:111122223333:trust-anchor/not-a-uuid"),
            )
        },
        expected: &["spec.trustAnchorArn", "should match"],
    },
    RejectedCase {
        name: "binding_with_profile_arn_as_role",
        sample: "rolesanywherebinding.yaml",
        mutate: |o| {
            set(
                o,
                "/spec/roleArn",
                json!(
                    "arn:aws:rolesanywhere:eu-west-1:111122223333:profile/6f1c2b3a-9d8e-4f7a-b6c5-d4e3f2a1b0c9"
                ),
            )
        },
        expected: &["spec.roleArn", "should match"],
    },
    RejectedCase {
        name: "binding_with_session_below_aws_minimum",
        sample: "rolesanywherebinding.yaml",
        mutate: |o| set(o, "/spec/sessionDurationSeconds", json!(300)),
        expected: &[
            "spec.sessionDurationSeconds",
            "greater than or equal to 900",
        ],
    },
    RejectedCase {
        name: "binding_selecting_no_pod",
        sample: "rolesanywherebinding.yaml",
        mutate: |o| remove(o, "/spec/selector"),
        expected: &["at least one of spec.selector and spec.serviceAccountName must be set"],
    },
    RejectedCase {
        name: "binding_with_two_certificate_sources",
        sample: "rolesanywherebinding.yaml",
        mutate: |o| {
            set(
                o,
                "/spec/certificateTemplate",
                json!({"issuerRef": {"name": "local-ca"}, "subject": {"commonName": "x"}, "secretName": "x-tls"}),
            )
        },
        expected: &["exactly one of spec.certificateRef and spec.certificateTemplate must be set"],
    },
    RejectedCase {
        name: "binding_template_with_invalid_certificate",
        sample: "rolesanywherebinding.yaml",
        mutate: |o| {
            remove(o, "/spec/certificateRef");
            set(
                o,
                "/spec/certificateTemplate",
                json!({"issuerRef": {"name": "local-ca"}, "subject": {}, "secretName": "x-tls"}),
            )
        },
        expected: &[
            "spec.certificateTemplate.subject",
            "subject must have at least one attribute",
        ],
    },
];

pub fn trials(cluster: &TestCluster) -> Vec<Trial> {
    let mut trials: Vec<Trial> = CASES
        .iter()
        .map(|case| {
            trial(
                &format!("schema_validation::rejects::{}", case.name),
                cluster,
                move |cluster| rejects(cluster, case),
            )
        })
        .collect();
    trials.push(trial(
        "schema_validation::rejects::revocation_spec_change",
        cluster,
        rejects_revocation_spec_change,
    ));
    trials
}

/// The message of an API error, or a failure if the call was accepted.
fn rejection_message<T>(result: Result<T, kube::Error>) -> anyhow::Result<String> {
    match result {
        Err(kube::Error::Api(status)) => {
            anyhow::ensure!(
                status.code == 422,
                "expected 422 Unprocessable Entity, got {}: {}",
                status.code,
                status.message
            );
            Ok(status.message.clone())
        }
        Err(other) => anyhow::bail!("expected a validation error, got {other}"),
        Ok(_) => anyhow::bail!("the API server accepted an invalid object"),
    }
}

async fn rejects(cluster: TestCluster, case: &'static RejectedCase) -> anyhow::Result<()> {
    let client = cluster.client().await?;
    let namespace = cluster.namespace(&client, "invalid").await?;
    let mut manifest = sample(case.sample)?;
    (case.mutate)(&mut manifest);
    let api = api_for(&client, &namespace, &manifest)?;
    let object: DynamicObject = serde_json::from_value(manifest)?;
    let message = rejection_message(api.create(&PostParams::default(), &object).await)?;
    for fragment in case.expected {
        anyhow::ensure!(
            message.contains(fragment),
            "message does not say {fragment:?}: {message}"
        );
    }
    Ok(())
}

async fn rejects_revocation_spec_change(cluster: TestCluster) -> anyhow::Result<()> {
    let client = cluster.client().await?;
    let namespace = cluster.namespace(&client, "immutable").await?;
    let manifest = sample("revocation.yaml")?;
    let api = api_for(&client, &namespace, &manifest)?;
    let name = manifest["metadata"]["name"].as_str().context("no name")?;
    let object: DynamicObject = serde_json::from_value(manifest.clone())?;
    api.create(&PostParams::default(), &object).await?;
    let change = json!({"spec": {"reason": "superseded"}});
    let message = rejection_message(
        api.patch(name, &PatchParams::default(), &Patch::Merge(&change))
            .await,
    )?;
    anyhow::ensure!(
        message.contains("a Revocation is permanent: its spec cannot be changed"),
        "unexpected message: {message}"
    );
    let stored = api.get(name).await?;
    anyhow::ensure!(
        stored.data["spec"]["reason"] == "keyCompromise",
        "the spec changed anyway"
    );
    Ok(())
}
