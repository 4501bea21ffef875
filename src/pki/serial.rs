//! Certificate serial numbers: random, positive, 20 octets (the RFC 5280 maximum).

use rcgen::SerialNumber;

use super::PkiError;

/// Octets in every serial number issued here: 72 bits, 70 of them random (the top two are fixed,
/// below), above the CA/Browser Forum's 64 random bits. Shorter than RFC 5280's 20-octet ceiling
/// on purpose: every octet is paid for in each CRL entry, and an imported CRL is capped at
/// 300,000 bytes.
pub const SERIAL_NUMBER_BYTES: usize = 9;
/// RFC 5280's ceiling, accepted when a serial is parsed (certificates issued elsewhere, or before).
pub const MAX_SERIAL_NUMBER_BYTES: usize = 20;

/// A fresh random serial number. The top bit is cleared so the DER INTEGER is positive without a
/// leading zero octet, and the next bit is set so it always takes exactly
/// [`SERIAL_NUMBER_BYTES`] octets.
pub fn random_serial_number() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; SERIAL_NUMBER_BYTES];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| PkiError::Random)?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Lowercase hex without separators or leading zero octets, as `openssl x509 -serial` prints it
/// (but lowercase), and as the API's `serialNumber` fields hold it.
pub fn serial_hex(bytes: &[u8]) -> String {
    let significant = match bytes.iter().position(|b| *b != 0) {
        Some(first) => &bytes[first..],
        None => &[0u8][..],
    };
    hex::encode(significant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_positive_fixed_length_and_differ() {
        let first = random_serial_number().unwrap().to_bytes();
        let second = random_serial_number().unwrap().to_bytes();
        assert_eq!(first.len(), SERIAL_NUMBER_BYTES);
        assert_eq!(first[0] & 0xc0, 0x40, "top bit clear, next bit set");
        assert_ne!(first, second);
    }

    #[test]
    fn hex_drops_leading_zero_octets() {
        assert_eq!(serial_hex(&[0x00, 0x0a, 0xff]), "0aff");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[]), "00");
    }
}
