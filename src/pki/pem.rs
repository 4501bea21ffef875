//! PEM (RFC 7468): the labelled base64 blocks of a text file. The one PEM reader of the crate,
//! on the `pem` crate (rcgen's own), so every certificate, key and CRL is read the same way.

/// One `-----BEGIN <label>-----` block, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemBlock {
    pub label: String,
    pub der: Vec<u8>,
}

/// Why a PEM text could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not valid PEM: {0}")]
pub struct PemError(String);

/// Every PEM block in `text`, in order. Text outside blocks (comments, `openssl` headers) is
/// ignored; a block whose END line does not match its BEGIN line, or whose body is not base64,
/// is an error.
pub fn parse_pem(text: &str) -> Result<Vec<PemBlock>, PemError> {
    let blocks = pem::parse_many(text).map_err(|error| PemError(error.to_string()))?;
    Ok(blocks
        .into_iter()
        .map(|block| PemBlock {
            label: block.tag().to_owned(),
            der: block.into_contents(),
        })
        .collect())
}

/// The DER of every block labelled `label`, in order.
pub fn blocks_labelled(text: &str, label: &str) -> Result<Vec<Vec<u8>>, PemError> {
    Ok(parse_pem(text)?
        .into_iter()
        .filter(|block| block.label == label)
        .map(|block| block.der)
        .collect())
}

/// `data` as DER: the first block labelled `label` when it is PEM text, else `data` itself.
/// None when it is PEM without such a block.
pub fn der_of(data: &[u8], label: &str) -> Option<Vec<u8>> {
    match std::str::from_utf8(data) {
        Ok(text) if text.contains("-----BEGIN") => {
            blocks_labelled(text, label).ok()?.into_iter().next()
        }
        _ => Some(data.to_vec()),
    }
}

/// Encodes DER as one PEM block with 64-character lines and LF line endings.
pub fn encode_pem(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_skips_text_between_blocks() {
        let text = format!(
            "subject=CN=x\n{}junk\n{}",
            encode_pem("CERTIFICATE", &[1, 2, 3]),
            encode_pem("EC PRIVATE KEY", &[4; 100])
        );
        let blocks = parse_pem(&text).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, "CERTIFICATE");
        assert_eq!(blocks[0].der, vec![1, 2, 3]);
        assert_eq!(blocks[1].der, vec![4; 100]);
        assert_eq!(
            blocks_labelled(&text, "EC PRIVATE KEY"),
            Ok(vec![vec![4; 100]])
        );
    }

    #[test]
    fn rejects_mismatched_end_and_bad_base64() {
        assert!(parse_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----\n").is_err());
        assert!(
            parse_pem("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n").is_err()
        );
    }

    #[test]
    fn der_of_reads_pem_or_passes_der_through() {
        let pem = encode_pem("X509 CRL", &[9, 9]);
        assert_eq!(der_of(pem.as_bytes(), "X509 CRL"), Some(vec![9, 9]));
        assert_eq!(der_of(pem.as_bytes(), "CERTIFICATE"), None);
        assert_eq!(der_of(&[0x30, 0x03], "X509 CRL"), Some(vec![0x30, 0x03]));
    }
}
