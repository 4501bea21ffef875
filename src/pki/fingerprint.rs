//! Names derived from keys: the ledger's authority id of a CA and the fingerprint of a workload key.

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}

/// Hex digits of a CA's SHA-256 kept in its authority id: 128 bits, enough that no two CAs
/// collide, short enough for object names and label values.
const AUTHORITY_ID_HEX_DIGITS: usize = 32;

/// The ledger's id of a CA: derived from its public key (SubjectPublicKeyInfo DER), so the same key
/// under a re-created Issuer or a renewed CA certificate keeps its records and CRL numbers.
pub fn authority_id(public_key_info: &[u8]) -> String {
    let mut id = sha256_hex(public_key_info);
    id.truncate(AUTHORITY_ID_HEX_DIGITS);
    id
}

/// Fingerprint of a workload's public key (SubjectPublicKeyInfo DER).
pub fn key_fingerprint(public_key_info: &[u8]) -> String {
    sha256_hex(public_key_info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(authority_id(b"abc"), "ba7816bf8f01cfea414140de5dae2223");
        assert_ne!(authority_id(b"abc"), authority_id(b"abd"));
        assert_eq!(key_fingerprint(b"abc").len(), 64);
    }
}
