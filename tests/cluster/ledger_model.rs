//! A model-based test of the revocation promise: a seeded random sequence of issue, renew,
//! revoke (by serial, by reference, with and without re-issue), tampering with Revocations, their
//! status and finalizers, the CRL ConfigMap and the CA Secret, controller crashes, leader
//! failovers and Roles Anywhere outages and drift, run against the real API server, two controller
//! replicas and the emulator. After every step the invariant is checked:
//!
//! - every revoked, unexpired serial is on the published CRL and on the emulator's enabled CRL,
//!   and CreateSession refuses its certificate;
//! - no certificate that was never revoked is on either CRL;
//! - CRL numbers never go back, in the ConfigMap or in the emulator.
//!
//! The seed is printed; `IAMRA_MODEL_SEED` replays a run and `IAMRA_MODEL_STEPS` sets its length.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context;
use iamra::api::*;
use iamra::rolesanywhere::emulator::SeededArns;
use iamra::rolesanywhere::errors::CreateSessionError;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use libtest_mimic::Trial;
use serde_json::json;

use crate::cluster::{TestCluster, trial, wait_for};
use crate::issuance::{apply, secret_text, wait_certificate_ready, workload_certificate};
use crate::openssl;
use crate::processes::TestProcess;
use crate::revocation::{RevocationTarget, Scene, scene, session, start_emulator};

/// Steps of one run unless `IAMRA_MODEL_STEPS` says otherwise: enough to visit every kind of
/// step several times within about two minutes.
const DEFAULT_STEPS: usize = 36;
const CERTIFICATES: [&str; 3] = ["alpha", "beta", "gamma"];
/// How long the system may take to converge after a step (a failover takes a lease duration).
const CONVERGE: Duration = Duration::from_secs(45);
const SHORT_LEASE: &[&str] = &[
    "--leader-election-lease-duration=3s",
    "--leader-election-renew-deadline=2s",
    "--leader-election-retry-period=1s",
    "--crl-drift-check-interval=2s",
];

pub fn trials(cluster: &TestCluster) -> Vec<Trial> {
    vec![trial(
        "ledger_model::random_sequences_never_unrevoke",
        cluster,
        random_sequences_never_unrevoke,
    )]
}

/// splitmix64: a seeded sequence, so a failing run can be replayed from its seed.
struct Sequence(u64);

impl Sequence {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len())])
    }
}

#[derive(Clone, Copy, Debug)]
enum Step {
    Renew,
    RevokeBySerial,
    RevokeByReference { reissue: bool },
    ForgeRevocationStatus,
    WipeRevocationStatus,
    DeleteRevocationWithoutFinalizer,
    GarbleCrlConfigMap,
    LoseAndRestoreCaSecret,
    RestartController,
    FailOverLeader,
    RolesAnywhereOutage,
    RolesAnywhereDrift,
}

const STEPS: [Step; 12] = [
    Step::Renew,
    Step::RevokeBySerial,
    Step::RevokeByReference { reissue: false },
    Step::RevokeByReference { reissue: true },
    Step::ForgeRevocationStatus,
    Step::WipeRevocationStatus,
    Step::DeleteRevocationWithoutFinalizer,
    Step::GarbleCrlConfigMap,
    Step::LoseAndRestoreCaSecret,
    Step::RestartController,
    Step::FailOverLeader,
    Step::RolesAnywhereOutage,
];

/// What the test knows: every certificate issued (with its key, to try it), what was revoked.
#[derive(Default)]
struct Model {
    issued: BTreeMap<String, (String, String, String)>,
    current: BTreeMap<String, String>,
    revoked: BTreeSet<String>,
    revocations: Vec<String>,
    /// Revocations created so far, for unique names (deleted ones leave the list).
    created: usize,
    last_crl_number: i64,
    last_emulator_number: i64,
    violations: Vec<String>,
}

struct World<'a> {
    cluster: &'a TestCluster,
    s: Scene,
    replicas: Vec<(String, TestProcess)>,
    replica_count: usize,
    emulator_address: std::net::SocketAddr,
    emulator: Option<iamra::rolesanywhere::emulator::RunningEmulator>,
    state_file: std::path::PathBuf,
    arns: SeededArns,
    ca_pem: String,
}

impl World<'_> {
    fn endpoint(&self) -> String {
        format!("http://{}", self.emulator_address)
    }

    fn start_replica(&mut self) -> anyhow::Result<()> {
        self.replica_count += 1;
        let name = format!("model-{}", self.replica_count);
        let endpoint = self.endpoint();
        let process = self.cluster.start_controller_with(
            &self.s.namespace,
            SHORT_LEASE,
            &[
                ("POD_NAME", name.as_str()),
                ("IAMRA_ROLESANYWHERE_ENDPOINT", endpoint.as_str()),
            ],
        )?;
        self.replicas.push((name, process));
        Ok(())
    }

    fn emulator(&self) -> anyhow::Result<&iamra::rolesanywhere::emulator::RunningEmulator> {
        self.emulator.as_ref().context("the emulator is down")
    }

    async fn record_issued(
        &self,
        model: &mut Model,
        name: &str,
        revision: i64,
    ) -> anyhow::Result<()> {
        let ready = wait_certificate_ready(&self.s.certificates, name, revision).await?;
        let serial = ready
            .status
            .and_then(|s| s.serial_number)
            .context("serial")?;
        let secret = self.s.secrets.get(&format!("{name}-tls")).await?;
        model.issued.insert(
            serial.clone(),
            (
                name.to_string(),
                secret_text(&secret, "tls.crt")?,
                secret_text(&secret, "tls.key")?,
            ),
        );
        model.current.insert(name.to_string(), serial);
        Ok(())
    }

    async fn revision(&self, name: &str) -> anyhow::Result<i64> {
        Ok(self
            .s
            .certificates
            .get(name)
            .await?
            .status
            .and_then(|s| s.revision)
            .unwrap_or(0))
    }

    async fn revoke_random_serial(
        &self,
        model: &mut Model,
        sequence: &mut Sequence,
    ) -> anyhow::Result<()> {
        let serials: Vec<String> = model.issued.keys().cloned().collect();
        let serial = sequence.pick(&serials).context("serials")?.clone();
        model.created += 1;
        let name = format!("serial-{}", model.created);
        self.s
            .revoke(&name, RevocationTarget::Serial(&serial), false)
            .await?;
        model.revocations.push(name);
        model.revoked.insert(serial);
        Ok(())
    }

    async fn run(
        &mut self,
        step: Step,
        model: &mut Model,
        sequence: &mut Sequence,
    ) -> anyhow::Result<()> {
        match step {
            Step::Renew => {
                let name = *sequence.pick(&CERTIFICATES).context("names")?;
                let revision = self.revision(name).await?;
                let mut certificate = self.s.certificates.get(name).await?;
                if let Some(subject) = certificate.spec.subject.as_mut() {
                    subject.organizational_unit = Some(format!("r{}", sequence.next() % 1000));
                }
                apply(
                    &self.s.certificates,
                    &WorkloadCertificate::new(name, certificate.spec),
                )
                .await?;
                self.record_issued(model, name, revision + 1).await?;
            }
            Step::RevokeBySerial => self.revoke_random_serial(model, sequence).await?,
            Step::RevokeByReference { reissue } => {
                let certificate = *sequence.pick(&CERTIFICATES).context("names")?;
                let revision = self.revision(certificate).await?;
                model.created += 1;
                let name = format!("ref-{}", model.created);
                self.s
                    .revoke(&name, RevocationTarget::Certificate(certificate), reissue)
                    .await?;
                // Every certificate issued for it so far (their keys differ: rotation Always).
                for (serial, (owner, _, _)) in &model.issued {
                    if owner == certificate {
                        model.revoked.insert(serial.clone());
                    }
                }
                model.revocations.push(name.clone());
                if reissue {
                    self.record_issued(model, certificate, revision + 1).await?;
                } else {
                    // Wait for acceptance before anything else re-issues the certificate.
                    self.s.wait_revocation_ready(&name).await?;
                }
            }
            Step::ForgeRevocationStatus | Step::WipeRevocationStatus => {
                let Some(name) = sequence.pick(&model.revocations).cloned() else {
                    return Ok(());
                };
                let healthy: Vec<String> = model
                    .current
                    .values()
                    .filter(|s| !model.revoked.contains(*s))
                    .cloned()
                    .collect();
                let patch = match step {
                    Step::WipeRevocationStatus => json!({"status": null}),
                    _ => json!({"status": {
                        "serialNumber": sequence.pick(&healthy).cloned().unwrap_or_else(|| "é".into()),
                        "certificateNotAfter": "2000-01-01T00:00:00Z",
                        "revokedCertificates": [],
                    }}),
                };
                self.s
                    .revocations
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
            Step::DeleteRevocationWithoutFinalizer => {
                if model.revocations.is_empty() {
                    return Ok(());
                }
                let name = model
                    .revocations
                    .remove(sequence.below(model.revocations.len()));
                let patch = json!({"metadata": {"finalizers": null}});
                self.s
                    .revocations
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                self.s
                    .revocations
                    .delete(&name, &DeleteParams::default())
                    .await?;
            }
            Step::GarbleCrlConfigMap => {
                let patch = json!({"binaryData": {"ca.crl": "AAAA"}, "data": {"ca.crl.pem": "x"}});
                self.s
                    .config_maps
                    .patch("ca-crl", &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
            Step::LoseAndRestoreCaSecret => {
                let mut secret = self.s.secrets.get("ca-key").await?;
                self.s
                    .secrets
                    .delete("ca-key", &DeleteParams::default())
                    .await?;
                tokio::time::sleep(Duration::from_millis(500)).await;
                secret.metadata = kube::api::ObjectMeta {
                    name: secret.metadata.name.clone(),
                    labels: secret.metadata.labels.clone(),
                    annotations: secret.metadata.annotations.clone(),
                    ..Default::default()
                };
                // Restored from a backup; a CA the trust anchor does not know is never made.
                self.s
                    .secrets
                    .create(&PostParams::default(), &secret)
                    .await?;
            }
            Step::RestartController => {
                let index = sequence.below(self.replicas.len());
                let (_, process) = self.replicas.remove(index);
                process.kill();
                self.start_replica()?;
            }
            Step::FailOverLeader => {
                let leases: Api<Lease> = Api::namespaced(self.s.client.clone(), &self.s.namespace);
                let holder = leases
                    .get_opt("iamra-controller")
                    .await?
                    .and_then(|l| l.spec)
                    .and_then(|s| s.holder_identity);
                if let Some(index) = self
                    .replicas
                    .iter()
                    .position(|(name, _)| Some(name) == holder.as_ref())
                {
                    let (_, process) = self.replicas.remove(index);
                    process.kill();
                    self.start_replica()?;
                }
            }
            Step::RolesAnywhereOutage => {
                if let Some(emulator) = self.emulator.take() {
                    emulator.shutdown().await;
                }
                // A revocation while Roles Anywhere is down, then it comes back.
                self.revoke_random_serial(model, sequence).await?;
                tokio::time::sleep(Duration::from_millis(1500)).await;
                self.emulator = Some(
                    start_emulator(self.emulator_address, Some(self.state_file.clone())).await?,
                );
            }
            Step::RolesAnywhereDrift => {
                self.emulator()?.shared.mutate(|state| {
                    state.crls.values_mut().for_each(|crl| crl.enabled = false);
                    Ok(())
                })?;
            }
        }
        Ok(())
    }

    /// The invariant, waited for (the system converges after each step); what still does not
    /// hold at the deadline is a violation.
    async fn check(&self, model: &mut Model, step_index: usize, step: Step) -> anyhow::Result<()> {
        let expected: BTreeSet<String> = model.revoked.clone();
        let healthy: BTreeSet<String> = model
            .issued
            .keys()
            .filter(|s| !model.revoked.contains(*s))
            .cloned()
            .collect();
        let outcome = wait_for("the invariant", CONVERGE, || async {
            let (pem, number) = self.s.published_crl().await?;
            openssl::verify_crl(&self.ca_pem, &pem)?;
            let on_crl: BTreeSet<String> = openssl::crl_serials(&pem)?.into_iter().collect();
            let emulator = self.emulator()?;
            let imported = emulator.shared.read(|state| {
                state
                    .crls
                    .values()
                    .filter(|crl| crl.enabled && crl.trust_anchor_arn == self.arns.trust_anchor_arn)
                    .map(|crl| String::from_utf8_lossy(&crl.crl_data).into_owned())
                    .collect::<Vec<_>>()
            });
            let Some(imported) = imported.first() else {
                return Ok(None);
            };
            let in_emulator: BTreeSet<String> =
                openssl::crl_serials(imported)?.into_iter().collect();
            let emulator_number = openssl::crl_number(imported)?;
            let complete = expected.is_subset(&on_crl) && expected.is_subset(&in_emulator);
            Ok(complete.then_some((on_crl, in_emulator, number, emulator_number)))
        })
        .await;
        let label = format!("step {step_index} ({step:?})");
        let (on_crl, in_emulator, number, emulator_number) = match outcome {
            Ok(state) => state,
            Err(error) => {
                model
                    .violations
                    .push(format!("{label}: revoked serials missing: {error:#}"));
                return Ok(());
            }
        };
        for serial in healthy.intersection(&on_crl.union(&in_emulator).cloned().collect()) {
            model
                .violations
                .push(format!("{label}: never-revoked {serial} is on a CRL"));
        }
        if number < model.last_crl_number {
            model.violations.push(format!(
                "{label}: CRL number went back {} -> {number}",
                model.last_crl_number
            ));
        }
        if emulator_number < model.last_emulator_number {
            model.violations.push(format!(
                "{label}: the emulator's CRL number went back {} -> {emulator_number}",
                model.last_emulator_number
            ));
        }
        model.last_crl_number = number;
        model.last_emulator_number = emulator_number;
        let emulator = self.emulator()?;
        for serial in &expected {
            let Some((_, pem, key)) = model.issued.get(serial) else {
                continue;
            };
            match session(emulator, &self.arns, pem, key).await {
                Err(CreateSessionError::CertificateRevoked { .. }) => {}
                other => model
                    .violations
                    .push(format!("{label}: revoked {serial} got {other:?}")),
            }
        }
        Ok(())
    }
}

async fn random_sequences_never_unrevoke(cluster: TestCluster) -> anyhow::Result<()> {
    let seed = std::env::var("IAMRA_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let steps = std::env::var("IAMRA_MODEL_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_STEPS);
    eprintln!("ledger_model: seed {seed} (IAMRA_MODEL_SEED={seed} replays it), {steps} steps");
    let mut sequence = Sequence(seed);
    let s = scene(&cluster, "ledger-model").await?;
    let state = tempfile::tempdir()?;
    let state_file = state.path().join("emulator.json");
    let emulator = start_emulator("127.0.0.1:0".parse()?, Some(state_file.clone())).await?;
    let emulator_address = emulator.addr;
    let mut world = World {
        cluster: &cluster,
        s,
        replicas: Vec::new(),
        replica_count: 0,
        emulator_address,
        emulator: Some(emulator),
        state_file,
        arns: SeededArns {
            trust_anchor_arn: String::new(),
            profile_arn: String::new(),
            role_arns: Vec::new(),
        },
        ca_pem: String::new(),
    };
    world.start_replica()?;
    world.start_replica()?;
    let (ca_pem, arns) = world.s.issuer(world.emulator.as_ref(), None).await?;
    world.ca_pem = ca_pem;
    world.arns = arns.context("seeded")?;
    let mut model = Model::default();
    for name in CERTIFICATES {
        apply(
            &world.s.certificates,
            &workload_certificate(name, "ca", WorkloadKeyAlgorithm::EcdsaP256),
        )
        .await?;
        world.record_issued(&mut model, name, 1).await?;
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let kinds: Vec<Step> = STEPS
        .iter()
        .copied()
        .chain([Step::RolesAnywhereDrift])
        .collect();
    for index in 0..steps {
        let step = *sequence.pick(&kinds).context("steps")?;
        *counts.entry(format!("{step:?}")).or_default() += 1;
        world
            .run(step, &mut model, &mut sequence)
            .await
            .with_context(|| format!("seed {seed}, step {index} ({step:?})"))?;
        world.check(&mut model, index, step).await?;
    }
    eprintln!(
        "ledger_model: seed {seed}: {steps} steps {counts:?}, {} certificates issued, {} revoked, {} violations",
        model.issued.len(),
        model.revoked.len(),
        model.violations.len()
    );
    anyhow::ensure!(
        model.violations.is_empty(),
        "seed {seed}: {} violation(s):\n{}",
        model.violations.len(),
        model.violations.join("\n")
    );
    Ok(())
}
