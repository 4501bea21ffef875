//! Test PKI, generated with rcgen: CAs, workload leaves (KU digitalSignature, EKU clientAuth,
//! CA:false), an expired leaf, CRLs. ECDSA P-256 and RSA 2048.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber, SignatureAlgorithm,
};
use time::{Duration, OffsetDateTime};

#[derive(Clone, Copy, Debug)]
pub enum Alg {
    EcdsaP256,
    Rsa2048,
}

impl Alg {
    fn rcgen(self) -> &'static SignatureAlgorithm {
        match self {
            Alg::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Alg::Rsa2048 => &rcgen::PKCS_RSA_SHA256,
        }
    }
}

pub struct Ca {
    pub issuer: CertifiedIssuer<'static, KeyPair>,
    pub pem: String,
    pub ski: Vec<u8>,
}

pub struct Leaf {
    pub cert_pem: String,
    /// PKCS#8.
    pub key_pem: String,
    pub serial: Vec<u8>,
    pub alg: Alg,
}

pub fn ca(common_name: &str, alg: Alg) -> Ca {
    let key = KeyPair::generate_for(alg.rcgen()).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(365);
    let ski = params.key_identifier(&key);
    let issuer = CertifiedIssuer::self_signed(params, key).unwrap();
    let pem = issuer.pem();
    Ca { issuer, pem, ski }
}

/// A workload certificate valid from `not_before` to `not_after` (relative to now).
pub fn leaf_valid(ca: &Ca, alg: Alg, not_before: Duration, not_after: Duration) -> Leaf {
    leaf_with_sans(
        ca,
        alg,
        not_before,
        not_after,
        vec![SanType::DnsName("workload.iamra.test".try_into().unwrap())],
    )
}

/// A workload certificate whose only SAN is the URI `uri` (a SPIFFE identity).
pub fn leaf_with_uri_san(ca: &Ca, alg: Alg, uri: &str) -> Leaf {
    leaf_with_sans(
        ca,
        alg,
        -Duration::hours(1),
        Duration::days(30),
        vec![SanType::URI(uri.try_into().unwrap())],
    )
}

fn leaf_with_sans(
    ca: &Ca,
    alg: Alg,
    not_before: Duration,
    not_after: Duration,
    subject_alt_names: Vec<SanType>,
) -> Leaf {
    let key = KeyPair::generate_for(alg.rcgen()).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = subject_alt_names;
    params
        .distinguished_name
        .push(DnType::CommonName, "workload");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let mut serial = [0u8; 20];
    aws_lc_rs::rand::fill(&mut serial).unwrap();
    serial[0] &= 0x7f; // positive
    serial[0] |= 0x40; // 20 octets, no leading zero
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let now = OffsetDateTime::now_utc();
    params.not_before = now + not_before;
    params.not_after = now + not_after;
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        serial: serial.to_vec(),
        alg,
    }
}

pub fn leaf(ca: &Ca, alg: Alg) -> Leaf {
    leaf_valid(ca, alg, -Duration::hours(1), Duration::days(30))
}

pub fn expired_leaf(ca: &Ca, alg: Alg) -> Leaf {
    leaf_valid(ca, alg, -Duration::days(10), -Duration::days(1))
}

/// A CRL of `ca` revoking `serials`, in PEM.
pub fn crl_pem(ca: &Ca, serials: &[&[u8]], number: u64) -> String {
    let now = OffsetDateTime::now_utc();
    let params = CertificateRevocationListParams {
        this_update: now - Duration::minutes(1),
        next_update: now + Duration::days(7),
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|serial| RevokedCertParams {
                serial_number: SerialNumber::from_slice(serial),
                revocation_time: now - Duration::minutes(1),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::PreSpecified(ca.ski.clone()),
    };
    params.signed_by(&ca.issuer).unwrap().pem().unwrap()
}

/// Writes the leaf's certificate and key into `dir`; returns (certificate, key) paths.
pub fn write_leaf(dir: &Path, name: &str, leaf: &Leaf) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, &leaf.cert_pem).unwrap();
    std::fs::write(&key, &leaf.key_pem).unwrap();
    (cert, key)
}

/// Rewrites a PKCS#8 key in its traditional form (SEC1 `EC PRIVATE KEY` / PKCS#1
/// `RSA PRIVATE KEY`) with openssl, to prove those load too.
pub fn write_traditional_key(dir: &Path, name: &str, leaf: &Leaf) -> PathBuf {
    let pkcs8 = dir.join(format!("{name}.pkcs8.key"));
    let out = dir.join(format!("{name}.traditional.key"));
    std::fs::write(&pkcs8, &leaf.key_pem).unwrap();
    let kind = match leaf.alg {
        Alg::EcdsaP256 => "ec",
        Alg::Rsa2048 => "rsa",
    };
    let mut args = vec![kind, "-in"];
    let pkcs8_s = pkcs8.to_str().unwrap().to_owned();
    let out_s = out.to_str().unwrap().to_owned();
    args.push(&pkcs8_s);
    args.extend(["-out", &out_s]);
    if matches!(leaf.alg, Alg::Rsa2048) {
        args.push("-traditional");
    }
    let status = std::process::Command::new("openssl")
        .args(&args)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl {args:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    let expected = match leaf.alg {
        Alg::EcdsaP256 => "BEGIN EC PRIVATE KEY",
        Alg::Rsa2048 => "BEGIN RSA PRIVATE KEY",
    };
    assert!(text.contains(expected), "openssl wrote {text:.40}");
    out
}

/// A CA signed by `parent` (for chains through `X-Amz-X509-Chain`).
pub fn intermediate_ca(parent: &Ca, common_name: &str, alg: Alg) -> Ca {
    let key = KeyPair::generate_for(alg.rcgen()).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(90);
    let ski = params.key_identifier(&key);
    let issuer = CertifiedIssuer::signed_by(params, key, &parent.issuer).unwrap();
    let pem = issuer.pem();
    Ca { issuer, pem, ski }
}
