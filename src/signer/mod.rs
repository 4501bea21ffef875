//! The CA's signing key, wherever it lives. Everything above this module signs through
//! [`CaSigner`] and never knows whether the key is local or in AWS KMS.

mod kms;

pub use kms::{KMS_RAW_MESSAGE_LIMIT, KMS_REQUESTS, KmsError, KmsSigningKey, KmsSigningOptions};

use std::sync::Arc;

use rcgen::{KeyPair, PublicKeyData, SignatureAlgorithm, SigningKey};

/// A CA private key: in memory (loaded from a Secret) or in AWS KMS.
pub enum CaSigner {
    Local(KeyPair),
    /// Shared: one KMS key serves every Issuer that names it, behind one concurrency limit.
    Kms(Arc<KmsSigningKey>),
}

impl CaSigner {
    /// Why signing failed: rcgen's error carries no detail for a remote key, so for a KMS key
    /// the KMS error of the last failed call is told instead.
    pub fn signing_failure(&self, error: impl std::fmt::Display) -> String {
        match self {
            CaSigner::Kms(kms) => kms
                .take_last_error()
                .map(|e| e.to_string())
                .unwrap_or_else(|| error.to_string()),
            CaSigner::Local(_) => error.to_string(),
        }
    }

    /// Where the key is, as the Issuer status says it: `Local` or `KMS`.
    pub fn source_name(&self) -> &'static str {
        match self {
            CaSigner::Local(_) => "Local",
            CaSigner::Kms(_) => "KMS",
        }
    }
}

impl std::fmt::Debug for CaSigner {
    // Deliberately prints no key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CaSigner::{}", self.source_name())
    }
}

impl PublicKeyData for CaSigner {
    fn der_bytes(&self) -> &[u8] {
        match self {
            CaSigner::Local(key) => key.der_bytes(),
            CaSigner::Kms(key) => key.as_ref().der_bytes(),
        }
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self {
            CaSigner::Local(key) => PublicKeyData::algorithm(key),
            CaSigner::Kms(key) => key.as_ref().algorithm(),
        }
    }
}

impl SigningKey for CaSigner {
    /// For KMS this blocks on a network call: call it from a blocking thread
    /// (`tokio::task::spawn_blocking`), never from an async task.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match self {
            CaSigner::Local(key) => key.sign(message),
            CaSigner::Kms(key) => key.as_ref().sign(message),
        }
    }
}
