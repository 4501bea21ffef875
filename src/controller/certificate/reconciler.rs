//! WorkloadCertificate reconciler: issue into the Secret, renew, re-issue when the Secret is
//! deleted, tampered with or stale, and report it all in the status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use rcgen::{KeyPair, PublicKeyData};
use serde_json::json;
use tracing::instrument;

use crate::api::{
    CONDITION_READY, IssuedCertificate, IssuerKind, PrivateKeyRotationPolicy, WorkloadCertificate,
    WorkloadCertificateSpec, WorkloadCertificateStatus, WorkloadKeyAlgorithm, parse_duration,
};
use crate::controller::ca::{LoadedCa, load_ca};
use crate::controller::certificate::*;
use crate::controller::certificate::{
    IssuanceInput, IssuanceTrigger, SecretState, Verdict, decide,
};
use crate::controller::certificate::{IssuerKey, KnownSecret, SecretFacts};
use crate::controller::conditions::{condition, is_true, status_changed};
use crate::controller::context::Context;
use crate::controller::error::Error;
use crate::controller::issuer::CaIssuer;
use crate::controller::policy::identity::{self, Identity, Requester};
use crate::controller::policy::minimums::BelowMinimum;
use crate::controller::problem::Problem;
use crate::controller::reasons;
use crate::controller::revocation::REISSUE_ANNOTATION;
use crate::controller::runtime::metrics::ISSUANCE_SECONDS;
use crate::controller::status::apply_status;
use crate::pki::{
    LeafCertificateSpec, NOT_BEFORE_BACKDATE, authority_id, generate_key, issue_leaf,
    key_fingerprint, key_matches_algorithm, parse_certificate_pem, random_serial_number,
};
use crate::signer::CaSigner;

/// Condition type set while a certificate is being issued.
pub const CONDITION_ISSUING: &str = "Issuing";
/// Lifetime when the spec names none.
pub const DEFAULT_DURATION: &str = "24h";
/// A Ready certificate is looked at again at least this often, whatever its renewal time.
const MAX_REQUEUE: Duration = Duration::from_secs(3600);

/// The spec's durations and choices with defaults applied.
#[derive(Clone, Debug)]
struct CertificateSettings {
    duration: Duration,
    renew_before: Duration,
    key_algorithm: WorkloadKeyAlgorithm,
    rotation: PrivateKeyRotationPolicy,
}

impl CertificateSettings {
    fn from_spec(spec: &WorkloadCertificateSpec) -> Result<Self, String> {
        let duration = parse_duration(spec.duration.as_deref().unwrap_or(DEFAULT_DURATION))
            .map_err(|e| e.to_string())?;
        let renew_before = match &spec.renew_before {
            Some(text) => parse_duration(text).map_err(|e| e.to_string())?,
            None => duration / 3,
        };
        if renew_before >= duration {
            return Err(format!(
                "renewBefore ({renew_before:?}) must be shorter than duration ({duration:?})"
            ));
        }
        Ok(Self {
            duration,
            renew_before,
            key_algorithm: spec.key_algorithm.unwrap_or_default(),
            rotation: spec.private_key_rotation_policy.unwrap_or_default(),
        })
    }
}

/// Hash of what the certificate is issued for; a change of any of it (an identity policy's
/// included) re-issues.
fn spec_hash(
    spec: &WorkloadCertificateSpec,
    settings: &CertificateSettings,
    identity: &Identity,
) -> String {
    let relevant = json!({
        "issuer": spec.issuer_ref.name,
        "issuerKind": spec.issuer_ref.kind,
        "subject": identity.subject,
        "uris": identity.uris,
        "dnsNames": identity.dns_names,
        "keyAlgorithm": settings.key_algorithm,
        "duration": settings.duration.as_secs(),
        "renewBefore": settings.renew_before.as_secs(),
    });
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, relevant.to_string().as_bytes());
    hex::encode(&digest.as_ref()[..16])
}

/// What one issuance needs besides the Secret.
struct Issuance<'a> {
    trigger: IssuanceTrigger,
    ca: &'a LoadedCa,
    /// The subject and SANs the certificate carries.
    identity: &'a Identity,
    crl_distribution_point: Option<String>,
    settings: &'a CertificateSettings,
    spec_hash: String,
}

/// The workload Secret as one reconcile sees it.
struct CurrentSecret {
    facts: SecretFacts,
    /// The Secret itself, when this reconcile read it (the cache keeps no keys).
    body: Option<Secret>,
}

#[instrument(skip(certificate, ctx), fields(namespace = certificate.namespace(), name = certificate.name_any()))]
pub async fn reconcile(
    certificate: Arc<WorkloadCertificate>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let namespace = certificate
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let reconciler = Reconciler {
        api: Api::namespaced(ctx.client.clone(), &namespace),
        secrets: Api::namespaced(ctx.client.clone(), &namespace),
        certificate,
        ctx,
    };
    let uid = reconciler.certificate.uid().unwrap_or_default();
    match reconciler.run().await {
        Ok(action) => {
            reconciler.ctx.backoff.reset(&uid);
            Ok(action)
        }
        Err(ProblemOrError::Problem(problem)) => reconciler.report(problem).await,
        Err(ProblemOrError::Error(error)) => Err(error),
    }
}

enum ProblemOrError {
    Problem(Problem),
    Error(Error),
}

impl<E: Into<Error>> From<E> for ProblemOrError {
    fn from(error: E) -> Self {
        ProblemOrError::Error(error.into())
    }
}

struct Reconciler {
    api: Api<WorkloadCertificate>,
    secrets: Api<Secret>,
    certificate: Arc<WorkloadCertificate>,
    ctx: Arc<Context>,
}

impl Reconciler {
    fn previous_status(&self) -> WorkloadCertificateStatus {
        self.certificate.status.clone().unwrap_or_default()
    }

    async fn run(&self) -> Result<Action, ProblemOrError> {
        let spec = &self.certificate.spec;
        let settings = CertificateSettings::from_spec(spec).map_err(|message| {
            ProblemOrError::Problem(Problem::until_changed(reasons::INVALID_SPEC, message))
        })?;
        // Checked before anything is read: a refused spec costs the API server nothing more.
        self.ctx
            .platform
            .minimums
            .check_certificate(settings.duration, settings.renew_before)
            .map_err(|below| {
                ProblemOrError::Problem(Problem::until_changed(
                    BelowMinimum::REASON,
                    below.to_string(),
                ))
            })?;
        self.ctx.reads.wait_until_filled().await;
        let (ca, crl_distribution_point, identity) = self.issuer_ca().await?;
        let secret = self.current_secret(&ca, settings.key_algorithm).await?;
        if let Some(secret) = &secret
            && !secret.facts.owned
        {
            return Err(ProblemOrError::Problem(Problem::permanent(
                reasons::SECRET_IN_USE,
                format!(
                    "Secret {} exists and was not written for this WorkloadCertificate; it is left untouched",
                    spec.secret_name
                ),
            )));
        }
        let state = secret.as_ref().map(|s| s.facts.state.clone());
        let hash = spec_hash(spec, &settings, &identity);
        let previous = self.previous_status();
        let renewal_time = state
            .as_ref()
            .map(|s| s.not_after - settings.renew_before.as_secs() as i64);
        let input = IssuanceInput {
            secret: state.clone(),
            status_serial: previous.serial_number.clone(),
            status_revision: previous.revision.unwrap_or(0),
            spec_hash: hash.clone(),
            renewal_time,
            reissue_serial: self
                .certificate
                .annotations()
                .get(REISSUE_ANNOTATION)
                .cloned(),
            now: self.ctx.clock.unix_seconds(),
        };
        match decide(&input) {
            Verdict::UpToDate | Verdict::Adopt => {
                let Some(secret) = secret else {
                    return Err(ProblemOrError::Error(Error::MissingObjectKey("secret")));
                };
                self.record_current(&secret.facts, &settings).await
            }
            Verdict::Issue(trigger) => {
                let issuance = Issuance {
                    trigger,
                    ca: &ca,
                    identity: &identity,
                    crl_distribution_point,
                    settings: &settings,
                    spec_hash: hash,
                };
                self.issue(issuance, secret).await
            }
        }
    }

    /// The workload Secret: what this controller learned of it when the watch shows the same
    /// version, otherwise read. With neither a watched nor a known Secret, there is none.
    async fn current_secret(
        &self,
        ca: &LoadedCa,
        algorithm: WorkloadKeyAlgorithm,
    ) -> Result<Option<CurrentSecret>, Error> {
        let namespace = self.certificate.namespace().unwrap_or_default();
        let name = &self.certificate.spec.secret_name;
        let authority = authority_id(&ca.certificate.public_key_info);
        let watched = self.ctx.reads.managed_secret_version(&namespace, name);
        match (&watched, self.ctx.reads.secret(&namespace, name)) {
            (Some(version), Some(KnownSecret::Read(facts)))
                if *version == facts.resource_version
                    && facts.authority == authority
                    && facts.key_algorithm == algorithm =>
            {
                return Ok(Some(CurrentSecret { facts, body: None }));
            }
            (None, None) => return Ok(None),
            _ => {}
        }
        let Some(secret) = self.secrets.get_opt(name).await? else {
            self.ctx.reads.forget_secret(&namespace, name);
            return Ok(None);
        };
        let facts = inspect_secret(&secret, &self.certificate.name_any(), ca, algorithm);
        self.ctx
            .reads
            .remember_secret(&namespace, name, KnownSecret::Read(facts.clone()));
        Ok(Some(CurrentSecret {
            facts,
            body: Some(secret),
        }))
    }

    /// The issuer's CA, loaded once and used while the issuer and its CA Secret stay as they
    /// were (see [`CachedReads::ca`]).
    async fn cached_ca(&self, issuer: &CaIssuer) -> Result<Arc<LoadedCa>, Problem> {
        let key = IssuerKey {
            kind: issuer.kind,
            namespace: issuer.ledger_namespace().to_string(),
            name: issuer.name.clone(),
        };
        let secret_version = issuer.ca_secret_name().and_then(|name| {
            self.ctx
                .reads
                .managed_secret_version(&issuer.resource_namespace, name)
        });
        let now = std::time::Instant::now();
        if let Some(ca) = self.ctx.reads.ca(
            &key,
            &issuer.uid,
            issuer.generation,
            secret_version.as_deref(),
            now,
        ) {
            return Ok(ca);
        }
        let ca = Arc::new(load_ca(&self.ctx, issuer, false).await?);
        self.ctx.reads.remember_ca(
            key,
            issuer.uid.clone(),
            issuer.generation,
            secret_version,
            ca.clone(),
            now,
        );
        Ok(ca)
    }

    /// The issuer's CA, CRL distribution point and the identity the certificate gets, or the
    /// problem that keeps this certificate waiting (or refused).
    async fn issuer_ca(&self) -> Result<(Arc<LoadedCa>, Option<String>, Identity), ProblemOrError> {
        let reference = &self.certificate.spec.issuer_ref;
        let waiting = |reason: &'static str, message: String| {
            ProblemOrError::Problem(Problem::permanent(reason, message))
        };
        let namespace = self.certificate.namespace().unwrap_or_default();
        let issuer = match reference.kind() {
            IssuerKind::Issuer => self
                .ctx
                .reads
                .issuer(&namespace, &reference.name)
                .map(|issuer| CaIssuer::from_issuer(&issuer)),
            IssuerKind::ClusterIssuer => {
                self.ctx
                    .reads
                    .cluster_issuer(&reference.name)
                    .map(|issuer| {
                        CaIssuer::from_cluster_issuer(&issuer, &self.ctx.cluster_resource_namespace)
                    })
            }
        };
        let Some(issuer) = issuer else {
            return Err(waiting(
                reasons::ISSUER_NOT_FOUND,
                format!("{} {} does not exist", reference.kind(), reference.name),
            ));
        };
        let identity = self.identity(&issuer).await?;
        let issuer_conditions = issuer
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        if !is_true(issuer_conditions, CONDITION_READY) {
            return Err(waiting(
                reasons::ISSUER_NOT_READY,
                format!("{} is not Ready", issuer.display()),
            ));
        }
        let ca = self.cached_ca(&issuer).await.map_err(|problem| {
            waiting(
                reasons::ISSUER_NOT_READY,
                format!("{}: {}", issuer.display(), problem.message),
            )
        })?;
        let crl_distribution_point = issuer
            .spec
            .crl
            .as_ref()
            .and_then(|crl| crl.distribution_point_url.clone());
        Ok((ca, crl_distribution_point, identity))
    }

    /// The identity the certificate gets: what the spec says under a namespaced Issuer (the
    /// team's own CA); under a ClusterIssuer, what its identity policy derives from the namespace
    /// and service account, refused when the namespace is not selected or the spec asks for more.
    async fn identity(&self, issuer: &CaIssuer) -> Result<Identity, ProblemOrError> {
        let spec = &self.certificate.spec;
        let refused = |reason: &'static str, message: String| {
            ProblemOrError::Problem(Problem::until_changed(reason, message))
        };
        let Some(tenancy) = &issuer.tenancy else {
            let Some(subject) = spec.subject.clone() else {
                return Err(refused(
                    reasons::INVALID_SPEC,
                    "spec.subject is required with an Issuer".into(),
                ));
            };
            return Ok(Identity {
                subject,
                uris: spec.uris.clone(),
                dns_names: spec.dns_names.clone(),
            });
        };
        let namespace = self.certificate.namespace().unwrap_or_default();
        let labels = match self.ctx.reads.namespace_labels(&namespace) {
            Some(labels) => labels,
            // Not seen yet by the watch (just created): asked once.
            None => Api::<Namespace>::all(self.ctx.client.clone())
                .get_opt(&namespace)
                .await?
                .map(|ns| ns.labels().clone())
                .unwrap_or_default(),
        };
        use kube::core::SelectorExt;
        let selected = kube::core::Selector::try_from(tenancy.namespace_selector.clone())
            .map(|selector| selector.matches(&labels))
            .unwrap_or(false);
        if !selected {
            return Err(refused(
                reasons::NAMESPACE_NOT_ALLOWED,
                format!(
                    "{}'s namespaceSelector does not select namespace {namespace}: the platform team decides which namespaces may use it",
                    issuer.display()
                ),
            ));
        }
        let Some(service_account) = &spec.service_account_name else {
            return Err(refused(
                reasons::INVALID_SPEC,
                format!(
                    "spec.serviceAccountName is required with {}: the identity is derived from it",
                    issuer.display()
                ),
            ));
        };
        let requester = Requester {
            namespace: &namespace,
            service_account,
            name: &self.certificate.name_any(),
        };
        let identity = identity::render(&tenancy.identity, &requester)
            .map_err(|message| refused(reasons::IDENTITY_POLICY_VIOLATION, message))?;
        identity::check_request(spec, &identity, &issuer.display())
            .map_err(|message| refused(reasons::IDENTITY_POLICY_VIOLATION, message))?;
        Ok(identity)
    }

    /// Writes the status for the certificate already in the Secret (up to date, or adopted
    /// after a restart lost the status write).
    async fn record_current(
        &self,
        facts: &SecretFacts,
        settings: &CertificateSettings,
    ) -> Result<Action, ProblemOrError> {
        let previous = self.previous_status();
        let state = &facts.state;
        let revision = state
            .annotated_revision
            .unwrap_or(0)
            .max(previous.revision.unwrap_or(0));
        let serial_hex = state
            .certificate_serial
            .clone()
            .ok_or(Error::MissingObjectKey("tls.crt"))?;
        let renewal = state.not_after - settings.renew_before.as_secs() as i64;
        let generation = self.certificate.metadata.generation;
        // The conditions the issuance wrote for this very certificate stay as they are (their
        // message names the trigger); otherwise, or when they say anything else, they are set.
        let already_reported = previous.serial_number.as_deref() == Some(serial_hex.as_str())
            && previous.revision == Some(revision)
            && previous.observed_generation == generation
            && previous.conditions.len() == 2
            && previous.conditions.iter().all(|c| {
                c.observed_generation == generation
                    && match c.type_.as_str() {
                        CONDITION_READY => c.status == "True",
                        CONDITION_ISSUING => c.status == "False",
                        _ => false,
                    }
            });
        let conditions = if already_reported {
            previous.conditions.clone()
        } else {
            vec![
                condition(
                    &previous.conditions,
                    CONDITION_READY,
                    true,
                    reasons::ISSUED,
                    format!("Certificate {serial_hex} is valid and up to date"),
                    generation,
                ),
                condition(
                    &previous.conditions,
                    CONDITION_ISSUING,
                    false,
                    reasons::UP_TO_DATE,
                    "No issuance needed",
                    generation,
                ),
            ]
        };
        let status = WorkloadCertificateStatus {
            conditions,
            observed_generation: generation,
            serial_number: Some(serial_hex.clone()),
            not_before: timestamp(facts.not_before),
            not_after: timestamp(state.not_after),
            renewal_time: timestamp(renewal),
            revision: Some(revision),
        };
        if self.status_needs_writing(&previous, &status) {
            if previous.serial_number.as_deref() != Some(serial_hex.as_str()) {
                tracing::info!(serial = %serial_hex, revision, "adopted the certificate already in the Secret");
            }
            self.patch_status(&previous, &status).await?;
        }
        Ok(requeue_at(renewal, self.ctx.clock.unix_seconds()))
    }

    async fn issue(
        &self,
        issuance: Issuance<'_>,
        secret: Option<CurrentSecret>,
    ) -> Result<Action, ProblemOrError> {
        let Issuance {
            trigger,
            ca,
            identity,
            crl_distribution_point,
            settings,
            spec_hash,
        } = issuance;
        let started = std::time::Instant::now();
        let spec = &self.certificate.spec;
        let previous = self.previous_status();
        let generation = self.certificate.metadata.generation;
        // No status write before signing: the status is written once, with the outcome (an
        // issued certificate, or the problem), which is one write fewer per certificate.
        tracing::info!(reason = trigger.reason(), "issuing certificate");

        let now = self.ctx.clock.now();
        let not_after = now + settings.duration;
        if not_after.unix_timestamp() > ca.certificate.not_after {
            return Err(ProblemOrError::Problem(Problem::permanent(
                reasons::CERTIFICATE_OUTLIVES_CA,
                format!(
                    "a {:?} certificate would expire after its CA (CA notAfter {}); shorten spec.duration or renew the CA",
                    settings.duration, ca.certificate.not_after
                ),
            )));
        }
        let reusable_key = self
            .reusable_key(settings, trigger, secret.as_ref(), ca)
            .await?;
        let leaf_spec = LeafCertificateSpec {
            subject: (&identity.subject).into(),
            uris: identity.uris.clone(),
            dns_names: identity.dns_names.clone(),
            ip_addresses: Vec::new(),
            purpose: crate::pki::LeafPurpose::Client,
            serial_number: random_serial_number().map_err(Error::from)?,
            not_before: now - NOT_BEFORE_BACKDATE,
            not_after,
            crl_distribution_point,
        };
        let (leaf_pem, key_pem) = sign(leaf_spec, reusable_key, settings.key_algorithm, ca).await?;
        let issued = parse_certificate_pem(&leaf_pem).map_err(Error::from)?;
        // Into the ledger before any workload can read it: no certificate exists that a
        // Revocation could not find.
        self.record_issuance(ca, &issued).await?;
        let revision = previous.revision.unwrap_or(0).max(
            secret
                .as_ref()
                .and_then(|s| s.facts.state.annotated_revision)
                .unwrap_or(0),
        ) + 1;
        let chain = if ca.self_signed {
            leaf_pem.clone()
        } else {
            format!("{leaf_pem}{}", ca.certificate_pem)
        };
        self.write_secret(
            secret.map(|s| s.facts.resource_version),
            ca,
            settings.key_algorithm,
            chain,
            key_pem,
            ca.certificate_pem.clone(),
            &issued.serial_hex,
            revision,
            &spec_hash,
        )
        .await?;

        let renewal = issued.not_after - settings.renew_before.as_secs() as i64;
        let status = issued_status(&previous, generation, &issued, trigger, renewal, revision);
        self.patch_status(&previous, &status).await?;
        self.ctx
            .publish_event(
                self.certificate.as_ref(),
                false,
                reasons::ISSUED,
                "Issue",
                format!(
                    "Issued certificate {} (revision {revision}) into Secret {}: {}",
                    issued.serial_hex,
                    spec.secret_name,
                    trigger.message()
                ),
            )
            .await;
        ISSUANCE_SECONDS.observe(started.elapsed());
        Ok(requeue_at(renewal, self.ctx.clock.unix_seconds()))
    }

    /// The key in the Secret, when the rotation policy keeps it, it is of the requested algorithm,
    /// and no revoked certificate ever had it: a revoked key is never reused.
    async fn reusable_key(
        &self,
        settings: &CertificateSettings,
        trigger: IssuanceTrigger,
        secret: Option<&CurrentSecret>,
        ca: &LoadedCa,
    ) -> Result<Option<String>, Error> {
        let (PrivateKeyRotationPolicy::Never, Some(current)) = (settings.rotation, secret) else {
            return Ok(None);
        };
        if trigger == IssuanceTrigger::Revoked {
            return Ok(None);
        }
        // The cache keeps no keys: the one to reuse is read.
        let body = match &current.body {
            Some(body) => Some(body.clone()),
            None => {
                self.secrets
                    .get_opt(&self.certificate.spec.secret_name)
                    .await?
            }
        };
        let Some(pem) = body
            .as_ref()
            .and_then(|body| secret_text(body, TLS_PRIVATE_KEY_KEY))
            .and_then(|pem| KeyPair::from_pem(&pem).ok())
            .filter(|key| key_matches_algorithm(key, settings.key_algorithm.into()))
            .map(|key| key.serialize_pem())
        else {
            return Ok(None);
        };
        if self.key_revoked(ca, &pem).await? {
            tracing::info!("the key in the Secret is revoked; a new one is generated");
            return Ok(None);
        }
        Ok(Some(pem))
    }

    async fn record_issuance(
        &self,
        ca: &LoadedCa,
        issued: &crate::pki::ParsedCertificate,
    ) -> Result<(), Error> {
        let namespace = self.certificate.namespace().unwrap_or_default();
        self.ctx
            .ledger
            .record_issuance(
                &authority_id(&ca.certificate.public_key_info),
                &issued.serial_hex,
                timestamp(issued.not_after).ok_or(Error::MissingObjectKey("notAfter"))?,
                IssuedCertificate {
                    namespace,
                    certificate: self.certificate.name_any(),
                    key_fingerprint: key_fingerprint(&issued.public_key_info),
                    issued_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                        jiff::Timestamp::now(),
                    ),
                },
            )
            .await?;
        Ok(())
    }

    /// Whether the ledger holds a revoked certificate with this key: a revoked key is never
    /// reused, whatever the rotation policy.
    async fn key_revoked(&self, ca: &LoadedCa, key_pem: &str) -> Result<bool, Error> {
        let Ok(key) = KeyPair::from_pem(key_pem) else {
            return Ok(false);
        };
        let fingerprint = key_fingerprint(&key.subject_public_key_info());
        Ok(self
            .ctx
            .ledger
            .records_with_key(&authority_id(&ca.certificate.public_key_info), &fingerprint)
            .await?
            .iter()
            .any(|record| record.spec.revocation.is_some()))
    }

    /// Writes certificate, key and annotations in one request, so the Secret is never
    /// half-written; replacing guards on the resourceVersion read before issuing. What was
    /// written is remembered, so the next reconcile need not read it back.
    #[allow(clippy::too_many_arguments)]
    async fn write_secret(
        &self,
        existing_version: Option<String>,
        ca: &LoadedCa,
        key_algorithm: WorkloadKeyAlgorithm,
        chain: String,
        key_pem: String,
        ca_pem: String,
        serial: &str,
        revision: i64,
        spec_hash: &str,
    ) -> Result<(), Error> {
        let spec = &self.certificate.spec;
        let template = spec.secret_template.clone().unwrap_or_default();
        let mut labels = template.labels;
        labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
        labels.insert(CERTIFICATE_NAME_LABEL.into(), self.certificate.name_any());
        let mut annotations = template.annotations;
        annotations.insert(SERIAL_ANNOTATION.into(), serial.into());
        annotations.insert(REVISION_ANNOTATION.into(), revision.to_string());
        annotations.insert(SPEC_HASH_ANNOTATION.into(), spec_hash.into());
        let data = BTreeMap::from([
            (
                TLS_CERTIFICATE_KEY.to_string(),
                ByteString(chain.into_bytes()),
            ),
            (
                TLS_PRIVATE_KEY_KEY.to_string(),
                ByteString(key_pem.into_bytes()),
            ),
            (
                CA_CERTIFICATE_KEY.to_string(),
                ByteString(ca_pem.into_bytes()),
            ),
        ]);
        let owner = self
            .certificate
            .controller_owner_ref(&())
            .ok_or(Error::MissingObjectKey("uid"))?;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(spec.secret_name.clone()),
                labels: Some(labels),
                annotations: Some(annotations),
                owner_references: Some(vec![owner]),
                resource_version: existing_version.clone(),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some(data),
            ..Default::default()
        };
        let namespace = self.certificate.namespace().unwrap_or_default();
        let written = match existing_version {
            None => self.secrets.create(&PostParams::default(), &secret).await,
            Some(_) => {
                self.secrets
                    .replace(&spec.secret_name, &PostParams::default(), &secret)
                    .await
            }
        };
        match written {
            Ok(written) => {
                let facts =
                    inspect_secret(&written, &self.certificate.name_any(), ca, key_algorithm);
                self.ctx.reads.remember_secret(
                    &namespace,
                    &spec.secret_name,
                    KnownSecret::Read(facts),
                );
                Ok(())
            }
            Err(error) => {
                // Someone else's Secret of that name (which no watch of ours shows), or ours
                // changed meanwhile: the next reconcile reads it instead of trusting the cache.
                self.ctx.reads.forget_secret(&namespace, &spec.secret_name);
                if matches!(&error, kube::Error::Api(status) if status.code == 409) {
                    self.ctx.reads.remember_secret(
                        &namespace,
                        &spec.secret_name,
                        KnownSecret::Unread,
                    );
                }
                Err(error.into())
            }
        }
    }

    /// Whether `status` differs from what the object shows, and is not a write of ours that the
    /// watch has not delivered yet (a reconcile triggered by our own Secret write sees the
    /// object from before our status write; writing again would double the status writes).
    fn status_needs_writing(
        &self,
        shown: &WorkloadCertificateStatus,
        status: &WorkloadCertificateStatus,
    ) -> bool {
        let uid = self.certificate.uid().unwrap_or_default();
        status_changed(shown, status)
            && !self
                .ctx
                .reads
                .is_own_status_write_not_yet_seen(&uid, shown, status)
    }

    /// Writes `status` over `previous` (what the object showed), and remembers the write.
    async fn patch_status(
        &self,
        previous: &WorkloadCertificateStatus,
        status: &WorkloadCertificateStatus,
    ) -> Result<(), Error> {
        apply_status(&self.api, &self.certificate.name_any(), status).await?;
        self.ctx.reads.remember_status_write(
            &self.certificate.uid().unwrap_or_default(),
            previous,
            status,
        );
        Ok(())
    }

    async fn report(&self, problem: Problem) -> Result<Action, Error> {
        tracing::warn!(reason = problem.reason, message = %problem.message, "certificate not issued");
        let previous = self.previous_status();
        let generation = self.certificate.metadata.generation;
        let mut status = previous.clone();
        status.observed_generation = generation;
        status.conditions = vec![
            problem.condition(&previous.conditions, CONDITION_READY, generation),
            problem.condition(&previous.conditions, CONDITION_ISSUING, generation),
        ];
        if self.status_needs_writing(&previous, &status) {
            self.patch_status(&previous, &status).await?;
            self.ctx
                .publish_event(
                    self.certificate.as_ref(),
                    true,
                    problem.reason,
                    "Issue",
                    problem.message,
                )
                .await;
        }
        Ok(match problem.retry.base_delay() {
            Some(base) => Action::requeue(
                self.ctx
                    .backoff
                    .next_delay(&self.certificate.uid().unwrap_or_default(), base),
            ),
            None => Action::await_change(),
        })
    }
}

/// Signs the leaf on a blocking thread (a KMS signature is a network call): PEM certificate and
/// PEM PKCS#8 key.
async fn sign(
    leaf_spec: LeafCertificateSpec,
    reusable_key: Option<String>,
    key_algorithm: WorkloadKeyAlgorithm,
    ca: &LoadedCa,
) -> Result<(String, String), ProblemOrError> {
    let signer = ca.signer.clone();
    let ca_pem = ca.certificate_pem.clone();
    tokio::task::spawn_blocking(move || {
        sign_leaf(&leaf_spec, reusable_key, key_algorithm, &ca_pem, &signer)
    })
    .await
    .map_err(|e| Error::SigningTask(e.to_string()))?
    .map_err(|message| {
        ProblemOrError::Problem(Problem::transient(reasons::SIGNING_FAILED, message))
    })
}

/// The status after issuing `issued`: Ready, not Issuing, and the certificate's facts.
fn issued_status(
    previous: &WorkloadCertificateStatus,
    generation: Option<i64>,
    issued: &crate::pki::ParsedCertificate,
    trigger: IssuanceTrigger,
    renewal: i64,
    revision: i64,
) -> WorkloadCertificateStatus {
    WorkloadCertificateStatus {
        conditions: vec![
            condition(
                &[],
                CONDITION_READY,
                true,
                reasons::ISSUED,
                format!(
                    "Certificate {} issued ({})",
                    issued.serial_hex,
                    trigger.message()
                ),
                generation,
            ),
            condition(
                &previous.conditions,
                CONDITION_ISSUING,
                false,
                reasons::ISSUED,
                "No issuance needed",
                generation,
            ),
        ],
        observed_generation: generation,
        serial_number: Some(issued.serial_hex.clone()),
        not_before: timestamp(issued.not_before),
        not_after: timestamp(issued.not_after),
        renewal_time: timestamp(renewal),
        revision: Some(revision),
    }
}

/// Generates (or reuses) the key and signs the leaf; runs on a blocking thread because a KMS
/// signature is a network call. Returns PEM certificate and PEM PKCS#8 key.
fn sign_leaf(
    spec: &LeafCertificateSpec,
    reusable_key_pem: Option<String>,
    algorithm: WorkloadKeyAlgorithm,
    ca_pem: &str,
    signer: &Arc<CaSigner>,
) -> Result<(String, String), String> {
    let key = match reusable_key_pem.and_then(|pem| KeyPair::from_pem(&pem).ok()) {
        Some(key) => key,
        None => generate_key(algorithm.into()).map_err(|e| e.to_string())?,
    };
    let certificate = issue_leaf(spec, &key, ca_pem, signer.as_ref())
        .map_err(|error| signer.signing_failure(error))?;
    Ok((certificate.pem(), key.serialize_pem()))
}

/// What the Secret holds, checked against the CA and the requested key algorithm, and whether
/// the certificate named `certificate_name` may overwrite it.
fn inspect_secret(
    secret: &Secret,
    certificate_name: &str,
    ca: &LoadedCa,
    algorithm: WorkloadKeyAlgorithm,
) -> SecretFacts {
    let certificate =
        secret_text(secret, TLS_CERTIFICATE_KEY).and_then(|pem| parse_certificate_pem(&pem).ok());
    let key = secret_text(secret, TLS_PRIVATE_KEY_KEY).and_then(|pem| KeyPair::from_pem(&pem).ok());
    let annotation = |name| secret_annotation(secret, name).map(str::to_string);
    let state = SecretState {
        certificate_serial: certificate.as_ref().map(|c| c.serial_hex.clone()),
        not_after: certificate
            .as_ref()
            .map(|c| c.not_after)
            .unwrap_or_default(),
        key_matches_certificate: match (&certificate, &key) {
            (Some(certificate), Some(key)) => {
                certificate.public_key_info == key.subject_public_key_info()
            }
            _ => false,
        },
        signed_by_current_ca: certificate
            .as_ref()
            .is_some_and(|c| c.is_signed_by(&ca.certificate.public_key_info)),
        key_algorithm_matches: key
            .as_ref()
            .is_some_and(|key| key_matches_algorithm(key, algorithm.into())),
        annotated_serial: annotation(SERIAL_ANNOTATION),
        annotated_revision: annotation(REVISION_ANNOTATION).and_then(|r| r.parse().ok()),
        annotated_spec_hash: annotation(SPEC_HASH_ANNOTATION),
    };
    SecretFacts {
        resource_version: secret.metadata.resource_version.clone().unwrap_or_default(),
        authority: authority_id(&ca.certificate.public_key_info),
        key_algorithm: algorithm,
        state,
        not_before: certificate
            .as_ref()
            .map(|c| c.not_before)
            .unwrap_or_default(),
        owned: secret
            .labels()
            .get(CERTIFICATE_NAME_LABEL)
            .map(String::as_str)
            == Some(certificate_name),
    }
}

fn timestamp(unix_seconds: i64) -> Option<Time> {
    jiff::Timestamp::from_second(unix_seconds).ok().map(Time)
}

/// Requeue at the renewal time, but at least every [`MAX_REQUEUE`].
fn requeue_at(unix_seconds: i64, now: i64) -> Action {
    let wait = Duration::from_secs(unix_seconds.saturating_sub(now).max(1) as u64);
    Action::requeue(wait.min(MAX_REQUEUE))
}
