//! The throwaway PKI of a local control plane: a CA, the API server's serving certificate, and
//! the service-account signing key.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// PEM-encoded material for one local control plane.
pub struct ControlPlanePki {
    pub ca_certificate_pem: String,
    pub serving_certificate_pem: String,
    pub serving_key_pem: String,
    pub service_account_key_pem: String,
    pub service_account_public_key_pem: String,
}

/// Creates a fresh CA and a serving certificate for `127.0.0.1` and `localhost`.
pub fn generate() -> Result<ControlPlanePki, rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "iamra local control plane CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_certificate = ca_params.self_signed(&ca_key)?;
    let ca = Issuer::new(ca_params, ca_key);

    let serving_key = KeyPair::generate()?;
    let mut serving_params = CertificateParams::default();
    serving_params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    serving_params.subject_alt_names = vec![
        SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
        SanType::DnsName("localhost".try_into()?),
    ];
    serving_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    serving_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_certificate = serving_params.signed_by(&serving_key, &ca)?;

    let service_account_key = KeyPair::generate()?;
    Ok(ControlPlanePki {
        ca_certificate_pem: ca_certificate.pem(),
        serving_certificate_pem: serving_certificate.pem(),
        serving_key_pem: serving_key.serialize_pem(),
        service_account_key_pem: service_account_key.serialize_pem(),
        service_account_public_key_pem: service_account_key.public_key_pem(),
    })
}
