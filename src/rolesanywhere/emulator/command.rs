//! `iamra rolesanywhere-emulator`: flags, optional seeding, and the ready line on stdout.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::{EmulatorConfig, EmulatorError, seed, start};

/// Default role of a seeded profile (the emulated account's).
pub const DEFAULT_SEED_ROLE_ARN: &str = "arn:aws:iam::123456789012:role/iamra-emulator";

#[derive(Debug, Clone, clap::Args)]
pub struct EmulatorArgs {
    /// Loopback address to serve on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The region of the emulated service (ARNs and the SigV4-X509 credential scope).
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Keep trust anchors, profiles and CRLs in this JSON file across restarts.
    #[arg(long)]
    pub state_file: Option<PathBuf>,
    /// Create an enabled trust anchor from this PEM CA bundle and an enabled profile at start.
    #[arg(long)]
    pub trust_anchor_certificate: Option<PathBuf>,
    /// Roles of the seeded profile (repeatable).
    #[arg(long = "role-arn", default_values_t = [DEFAULT_SEED_ROLE_ARN.to_owned()])]
    pub role_arns: Vec<String>,
    /// Refuse CRL calls beyond one per second (ThrottlingException), as the service does.
    #[arg(long)]
    pub enforce_crl_quota: bool,
    /// Refuse CreateSession beyond 10 per second (ThrottlingException), as the service does.
    #[arg(long)]
    pub enforce_session_quota: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EmulatorCommandError {
    #[error(
        "--listen {0} is not a loopback address: the emulator hands out credentials to anyone who asks"
    )]
    NotLoopback(SocketAddr),
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Emulator(#[from] EmulatorError),
}

/// Starts the emulator, prints one JSON line (`endpoint`, `region`, and the seeded ARNs), serves
/// until Ctrl-C or SIGTERM.
pub async fn run(args: &EmulatorArgs) -> Result<(), EmulatorCommandError> {
    if !args.listen.ip().is_loopback() {
        return Err(EmulatorCommandError::NotLoopback(args.listen));
    }
    let ca_pem =
        match &args.trust_anchor_certificate {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|source| {
                EmulatorCommandError::Read {
                    path: path.display().to_string(),
                    source,
                }
            })?),
            None => None,
        };
    let emulator = start(EmulatorConfig {
        listen: args.listen,
        region: args.region.clone(),
        state_file: args.state_file.clone(),
        enforce_crl_quota: args.enforce_crl_quota,
        enforce_session_quota: args.enforce_session_quota,
    })
    .await?;
    let mut ready = serde_json::json!({
        "endpoint": emulator.endpoint(),
        "region": args.region,
    });
    if let Some(ca_pem) = ca_pem {
        let seeded = seed(&emulator.shared, &ca_pem, &args.role_arns)
            .map_err(|e| EmulatorCommandError::Emulator(EmulatorError::Seed(e)))?;
        ready["trustAnchorArn"] = serde_json::json!(seeded.trust_anchor_arn);
        ready["profileArn"] = serde_json::json!(seeded.profile_arn);
        ready["roleArns"] = serde_json::json!(seeded.role_arns);
    }
    println!("{ready}");
    let stop = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = ctrl_c => {},
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
    };
    stop.await;
    tracing::info!("stopping");
    emulator.shutdown().await;
    Ok(())
}
