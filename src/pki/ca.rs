//! Self-signed CA certificates and CA key generation.

use rcgen::{BasicConstraints, Certificate, CertificateParams, IsCa, KeyUsagePurpose, SigningKey};
use time::OffsetDateTime;

use super::{PkiError, SubjectName, distinguished_name, random_serial_number};

/// What a self-signed CA certificate says.
#[derive(Clone, Debug)]
pub struct CaCertificateSpec {
    pub subject: SubjectName,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl CaCertificateSpec {
    /// The rcgen parameters of the CA: BasicConstraints CA:true (critical), keyCertSign and
    /// cRLSign (critical), a SHA-256 subject key identifier and a random 20-octet serial.
    pub fn params(&self) -> Result<CertificateParams, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(&self.subject);
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
