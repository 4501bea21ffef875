//! Reading certificates back: what the controller compares with the spec and the status.

use x509_parser::prelude::*;

use super::{PkiError, serial_hex};

/// The facts about a certificate the controller acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedCertificate {
    pub der: Vec<u8>,
    pub serial_hex: String,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    /// Seconds since the Unix epoch.
    pub not_after: i64,
    /// DER SubjectPublicKeyInfo.
    pub public_key_info: Vec<u8>,
    pub is_ca: bool,
    pub can_sign_certificates: bool,
    /// The subject key identifier extension, if present.
    pub subject_key_identifier: Option<Vec<u8>>,
    /// DNS names of the subject alternative name extension.
    pub dns_names: Vec<String>,
    /// IP addresses of the subject alternative name extension.
    pub ip_addresses: Vec<std::net::IpAddr>,
}

impl ParsedCertificate {
    /// Whether `issuer_public_key_info` (DER SPKI) verifies this certificate's signature.
    pub fn is_signed_by(&self, issuer_public_key_info: &[u8]) -> bool {
        let Ok((_, certificate)) = X509Certificate::from_der(&self.der) else {
            return false;
        };
        let Ok((_, issuer_key)) = SubjectPublicKeyInfo::from_der(issuer_public_key_info) else {
            return false;
        };
        certificate.verify_signature(Some(&issuer_key)).is_ok()
    }
}

/// Whether `crl` (DER, or PEM `X509 CRL`) is signed by the key `issuer_public_key_info` (DER SPKI).
pub fn crl_is_signed_by(crl: &[u8], issuer_public_key_info: &[u8]) -> bool {
    let Some(der) = super::pem::der_of(crl, "X509 CRL") else {
        return false;
    };
    let Ok((_, parsed)) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der)
    else {
        return false;
    };
    let Ok((_, issuer_key)) = SubjectPublicKeyInfo::from_der(issuer_public_key_info) else {
        return false;
    };
    parsed.verify_signature(&issuer_key).is_ok()
}

/// The DER contents of every `CERTIFICATE` block in a PEM bundle, in order.
pub fn pem_blocks(pem: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    let blocks = super::pem::blocks_labelled(pem, "CERTIFICATE")
        .map_err(|e| PkiError::InvalidPem(e.to_string()))?;
    if blocks.is_empty() {
        return Err(PkiError::InvalidPem("no CERTIFICATE block".into()));
    }
    Ok(blocks)
}

/// The first certificate of a PEM bundle.
pub fn parse_certificate_pem(pem: &str) -> Result<ParsedCertificate, PkiError> {
    let blocks = pem_blocks(pem)?;
    parse_certificate_der(&blocks[0])
}

/// One DER certificate.
pub fn parse_certificate_der(der: &[u8]) -> Result<ParsedCertificate, PkiError> {
    let (_, certificate) =
        X509Certificate::from_der(der).map_err(|e| PkiError::InvalidCertificate(e.to_string()))?;
    let validity = certificate.validity();
    let is_ca = certificate
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|constraints| constraints.value.ca);
    let can_sign_certificates = certificate
        .key_usage()
        .ok()
        .flatten()
        .is_some_and(|usage| usage.value.key_cert_sign());
    let subject_key_identifier =
        certificate
            .extensions()
            .iter()
            .find_map(|extension| match extension.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                    Some(id.0.to_vec())
                }
                _ => None,
            });
    let (dns_names, ip_addresses) = subject_alt_names(&certificate);
    Ok(ParsedCertificate {
        der: der.to_vec(),
        dns_names,
        ip_addresses,
        subject_key_identifier,
        serial_hex: serial_hex(certificate.raw_serial()),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        public_key_info: certificate.public_key().raw.to_vec(),
        is_ca,
        can_sign_certificates,
    })
}

fn subject_alt_names(certificate: &X509Certificate<'_>) -> (Vec<String>, Vec<std::net::IpAddr>) {
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Ok(Some(names)) = certificate.subject_alternative_name() {
        for name in &names.value.general_names {
            match name {
                GeneralName::DNSName(dns) => dns_names.push(dns.to_string()),
                GeneralName::IPAddress(bytes) => match bytes.len() {
                    4 => {
                        let octets: [u8; 4] = [bytes[0], bytes[1], bytes[2], bytes[3]];
                        ip_addresses.push(std::net::IpAddr::from(octets));
                    }
                    16 => {
                        let mut octets = [0u8; 16];
                        octets.copy_from_slice(bytes);
                        ip_addresses.push(std::net::IpAddr::from(octets));
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    (dns_names, ip_addresses)
}
