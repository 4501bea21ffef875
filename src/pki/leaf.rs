//! Workload (leaf) certificates, shaped for what IAM Roles Anywhere checks.

use std::time::Duration;

use rcgen::{
    Certificate, CertificateParams, CrlDistributionPoint, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, SigningKey,
};
use time::OffsetDateTime;

use super::{PkiError, SubjectName, distinguished_name};

/// notBefore is set this far in the past so a relying party whose clock runs slightly behind
/// does not see a certificate from the future.
pub const NOT_BEFORE_BACKDATE: Duration = Duration::from_secs(60);

/// The extended key usage of a leaf certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LeafPurpose {
    /// TLS client authentication: what IAM Roles Anywhere expects of workload certificates.
    #[default]
    Client,
    /// TLS server authentication: the controller's own webhook.
    Server,
}

/// What a workload certificate says.
#[derive(Clone, Debug)]
pub struct LeafCertificateSpec {
    pub subject: SubjectName,
    pub uris: Vec<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<std::net::IpAddr>,
    /// What the certificate authenticates: a workload to AWS, or a server (the webhook).
    pub purpose: LeafPurpose,
    pub serial_number: SerialNumber,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub crl_distribution_point: Option<String>,
}

impl LeafCertificateSpec {
    fn params(&self) -> Result<CertificateParams, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(&self.subject);
        params.serial_number = Some(self.serial_number.clone());
        params.not_before = self.not_before;
        params.not_after = self.not_after;
        // Roles Anywhere: v3, CA:false when BasicConstraints is present, digitalSignature.
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match self.purpose {
            LeafPurpose::Client => ExtendedKeyUsagePurpose::ClientAuth,
            LeafPurpose::Server => ExtendedKeyUsagePurpose::ServerAuth,
        }];
        params.use_authority_key_identifier_extension = true;
        for uri in &self.uris {
            let value = uri
                .as_str()
                .try_into()
                .map_err(|_| PkiError::InvalidSubjectAltName(uri.clone()))?;
            params.subject_alt_names.push(SanType::URI(value));
        }
        for dns_name in &self.dns_names {
            let value = dns_name
                .as_str()
                .try_into()
                .map_err(|_| PkiError::InvalidSubjectAltName(dns_name.clone()))?;
            params.subject_alt_names.push(SanType::DnsName(value));
        }
        for address in &self.ip_addresses {
            params.subject_alt_names.push(SanType::IpAddress(*address));
        }
        if let Some(url) = &self.crl_distribution_point {
            params.crl_distribution_points = vec![CrlDistributionPoint {
                uris: vec![url.clone()],
            }];
        }
        Ok(params)
    }
}

/// Signs a certificate for `public_key` with the CA whose certificate is `ca_pem` and whose key
/// is `ca_key` (a local key pair or a KMS key).
pub fn issue_leaf(
    spec: &LeafCertificateSpec,
    public_key: &impl PublicKeyData,
    ca_pem: &str,
    ca_key: &impl SigningKey,
) -> Result<Certificate, PkiError> {
    if spec.not_after <= spec.not_before {
        return Err(PkiError::Validity("notAfter is not after notBefore".into()));
    }
    let issuer = Issuer::from_ca_cert_pem(ca_pem, ca_key)?;
    Ok(spec.params()?.signed_by(public_key, &issuer)?)
}
