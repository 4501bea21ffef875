//! Self-signed CA certificates and CA key generation.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, IsCa, KeyPair,
    KeyUsagePurpose, RsaKeySize, SigningKey,
};
use time::OffsetDateTime;

use super::{PkiError, random_serial_number};
use crate::api::CaKeyAlgorithm;

/// What a self-signed CA certificate says.
#[derive(Clone, Debug)]
pub struct CaCertificateSpec {
    pub subject: DistinguishedName,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl CaCertificateSpec {
    /// The rcgen parameters of the CA: BasicConstraints CA:true (critical), keyCertSign and
    /// cRLSign (critical), a SHA-256 subject key identifier and a random 20-octet serial.
    pub fn params(&self) -> Result<CertificateParams, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = self.subject.clone();
        params.not_before = self.not_before;
        params.not_after = self.not_after;
        params.serial_number = Some(random_serial_number()?);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        Ok(params)
    }
}

/// A self-signed CA certificate signed by `key` (a local key pair or a KMS key).
pub fn self_signed_ca(
    spec: &CaCertificateSpec,
    key: &impl SigningKey,
) -> Result<Certificate, PkiError> {
    if spec.not_after <= spec.not_before {
        return Err(PkiError::Validity(
            "CA notAfter is not after notBefore".into(),
        ));
    }
    Ok(spec.params()?.self_signed(key)?)
}

/// A new CA private key.
pub fn generate_ca_key(algorithm: CaKeyAlgorithm) -> Result<KeyPair, PkiError> {
    let key = match algorithm {
        CaKeyAlgorithm::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
        CaKeyAlgorithm::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?,
        CaKeyAlgorithm::Rsa2048 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)?
        }
        CaKeyAlgorithm::Rsa3072 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_3072)?
        }
        CaKeyAlgorithm::Rsa4096 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_4096)?
        }
    };
    Ok(key)
}
