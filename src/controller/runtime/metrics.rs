//! The controller's Prometheus metrics, served at `/metrics` by every replica.
//!
//! Certificate gauges are computed at scrape time from the WorkloadCertificate controller's
//! own cache, so a deleted certificate never leaves a stale series behind; a standby replica
//! runs no controller and reports none (only the leader knows the certificates).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, OnceLock};

use kube::ResourceExt;
use kube::runtime::reflector::Store;

use crate::api::{CONDITION_READY, WorkloadCertificate};
use crate::controller::certificate::CONDITION_ISSUING;
use crate::controller::conditions::is_true;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use crate::metrics::{CounterVec, DURATION_BUCKETS, Histogram, Labels, encode, register};
use crate::rolesanywhere::crl_import::ROLES_ANYWHERE_REQUESTS;
use crate::signer::KMS_REQUESTS;

/// Time from the decision to issue until the Secret and status are written.
pub static ISSUANCE_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    Histogram::new(
        "iamra_certificate_issuance_duration_seconds",
        "Seconds to issue a WorkloadCertificate: key, signature, Secret and status.",
        DURATION_BUCKETS,
    )
});

/// Building and signing one CRL (a KMS Sign included).
pub static CRL_SIGNING_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    Histogram::new(
        "iamra_crl_signing_duration_seconds",
        "Seconds to build and sign one CRL.",
        DURATION_BUCKETS,
    )
});

/// Failed reconciles by controller and the error's metric label.
pub static RECONCILE_ERRORS: LazyLock<CounterVec<2>> = LazyLock::new(|| {
    CounterVec::new(
        "iamra_reconcile_errors_total",
        "Failed reconciles by controller (issuer, workloadcertificate, revocation) and reason.",
        ["controller", "reason"],
    )
});

/// Whether this replica runs the reconcilers (holds the Lease, or runs without election).
static LEADER: AtomicBool = AtomicBool::new(false);

/// The WorkloadCertificate controller's cache, once this replica reconciles.
static CERTIFICATES: OnceLock<Store<WorkloadCertificate>> = OnceLock::new();

/// The states `iamra_certificates` always reports, so a dashboard sees zeros, not gaps.
const CERTIFICATE_STATES: [&str; 3] = ["ready", "issuing", "failed"];

pub fn set_leader(leader: bool) {
    LEADER.store(leader, Ordering::Relaxed);
}

pub fn watch_certificates(store: Store<WorkloadCertificate>) {
    // Set once per process: a replica that loses the lease exits rather than re-electing.
    let _ = CERTIFICATES.set(store);
}

/// The state label of one certificate. A certificate being renewed is still `ready`: its
/// current certificate is valid.
fn certificate_state(certificate: &WorkloadCertificate) -> &'static str {
    let Some(status) = &certificate.status else {
        return "issuing";
    };
    if is_true(&status.conditions, CONDITION_READY) {
        "ready"
    } else if is_true(&status.conditions, CONDITION_ISSUING) || status.conditions.is_empty() {
        "issuing"
    } else {
        "failed"
    }
}

/// The exposition text of every controller metric.
pub fn render() -> String {
    let mut registry = Registry::default();
    register(
        &mut registry,
        "iamra_leader",
        "1 when this replica holds the leader Lease and runs the reconcilers.",
        ConstGauge::new(i64::from(LEADER.load(Ordering::Relaxed))),
    );
    register_certificates(&mut registry, jiff::Timestamp::now().as_second());
    ISSUANCE_SECONDS.register(&mut registry);
    CRL_SIGNING_SECONDS.register(&mut registry);
    RECONCILE_ERRORS.register(&mut registry);
    KMS_REQUESTS.register(&mut registry);
    ROLES_ANYWHERE_REQUESTS.register(&mut registry);
    encode(&registry)
}

/// The certificate gauges, computed from the controller's cache at this scrape.
fn register_certificates(registry: &mut Registry, now: i64) {
    let certificates = CERTIFICATES.get().map(Store::state).unwrap_or_default();
    let by_state = Family::<Labels, Gauge>::default();
    for state in CERTIFICATE_STATES {
        let count = certificates
            .iter()
            .filter(|c| certificate_state(c) == state)
            .count();
        by_state
            .get_or_create(&vec![("state", state.to_string())])
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
    register(
        registry,
        "iamra_certificates",
        "WorkloadCertificates by state (reported by the leader).",
        by_state,
    );
    let expiry = Family::<Labels, Gauge>::default();
    for certificate in &certificates {
        let Some(not_after) = certificate
            .status
            .as_ref()
            .and_then(|s| s.not_after.as_ref())
        else {
            continue;
        };
        let labels = vec![
            ("namespace", certificate.namespace().unwrap_or_default()),
            ("name", certificate.name_any()),
        ];
        expiry
            .get_or_create(&labels)
            .set(not_after.0.as_second() - now);
    }
    register(
        registry,
        "iamra_certificate_expiry_seconds",
        "Seconds until the current certificate of a WorkloadCertificate expires.",
        expiry,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::WorkloadCertificateStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn with_conditions(conditions: &[(&str, &str)]) -> WorkloadCertificate {
        let mut certificate: WorkloadCertificate = serde_json::from_value(serde_json::json!({
            "apiVersion": "iamra.dev/v1alpha1",
            "kind": "WorkloadCertificate",
            "metadata": {"name": "c", "namespace": "n"},
            "spec": {"issuerRef": {"name": "i"}, "subject": {}, "secretName": "s"},
        }))
        .expect("a valid WorkloadCertificate");
        certificate.status = Some(WorkloadCertificateStatus {
            conditions: conditions
                .iter()
                .map(|(type_, status)| Condition {
                    type_: type_.to_string(),
                    status: status.to_string(),
                    reason: "R".into(),
                    message: String::new(),
                    observed_generation: None,
                    last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
                })
                .collect(),
            ..Default::default()
        });
        certificate
    }

    #[test]
    fn certificate_states() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "issuing"),
            (&[("Ready", "False"), ("Issuing", "True")], "issuing"),
            (&[("Ready", "True"), ("Issuing", "True")], "ready"),
            (&[("Ready", "True"), ("Issuing", "False")], "ready"),
            (&[("Ready", "False"), ("Issuing", "False")], "failed"),
        ];
        for (conditions, expected) in cases {
            assert_eq!(
                certificate_state(&with_conditions(conditions)),
                *expected,
                "{conditions:?}"
            );
        }
    }
}
