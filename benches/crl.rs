//! What a large CRL costs, and how many entries one trust anchor can hold: build + sign time and
//! size for 1,000 to 100,000 revoked serials of what iamra issues now (9-octet serials, a reason
//! code only where one was given), side by side with what it issued before (20-octet serials, a
//! reason code on every entry), and how many entries fit under Roles Anywhere's 300,000-byte limit
//! for an imported (PEM) CRL, alone and split across a trust anchor's two CRL slots. Signed with a
//! local ECDSA P-256 CA key.
//!
//!     cargo bench --bench crl

use std::time::Instant;

use iamra::pki::{
    CaCertificateSpec, CrlSpec, KeyAlgorithm, MAX_SERIAL_NUMBER_BYTES, RevocationReason,
    RevokedCertificate, SubjectName, build_crl, generate_key, random_serial_number, self_signed_ca,
    split_into_shards,
};
use rcgen::SigningKey;
use time::{Duration, OffsetDateTime};

/// Roles Anywhere refuses larger CRLs (ImportCrl / UpdateCrl `crlData`).
const ROLES_ANYWHERE_LIMIT: usize = 300_000;

/// One way of writing entries.
struct EntryFormat {
    name: &'static str,
    serial_bytes: usize,
    reason: RevocationReason,
}

const FORMATS: [EntryFormat; 3] = [
    EntryFormat {
        name: "before: 20-octet serial, reason always",
        serial_bytes: MAX_SERIAL_NUMBER_BYTES,
        reason: RevocationReason::KeyCompromise,
    },
    EntryFormat {
        name: "now: 9-octet serial, keyCompromise given",
        serial_bytes: iamra::pki::SERIAL_NUMBER_BYTES,
        reason: RevocationReason::KeyCompromise,
    },
    EntryFormat {
        name: "now: 9-octet serial, no reason given",
        serial_bytes: iamra::pki::SERIAL_NUMBER_BYTES,
        reason: RevocationReason::Unspecified,
    },
];

fn revoked(format: &EntryFormat, count: usize, now: OffsetDateTime) -> Vec<RevokedCertificate> {
    (0..count)
        .map(|_| {
            let mut serial = Vec::new();
            // Random serials of the format's length, positive and without leading zero octets.
            while serial.len() < format.serial_bytes {
                serial.extend(
                    random_serial_number()
                        .map(|s| s.to_bytes())
                        .unwrap_or_else(|e| panic!("serial: {e}")),
                );
            }
            serial.truncate(format.serial_bytes);
            serial[0] = (serial[0] & 0x7f) | 0x40;
            RevokedCertificate {
                serial,
                revoked_at: now,
                reason: format.reason,
            }
        })
        .collect()
}

fn measure(
    (ca_pem, ca_key): (&str, &impl SigningKey),
    format: &EntryFormat,
    count: usize,
    now: OffsetDateTime,
) -> (f64, usize, usize) {
    let spec = CrlSpec {
        number: 1,
        this_update: now,
        next_update: now + Duration::days(1),
        revoked: revoked(format, count, now),
        authority_key_identifier: vec![7; 20],
    };
    let started = Instant::now();
    let crl = build_crl(&spec, ca_pem, ca_key).unwrap_or_else(|e| panic!("CRL: {e}"));
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    let pem = crl.pem().unwrap_or_else(|e| panic!("PEM: {e}")).len();
    (elapsed, crl.der().len(), pem)
}

fn main() {
    let now = OffsetDateTime::now_utc();
    let key = generate_key(KeyAlgorithm::EcdsaP256).unwrap_or_else(|e| panic!("key: {e}"));
    let ca = self_signed_ca(
        &CaCertificateSpec {
            subject: SubjectName::default(),
            not_before: now,
            not_after: now + Duration::days(365),
        },
        &key,
    )
    .unwrap_or_else(|e| panic!("CA: {e}"));
    let ca_pem = ca.pem();
    let issuer = (ca_pem.as_str(), &key);
    let mut fits = Vec::new();
    for format in &FORMATS {
        println!("\n{}", format.name);
        println!(
            "{:>8}  {:>12}  {:>11}  {:>11}  {:>14}",
            "entries", "build+sign", "DER bytes", "PEM bytes", "bytes/entry"
        );
        let mut pem_per_entry = 0.0;
        for count in [1_000, 10_000, 100_000] {
            let (elapsed, der, pem) = measure(issuer, format, count, now);
            pem_per_entry = pem as f64 / count as f64;
            println!(
                "{count:>8}  {elapsed:>9.1} ms  {der:>11}  {pem:>11}  {pem_per_entry:>8.1} (PEM)"
            );
        }
        fits.push((format.name, ROLES_ANYWHERE_LIMIT as f64 / pem_per_entry));
    }
    println!(
        "\nentries of unexpired certificates one imported CRL (one of a trust anchor's two) holds \
         under Roles Anywhere's {ROLES_ANYWHERE_LIMIT}-byte limit:"
    );
    let before = fits[0].1;
    for (name, entries) in &fits {
        println!(
            "  {name:<44} {entries:>7.0}  ({:.2}x before)",
            entries / before
        );
    }
    println!(
        "\nentries one trust anchor holds with the CRL split by serial across both slots (each \
         half signed and checked against the limit; before, a CA used one slot):"
    );
    for (format, (name, one_crl)) in FORMATS.iter().zip(&fits) {
        let (entries, largest) = per_anchor(issuer, format, *one_crl, now);
        println!(
            "  {name:<44} {entries:>7}  (larger half {largest} PEM bytes; {:.2}x before)",
            entries as f64 / before
        );
    }
}

/// The most entries (to within 0.5%) whose two halves each fit one import, starting from twice
/// what one CRL holds; and the larger half's PEM size.
fn per_anchor(
    (ca_pem, ca_key): (&str, &impl SigningKey),
    format: &EntryFormat,
    one_crl: f64,
    now: OffsetDateTime,
) -> (usize, usize) {
    let mut count = (one_crl * 2.0) as usize;
    loop {
        let largest = split_into_shards(&revoked(format, count, now))
            .into_iter()
            .map(|half| {
                let spec = CrlSpec {
                    number: 1,
                    this_update: now,
                    next_update: now + Duration::days(1),
                    revoked: half,
                    authority_key_identifier: vec![7; 20],
                };
                let crl = build_crl(&spec, ca_pem, ca_key).unwrap_or_else(|e| panic!("CRL: {e}"));
                crl.pem().unwrap_or_else(|e| panic!("PEM: {e}")).len()
            })
            .max()
            .unwrap_or(0);
        if largest <= ROLES_ANYWHERE_LIMIT {
            return (count, largest);
        }
        count -= count / 200;
    }
}
