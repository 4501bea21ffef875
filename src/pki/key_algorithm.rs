//! Private keys of the algorithms iamra issues and signs with.

use rcgen::{KeyPair, RsaKeySize};

use super::PkiError;

/// A key algorithm and, for RSA, its size. Roles Anywhere signs with SHA-256: a workload key is
/// P-256 or RSA; a CA may also be P-384.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlgorithm {
    EcdsaP256,
    EcdsaP384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

/// A new private key.
pub fn generate_key(algorithm: KeyAlgorithm) -> Result<KeyPair, PkiError> {
    let key = match algorithm {
        KeyAlgorithm::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
        KeyAlgorithm::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?,
        KeyAlgorithm::Rsa2048 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)?
        }
        KeyAlgorithm::Rsa3072 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_3072)?
        }
        KeyAlgorithm::Rsa4096 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_4096)?
        }
    };
    Ok(key)
}

/// Whether an existing key is of the requested algorithm (and, for RSA, size).
pub fn key_matches_algorithm(key: &KeyPair, algorithm: KeyAlgorithm) -> bool {
    let rsa_modulus_bits = |bits: usize| {
        key.algorithm() == &rcgen::PKCS_RSA_SHA256
            // DER RSAPublicKey: the modulus dominates its length; allow the encoding overhead.
            && (bits / 8..bits / 8 + 16).contains(&key.public_key_raw().len())
    };
    match algorithm {
        KeyAlgorithm::EcdsaP256 => key.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyAlgorithm::EcdsaP384 => key.algorithm() == &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyAlgorithm::Rsa2048 => rsa_modulus_bits(2048),
        KeyAlgorithm::Rsa3072 => rsa_modulus_bits(3072),
        KeyAlgorithm::Rsa4096 => rsa_modulus_bits(4096),
    }
}
