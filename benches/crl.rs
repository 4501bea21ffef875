//! What a large CRL costs: build + sign time and size for 1,000 to 100,000 revoked 20-octet
//! serials (what iamra issues), and how many entries fit under Roles Anywhere's 300,000-byte
//! limit for an imported (PEM) CRL. Signed with a local ECDSA P-256 CA key.
//!
//!     cargo bench --bench crl

use std::time::Instant;

use iamra::api::{CaKeyAlgorithm, RevocationReason};
use iamra::pki::{
    CaCertificateSpec, CrlSpec, RevokedCertificate, build_crl, generate_ca_key,
    random_serial_number, self_signed_ca,
};
use rcgen::DistinguishedName;
use time::{Duration, OffsetDateTime};

/// Roles Anywhere refuses larger CRLs (ImportCrl / UpdateCrl `crlData`).
const ROLES_ANYWHERE_LIMIT: usize = 300_000;

fn revoked(count: usize, now: OffsetDateTime) -> Vec<RevokedCertificate> {
    (0..count)
        .map(|_| RevokedCertificate {
            serial: random_serial_number()
                .map(|s| s.to_bytes())
                .unwrap_or_else(|e| panic!("serial: {e}")),
            revoked_at: now,
            reason: RevocationReason::KeyCompromise,
        })
        .collect()
}

fn main() {
    let now = OffsetDateTime::now_utc();
    let key = generate_ca_key(CaKeyAlgorithm::EcdsaP256).unwrap_or_else(|e| panic!("key: {e}"));
    let ca = self_signed_ca(
        &CaCertificateSpec {
            subject: DistinguishedName::new(),
            not_before: now,
            not_after: now + Duration::days(365),
        },
        &key,
    )
    .unwrap_or_else(|e| panic!("CA: {e}"));
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(&ca.pem(), &key).unwrap_or_else(|e| panic!("issuer: {e}"));
    println!(
        "{:>8}  {:>12}  {:>11}  {:>11}  {:>14}",
        "entries", "build+sign", "DER bytes", "PEM bytes", "bytes/entry"
    );
    let mut pem_per_entry = 0.0;
    for count in [1_000, 10_000, 100_000] {
        let spec = CrlSpec {
            number: 1,
            this_update: now,
            next_update: now + Duration::days(1),
            revoked: revoked(count, now),
            authority_key_identifier: vec![7; 20],
        };
        let started = Instant::now();
        let crl = build_crl(&spec, &issuer).unwrap_or_else(|e| panic!("CRL: {e}"));
        let elapsed = started.elapsed();
        let der = crl.der().len();
        let pem = crl.pem().unwrap_or_else(|e| panic!("PEM: {e}")).len();
        pem_per_entry = pem as f64 / count as f64;
        println!(
            "{count:>8}  {:>9.1} ms  {der:>11}  {pem:>11}  {pem_per_entry:>8.1} (PEM)",
            elapsed.as_secs_f64() * 1000.0
        );
    }
    println!(
        "\nentries that fit Roles Anywhere's {ROLES_ANYWHERE_LIMIT}-byte limit: about {:.0} \
         (iamra drops entries of expired certificates, so this bounds the revocations of \
         certificates still valid at one time)",
        ROLES_ANYWHERE_LIMIT as f64 / pem_per_entry
    );
}
