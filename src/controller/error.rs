//! The controller's error type: every failure a reconcile can end with.

use crate::pki::PkiError;
use crate::signer::KmsError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Pki(#[from] PkiError),
    #[error("{0}")]
    Kms(#[from] KmsError),
    #[error("revocation ledger: {0}")]
    Ledger(#[from] crate::controller::ledger::LedgerError),
    #[error("object has no {0}")]
    MissingObjectKey(&'static str),
    #[error("signing task failed: {0}")]
    SigningTask(String),
    /// A bug: the reconcile panicked (caught, so only this object fails).
    #[error("internal error (reconcile panicked): {0}")]
    Panicked(String),
    /// A problem already reported in the object's status; the reconcile retries later.
    #[error("{reason}: {message}")]
    Reported {
        reason: &'static str,
        message: String,
    },
}

impl Error {
    /// A short, bounded label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Pki(_) => "pki",
            Error::Kms(_) => "kms",
            Error::Ledger(_) => "ledger",
            Error::MissingObjectKey(_) => "missing_object_key",
            Error::SigningTask(_) => "signing_task",
            Error::Panicked(_) => "panic",
            Error::Reported { reason, .. } => reason,
        }
    }
}
