//! Loading a workload's private key from PEM in any of the forms `openssl` and the official helper
//! accept: PKCS#8 (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) and PKCS#1 (`RSA PRIVATE KEY`).
//! Roles Anywhere signs with SHA-256, so EC keys must be P-256.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};

use super::pem::{PemError, parse_pem};

/// Which signature a key produces; the SigV4-X509 algorithm name follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivateKeyKind {
    EcdsaP256,
    Rsa,
}

/// A private key able to sign SigV4-X509 requests. Its `Debug` never prints key material.
pub enum PrivateKey {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({:?})", self.algorithm())
    }
}

// Messages name the form and never include key bytes.
#[derive(Debug, thiserror::Error)]
pub enum PrivateKeyError {
    #[error("private key file is not PEM: {0}")]
    Pem(#[from] PemError),
    #[error(
        "no private key in the PEM (expected a PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY block)"
    )]
    NoKey,
    #[error(
        "encrypted private keys are not supported; decrypt it first (openssl pkey -in key.pem -out plain.pem)"
    )]
    Encrypted,
    #[error(
        "the {form} private key could not be parsed or is not supported (EC keys must be P-256, RSA keys 2048-8192 bits)"
    )]
    Unsupported { form: &'static str },
    #[error("signing failed")]
    Sign,
}

impl PrivateKey {
    /// The first private key in `pem`; other blocks (certificates, `EC PARAMETERS`) are skipped.
    pub fn from_pem(pem: &str) -> Result<Self, PrivateKeyError> {
        for block in parse_pem(pem)? {
            match block.label.as_str() {
                "PRIVATE KEY" => return Self::from_pkcs8(&block.der),
                "EC PRIVATE KEY" => {
                    return EcdsaKeyPair::from_private_key_der(
                        &ECDSA_P256_SHA256_ASN1_SIGNING,
                        &block.der,
                    )
                    .map(Self::Ecdsa)
                    .map_err(|_| PrivateKeyError::Unsupported { form: "SEC1" });
                }
                "RSA PRIVATE KEY" => {
                    return RsaKeyPair::from_der(&block.der)
                        .map(Self::Rsa)
                        .map_err(|_| PrivateKeyError::Unsupported { form: "PKCS#1" });
                }
                "ENCRYPTED PRIVATE KEY" => return Err(PrivateKeyError::Encrypted),
                _ => {}
            }
        }
        Err(PrivateKeyError::NoKey)
    }

    fn from_pkcs8(der: &[u8]) -> Result<Self, PrivateKeyError> {
        if let Ok(key) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der) {
            return Ok(Self::Ecdsa(key));
        }
        RsaKeyPair::from_pkcs8(der)
            .map(Self::Rsa)
            .map_err(|_| PrivateKeyError::Unsupported { form: "PKCS#8" })
    }

    pub fn algorithm(&self) -> PrivateKeyKind {
        match self {
            Self::Ecdsa(_) => PrivateKeyKind::EcdsaP256,
            Self::Rsa(_) => PrivateKeyKind::Rsa,
        }
    }

    /// The public key as it appears in a certificate's `subjectPublicKey` BIT STRING: the
    /// uncompressed point for EC, the PKCS#1 `RSAPublicKey` DER for RSA.
    pub fn public_key_bits(&self) -> &[u8] {
        match self {
            Self::Ecdsa(key) => key.public_key().as_ref(),
            Self::Rsa(key) => key.public_key().as_ref(),
        }
    }

    /// Signs `message` with SHA-256: DER ECDSA or RSA PKCS#1 v1.5, as SigV4-X509 expects.
    pub fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, PrivateKeyError> {
        let rng = SystemRandom::new();
        match self {
            Self::Ecdsa(key) => key
                .sign(&rng, message)
                .map(|sig| sig.as_ref().to_vec())
                .map_err(|_| PrivateKeyError::Sign),
            Self::Rsa(key) => {
                let mut sig = vec![0; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|_| PrivateKeyError::Sign)?;
                Ok(sig)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::pem::{encode_pem, parse_pem};

    fn rcgen_pkcs8(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
        rcgen::KeyPair::generate_for(alg).unwrap().serialize_der()
    }

    #[test]
    fn loads_pkcs8_ecdsa_and_rsa() {
        let ec = encode_pem("PRIVATE KEY", &rcgen_pkcs8(&rcgen::PKCS_ECDSA_P256_SHA256));
        assert_eq!(
            PrivateKey::from_pem(&ec).unwrap().algorithm(),
            PrivateKeyKind::EcdsaP256
        );
        let rsa = encode_pem("PRIVATE KEY", &rcgen_pkcs8(&rcgen::PKCS_RSA_SHA256));
        assert_eq!(
            PrivateKey::from_pem(&rsa).unwrap().algorithm(),
            PrivateKeyKind::Rsa
        );
    }

    #[test]
    fn loads_sec1_and_pkcs1_written_by_openssl() {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let status = std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "openssl {args:?}");
        };
        run(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-out",
            "ec.pem",
        ]);
        run(&["genrsa", "-traditional", "-out", "rsa.pem", "2048"]);
        let ec = std::fs::read_to_string(dir.path().join("ec.pem")).unwrap();
        assert!(ec.contains("BEGIN EC PARAMETERS") && ec.contains("BEGIN EC PRIVATE KEY"));
        let key = PrivateKey::from_pem(&ec).unwrap();
        assert_eq!(key.algorithm(), PrivateKeyKind::EcdsaP256);
        assert!(!key.sign_sha256(b"x").unwrap().is_empty());
        let rsa = std::fs::read_to_string(dir.path().join("rsa.pem")).unwrap();
        assert!(rsa.contains("BEGIN RSA PRIVATE KEY"));
        let key = PrivateKey::from_pem(&rsa).unwrap();
        assert_eq!(key.algorithm(), PrivateKeyKind::Rsa);
        assert_eq!(key.sign_sha256(b"x").unwrap().len(), 256);
    }

    #[test]
    fn rejects_p384_encrypted_and_missing_keys() {
        let p384 = encode_pem("PRIVATE KEY", &rcgen_pkcs8(&rcgen::PKCS_ECDSA_P384_SHA384));
        assert!(matches!(
            PrivateKey::from_pem(&p384),
            Err(PrivateKeyError::Unsupported { .. })
        ));
        let enc = encode_pem("ENCRYPTED PRIVATE KEY", &[0; 8]);
        assert!(matches!(
            PrivateKey::from_pem(&enc),
            Err(PrivateKeyError::Encrypted)
        ));
        let cert = encode_pem("CERTIFICATE", &[0; 8]);
        assert!(parse_pem(&cert).is_ok());
        assert!(matches!(
            PrivateKey::from_pem(&cert),
            Err(PrivateKeyError::NoKey)
        ));
    }
}
