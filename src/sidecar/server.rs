//! The HTTP routes. Credentials (loopback only):
//! - `GET /credentials`: the container-credentials endpoint of the AWS SDKs
//!   (`AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:9911/credentials`), `Authorization`
//!   must equal the token file's content;
//! - IMDSv2: `PUT /latest/api/token`, `GET /latest/meta-data/iam/security-credentials/[role]`.
//!
//! Health (separate address, so probes never need the token): `/healthz`, `/readyz`, `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::cache::CachedCredentials;
use super::state::{Readiness, SidecarState};
use super::token::{parse_imds_ttl, tokens_match};

pub const CREDENTIALS_PATH: &str = "/credentials";
const IMDS_TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
const IMDS_TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";

/// The container-credentials document (what every AWS SDK's container provider parses).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerCredentials<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub token: &'a str,
    pub expiration: String,
}

/// The IMDS `security-credentials/<role>` document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImdsCredentials<'a> {
    pub code: &'static str,
    pub last_updated: String,
    #[serde(rename = "Type")]
    pub kind: &'static str,
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub token: &'a str,
    pub expiration: String,
}

pub fn container_credentials(cached: &CachedCredentials) -> ContainerCredentials<'_> {
    ContainerCredentials {
        access_key_id: &cached.credentials.access_key_id,
        secret_access_key: &cached.credentials.secret_access_key,
        token: &cached.credentials.session_token,
        expiration: cached.expiration_rfc3339(),
    }
}

pub fn imds_credentials(cached: &CachedCredentials) -> ImdsCredentials<'_> {
    ImdsCredentials {
        code: "Success",
        last_updated: cached
            .obtained_at
            .format(&Rfc3339)
            .unwrap_or_else(|_| cached.expiration_rfc3339()),
        kind: "AWS-HMAC",
        access_key_id: &cached.credentials.access_key_id,
        secret_access_key: &cached.credentials.secret_access_key,
        token: &cached.credentials.session_token,
        expiration: cached.expiration_rfc3339(),
    }
}

/// A JSON error body in the shape of the container endpoints' errors.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "Code": code, "Message": message })),
    )
        .into_response()
}

fn counted(state: &SidecarState, endpoint: &'static str, response: Response) -> Response {
    state
        .metrics
        .request_served(endpoint, response.status().as_u16());
    response
}

fn unavailable(state: &SidecarState) -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "CredentialsUnavailable",
        &state.unavailable_reason(),
    )
}

pub fn credentials_router(state: Arc<SidecarState>) -> Router {
    Router::new()
        .route(CREDENTIALS_PATH, get(get_container_credentials))
        .route("/latest/api/token", put(put_imds_token))
        .route(
            "/latest/meta-data/iam/security-credentials",
            get(get_role_name),
        )
        .route(
            "/latest/meta-data/iam/security-credentials/",
            get(get_role_name),
        )
        .route(
            "/latest/meta-data/iam/security-credentials/{role}",
            get(get_imds_credentials),
        )
        .with_state(state)
}

pub fn health_router(state: Arc<SidecarState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn get_container_credentials(
    State(state): State<Arc<SidecarState>>,
    headers: HeaderMap,
) -> Response {
    let authorized = headers
        .get(header::AUTHORIZATION)
        .is_some_and(|value| tokens_match(value.as_bytes(), state.auth_token.as_bytes()));
    let response = if !authorized {
        error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "the Authorization header must carry the sidecar's token (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)",
        )
    } else {
        match state.current(OffsetDateTime::now_utc()) {
            Some(cached) => axum::Json(container_credentials(&cached)).into_response(),
            None => unavailable(&state),
        }
    };
    counted(&state, "credentials", response)
}

async fn put_imds_token(State(state): State<Arc<SidecarState>>, headers: HeaderMap) -> Response {
    // Like IMDS: a request that went through a proxy is refused, so a token cannot be obtained
    // through an SSRF-able forwarder.
    let response = if headers.contains_key("x-forwarded-for") {
        error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "forwarded requests are refused",
        )
    } else {
        let ttl = headers.get(IMDS_TTL_HEADER).and_then(|v| v.to_str().ok());
        match parse_imds_ttl(ttl) {
            Some(ttl) => {
                let token = state
                    .imds_tokens
                    .issue(OffsetDateTime::now_utc().unix_timestamp(), ttl);
                ([(IMDS_TTL_HEADER, ttl.to_string())], token).into_response()
            }
            None => error(
                StatusCode::BAD_REQUEST,
                "InvalidTtl",
                "X-aws-ec2-metadata-token-ttl-seconds must be 1-21600",
            ),
        }
    };
    counted(&state, "imds_token", response)
}

fn imds_authorized(state: &SidecarState, headers: &HeaderMap) -> bool {
    headers
        .get(IMDS_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|token| {
            state
                .imds_tokens
                .is_valid(token, OffsetDateTime::now_utc().unix_timestamp())
        })
}

fn imds_unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, "").into_response()
}

async fn get_role_name(State(state): State<Arc<SidecarState>>, headers: HeaderMap) -> Response {
    let response = if imds_authorized(&state, &headers) {
        state.role_name.clone().into_response()
    } else {
        imds_unauthorized()
    };
    counted(&state, "imds_role", response)
}

async fn get_imds_credentials(
    State(state): State<Arc<SidecarState>>,
    Path(role): Path<String>,
    headers: HeaderMap,
) -> Response {
    let response = if !imds_authorized(&state, &headers) {
        imds_unauthorized()
    } else if role != state.role_name {
        (StatusCode::NOT_FOUND, "").into_response()
    } else {
        match state.current(OffsetDateTime::now_utc()) {
            Some(cached) => axum::Json(imds_credentials(&cached)).into_response(),
            None => unavailable(&state),
        }
    };
    counted(&state, "imds_credentials", response)
}

async fn readyz(State(state): State<Arc<SidecarState>>) -> Response {
    match state.readiness(OffsetDateTime::now_utc()) {
        Readiness::Ready => axum::Json(serde_json::json!({ "ready": true })).into_response(),
        Readiness::NotReady(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "ready": false, "reason": reason })),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<Arc<SidecarState>>) -> Response {
    let text = state
        .metrics
        .render(state.seconds_until_expiry(OffsetDateTime::now_utc()));
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rolesanywhere::session::Credentials;
    use time::macros::datetime;

    fn cached() -> CachedCredentials {
        CachedCredentials::new(
            Credentials {
                access_key_id: "ASIAEXAMPLE".into(),
                secret_access_key: "SECRET".into(),
                session_token: "TOKEN".into(),
                expiration: "2026-01-01T01:00:00Z".into(),
            },
            datetime!(2026-01-01 00:00:00 UTC),
        )
        .unwrap()
    }

    #[test]
    fn container_credentials_shape() {
        let json = serde_json::to_value(container_credentials(&cached())).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "AccessKeyId": "ASIAEXAMPLE",
                "SecretAccessKey": "SECRET",
                "Token": "TOKEN",
                "Expiration": "2026-01-01T01:00:00Z",
            })
        );
    }

    #[test]
    fn imds_credentials_shape() {
        let json = serde_json::to_value(imds_credentials(&cached())).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "Code": "Success",
                "LastUpdated": "2026-01-01T00:00:00Z",
                "Type": "AWS-HMAC",
                "AccessKeyId": "ASIAEXAMPLE",
                "SecretAccessKey": "SECRET",
                "Token": "TOKEN",
                "Expiration": "2026-01-01T01:00:00Z",
            })
        );
    }
}
