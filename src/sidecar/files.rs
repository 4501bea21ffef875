//! The mounted certificate and key. Read afresh for every CreateSession, and polled by content
//! so a rotation is noticed whatever way the files change: Kubernetes Secret volumes swap a
//! `..data` symlink (no write to the file itself, mtimes unreliable), other tools rewrite in
//! place. Hashing two small files every few seconds costs nothing measurable.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::pki::pem::parse_pem;

use crate::rolesanywhere::errors::CreateSessionError;
use crate::rolesanywhere::session::SigningIdentity;

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("loading the certificate and key: {0}")]
    Identity(#[from] CreateSessionError),
    /// Checked before signing: Roles Anywhere would refuse it anyway, but with a vaguer message.
    #[error("the certificate in {path} expired at {not_after}; a renewed certificate is needed")]
    Expired { path: String, not_after: String },
    #[error("the certificate in {path} is not valid before {not_before}")]
    NotYetValid { path: String, not_before: String },
}

#[derive(Debug, Clone)]
pub struct CertificateFiles {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

fn read(path: &Path) -> Result<Vec<u8>, FilesError> {
    std::fs::read(path).map_err(|source| FilesError::Read {
        path: path.display().to_string(),
        source,
    })
}

impl CertificateFiles {
    /// The signing identity in the files now (a certificate and key from different rotations,
    /// caught mid-swap, fail here and are retried).
    pub fn load_identity(&self) -> Result<SigningIdentity, FilesError> {
        let certificate = read(&self.certificate)?;
        let key = read(&self.private_key)?;
        let text = |bytes: Vec<u8>, path: &Path| {
            String::from_utf8(bytes).map_err(|_| {
                FilesError::Identity(CreateSessionError::Certificate(format!(
                    "{} is not PEM text",
                    path.display()
                )))
            })
        };
        let certificate = text(certificate, &self.certificate)?;
        let identity =
            SigningIdentity::from_pem(&certificate, &text(key, &self.private_key)?, None)?;
        self.check_validity(&certificate, OffsetDateTime::now_utc())?;
        Ok(identity)
    }

    /// The leaf's validity period at `now` (`from_pem` already proved the leaf parses).
    fn check_validity(&self, certificate_pem: &str, now: OffsetDateTime) -> Result<(), FilesError> {
        let leaf_der = parse_pem(certificate_pem)
            .ok()
            .and_then(|blocks| blocks.into_iter().find(|b| b.label == "CERTIFICATE"))
            .map(|block| block.der)
            .unwrap_or_default();
        let Ok((_, leaf)) = x509_parser::parse_x509_certificate(&leaf_der) else {
            return Ok(());
        };
        let validity = leaf.validity();
        let path = || self.certificate.display().to_string();
        if now.unix_timestamp() >= validity.not_after.timestamp() {
            return Err(FilesError::Expired {
                path: path(),
                not_after: validity.not_after.to_string(),
            });
        }
        if now.unix_timestamp() < validity.not_before.timestamp() {
            return Err(FilesError::NotYetValid {
                path: path(),
                not_before: validity.not_before.to_string(),
            });
        }
        Ok(())
    }

    /// SHA-256 over both files' contents; `None` while either cannot be read.
    pub fn fingerprint(&self) -> Option<Vec<u8>> {
        let mut context = digest::Context::new(&digest::SHA256);
        for path in [&self.certificate, &self.private_key] {
            let bytes = std::fs::read(path).ok()?;
            context.update(&(bytes.len() as u64).to_be_bytes());
            context.update(&bytes);
        }
        Some(context.finish().as_ref().to_vec())
    }
}

/// Polls the files every `interval` and wakes `changed` when their content differs from the
/// last seen content (the refresher then calls CreateSession with the new certificate at once).
pub async fn watch(files: CertificateFiles, interval: Duration, changed: Arc<Notify>) {
    let mut last = files.fingerprint();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let current = files.fingerprint();
        if current.is_some() && current != last {
            tracing::info!(
                certificate = %files.certificate.display(),
                "certificate files changed; refreshing with the new certificate"
            );
            changed.notify_one();
            last = current;
        }
    }
}
