//! Leader election on a `coordination.k8s.io/v1` Lease: of several controller replicas only the
//! Lease holder runs the reconcilers.
//!
//! The algorithm is client-go's (`k8s.io/client-go/tools/leaderelection`), which
//! controller-runtime and most operators use, so the Lease looks and behaves as operators expect:
//! - a candidate considers the Lease free when it names no holder, or when its record has not
//!   changed for `leaseDurationSeconds` *as measured on the candidate's own monotonic clock* since
//!   it first saw that record — so clock skew between nodes cannot shorten a lease;
//! - every write is a `replace` carrying the resourceVersion that was read, so of two candidates
//!   racing for a free Lease exactly one wins and the other gets 409 Conflict;
//! - the holder renews every retry period and gives up leadership when no renewal succeeded
//!   within the renew deadline, which is shorter than the lease duration: it stops before any
//!   other replica may consider the Lease expired;
//! - on shutdown the holder clears `holderIdentity`, so a standby takes over at its next retry
//!   instead of waiting for expiry.
//!
//! Why not a crate: kube-runtime 5 has no leader election, kube-leader-election targets kube 4
//! and kubert kube 1.1. kube-lease-manager 0.13 fits kube 5, but it keeps reporting leadership
//! while renewals fail (errors only back off), so a leader cut off from the API server would go
//! on reconciling after another replica took over; and it clears an expired Lease with a patch
//! that carries no resourceVersion, which can wipe a Lease another candidate has just acquired.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::time::Instant;

use crate::fence::LeadershipFence;

/// controller-runtime's defaults, which operators are used to tuning.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);
/// Releasing the Lease on shutdown is a courtesy: never hold up the exit longer than this.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which Lease, who we are, and the timings.
#[derive(Clone, Debug)]
pub struct LeaderElectionConfig {
    pub namespace: String,
    pub lease_name: String,
    /// Unique per replica: the pod name, or hostname and process id outside a pod.
    pub identity: String,
    /// How long a standby waits after the holder's last renewal before taking over.
    pub lease_duration: Duration,
    /// How long the holder keeps leading without a successful renewal.
    pub renew_deadline: Duration,
    /// How often candidates try to acquire and the holder renews.
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    /// The holder must give up before a standby may take over, and must get more than one
    /// renewal attempt before giving up.
    pub fn validate(&self) -> Result<(), LeaderElectionError> {
        if self.lease_duration.as_secs() < 1 {
            return Err(LeaderElectionError::InvalidTiming(
                "the lease duration must be at least one second (Leases count whole seconds)",
            ));
        }
        // The Lease records whole seconds, and standbys wait what it records.
        if self.renew_deadline >= Duration::from_secs(self.lease_duration.as_secs()) {
            return Err(LeaderElectionError::InvalidTiming(
                "the renew deadline must be shorter than the lease duration in whole seconds",
            ));
        }
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return Err(LeaderElectionError::InvalidTiming(
                "the retry period must be positive and shorter than the renew deadline",
            ));
        }
        if self.identity.is_empty() {
            return Err(LeaderElectionError::InvalidTiming(
                "the identity must not be empty",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderElectionError {
    #[error("invalid leader election settings: {0}")]
    InvalidTiming(&'static str),
    #[error("lost the leader Lease: no renewal succeeded within {0:?}")]
    RenewDeadlineExceeded(Duration),
    #[error("lost the leader Lease: it is now held by {0:?}")]
    TakenOver(String),
}

/// This replica's identity in the Lease: `POD_NAME` (set from the downward API), else
/// hostname and process id, so two processes on one machine never share an identity.
pub fn default_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "iamra".into());
    format!("{hostname}_{}", std::process::id())
}

/// Whether a candidate may write the Lease now.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Free, expired, or already ours.
    Claimable,
    HeldBy(String),
}

fn holder(spec: Option<&LeaseSpec>) -> Option<&str> {
    spec.and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty())
}

/// `unchanged_since` is when this candidate first saw the Lease's current record.
fn verdict(
    spec: Option<&LeaseSpec>,
    identity: &str,
    unchanged_since: Instant,
    now: Instant,
    default_duration: Duration,
) -> Verdict {
    match holder(spec) {
        None => Verdict::Claimable,
        Some(holder) if holder == identity => Verdict::Claimable,
        Some(holder) => {
            let duration = spec
                .and_then(|s| s.lease_duration_seconds)
                .filter(|seconds| *seconds > 0)
                .map(|seconds| Duration::from_secs(seconds.unsigned_abs().into()))
                .unwrap_or(default_duration);
            if now < unchanged_since + duration {
                Verdict::HeldBy(holder.to_string())
            } else {
                Verdict::Claimable
            }
        }
    }
}

/// A Lease deleted under a running leader: that leader goes on until its next renewal, so the
/// record this candidate saw last counts as held, as if it were still there, until its duration
/// has passed. A candidate that never saw a holder may create the Lease at once.
fn verdict_without_lease(
    observed: Option<&(Option<LeaseSpec>, Instant)>,
    identity: &str,
    now: Instant,
    default_duration: Duration,
) -> Verdict {
    match observed {
        Some((spec, unchanged_since)) => verdict(
            spec.as_ref(),
            identity,
            *unchanged_since,
            now,
            default_duration,
        ),
        None => Verdict::Claimable,
    }
}

/// The record that claims or renews the Lease for `identity`.
fn claimed(
    previous: Option<&LeaseSpec>,
    identity: &str,
    lease_duration: Duration,
    now: jiff::Timestamp,
) -> LeaseSpec {
    // Like client-go: creating the Lease is no transition, every change of holder is one.
    let created = previous.is_none();
    let previous = previous.cloned().unwrap_or_default();
    let renewing = created || holder(Some(&previous)) == Some(identity);
    let transitions = previous.lease_transitions.unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(i32::try_from(lease_duration.as_secs()).unwrap_or(i32::MAX)),
        acquire_time: if renewing && !created {
            previous.acquire_time.clone()
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if renewing {
            transitions
        } else {
            transitions.saturating_add(1)
        }),
        ..previous
    }
}

/// The record that hands the Lease back (what client-go writes on release).
fn released(previous: &LeaseSpec, now: jiff::Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        ..previous.clone()
    }
}

/// What one attempt to acquire or renew found.
#[derive(Debug)]
enum Attempt {
    Holding,
    HeldBy(String),
    /// Another writer changed the Lease between our read and write; look again.
    Conflict,
}

/// One candidate for the Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaderElectionConfig,
    /// The Lease record last seen, and when it was first seen in that state.
    observed: Option<(Option<LeaseSpec>, Instant)>,
    /// When the last successful acquire or renew started: the renew deadline counts from there.
    renewed_at: Option<Instant>,
    /// Opened until the renew deadline after each renewal, closed when leadership ends.
    fence: Arc<LeadershipFence>,
}

impl LeaderElector {
    pub fn new(
        client: kube::Client,
        config: LeaderElectionConfig,
        fence: Arc<LeadershipFence>,
    ) -> Result<Self, LeaderElectionError> {
        config.validate()?;
        Ok(Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
            renewed_at: None,
            fence,
        })
    }

    /// A successful acquire or renew whose attempt started at `started`.
    fn renewed(&mut self, started: Instant) {
        self.renewed_at = Some(started);
        self.fence.lead_until(started + self.config.renew_deadline);
    }

    /// Waits until this replica holds the Lease; from then on the fence lets writes through.
    pub async fn acquire(&mut self) {
        let mut last_holder: Option<String> = None;
        loop {
            let started = Instant::now();
            match self.try_acquire_or_renew(false).await {
                Ok(Attempt::Holding) => {
                    tracing::info!(
                        lease = %self.config.lease_name,
                        namespace = %self.config.namespace,
                        identity = %self.config.identity,
                        "acquired the leader Lease; starting the reconcilers"
                    );
                    self.renewed(started);
                    return;
                }
                Ok(Attempt::HeldBy(holder)) => {
                    if last_holder.as_ref() != Some(&holder) {
                        tracing::info!(%holder, identity = %self.config.identity, "standing by: another replica holds the leader Lease");
                        last_holder = Some(holder);
                    }
                }
                Ok(Attempt::Conflict) => {
                    tracing::debug!("another candidate wrote the Lease first");
                }
                Err(error) => {
                    tracing::warn!(%error, "reading or writing the leader Lease failed");
                }
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }

    /// Renews the Lease until that fails; returns why leadership was lost, with the fence
    /// already closed. The caller must stop reconciling at once.
    pub async fn hold(&mut self) -> LeaderElectionError {
        let lost = self.renew_until_lost().await;
        self.fence.lapse();
        lost
    }

    async fn renew_until_lost(&mut self) -> LeaderElectionError {
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            loop {
                let Some(renewed_at) = self.renewed_at else {
                    return LeaderElectionError::RenewDeadlineExceeded(Duration::ZERO);
                };
                let deadline = renewed_at + self.config.renew_deadline;
                let started = Instant::now();
                if started >= deadline {
                    return LeaderElectionError::RenewDeadlineExceeded(self.config.renew_deadline);
                }
                // A request hanging past the deadline must not keep us leading.
                let attempt =
                    tokio::time::timeout(deadline - started, self.try_acquire_or_renew(true)).await;
                match attempt {
                    Ok(Ok(Attempt::Holding)) => {
                        self.renewed(started);
                        break;
                    }
                    Ok(Ok(Attempt::HeldBy(holder))) => {
                        return LeaderElectionError::TakenOver(holder);
                    }
                    Ok(Ok(Attempt::Conflict)) => continue,
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "renewing the leader Lease failed; retrying");
                        let pause = self
                            .config
                            .retry_period
                            .min(deadline.saturating_duration_since(Instant::now()));
                        tokio::time::sleep(pause).await;
                    }
                    Err(_elapsed) => {
                        return LeaderElectionError::RenewDeadlineExceeded(
                            self.config.renew_deadline,
                        );
                    }
                }
            }
        }
    }

    /// Hands the Lease back if this replica still holds it, so a standby takes over at its
    /// next retry. Call only after the reconcilers have stopped.
    pub async fn release(&mut self) {
        self.fence.lapse();
        let release = async {
            let Some(lease) = self.api.get_opt(&self.config.lease_name).await? else {
                return Ok(false);
            };
            let Some(spec) = lease.spec.as_ref() else {
                return Ok(false);
            };
            if holder(Some(spec)) != Some(self.config.identity.as_str()) {
                return Ok(false);
            }
            let mut updated = lease.clone();
            updated.spec = Some(released(spec, jiff::Timestamp::now()));
            self.api
                .replace(&self.config.lease_name, &PostParams::default(), &updated)
                .await
                .map(|_| true)
        };
        match tokio::time::timeout(RELEASE_TIMEOUT, release).await {
            Ok(Ok(true)) => tracing::info!("released the leader Lease"),
            Ok(Ok(false)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "releasing the leader Lease failed"),
            Err(_) => tracing::warn!("releasing the leader Lease timed out"),
        }
    }

    /// Reads the Lease and claims it if the verdict allows. While `renewing`, any other
    /// holder means the Lease was lost, expired or not.
    async fn try_acquire_or_renew(&mut self, renewing: bool) -> Result<Attempt, kube::Error> {
        let now = Instant::now();
        let identity = self.config.identity.clone();
        let Some(lease) = self.api.get_opt(&self.config.lease_name).await? else {
            if !renewing
                && let Verdict::HeldBy(holder) = verdict_without_lease(
                    self.observed.as_ref(),
                    &identity,
                    now,
                    self.config.lease_duration,
                )
            {
                return Ok(Attempt::HeldBy(holder));
            }
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.lease_name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(claimed(
                    None,
                    &identity,
                    self.config.lease_duration,
                    jiff::Timestamp::now(),
                )),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(created.spec, Instant::now());
                    Ok(Attempt::Holding)
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Conflict),
                Err(error) => Err(error),
            };
        };
        self.observe(lease.spec.clone(), now);
        let unchanged_since = self.observed.as_ref().map_or(now, |(_, at)| *at);
        let spec = lease.spec.as_ref();
        if renewing && holder(spec) != Some(identity.as_str()) {
            return Ok(Attempt::HeldBy(
                holder(spec).unwrap_or("nobody").to_string(),
            ));
        }
        if let Verdict::HeldBy(holder) = verdict(
            spec,
            &identity,
            unchanged_since,
            now,
            self.config.lease_duration,
        ) {
            return Ok(Attempt::HeldBy(holder));
        }
        let mut updated = lease.clone();
        updated.spec = Some(claimed(
            spec,
            &identity,
            self.config.lease_duration,
            jiff::Timestamp::now(),
        ));
        // `updated` carries the resourceVersion read above: a concurrent write makes this 409.
        match self
            .api
            .replace(&self.config.lease_name, &PostParams::default(), &updated)
            .await
        {
            Ok(written) => {
                self.observe(written.spec, Instant::now());
                Ok(Attempt::Holding)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Conflict),
            Err(error) => Err(error),
        }
    }

    /// Remembers the record and restarts the expiry clock when it changed.
    fn observe(&mut self, spec: Option<LeaseSpec>, now: Instant) {
        match &self.observed {
            Some((previous, _)) if *previous == spec => {}
            _ => self.observed = Some((spec, now)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DURATION: Duration = Duration::from_secs(15);

    fn held_by(holder: &str, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(seconds),
            renew_time: Some(MicroTime(jiff::Timestamp::UNIX_EPOCH)),
            acquire_time: Some(MicroTime(jiff::Timestamp::UNIX_EPOCH)),
            lease_transitions: Some(3),
            ..Default::default()
        }
    }

    #[test]
    fn a_lease_without_holder_is_claimable() {
        let now = Instant::now();
        assert_eq!(verdict(None, "me", now, now, DURATION), Verdict::Claimable);
        let released = released(&held_by("other", 15), jiff::Timestamp::now());
        assert_eq!(
            verdict(Some(&released), "me", now, now, DURATION),
            Verdict::Claimable
        );
        let empty = LeaseSpec {
            holder_identity: Some(String::new()),
            ..held_by("x", 15)
        };
        assert_eq!(
            verdict(Some(&empty), "me", now, now, DURATION),
            Verdict::Claimable
        );
    }

    #[test]
    fn a_deleted_lease_stays_held_by_the_holder_last_seen_until_its_duration_has_passed() {
        let seen = Instant::now();
        let at = |seconds| seen + Duration::from_secs(seconds);
        let other = (Some(held_by("other", 15)), seen);
        assert_eq!(
            verdict_without_lease(Some(&other), "me", at(14), DURATION),
            Verdict::HeldBy("other".into())
        );
        assert_eq!(
            verdict_without_lease(Some(&other), "me", at(15), DURATION),
            Verdict::Claimable
        );
        // Never saw a holder, saw it released, or held it ourselves: create it at once.
        assert_eq!(
            verdict_without_lease(None, "me", seen, DURATION),
            Verdict::Claimable
        );
        let released = (Some(LeaseSpec::default()), seen);
        assert_eq!(
            verdict_without_lease(Some(&released), "me", seen, DURATION),
            Verdict::Claimable
        );
        let ours = (Some(held_by("me", 15)), seen);
        assert_eq!(
            verdict_without_lease(Some(&ours), "me", seen, DURATION),
            Verdict::Claimable
        );
    }

    #[test]
    fn another_holder_counts_until_its_duration_has_passed_on_our_clock() {
        let seen = Instant::now();
        // renewTime is 1970: a skewed or stale timestamp must not make the lease look expired.
        let lease = held_by("other", 15);
        let at = |seconds| seen + Duration::from_secs(seconds);
        assert_eq!(
            verdict(Some(&lease), "me", seen, at(0), DURATION),
            Verdict::HeldBy("other".into())
        );
        assert_eq!(
            verdict(Some(&lease), "me", seen, at(14), DURATION),
            Verdict::HeldBy("other".into())
        );
        assert_eq!(
            verdict(Some(&lease), "me", seen, at(15), DURATION),
            Verdict::Claimable
        );
        // The holder's own duration counts, not ours.
        let short = held_by("other", 2);
        assert_eq!(
            verdict(Some(&short), "me", seen, at(2), DURATION),
            Verdict::Claimable
        );
    }

    #[test]
    fn our_own_lease_is_claimable_even_before_expiry() {
        let now = Instant::now();
        assert_eq!(
            verdict(Some(&held_by("me", 15)), "me", now, now, DURATION),
            Verdict::Claimable
        );
    }

    #[test]
    fn claiming_counts_transitions_and_renewing_keeps_acquire_time() {
        let now = jiff::Timestamp::from_second(1_000).expect("valid");
        let taken = claimed(Some(&held_by("other", 15)), "me", DURATION, now);
        assert_eq!(taken.holder_identity.as_deref(), Some("me"));
        assert_eq!(taken.lease_transitions, Some(4));
        assert_eq!(taken.acquire_time, Some(MicroTime(now)));
        assert_eq!(taken.lease_duration_seconds, Some(15));

        let renewed = claimed(Some(&held_by("me", 15)), "me", DURATION, now);
        assert_eq!(renewed.lease_transitions, Some(3));
        assert_eq!(
            renewed.acquire_time,
            Some(MicroTime(jiff::Timestamp::UNIX_EPOCH))
        );
        assert_eq!(renewed.renew_time, Some(MicroTime(now)));

        let first = claimed(None, "me", DURATION, now);
        assert_eq!(first.lease_transitions, Some(0));
        assert_eq!(first.acquire_time, Some(MicroTime(now)));

        let after_release = claimed(
            Some(&released(&held_by("other", 15), now)),
            "me",
            DURATION,
            now,
        );
        assert_eq!(after_release.lease_transitions, Some(4));
    }

    #[test]
    fn the_holder_gives_up_before_a_standby_may_take_over() {
        let valid = LeaderElectionConfig {
            namespace: "n".into(),
            lease_name: "l".into(),
            identity: "me".into(),
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_deadline: DEFAULT_RENEW_DEADLINE,
            retry_period: DEFAULT_RETRY_PERIOD,
        };
        assert!(valid.validate().is_ok());
        for invalid in [
            LeaderElectionConfig {
                renew_deadline: DEFAULT_LEASE_DURATION,
                ..valid.clone()
            },
            LeaderElectionConfig {
                retry_period: DEFAULT_RENEW_DEADLINE,
                ..valid.clone()
            },
            LeaderElectionConfig {
                retry_period: Duration::ZERO,
                ..valid.clone()
            },
            LeaderElectionConfig {
                lease_duration: Duration::from_millis(900),
                renew_deadline: Duration::from_millis(500),
                retry_period: Duration::from_millis(100),
                ..valid.clone()
            },
            LeaderElectionConfig {
                identity: String::new(),
                ..valid.clone()
            },
        ] {
            assert!(invalid.validate().is_err(), "{invalid:?}");
        }
    }
}
