//! `iamra credential-process`: a drop-in for `aws_signing_helper credential-process`, usable as
//! `credential_process = iamra credential-process …` in `~/.aws/config`. One CreateSession, the
//! AWS CLI/SDK `credential_process` JSON on stdout.

use std::path::{Path, PathBuf};

use super::errors::CreateSessionError;
use super::session::{Credentials, SessionRequest, SigningIdentity, create_session};

/// The same flags as the official helper's `credential-process`.
#[derive(Debug, Clone, clap::Args)]
pub struct CredentialProcessArgs {
    /// Path to the workload certificate (PEM); certificates after the first are sent as intermediates.
    #[arg(long)]
    pub certificate: PathBuf,
    /// Path to the private key (PEM: PKCS#8, SEC1 `EC PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`).
    #[arg(long)]
    pub private_key: PathBuf,
    /// Path to an intermediate certificate bundle (PEM), sent in X-Amz-X509-Chain.
    #[arg(long)]
    pub intermediates: Option<PathBuf>,
    /// Trust anchor to authenticate against.
    #[arg(long)]
    pub trust_anchor_arn: String,
    /// Profile to pull policies from.
    #[arg(long)]
    pub profile_arn: String,
    /// Role to assume.
    #[arg(long)]
    pub role_arn: String,
    /// Duration of the session in seconds (900-43200).
    #[arg(long, default_value_t = super::session::DEFAULT_SESSION_SECONDS)]
    pub session_duration: u32,
    /// Signing region; defaults to the trust anchor's region.
    #[arg(long)]
    pub region: Option<String>,
    /// CreateSession endpoint, e.g. http://127.0.0.1:8080 for the emulator.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Role session name (the profile must accept role session names).
    #[arg(long)]
    pub role_session_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialProcessError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    CreateSession(#[from] CreateSessionError),
}

/// The `credential_process` output (field names and order as the AWS SDKs read them).
#[derive(serde::Serialize)]
struct CredentialProcessOutput<'a> {
    #[serde(rename = "Version")]
    version: u8,
    #[serde(rename = "AccessKeyId")]
    access_key_id: &'a str,
    #[serde(rename = "SecretAccessKey")]
    secret_access_key: &'a str,
    #[serde(rename = "SessionToken")]
    session_token: &'a str,
    #[serde(rename = "Expiration")]
    expiration: &'a str,
}

/// The JSON document `credential_process` prints for `credentials`.
pub fn credential_process_json(credentials: &Credentials) -> String {
    let output = CredentialProcessOutput {
        version: 1,
        access_key_id: &credentials.access_key_id,
        secret_access_key: &credentials.secret_access_key,
        session_token: &credentials.session_token,
        expiration: &credentials.expiration,
    };
    // Serialising a struct of strings cannot fail.
    serde_json::to_string(&output).unwrap_or_default()
}

fn read(path: &Path) -> Result<String, CredentialProcessError> {
    std::fs::read_to_string(path).map_err(|source| CredentialProcessError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Loads the identity, calls CreateSession, returns the JSON to print.
pub async fn run(args: &CredentialProcessArgs) -> Result<String, CredentialProcessError> {
    let certificate = read(&args.certificate)?;
    let key = read(&args.private_key)?;
    let intermediates = args.intermediates.as_deref().map(read).transpose()?;
    let identity = SigningIdentity::from_pem(&certificate, &key, intermediates.as_deref())?;
    let request = SessionRequest::new(
        &args.trust_anchor_arn,
        &args.profile_arn,
        &args.role_arn,
        Some(args.session_duration),
        args.role_session_name.clone(),
        args.region.as_deref(),
        args.endpoint.as_deref(),
    )?;
    let credentials = create_session(&identity, &request).await?;
    Ok(credential_process_json(&credentials))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_has_the_sdk_field_names_in_order() {
        let json = credential_process_json(&Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: "SECRET".into(),
            session_token: "TOKEN".into(),
            expiration: "2024-01-01T00:00:00Z".into(),
        });
        assert_eq!(
            json,
            r#"{"Version":1,"AccessKeyId":"AKID","SecretAccessKey":"SECRET","SessionToken":"TOKEN","Expiration":"2024-01-01T00:00:00Z"}"#
        );
    }
}
