//! What stops an object, as every reconciler reports it: a reason (one of [`super::reasons`]),
//! a message its owner can act on, and when to look again. It becomes the object's `Ready`
//! condition (or the condition of the step that failed) and a Warning event.

use std::time::Duration;

use crate::controller::ledger::LedgerError;
use crate::controller::reasons;
use crate::controller::runtime::backoff::{CONFIGURATION_RETRY, TRANSIENT_RETRY};
use crate::rolesanywhere::crl_import::CrlImportError;

/// When a reconcile that reported a problem looks again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// A failure of something else (the API server, AWS, the network): soon, backing off.
    Soon,
    /// Something to fix outside the object (a Secret, a grant, the CA): at the slow pace.
    Slowly,
    /// Only a change of the object itself can fix it: wait for that change.
    OnChange,
}

impl Retry {
    /// The first delay of the object's backoff; None waits for a change of the object.
    pub fn base_delay(self) -> Option<Duration> {
        match self {
            Retry::Soon => Some(TRANSIENT_RETRY),
            Retry::Slowly => Some(CONFIGURATION_RETRY),
            Retry::OnChange => None,
        }
    }
}

/// Why an object is not (or not fully) Ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// One of [`super::reasons`]: the condition's and the event's reason.
    pub reason: &'static str,
    pub message: String,
    pub retry: Retry,
}

impl Problem {
    pub fn new(reason: &'static str, message: impl Into<String>, retry: Retry) -> Self {
        Self {
            reason,
            message: message.into(),
            retry,
        }
    }

    /// A failure of something else, worth retrying soon.
    pub fn transient(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(reason, message, Retry::Soon)
    }

    /// Something only a fix outside the object can lift.
    pub fn permanent(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(reason, message, Retry::Slowly)
    }

    /// Something only a change of the object can lift.
    pub fn until_changed(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(reason, message, Retry::OnChange)
    }

    pub fn is_transient(&self) -> bool {
        self.retry == Retry::Soon
    }

    /// The problem as condition `type_` (False), keeping the transition time of `previous`.
    pub fn condition(
        &self,
        previous: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
        type_: &str,
        generation: Option<i64>,
    ) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        crate::controller::conditions::condition(
            previous,
            type_,
            false,
            self.reason,
            self.message.clone(),
            generation,
        )
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

impl From<kube::Error> for Problem {
    fn from(error: kube::Error) -> Self {
        Problem::transient(reasons::KUBERNETES_API_ERROR, error.to_string())
    }
}

impl From<LedgerError> for Problem {
    fn from(error: LedgerError) -> Self {
        let reason = match error {
            LedgerError::Conflict(_) => reasons::CONCURRENT_WRITER,
            LedgerError::Kube(_) => reasons::LEDGER_UNAVAILABLE,
        };
        Problem::transient(reason, error.to_string())
    }
}

impl From<CrlImportError> for Problem {
    fn from(error: CrlImportError) -> Self {
        let reason = match &error {
            CrlImportError::TooLarge { .. } => reasons::CRL_TOO_LARGE,
            CrlImportError::NoRegion => reasons::INVALID_SPEC,
            CrlImportError::NameTaken { .. } => reasons::CRL_NAME_TAKEN,
            CrlImportError::Api { .. } => reasons::IMPORT_FAILED,
        };
        Problem::transient(reason, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_failure_gets_its_reason_and_pace() {
        let too_large = Problem::from(CrlImportError::TooLarge { size: 300_001 });
        assert_eq!(too_large.reason, reasons::CRL_TOO_LARGE);
        let conflict = Problem::from(LedgerError::Conflict("ca".into()));
        assert_eq!(conflict.reason, reasons::CONCURRENT_WRITER);
        assert!(conflict.is_transient());
        assert_eq!(Retry::Soon.base_delay(), Some(TRANSIENT_RETRY));
        assert_eq!(Retry::Slowly.base_delay(), Some(CONFIGURATION_RETRY));
        assert_eq!(
            Problem::until_changed(reasons::INVALID_SPEC, "x")
                .retry
                .base_delay(),
            None
        );
        for problem in [too_large, conflict] {
            assert!(reasons::ALL.contains(&problem.reason), "{problem}");
        }
    }
}
