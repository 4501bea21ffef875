//! Workload private keys.

use rcgen::{KeyPair, RsaKeySize};

use super::PkiError;
use crate::api::WorkloadKeyAlgorithm;

/// A new workload private key. Roles Anywhere signs with SHA-256: P-256 or RSA.
pub fn generate_workload_key(algorithm: WorkloadKeyAlgorithm) -> Result<KeyPair, PkiError> {
    let key = match algorithm {
        WorkloadKeyAlgorithm::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
        WorkloadKeyAlgorithm::Rsa2048 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)?
        }
        WorkloadKeyAlgorithm::Rsa3072 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_3072)?
        }
        WorkloadKeyAlgorithm::Rsa4096 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_4096)?
        }
    };
    Ok(key)
}

/// Whether an existing key is of the requested algorithm (and, for RSA, size).
pub fn key_matches_algorithm(key: &KeyPair, algorithm: WorkloadKeyAlgorithm) -> bool {
    let rsa_modulus_bits = |bits: usize| {
        key.algorithm() == &rcgen::PKCS_RSA_SHA256
            // DER RSAPublicKey: the modulus dominates its length; allow the encoding overhead.
            && (bits / 8..bits / 8 + 16).contains(&key.public_key_raw().len())
    };
    match algorithm {
        WorkloadKeyAlgorithm::EcdsaP256 => key.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256,
        WorkloadKeyAlgorithm::Rsa2048 => rsa_modulus_bits(2048),
        WorkloadKeyAlgorithm::Rsa3072 => rsa_modulus_bits(3072),
        WorkloadKeyAlgorithm::Rsa4096 => rsa_modulus_bits(4096),
    }
}
