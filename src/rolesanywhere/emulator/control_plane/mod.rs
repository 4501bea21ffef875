//! The control plane in the service's restJson1 wire format (paths, JSON shapes, status codes and
//! error shapes of `aws-sdk-rolesanywhere`): trust anchors (CERTIFICATE_BUNDLE), profiles and CRLs,
//! one file each. Requests are not authenticated: the emulator trusts whoever reaches its loopback
//! port.

mod crls;
mod profiles;
mod trust_anchors;

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{ServiceError, Shared};

pub use crls::{ROLES_ANYWHERE_MAX_CRL_BYTES, ROLES_ANYWHERE_MAX_CRLS_PER_TRUST_ANCHOR, crl_der};
pub use profiles::create_profile_record;
pub use trust_anchors::{MAX_CERTIFICATE_BUNDLE_CHARS, create_trust_anchor_record};

/// Resource names: 1-255 characters of `[ a-zA-Z0-9-_]`.
pub const MAX_NAME_CHARS: usize = 255;
/// Default and maximum `pageSize` of the List operations.
const DEFAULT_PAGE_SIZE: usize = 50;

type Reply = Result<(StatusCode, Json<Value>), ServiceError>;

pub fn router() -> Router<Shared> {
    Router::new()
        .route(
            "/trustanchors",
            post(trust_anchors::create_trust_anchor).get(trust_anchors::list_trust_anchors),
        )
        .route(
            "/trustanchor/{id}",
            get(trust_anchors::get_trust_anchor).delete(trust_anchors::delete_trust_anchor),
        )
        .route(
            "/trustanchor/{id}/enable",
            post(trust_anchors::enable_trust_anchor),
        )
        .route(
            "/trustanchor/{id}/disable",
            post(trust_anchors::disable_trust_anchor),
        )
        .route(
            "/profiles",
            post(profiles::create_profile).get(profiles::list_profiles),
        )
        .route(
            "/profile/{id}",
            get(profiles::get_profile).delete(profiles::delete_profile),
        )
        .route("/profile/{id}/enable", post(profiles::enable_profile))
        .route("/profile/{id}/disable", post(profiles::disable_profile))
        .route("/crls", post(crls::import_crl).get(crls::list_crls))
        .route(
            "/crl/{id}",
            get(crls::get_crl)
                .patch(crls::update_crl)
                .delete(crls::delete_crl),
        )
        .route("/crl/{id}/enable", post(crls::enable_crl))
        .route("/crl/{id}/disable", post(crls::disable_crl))
}

fn timestamp(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn parse_body(body: &Bytes) -> Result<Value, ServiceError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| ServiceError::validation(format!("request body is not valid JSON: {e}")))
}

fn required_str<'a>(body: &'a Value, field: &str) -> Result<&'a str, ServiceError> {
    body.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| ServiceError::validation(format!("{field} is required")))
}

fn check_name(name: &str) -> Result<(), ServiceError> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_'));
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || !valid_chars {
        return Err(ServiceError::validation(format!(
            "name must be 1-{MAX_NAME_CHARS} characters of [ a-zA-Z0-9-_]"
        )));
    }
    Ok(())
}

fn not_found(kind: &str, id: &str) -> ServiceError {
    ServiceError::not_found(format!("{kind} {id} not found"))
}

/// A list page: `nextToken` is the index of the next item.
fn paginate(
    items: Vec<Value>,
    params: &HashMap<String, String>,
) -> Result<(Vec<Value>, Option<String>), ServiceError> {
    let page_size = match params.get("pageSize") {
        Some(size) => size
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=DEFAULT_PAGE_SIZE).contains(n))
            .ok_or_else(|| ServiceError::validation("pageSize must be 1-50"))?,
        None => DEFAULT_PAGE_SIZE,
    };
    let start = match params.get("nextToken") {
        Some(token) => token
            .parse::<usize>()
            .map_err(|_| ServiceError::validation("invalid nextToken"))?,
        None => 0,
    };
    let end = (start + page_size).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    Ok((
        items.into_iter().skip(start).take(page_size).collect(),
        next,
    ))
}

fn list_reply(key: &str, items: Vec<Value>, params: &HashMap<String, String>) -> Reply {
    let (page, next) = paginate(items, params)?;
    let mut body = json!({ key: page });
    if let Some(token) = next {
        body["nextToken"] = json!(token);
    }
    Ok((StatusCode::OK, Json(body)))
}
