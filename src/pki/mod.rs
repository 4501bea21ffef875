//! Certificates, keys and CRLs as pure functions of bytes and parameters: no Kubernetes, no I/O.

mod ca;
mod crl;
mod fingerprint;
mod inspect;
mod key_algorithm;
mod leaf;
pub mod pem;
pub mod private_key;
mod serial;
mod subject;

pub use ca::{CaCertificateSpec, self_signed_ca};
pub use crl::{
    CRL_SHARDS, CrlSpec, RevokedCertificate, build_crl, crl_shard_of, parse_serial_hex,
    split_into_shards,
};
pub use fingerprint::{authority_id, key_fingerprint, sha256_hex};
pub use inspect::{
    ParsedCertificate, crl_is_signed_by, parse_certificate_der, parse_certificate_pem, pem_blocks,
};
pub use key_algorithm::{KeyAlgorithm, generate_key, key_matches_algorithm};
pub use leaf::{LeafCertificateSpec, LeafPurpose, NOT_BEFORE_BACKDATE, issue_leaf};
/// The reason codes a CRL entry may carry (RFC 5280 §5.3.1).
pub use rcgen::RevocationReason;
pub use serial::{MAX_SERIAL_NUMBER_BYTES, SERIAL_NUMBER_BYTES, random_serial_number, serial_hex};
pub use subject::{SubjectName, distinguished_name};

/// Why a PKI operation failed. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate library: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("not a PEM certificate: {0}")]
    InvalidPem(String),
    #[error("not a valid X.509 certificate: {0}")]
    InvalidCertificate(String),
    #[error("not a usable private key (expected PEM PKCS#8, SEC1 or PKCS#1)")]
    InvalidPrivateKey,
    #[error("the private key does not belong to the certificate")]
    KeyMismatch,
    #[error("the certificate is not a CA (BasicConstraints CA:true with keyCertSign is required)")]
    NotACertificateAuthority,
    #[error("invalid subject alternative name {0:?}")]
    InvalidSubjectAltName(String),
    #[error("the system random number generator failed")]
    Random,
    #[error("invalid serial number {0:?}: expected up to 20 octets in hex")]
    InvalidSerialNumber(String),
    #[error("validity out of range: {0}")]
    Validity(String),
}

#[cfg(test)]
mod tests;
