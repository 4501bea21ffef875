//! Minimal PEM (RFC 7468) decoding: the labelled base64 blocks of a text file.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// One `-----BEGIN <label>-----` block, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemBlock {
    pub label: String,
    pub der: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PemError {
    #[error("PEM block {label:?} has no END line")]
    Unterminated { label: String },
    #[error("PEM block {label:?} is not valid base64")]
    Base64 { label: String },
}

/// Every PEM block in `text`, in order. Text outside blocks (comments, `openssl` headers) is ignored.
pub fn parse_pem(text: &str) -> Result<Vec<PemBlock>, PemError> {
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(label) = line
            .trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut terminated = false;
        for inner in lines.by_ref() {
            let inner = inner.trim();
            if inner == end {
                terminated = true;
                break;
            }
            // RFC 1421 encapsulated headers (`Proc-Type: …`) are not base64.
            if !inner.contains(':') {
                body.push_str(inner);
            }
        }
        if !terminated {
            return Err(PemError::Unterminated {
                label: label.to_owned(),
            });
        }
        let der = STANDARD
            .decode(body.as_bytes())
            .map_err(|_| PemError::Base64 {
                label: label.to_owned(),
            })?;
        blocks.push(PemBlock {
            label: label.to_owned(),
            der,
        });
    }
    Ok(blocks)
}

/// Encodes DER as one PEM block with 64-character lines.
pub fn encode_pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
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
    }

    #[test]
    fn rejects_unterminated_block() {
        assert_eq!(
            parse_pem("-----BEGIN CERTIFICATE-----\nAAAA\n"),
            Err(PemError::Unterminated {
                label: "CERTIFICATE".into()
            })
        );
    }
}
