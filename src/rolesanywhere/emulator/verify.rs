//! What the service checks about the presented certificate, as pure functions: the path to the
//! trust anchor, validity, key usage, basic constraints, and the enabled CRLs. Signatures are
//! verified with aws-lc-rs (x509-parser's own verification would pull `ring`).

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::certificate::X509Certificate;
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::x509::{SubjectPublicKeyInfo, X509Version};

use crate::rolesanywhere::errors::{MESSAGE_CERTIFICATE_REVOKED, MESSAGE_UNTRUSTED_CERTIFICATE};

/// The service accepts at most this many intermediates in `X-Amz-X509-Chain`.
pub const MAX_CHAIN_CERTIFICATES: usize = 5;

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const OID_CURVE_P256: &str = "1.2.840.10045.3.1.7";
const OID_CURVE_P384: &str = "1.3.132.0.34";
const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const OID_RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const OID_RSA_SHA384: &str = "1.2.840.113549.1.1.12";
const OID_RSA_SHA512: &str = "1.2.840.113549.1.1.13";

/// Why a certificate is refused; `service_message` is what the service answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateRejection {
    #[error("no path from the certificate to the trust anchor: {0}")]
    Untrusted(String),
    #[error("certificate expired")]
    Expired,
    #[error("certificate not yet valid")]
    NotYetValid,
    #[error("certificate is not acceptable: {0}")]
    Unacceptable(String),
    #[error("certificate revoked by CRL {crl_name:?}")]
    Revoked { crl_name: String },
}

impl CertificateRejection {
    /// The `AccessDeniedException` message the client sees.
    pub fn service_message(&self) -> String {
        match self {
            Self::Untrusted(_) => MESSAGE_UNTRUSTED_CERTIFICATE.to_owned(),
            // Wording of the emulator: the real service's text for these was not observed.
            Self::Expired => "Certificate expired".to_owned(),
            Self::NotYetValid => "Certificate not yet valid".to_owned(),
            Self::Unacceptable(why) => format!("Invalid certificate: {why}"),
            Self::Revoked { .. } => MESSAGE_CERTIFICATE_REVOKED.to_owned(),
        }
    }
}

/// Verifies `signature` over `message` made with `signature_oid` by the key in `spki`.
pub fn verify_signature(
    spki: &SubjectPublicKeyInfo<'_>,
    signature_oid: &str,
    message: &[u8],
    signature: &[u8],
) -> bool {
    let key_oid = spki.algorithm.algorithm.to_id_string();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|oid| oid.to_id_string());
    let algorithm: &'static dyn VerificationAlgorithm =
        match (key_oid.as_str(), curve.as_deref(), signature_oid) {
            (OID_EC_PUBLIC_KEY, Some(OID_CURVE_P256), OID_ECDSA_SHA256) => {
                &signature::ECDSA_P256_SHA256_ASN1
            }
            (OID_EC_PUBLIC_KEY, Some(OID_CURVE_P256), OID_ECDSA_SHA384) => {
                &signature::ECDSA_P256_SHA384_ASN1
            }
            (OID_EC_PUBLIC_KEY, Some(OID_CURVE_P384), OID_ECDSA_SHA256) => {
                &signature::ECDSA_P384_SHA256_ASN1
            }
            (OID_EC_PUBLIC_KEY, Some(OID_CURVE_P384), OID_ECDSA_SHA384) => {
                &signature::ECDSA_P384_SHA384_ASN1
            }
            (OID_RSA_ENCRYPTION, _, OID_RSA_SHA256) => &signature::RSA_PKCS1_2048_8192_SHA256,
            (OID_RSA_ENCRYPTION, _, OID_RSA_SHA384) => &signature::RSA_PKCS1_2048_8192_SHA384,
            (OID_RSA_ENCRYPTION, _, OID_RSA_SHA512) => &signature::RSA_PKCS1_2048_8192_SHA512,
            _ => return false,
        };
    UnparsedPublicKey::new(algorithm, spki.subject_public_key.data.as_ref())
        .verify(message, signature)
        .is_ok()
}

/// The SigV4-X509 signature: SHA-256 with the leaf's EC (P-256) or RSA key.
pub fn verify_request_signature(
    leaf: &X509Certificate<'_>,
    algorithm: crate::rolesanywhere::sigv4x509::SigningAlgorithm,
    string_to_sign: &[u8],
    signature: &[u8],
) -> bool {
    use crate::rolesanywhere::sigv4x509::SigningAlgorithm;
    let signature_oid = match algorithm {
        SigningAlgorithm::EcdsaSha256 => OID_ECDSA_SHA256,
        SigningAlgorithm::RsaSha256 => OID_RSA_SHA256,
    };
    verify_signature(leaf.public_key(), signature_oid, string_to_sign, signature)
}

fn issued_by(child: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    child.issuer().as_raw() == issuer.subject().as_raw()
        && verify_signature(
            issuer.public_key(),
            &child.signature_algorithm.algorithm.to_id_string(),
            child.tbs_certificate.as_ref(),
            child.signature_value.data.as_ref(),
        )
}

fn check_validity(cert: &X509Certificate<'_>, now_unix: i64) -> Result<(), CertificateRejection> {
    if now_unix < cert.validity().not_before.timestamp() {
        return Err(CertificateRejection::NotYetValid);
    }
    if now_unix > cert.validity().not_after.timestamp() {
        return Err(CertificateRejection::Expired);
    }
    Ok(())
}

fn is_ca(cert: &X509Certificate<'_>) -> bool {
    matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca)
}

/// The end-entity rules of the service: v3, non-empty subject, SHA-256 or stronger, KU
/// digitalSignature, and CA:false when BasicConstraints is present.
pub fn check_leaf_profile(leaf: &X509Certificate<'_>) -> Result<(), CertificateRejection> {
    let unacceptable = |why: &str| Err(CertificateRejection::Unacceptable(why.to_owned()));
    if leaf.version() != X509Version::V3 {
        return unacceptable("not an X.509 v3 certificate");
    }
    if leaf.subject().iter().next().is_none() {
        return unacceptable("empty subject");
    }
    let signature_oid = leaf.signature_algorithm.algorithm.to_id_string();
    if ![
        OID_ECDSA_SHA256,
        OID_ECDSA_SHA384,
        OID_RSA_SHA256,
        OID_RSA_SHA384,
        OID_RSA_SHA512,
    ]
    .contains(&signature_oid.as_str())
    {
        return unacceptable("signed with an algorithm weaker than SHA-256");
    }
    match leaf.key_usage() {
        Ok(Some(ku)) if ku.value.digital_signature() => {}
        Ok(_) => return unacceptable("key usage lacks digitalSignature"),
        Err(_) => return unacceptable("malformed key usage"),
    }
    match leaf.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => unacceptable("a CA certificate cannot sign requests"),
        Ok(_) => Ok(()),
        Err(_) => unacceptable("malformed basic constraints"),
    }
}

/// Builds a path leaf → intermediates (from the request) → a certificate of the trust anchor,
/// checking signatures, CA flags and validity on the way. Returns the leaf's direct issuer.
pub fn verify_path<'a>(
    leaf: &X509Certificate<'_>,
    intermediates: &'a [X509Certificate<'a>],
    anchors: &'a [X509Certificate<'a>],
    now_unix: i64,
) -> Result<&'a X509Certificate<'a>, CertificateRejection> {
    if intermediates.len() > MAX_CHAIN_CERTIFICATES {
        return Err(CertificateRejection::Unacceptable(format!(
            "more than {MAX_CHAIN_CERTIFICATES} certificates in X-Amz-X509-Chain"
        )));
    }
    check_validity(leaf, now_unix)?;
    let mut leaf_issuer: Option<&'a X509Certificate<'a>> = None;
    let mut current_issuer_name = leaf.issuer().as_raw();
    let mut current: Option<&'a X509Certificate<'a>> = None;
    // Each step consumes one intermediate, so the walk ends after at most chain + 1 steps.
    for _ in 0..=intermediates.len() {
        let child_verifies = |candidate: &X509Certificate<'_>| match current {
            None => issued_by(leaf, candidate),
            Some(child) => issued_by(child, candidate),
        };
        if let Some(anchor) = anchors
            .iter()
            .find(|a| a.subject().as_raw() == current_issuer_name && child_verifies(a))
        {
            if !is_ca(anchor) {
                return Err(CertificateRejection::Untrusted(
                    "trust anchor certificate is not a CA".into(),
                ));
            }
            check_validity(anchor, now_unix)
                .map_err(|e| CertificateRejection::Untrusted(format!("trust anchor: {e}")))?;
            return Ok(leaf_issuer.unwrap_or(anchor));
        }
        let Some(next) = intermediates
            .iter()
            .find(|c| c.subject().as_raw() == current_issuer_name && child_verifies(c))
        else {
            break;
        };
        if !is_ca(next) {
            return Err(CertificateRejection::Untrusted(
                "an intermediate is not a CA".into(),
            ));
        }
        check_validity(next, now_unix)
            .map_err(|e| CertificateRejection::Untrusted(format!("intermediate: {e}")))?;
        leaf_issuer.get_or_insert(next);
        current = Some(next);
        current_issuer_name = next.issuer().as_raw();
    }
    Err(CertificateRejection::Untrusted(
        "no certificate of the trust anchor issued it".into(),
    ))
}

/// A CRL counts for `leaf` when it names the leaf's issuer and that issuer signed it.
pub fn check_not_revoked(
    leaf: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
    enabled_crls: &[(String, CertificateRevocationList<'_>)],
) -> Result<(), CertificateRejection> {
    let serial = leaf.tbs_certificate.raw_serial();
    for (name, crl) in enabled_crls {
        if crl.issuer().as_raw() != issuer.subject().as_raw() {
            continue;
        }
        let signed = verify_signature(
            issuer.public_key(),
            &crl.signature_algorithm.algorithm.to_id_string(),
            crl.tbs_cert_list.as_ref(),
            crl.signature_value.data.as_ref(),
        );
        if !signed {
            tracing::warn!(crl = %name, "CRL is not signed by the certificate's issuer; ignored");
            continue;
        }
        if crl
            .iter_revoked_certificates()
            .any(|entry| same_serial(entry.raw_serial(), serial))
        {
            return Err(CertificateRejection::Revoked {
                crl_name: name.clone(),
            });
        }
    }
    Ok(())
}

fn same_serial(a: &[u8], b: &[u8]) -> bool {
    let strip = |s: &[u8]| -> Vec<u8> { s.iter().copied().skip_while(|b| *b == 0).collect() };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
        DnType, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
    };
    use time::{Duration, OffsetDateTime};

    struct TestCa {
        issuer: CertifiedIssuer<'static, KeyPair>,
        ski: Vec<u8>,
    }

    fn ca(name: &str, is_ca: bool) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = if is_ca {
            IsCa::Ca(BasicConstraints::Unconstrained)
        } else {
            IsCa::ExplicitNoCa
        };
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ski = params.key_identifier(&key);
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, key).unwrap(),
            ski,
        }
    }

    fn leaf_der(ca: &TestCa, edit: impl FnOnce(&mut CertificateParams)) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "leaf");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(SerialNumber::from(42u64));
        edit(&mut params);
        params.signed_by(&key, &ca.issuer).unwrap().der().to_vec()
    }

    fn crl_der(ca: &TestCa, serial: u64) -> Vec<u8> {
        let now = OffsetDateTime::now_utc();
        CertificateRevocationListParams {
            this_update: now,
            next_update: now + Duration::days(1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from(serial),
                revocation_time: now,
                reason_code: None,
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::PreSpecified(ca.ski.clone()),
        }
        .signed_by(&ca.issuer)
        .unwrap()
        .der()
        .to_vec()
    }

    fn parse(der: &[u8]) -> X509Certificate<'_> {
        x509_parser::parse_x509_certificate(der).unwrap().1
    }

    fn parsed(der: &[u8]) -> CertificateRevocationList<'_> {
        x509_parser::parse_x509_crl(der).unwrap().1
    }

    fn now() -> i64 {
        OffsetDateTime::now_utc().unix_timestamp()
    }

    #[test]
    fn leaf_profile_rules() {
        let ca = ca("CA", true);
        let good = leaf_der(&ca, |_| {});
        assert_eq!(check_leaf_profile(&parse(&good)), Ok(()));
        type Edit = Box<dyn FnOnce(&mut CertificateParams)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "CA:true",
                Box::new(|p| p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained)),
            ),
            (
                "no digitalSignature",
                Box::new(|p| p.key_usages = vec![KeyUsagePurpose::KeyEncipherment]),
            ),
            ("no key usage", Box::new(|p| p.key_usages = vec![])),
            (
                "empty subject",
                Box::new(|p| p.distinguished_name = rcgen::DistinguishedName::new()),
            ),
        ];
        for (name, edit) in cases {
            let der = leaf_der(&ca, edit);
            assert!(
                matches!(
                    check_leaf_profile(&parse(&der)),
                    Err(CertificateRejection::Unacceptable(_))
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn path_validity_and_trust() {
        let anchor_ca = ca("CA", true);
        let anchor_der = anchor_ca.issuer.der().to_vec();
        let anchors = vec![parse(&anchor_der)];
        let good = leaf_der(&anchor_ca, |_| {});
        assert!(verify_path(&parse(&good), &[], &anchors, now()).is_ok());

        let expired = leaf_der(&anchor_ca, |p| {
            p.not_before = OffsetDateTime::now_utc() - Duration::days(3);
            p.not_after = OffsetDateTime::now_utc() - Duration::days(1);
        });
        assert_eq!(
            verify_path(&parse(&expired), &[], &anchors, now()).err(),
            Some(CertificateRejection::Expired)
        );
        let future = leaf_der(&anchor_ca, |p| {
            p.not_before = OffsetDateTime::now_utc() + Duration::days(1);
            p.not_after = OffsetDateTime::now_utc() + Duration::days(3);
        });
        assert_eq!(
            verify_path(&parse(&future), &[], &anchors, now()).err(),
            Some(CertificateRejection::NotYetValid)
        );

        // Same subject name, different key: the signature decides, not the name.
        let impostor = ca("CA", true);
        let forged = leaf_der(&impostor, |_| {});
        assert!(matches!(
            verify_path(&parse(&forged), &[], &anchors, now()),
            Err(CertificateRejection::Untrusted(_))
        ));

        // An anchor certificate that is not a CA cannot vouch for anything.
        let not_a_ca = ca("not a CA", false);
        let not_a_ca_der = not_a_ca.issuer.der().to_vec();
        let leaf = leaf_der(&not_a_ca, |_| {});
        assert!(matches!(
            verify_path(&parse(&leaf), &[], &[parse(&not_a_ca_der)], now()),
            Err(CertificateRejection::Untrusted(_))
        ));
    }

    #[test]
    fn only_crls_signed_by_the_issuer_revoke() {
        let ca_ = ca("CA", true);
        let ca_der = ca_.issuer.der().to_vec();
        let issuer = parse(&ca_der);
        let leaf = leaf_der(&ca_, |_| {});
        let leaf = parse(&leaf);
        let revoking = crl_der(&ca_, 42);
        let other_serial = crl_der(&ca_, 43);
        let forged = crl_der(&ca("CA", true), 42); // same issuer name, other key
        assert_eq!(
            check_not_revoked(&leaf, &issuer, &[("ok".into(), parsed(&other_serial))]),
            Ok(())
        );
        assert_eq!(
            check_not_revoked(&leaf, &issuer, &[("forged".into(), parsed(&forged))]),
            Ok(())
        );
        assert_eq!(
            check_not_revoked(&leaf, &issuer, &[("real".into(), parsed(&revoking))]),
            Err(CertificateRejection::Revoked {
                crl_name: "real".into()
            })
        );
    }
}
