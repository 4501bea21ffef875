//! Certificate revocation lists (v2): numbered, with reason codes and the CA's key identifier.

use rcgen::{
    CertificateRevocationList, CertificateRevocationListParams, Issuer, KeyIdMethod,
    RevocationReason, RevokedCertParams, SerialNumber, SigningKey,
};
use time::OffsetDateTime;

use super::PkiError;

/// One revoked certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedCertificate {
    /// Serial number, big-endian without leading zero octets.
    pub serial: Vec<u8>,
    pub revoked_at: OffsetDateTime,
    pub reason: RevocationReason,
}

/// Everything a CRL says.
#[derive(Clone, Debug)]
pub struct CrlSpec {
    /// Strictly increasing per Issuer (RFC 5280 §5.2.3).
    pub number: u64,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
    pub revoked: Vec<RevokedCertificate>,
    /// The CA certificate's subject key identifier, written as the CRL's authority key
    /// identifier; relying parties (openssl among them) match the two.
    pub authority_key_identifier: Vec<u8>,
}

/// How many CRLs a list too large for one import is split into: Roles Anywhere holds at most two
/// per trust anchor.
pub const CRL_SHARDS: usize = 2;

/// The shard a serial belongs to when a CRL is split: the low bit of its last octet. Serials are
/// random, so the shards are even; and a serial always lands in the same shard, so re-importing
/// the shards one after the other never leaves an entry on neither.
pub fn crl_shard_of(serial: &[u8]) -> usize {
    serial.last().map_or(0, |octet| usize::from(octet & 1))
}

/// The entries of each shard, in order.
pub fn split_into_shards(entries: &[RevokedCertificate]) -> Vec<Vec<RevokedCertificate>> {
    let mut shards = vec![Vec::new(); CRL_SHARDS];
    for entry in entries {
        shards[crl_shard_of(&entry.serial) % CRL_SHARDS].push(entry.clone());
    }
    shards
}

/// Builds and signs a CRL. Entries are written in serial order, so the same revocations always
/// give the same list.
pub fn build_crl(
    spec: &CrlSpec,
    ca_pem: &str,
    ca_key: &impl SigningKey,
) -> Result<CertificateRevocationList, PkiError> {
    if spec.next_update <= spec.this_update {
        return Err(PkiError::Validity(
            "CRL nextUpdate is not after thisUpdate".into(),
        ));
    }
    let mut revoked = spec.revoked.clone();
    revoked.sort_by(|a, b| a.serial.cmp(&b.serial));
    revoked.dedup_by(|a, b| a.serial == b.serial);
    let params = CertificateRevocationListParams {
        this_update: spec.this_update,
        next_update: spec.next_update,
        crl_number: SerialNumber::from_slice(&spec.number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .into_iter()
            .map(|entry| RevokedCertParams {
                serial_number: SerialNumber::from_slice(&entry.serial),
                revocation_time: entry.revoked_at,
                // RFC 5280 §5.3.1: unspecified SHOULD be absent; it also saves 14 bytes a
                // entry under the import limit.
                reason_code: (entry.reason != RevocationReason::Unspecified)
                    .then_some(entry.reason),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::PreSpecified(spec.authority_key_identifier.clone()),
    };
    let issuer = Issuer::from_ca_cert_pem(ca_pem, ca_key)?;
    Ok(params.signed_by(&issuer)?)
}

/// A hex serial number (as the API holds it) as big-endian bytes without leading zero octets.
pub fn parse_serial_hex(hex: &str) -> Result<Vec<u8>, PkiError> {
    let invalid = || PkiError::InvalidSerialNumber(hex.to_string());
    // Checked first: slicing below is by byte, and a multi-byte character would split.
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    let padded = if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex.to_string()
    };
    if padded.is_empty() || padded.len() > 2 * super::MAX_SERIAL_NUMBER_BYTES + 2 {
        return Err(invalid());
    }
    let bytes = hex::decode(&padded).map_err(|_| invalid())?;
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    Ok(bytes[first..].to_vec())
}

#[cfg(test)]
mod shard_tests {
    use super::*;

    fn entry(serial: Vec<u8>) -> RevokedCertificate {
        RevokedCertificate {
            serial,
            revoked_at: OffsetDateTime::UNIX_EPOCH,
            reason: RevocationReason::Unspecified,
        }
    }

    #[test]
    fn every_entry_lands_in_exactly_one_shard_always_the_same() {
        let entries: Vec<RevokedCertificate> = (0..2_000)
            .map(|_| {
                let serial = super::super::random_serial_number()
                    .map(|s| s.to_bytes())
                    .unwrap_or_default();
                entry(serial)
            })
            .collect();
        let shards = split_into_shards(&entries);
        assert_eq!(shards.len(), CRL_SHARDS);
        assert_eq!(shards.iter().map(Vec::len).sum::<usize>(), entries.len());
        for (index, shard) in shards.iter().enumerate() {
            assert!(shard.iter().all(|e| crl_shard_of(&e.serial) == index));
            // Random serials: each half within 10% of even (nine standard deviations: it never fails by chance).
            assert!(
                (800..=1_200).contains(&shard.len()),
                "shard {index}: {}",
                shard.len()
            );
        }
        assert_eq!(split_into_shards(&entries)[0], shards[0]);
        assert_eq!(crl_shard_of(&[0x7f, 0x02]), 0);
        assert_eq!(crl_shard_of(&[0x7f, 0x03]), 1);
        assert_eq!(crl_shard_of(&[]), 0);
    }
}
