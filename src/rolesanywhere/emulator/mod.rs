//! `iamra rolesanywhere-emulator`: a local IAM Roles Anywhere on loopback, for development and
//! tests. The control plane speaks the service's restJson1 protocol (so `aws-sdk-rolesanywhere`
//! works against it with `endpoint_url`), the data plane verifies SigV4-X509 `CreateSession`
//! requests the way the service does and hands out fake but well-formed credentials.
//! Emulator-only routes under `/emulator/` (not AWS APIs) hold what the real service reads from
//! IAM: role trust policies, evaluated at CreateSession against the certificate's attributes.

pub mod attributes;
pub mod command;
pub mod control_plane;
pub mod crl_quota;
pub mod data_plane;
pub mod role_trust;
pub mod session_quota;
pub mod state;
pub mod trust_policy;
pub mod verify;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use crl_quota::CrlQuota;
pub use role_trust::{TRUST_POLICY_PATH, remove_role_trust_policy, set_role_trust_policy};
use session_quota::SessionQuota;
use state::{EmulatorState, StateError};

/// The service tolerates this much difference between `X-Amz-Date` and its clock.
pub const MAX_CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub listen: SocketAddr,
    pub region: String,
    pub state_file: Option<PathBuf>,
    /// Refuse CRL calls beyond the account's one per second, as the service does.
    pub enforce_crl_quota: bool,
    /// Refuse CreateSession beyond the account's 10 per second, as the service does.
    pub enforce_session_quota: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("seeding: {0}")]
    Seed(ServiceError),
}

/// An error in the service's restJson1 shape: `x-amzn-ErrorType` header and `{"message"}` body,
/// which the AWS SDKs turn into their typed errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error_type}: {message}")]
pub struct ServiceError {
    pub status: StatusCode,
    pub error_type: &'static str,
    pub message: String,
}

impl ServiceError {
    pub fn validation(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error_type: "ValidationException",
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            error_type: "ResourceNotFoundException",
            message: message.into(),
        }
    }

    pub fn access_denied(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            error_type: "AccessDeniedException",
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error_type: "InternalServerException",
            message: message.into(),
        }
    }
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "__type": self.error_type, "message": self.message });
        let mut response = (self.status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            "x-amzn-ErrorType",
            HeaderValue::from_static(self.error_type),
        );
        response
    }
}

/// State shared by the handlers; every change is written to the state file when there is one.
#[derive(Clone)]
pub struct Shared {
    state: Arc<Mutex<EmulatorState>>,
    state_file: Option<PathBuf>,
    /// The CRL API's quota, and the log of CRL calls.
    pub crl_quota: CrlQuota,
    /// The CreateSession quota, and the log of CreateSession requests.
    pub session_quota: SessionQuota,
}

impl Shared {
    pub fn new(state: EmulatorState, state_file: Option<PathBuf>) -> Self {
        Self {
            state: Arc::new(Mutex::new(state)),
            state_file,
            crl_quota: CrlQuota::default(),
            session_quota: SessionQuota::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, EmulatorState> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn read<T>(&self, f: impl FnOnce(&EmulatorState) -> T) -> T {
        f(&self.lock())
    }

    /// Applies `f`; when it succeeds and a state file is configured, persists the new state.
    pub fn mutate<T>(
        &self,
        f: impl FnOnce(&mut EmulatorState) -> Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        let mut state = self.lock();
        let mut next = state.clone();
        let value = f(&mut next)?;
        if let Some(path) = &self.state_file {
            next.save(path).map_err(|e| {
                tracing::error!(error = %e, "persisting emulator state");
                ServiceError::internal("could not persist state")
            })?;
        }
        *state = next;
        Ok(value)
    }
}

/// The ARNs created by [`seed`].
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeededArns {
    pub trust_anchor_arn: String,
    pub profile_arn: String,
    pub role_arns: Vec<String>,
}

/// Creates (or, after a restart with a state file, finds) an enabled trust anchor for
/// `ca_bundle_pem` and an enabled profile listing `role_arns`.
pub fn seed(
    shared: &Shared,
    ca_bundle_pem: &str,
    role_arns: &[String],
) -> Result<SeededArns, ServiceError> {
    let existing = shared.read(|s| {
        let anchor = s
            .trust_anchors
            .values()
            .find(|t| t.certificate_bundle_pem == ca_bundle_pem)?
            .arn
            .clone();
        let profile = s
            .profiles
            .values()
            .find(|p| p.role_arns == role_arns)?
            .arn
            .clone();
        Some((anchor, profile))
    });
    let (trust_anchor_arn, profile_arn) = match existing {
        Some(found) => found,
        None => {
            let anchor = control_plane::create_trust_anchor_record(
                shared,
                "iamra-emulator-seed",
                ca_bundle_pem,
                true,
            )?;
            let profile = control_plane::create_profile_record(
                shared,
                "iamra-emulator-seed",
                role_arns.to_vec(),
                true,
                None,
                true,
            )?;
            (anchor.arn, profile.arn)
        }
    };
    Ok(SeededArns {
        trust_anchor_arn,
        profile_arn,
        role_arns: role_arns.to_vec(),
    })
}

/// A running emulator; dropping it (or calling [`RunningEmulator::shutdown`]) stops the server.
pub struct RunningEmulator {
    pub addr: SocketAddr,
    pub shared: Shared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningEmulator {
    /// `http://127.0.0.1:PORT`, for `--endpoint` and the SDK's `endpoint_url`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Serves until the process is told to stop.
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn router(shared: Shared) -> axum::Router {
    control_plane::router()
        .merge(data_plane::router())
        .merge(role_trust::router())
        .with_state(shared)
}

/// Loads the state and starts serving on `config.listen` (port 0 picks a free port).
pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, EmulatorError> {
    let state = EmulatorState::load_or_new(config.state_file.as_deref(), &config.region)?;
    let mut shared = Shared::new(state, config.state_file.clone());
    shared.crl_quota = CrlQuota::new(config.enforce_crl_quota);
    shared.session_quota = SessionQuota::new(config.enforce_session_quota);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| EmulatorError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| EmulatorError::Bind {
            addr: config.listen,
            source,
        })?;
    let app = router(shared.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = rx.await;
        });
        if let Err(error) = serve.await {
            tracing::error!(%error, "emulator server stopped");
        }
    });
    tracing::info!(%addr, region = %config.region, "Roles Anywhere emulator listening");
    Ok(RunningEmulator {
        addr,
        shared,
        shutdown: Some(tx),
        task,
    })
}
