//! `iamra sidecar`: the credential sidecar. Trades the mounted certificate for temporary
//! credentials (CreateSession), caches them, refreshes well before they expire, follows
//! certificate rotation without a restart, and serves them on loopback to the AWS SDKs
//! (container-credentials endpoint) and to IMDS-only tools (IMDSv2 emulation).

pub mod bounded;
pub mod cache;
pub mod config;
pub mod files;
pub mod metrics;
pub mod refresher;
pub mod server;
pub mod state;
pub mod token;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::Notify;

use bounded::ConnectionLimits;
pub use config::SidecarArgs;
use files::CertificateFiles;
use state::SidecarState;
use token::{TokenError, load_or_create_token};

use crate::rolesanywhere::errors::CreateSessionError;
use crate::rolesanywhere::session::SessionRequest;

#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    #[error(
        "--listen {0} is not a loopback address: credentials are served over plain HTTP and the AWS SDKs only accept loopback"
    )]
    NotLoopback(SocketAddr),
    #[error(transparent)]
    Configuration(#[from] CreateSessionError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, SidecarError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| SidecarError::Bind { addr, source })
}

/// Runs until SIGTERM. Configuration errors stop it at once; CreateSession failures never do
/// (they are retried and reported on `/readyz`), so a revoked certificate replaced by a new
/// one recovers without a restart.
pub async fn run(args: SidecarArgs) -> Result<(), SidecarError> {
    if !args.listen.ip().is_loopback() {
        return Err(SidecarError::NotLoopback(args.listen));
    }
    let request = SessionRequest::new(
        &args.trust_anchor_arn,
        &args.profile_arn,
        &args.role_arn,
        Some(args.session_duration),
        args.role_session_name.clone(),
        args.region.as_deref(),
        args.endpoint.as_deref(),
    )?;
    let token = load_or_create_token(&args.token_file, args.token_file_mode)?;
    let state = Arc::new(SidecarState::new(token, args.role_name())?);
    let files = CertificateFiles {
        certificate: args.certificate.clone(),
        private_key: args.private_key.clone(),
    };
    let credentials_listener = bind(args.listen).await?;
    let health_address = args.health_address();
    let health_listener = bind(health_address).await?;
    tracing::info!(
        listen = %args.listen,
        health_listen = %health_address,
        endpoint = %request.endpoint,
        role = %args.role_arn,
        token_file = %args.token_file.display(),
        "credential sidecar listening"
    );

    let files_changed = Arc::new(Notify::new());
    let watcher = tokio::spawn(files::watch(
        files.clone(),
        args.file_poll_interval(),
        files_changed.clone(),
    ));
    let refresher = tokio::spawn(refresher::run(
        state.clone(),
        files,
        request,
        args.refresh_before(),
        args.startup_spread(),
        files_changed,
    ));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let credentials_server = bounded::serve(
        credentials_listener,
        server::credentials_router(state.clone()),
        ConnectionLimits::CREDENTIALS,
        stopped(stop_rx.clone()),
    );
    let health_server = bounded::serve(
        health_listener,
        server::health_router(state),
        ConnectionLimits::HEALTH,
        stopped(stop_rx),
    );
    let signal = async {
        crate::shutdown::signal().await;
        tracing::info!("stopping");
        let _ = stop_tx.send(true);
    };
    tokio::join!(credentials_server, health_server, signal);
    watcher.abort();
    refresher.abort();
    Ok(())
}
