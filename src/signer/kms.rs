//! A CA key held in AWS KMS: `GetPublicKey` once, one `Sign` call per certificate or CRL.

use std::sync::{Arc, Mutex};

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use rcgen::{PublicKeyData, SignatureAlgorithm, SigningKey};
use tokio::sync::Semaphore;
use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo};

use std::sync::LazyLock;

use crate::metrics::{CounterVec, aws_error_message, aws_outcome};

/// KMS refuses `RAW` messages above 4096 bytes; a larger message (a CRL with ~100 entries) is
/// signed as a SHA-256 `DIGEST`. Smaller ones are sent `RAW`, which every KMS implementation,
/// including local emulators that mishandle `DIGEST`, signs correctly.
pub const KMS_RAW_MESSAGE_LIMIT: usize = 4096;

/// KMS calls by operation and outcome (SDK retries included in one call).
pub static KMS_REQUESTS: LazyLock<CounterVec<2>> = LazyLock::new(|| {
    CounterVec::new(
        "iamra_kms_requests_total",
        "AWS KMS calls by operation (GetPublicKey, Sign) and outcome.",
        ["operation", "outcome"],
    )
});

/// Why a KMS key cannot be used, or a KMS call failed. Messages are meant for the Issuer's
/// Ready condition.
#[derive(Debug, thiserror::Error, Clone)]
pub enum KmsError {
    #[error("KMS key {key_id} is not usable: {reason}")]
    UnsupportedKey { key_id: String, reason: String },
    #[error("KMS GetPublicKey for {key_id} failed: {message}")]
    GetPublicKey { key_id: String, message: String },
    #[error("KMS Sign with {key_id} failed: {message}")]
    Sign { key_id: String, message: String },
    #[error("KMS returned a signature for {key_id} that does not verify with the key's public key")]
    SignatureDoesNotVerify { key_id: String },
}

/// Client-side limits for one KMS key.
#[derive(Clone, Debug)]
pub struct KmsSigningOptions {
    /// Sign calls in flight at once for this key, well below the account's KMS request quota.
    pub max_concurrent_signs: usize,
}

impl Default for KmsSigningOptions {
    fn default() -> Self {
        Self {
            max_concurrent_signs: 8,
        }
    }
}

/// A signing key whose private half never leaves KMS.
pub struct KmsSigningKey {
    client: aws_sdk_kms::Client,
    key_id: String,
    public_key: Vec<u8>,
    public_key_info: Vec<u8>,
    algorithm: &'static SignatureAlgorithm,
    signing_algorithm: SigningAlgorithmSpec,
    verification: &'static dyn aws_lc_rs::signature::VerificationAlgorithm,
    runtime: tokio::runtime::Handle,
    in_flight: Arc<Semaphore>,
    // rcgen's error type carries no detail; the KMS error of the last failed call is kept here.
    last_error: Mutex<Option<KmsError>>,
}

impl KmsSigningKey {
    /// Fetches the public key and checks that the key can sign certificates here: usage
    /// `SIGN_VERIFY`, spec `ECC_NIST_P256` or RSA, and a SHA-256 signing algorithm.
    pub async fn connect(
        client: aws_sdk_kms::Client,
        key_id: &str,
        options: &KmsSigningOptions,
    ) -> Result<Self, KmsError> {
        let response = client.get_public_key().key_id(key_id).send().await;
        KMS_REQUESTS.inc(["GetPublicKey", aws_outcome(&response)]);
        let response = response.map_err(|error| KmsError::GetPublicKey {
            key_id: key_id.to_string(),
            message: aws_error_message(&error),
        })?;
        let unsupported = |reason: String| KmsError::UnsupportedKey {
            key_id: key_id.to_string(),
            reason,
        };
        match response.key_usage() {
            Some(KeyUsageType::SignVerify) => {}
            other => {
                return Err(unsupported(format!(
                    "key usage is {}, SIGN_VERIFY is required",
                    other.map(|u| u.as_str()).unwrap_or("unknown")
                )));
            }
        }
        // Older KMS implementations (and moto) only return the deprecated CustomerMasterKeySpec.
        #[allow(deprecated)]
        let key_spec = response.key_spec().cloned().or_else(|| {
            response
                .customer_master_key_spec()
                .map(|spec| KeySpec::from(spec.as_str()))
        });
        let (algorithm, signing_algorithm, verification): (
            &'static SignatureAlgorithm,
            SigningAlgorithmSpec,
            &'static dyn aws_lc_rs::signature::VerificationAlgorithm,
        ) = match &key_spec {
            Some(KeySpec::EccNistP256) => (
                &rcgen::PKCS_ECDSA_P256_SHA256,
                SigningAlgorithmSpec::EcdsaSha256,
                &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            ),
            Some(KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096) => (
                &rcgen::PKCS_RSA_SHA256,
                SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
                &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            ),
            other => {
                return Err(unsupported(format!(
                    "key spec {} cannot sign with SHA-256; use ECC_NIST_P256 or RSA_2048/3072/4096",
                    other.as_ref().map(|s| s.as_str()).unwrap_or("unknown")
                )));
            }
        };
        if !response.signing_algorithms().contains(&signing_algorithm) {
            return Err(unsupported(format!(
                "the key does not allow {}",
                signing_algorithm.as_str()
            )));
        }
        let public_key_info = response
            .public_key()
            .map(|blob| blob.as_ref().to_vec())
            .ok_or_else(|| unsupported("GetPublicKey returned no public key".into()))?;
        let (_, parsed) = SubjectPublicKeyInfo::from_der(&public_key_info)
            .map_err(|e| unsupported(format!("public key does not parse: {e}")))?;
        let public_key = parsed.subject_public_key.data.to_vec();
        Ok(Self {
            client,
            key_id: key_id.to_string(),
            public_key,
            public_key_info,
            algorithm,
            signing_algorithm,
            verification,
            runtime: tokio::runtime::Handle::current(),
            in_flight: Arc::new(Semaphore::new(options.max_concurrent_signs.max(1))),
            last_error: Mutex::new(None),
        })
    }

    /// The key's DER SubjectPublicKeyInfo, as KMS returned it.
    pub fn public_key_info(&self) -> &[u8] {
        &self.public_key_info
    }

    /// The KMS error behind the last failed [`SigningKey::sign`], if any.
    pub fn take_last_error(&self) -> Option<KmsError> {
        self.last_error.lock().ok().and_then(|mut slot| slot.take())
    }

    /// Signs `message` with KMS and checks the signature against the public key before use.
    pub async fn sign_async(&self, message: &[u8]) -> Result<Vec<u8>, KmsError> {
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| self.sign_error("the signing limiter was closed".into()))?;
        let (message_type, payload) = if message.len() <= KMS_RAW_MESSAGE_LIMIT {
            (MessageType::Raw, message.to_vec())
        } else {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message);
            (MessageType::Digest, digest.as_ref().to_vec())
        };
        // Throttling and transient errors are retried with backoff by the SDK's retry policy.
        let response = self
            .client
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(payload))
            .message_type(message_type)
            .signing_algorithm(self.signing_algorithm.clone())
            .send()
            .await;
        KMS_REQUESTS.inc(["Sign", aws_outcome(&response)]);
        let response = response.map_err(|error| self.sign_error(aws_error_message(&error)))?;
        let signature = response
            .signature()
            .map(|blob| blob.as_ref().to_vec())
            .ok_or_else(|| self.sign_error("the response has no signature".into()))?;
        aws_lc_rs::signature::UnparsedPublicKey::new(self.verification, &self.public_key)
            .verify(message, &signature)
            .map_err(|_| KmsError::SignatureDoesNotVerify {
                key_id: self.key_id.clone(),
            })?;
        Ok(signature)
    }

    fn sign_error(&self, message: String) -> KmsError {
        KmsError::Sign {
            key_id: self.key_id.clone(),
            message,
        }
    }
}

impl PublicKeyData for KmsSigningKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public_key
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.algorithm
    }
}

impl SigningKey for KmsSigningKey {
    /// Blocks on the KMS call: only from a blocking thread (`spawn_blocking`).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match self.runtime.block_on(self.sign_async(message)) {
            Ok(signature) => Ok(signature),
            Err(error) => {
                tracing::warn!(key_id = %self.key_id, %error, "KMS signing failed");
                if let Ok(mut slot) = self.last_error.lock() {
                    *slot = Some(error);
                }
                Err(rcgen::Error::RemoteKeyError)
            }
        }
    }
}
