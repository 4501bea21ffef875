//! The control plane in the service's restJson1 wire format (paths, JSON shapes, status codes and
//! error shapes of `aws-sdk-rolesanywhere`): trust anchors (CERTIFICATE_BUNDLE), profiles and CRLs.
//! Requests are not authenticated: the emulator trusts whoever reaches its loopback port.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::state::{Crl, EmulatorState, Profile, TrustAnchor, new_resource_id};
use super::{ServiceError, Shared};
use crate::pki::pem::parse_pem;

/// ImportCrl/UpdateCrl reject CRL data above this size (service limit).
pub const ROLES_ANYWHERE_MAX_CRL_BYTES: usize = 300_000;
/// At most two CRLs per trust anchor (service quota, not adjustable).
pub const ROLES_ANYWHERE_MAX_CRLS_PER_TRUST_ANCHOR: usize = 2;
/// `x509CertificateData` of a CERTIFICATE_BUNDLE source is at most this long.
pub const MAX_CERTIFICATE_BUNDLE_CHARS: usize = 8_000;
/// Resource names: 1-255 characters of `[ a-zA-Z0-9-_]`.
pub const MAX_NAME_CHARS: usize = 255;
/// Default and maximum `pageSize` of the List operations.
const DEFAULT_PAGE_SIZE: usize = 50;

type Reply = Result<(StatusCode, Json<Value>), ServiceError>;

pub fn router() -> Router<Shared> {
    Router::new()
        .route(
            "/trustanchors",
            post(create_trust_anchor).get(list_trust_anchors),
        )
        .route(
            "/trustanchor/{id}",
            get(get_trust_anchor).delete(delete_trust_anchor),
        )
        .route("/trustanchor/{id}/enable", post(enable_trust_anchor))
        .route("/trustanchor/{id}/disable", post(disable_trust_anchor))
        .route("/profiles", post(create_profile).get(list_profiles))
        .route("/profile/{id}", get(get_profile).delete(delete_profile))
        .route("/profile/{id}/enable", post(enable_profile))
        .route("/profile/{id}/disable", post(disable_profile))
        .route("/crls", post(import_crl).get(list_crls))
        .route(
            "/crl/{id}",
            get(get_crl).patch(update_crl).delete(delete_crl),
        )
        .route("/crl/{id}/enable", post(enable_crl))
        .route("/crl/{id}/disable", post(disable_crl))
}

fn timestamp(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

pub fn trust_anchor_detail(t: &TrustAnchor) -> Value {
    json!({
        "trustAnchorId": t.id,
        "trustAnchorArn": t.arn,
        "name": t.name,
        "enabled": t.enabled,
        "source": {
            "sourceType": "CERTIFICATE_BUNDLE",
            "sourceData": { "x509CertificateData": t.certificate_bundle_pem },
        },
        "createdAt": timestamp(t.created_at),
        "updatedAt": timestamp(t.updated_at),
    })
}

pub fn profile_detail(p: &Profile) -> Value {
    let mut detail = json!({
        "profileId": p.id,
        "profileArn": p.arn,
        "name": p.name,
        "enabled": p.enabled,
        "roleArns": p.role_arns,
        "managedPolicyArns": [],
        "requireInstanceProperties": false,
        "acceptRoleSessionName": p.accept_role_session_name,
        "createdAt": timestamp(p.created_at),
        "updatedAt": timestamp(p.updated_at),
    });
    if let Some(seconds) = p.duration_seconds {
        detail["durationSeconds"] = json!(seconds);
    }
    detail
}

pub fn crl_detail(c: &Crl) -> Value {
    json!({
        "crlId": c.id,
        "crlArn": c.arn,
        "name": c.name,
        "enabled": c.enabled,
        "crlData": STANDARD.encode(&c.crl_data),
        "trustAnchorArn": c.trust_anchor_arn,
        "createdAt": timestamp(c.created_at),
        "updatedAt": timestamp(c.updated_at),
    })
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

/// Certificates of a CERTIFICATE_BUNDLE: PEM, at least one, each parseable.
fn check_certificate_bundle(pem: &str) -> Result<(), ServiceError> {
    if pem.is_empty() || pem.len() > MAX_CERTIFICATE_BUNDLE_CHARS {
        return Err(ServiceError::validation(format!(
            "x509CertificateData must be 1-{MAX_CERTIFICATE_BUNDLE_CHARS} characters"
        )));
    }
    let blocks = parse_pem(pem).map_err(|e| ServiceError::validation(e.to_string()))?;
    let certificates: Vec<_> = blocks.iter().filter(|b| b.label == "CERTIFICATE").collect();
    if certificates.is_empty() {
        return Err(ServiceError::validation(
            "x509CertificateData holds no PEM certificate",
        ));
    }
    for block in certificates {
        x509_parser::parse_x509_certificate(&block.der).map_err(|_| {
            ServiceError::validation("x509CertificateData holds an invalid certificate")
        })?;
    }
    Ok(())
}

pub fn create_trust_anchor_record(
    shared: &Shared,
    name: &str,
    bundle_pem: &str,
    enabled: bool,
) -> Result<TrustAnchor, ServiceError> {
    check_name(name)?;
    check_certificate_bundle(bundle_pem)?;
    shared.mutate(|state| {
        let id = new_resource_id();
        let at = now();
        let anchor = TrustAnchor {
            arn: state.arn("trust-anchor", &id),
            id: id.clone(),
            name: name.to_owned(),
            enabled,
            certificate_bundle_pem: bundle_pem.to_owned(),
            created_at: at,
            updated_at: at,
        };
        state.trust_anchors.insert(id, anchor.clone());
        Ok(anchor)
    })
}

async fn create_trust_anchor(State(shared): State<Shared>, body: Bytes) -> Reply {
    let body = parse_body(&body)?;
    let name = required_str(&body, "name")?;
    let source = body
        .get("source")
        .ok_or_else(|| ServiceError::validation("source is required"))?;
    match source.get("sourceType").and_then(Value::as_str) {
        Some("CERTIFICATE_BUNDLE") => {}
        Some(other) => {
            return Err(ServiceError::validation(format!(
                "sourceType {other} is not supported by the emulator (only CERTIFICATE_BUNDLE)"
            )));
        }
        None => return Err(ServiceError::validation("source.sourceType is required")),
    }
    let pem = source
        .get("sourceData")
        .and_then(|d| d.get("x509CertificateData"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ServiceError::validation("source.sourceData.x509CertificateData is required")
        })?;
    let enabled = body
        .get("enabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let anchor = create_trust_anchor_record(&shared, name, pem, enabled)?;
    tracing::info!(arn = %anchor.arn, "CreateTrustAnchor");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "trustAnchor": trust_anchor_detail(&anchor) })),
    ))
}

async fn list_trust_anchors(
    State(shared): State<Shared>,
    Query(params): Query<HashMap<String, String>>,
) -> Reply {
    let items = shared.read(|s| s.trust_anchors.values().map(trust_anchor_detail).collect());
    list_reply("trustAnchors", items, &params)
}

fn trust_anchor_reply(
    shared: &Shared,
    id: &str,
    change: impl FnOnce(&mut EmulatorState, &str) -> Option<TrustAnchor>,
) -> Reply {
    let anchor =
        shared.mutate(|state| change(state, id).ok_or_else(|| not_found("trust anchor", id)))?;
    Ok((
        StatusCode::OK,
        Json(json!({ "trustAnchor": trust_anchor_detail(&anchor) })),
    ))
}

async fn get_trust_anchor(State(shared): State<Shared>, Path(id): Path<String>) -> Reply {
    let anchor = shared
        .read(|s| s.trust_anchors.get(&id).cloned())
        .ok_or_else(|| not_found("trust anchor", &id))?;
    Ok((
        StatusCode::OK,
        Json(json!({ "trustAnchor": trust_anchor_detail(&anchor) })),
    ))
}

async fn delete_trust_anchor(State(shared): State<Shared>, Path(id): Path<String>) -> Reply {
    trust_anchor_reply(&shared, &id, |state, id| {
        let anchor = state.trust_anchors.remove(id)?;
        // The service deletes a trust anchor's CRLs with it.
        state.crls.retain(|_, c| c.trust_anchor_arn != anchor.arn);
        Some(anchor)
    })
}

fn set_trust_anchor_enabled(shared: &Shared, id: &str, enabled: bool) -> Reply {
    trust_anchor_reply(shared, id, |state, id| {
        let anchor = state.trust_anchors.get_mut(id)?;
        anchor.enabled = enabled;
        anchor.updated_at = now();
        Some(anchor.clone())
    })
}

async fn enable_trust_anchor(State(shared): State<Shared>, Path(id): Path<String>) -> Reply {
    set_trust_anchor_enabled(&shared, &id, true)
}

async fn disable_trust_anchor(State(shared): State<Shared>, Path(id): Path<String>) -> Reply {
    set_trust_anchor_enabled(&shared, &id, false)
}

pub fn create_profile_record(
    shared: &Shared,
    name: &str,
    role_arns: Vec<String>,
    enabled: bool,
    duration_seconds: Option<u32>,
    accept_role_session_name: bool,
) -> Result<Profile, ServiceError> {
    check_name(name)?;
    if role_arns.is_empty() || role_arns.len() > 250 {
        return Err(ServiceError::validation("roleArns must list 1-250 roles"));
    }
    if let Some(bad) = role_arns
        .iter()
        .find(|arn| !arn.starts_with("arn:") || !arn.contains(":role/"))
    {
        return Err(ServiceError::validation(format!(
            "{bad:?} is not a role ARN"
        )));
    }
    if let Some(seconds) = duration_seconds
        && !(900..=43_200).contains(&seconds)
    {
        return Err(ServiceError::validation(
            "durationSeconds must be 900-43200",
        ));
    }
    shared.mutate(|state| {
        let id = new_resource_id();
        let at = now();
        let profile = Profile {
            arn: state.arn("profile", &id),
            id: id.clone(),
            name: name.to_owned(),
            enabled,
            role_arns,
            duration_seconds,
            accept_role_session_name,
            created_at: at,
            updated_at: at,
        };
        state.profiles.insert(id, profile.clone());
        Ok(profile)
    })
}

async fn create_profile(State(shared): State<Shared>, body: Bytes) -> Reply {
    let body = parse_body(&body)?;
    let name = required_str(&body, "name")?;
    let role_arns: Vec<String> = body
        .get("roleArns")
        .and_then(Value::as_array)
        .ok_or_else(|| ServiceError::validation("roleArns is required"))?
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect::<Option<_>>()
        .ok_or_else(|| ServiceError::validation("roleArns must be strings"))?;
    let duration = match body.get("durationSeconds") {
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| ServiceError::validation("durationSeconds must be an integer"))?,
        ),
        None => None,
    };
    let profile = create_profile_record(
        &shared,
        name,
        role_arns,
        body.get("enabled")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        duration,
        body.get("acceptRoleSessionName")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    )?;
    tracing::info!(arn = %profile.arn, "CreateProfile");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "profile": profile_detail(&profile) })),
    ))
}

async fn list_profiles(
    State(shared): State<Shared>,
    Query(params): Query<HashMap<String, String>>,
) -> Reply {
    let items = shared.read(|s| s.profiles.values().map(profile_detail).collect());
    list_reply("profiles", items, &params)
}

fn profile_reply(
    shared: &Shared,
    id: &str,
    change: impl FnOnce(&mut EmulatorState, &str) -> Option<Profile>,
) -> Reply {
    let profile =
        shared.mutate(|state| change(state, id).ok_or_else(|| not_found("profile", id)))?;
    Ok((
        StatusCode::OK,
        Json(json!({ "profile": profile_detail(&profile) })),
    ))
}

async fn get_profile(State(shared): State<Shared>, Path(id): Path<String>) -> Reply {
    let profile = shared
        .read(|s| s.profiles.get(&id).cloned())
        .ok_or_else(|| not_found("profile", &id))?;
    Ok((
        StatusCode::OK,
        Json(json!({ "profile": profile_detail(&profile) })),
    ))
}

async fn delete_profile(State(shared): State<Shared>, Path(id): Path<String>) -> Reply {
    profile_reply(&shared, &id, |state, id| state.profiles.remove(id))
}

fn set_profile_enabled(shared: &Shared, id: &str, enabled: bool) -> Reply {
    profile_reply(shared, id, |state, id| {
        let profile = state.profiles.get_mut(id)?;
        profile.enabled = enabled;
        profile.updated_at = now();
        Some(profile.clone())
    })
}

async fn enable_profile(State(shared): State<Shared>, Path(id): Path<String>) -> Reply {
    set_profile_enabled(&shared, &id, true)
}

async fn disable_profile(State(shared): State<Shared>, Path(id): Path<String>) -> Reply {
    set_profile_enabled(&shared, &id, false)
}

/// `crlData` (a base64 blob on the wire): size limit, then a parseable X.509 CRL in PEM or DER.
fn decode_crl_data(body: &Value) -> Result<Option<Vec<u8>>, ServiceError> {
    let Some(encoded) = body.get("crlData") else {
        return Ok(None);
    };
    let encoded = encoded
        .as_str()
        .ok_or_else(|| ServiceError::validation("crlData must be a base64 blob"))?;
    let data = STANDARD
        .decode(encoded)
        .map_err(|_| ServiceError::validation("crlData is not valid base64"))?;
    if data.is_empty() || data.len() > ROLES_ANYWHERE_MAX_CRL_BYTES {
        return Err(ServiceError::validation(format!(
            "crlData must be 1-{ROLES_ANYWHERE_MAX_CRL_BYTES} bytes, got {}",
            data.len()
        )));
    }
    crl_der(&data).ok_or_else(|| ServiceError::validation("crlData is not a valid X.509 CRL"))?;
    Ok(Some(data))
}

/// The DER of an imported CRL (PEM `X509 CRL` or raw DER), when it parses.
pub fn crl_der(data: &[u8]) -> Option<Vec<u8>> {
    let der = match std::str::from_utf8(data)
        .ok()
        .filter(|t| t.contains("-----BEGIN"))
    {
        Some(text) => {
            parse_pem(text)
                .ok()?
                .into_iter()
                .find(|b| b.label == "X509 CRL")?
                .der
        }
        None => data.to_vec(),
    };
    x509_parser::parse_x509_crl(&der).ok()?;
    Some(der)
}

async fn import_crl(State(shared): State<Shared>, body: Bytes) -> Reply {
    let body = parse_body(&body)?;
    let name = required_str(&body, "name")?.to_owned();
    check_name(&name)?;
    let trust_anchor_arn = required_str(&body, "trustAnchorArn")?.to_owned();
    let data =
        decode_crl_data(&body)?.ok_or_else(|| ServiceError::validation("crlData is required"))?;
    let enabled = body
        .get("enabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let crl = shared.mutate(|state| {
        // ImportCrl's model has no ResourceNotFoundException: an unknown anchor is invalid input.
        if state.trust_anchor_by_arn(&trust_anchor_arn).is_none() {
            return Err(ServiceError::validation(format!(
                "trust anchor {trust_anchor_arn} not found"
            )));
        }
        if state.crls_of(&trust_anchor_arn).count() >= ROLES_ANYWHERE_MAX_CRLS_PER_TRUST_ANCHOR {
            return Err(ServiceError::validation(format!(
                "trust anchor {trust_anchor_arn} already has {ROLES_ANYWHERE_MAX_CRLS_PER_TRUST_ANCHOR} CRLs, the maximum"
            )));
        }
        let id = new_resource_id();
        let at = now();
        let crl = Crl {
            arn: state.arn("crl", &id),
            id: id.clone(),
            name,
            enabled,
            trust_anchor_arn: trust_anchor_arn.clone(),
            crl_data: data,
            created_at: at,
            updated_at: at,
        };
        state.crls.insert(id, crl.clone());
        Ok(crl)
    })?;
    tracing::info!(crl = %crl.arn, trust_anchor = %crl.trust_anchor_arn, enabled = crl.enabled, "ImportCrl");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "crl": crl_detail(&crl) })),
    ))
}

async fn list_crls(
    State(shared): State<Shared>,
    Query(params): Query<HashMap<String, String>>,
) -> Reply {
    let items = shared.read(|s| s.crls.values().map(crl_detail).collect());
    list_reply("crls", items, &params)
}

fn crl_reply(
    shared: &Shared,
    id: &str,
    change: impl FnOnce(&mut EmulatorState, &str) -> Option<Crl>,
) -> Reply {
    let crl = shared.mutate(|state| change(state, id).ok_or_else(|| not_found("CRL", id)))?;
    Ok((StatusCode::OK, Json(json!({ "crl": crl_detail(&crl) }))))
}

async fn get_crl(State(shared): State<Shared>, Path(id): Path<String>) -> Reply {
    let crl = shared
        .read(|s| s.crls.get(&id).cloned())
        .ok_or_else(|| not_found("CRL", &id))?;
    Ok((StatusCode::OK, Json(json!({ "crl": crl_detail(&crl) }))))
}

async fn update_crl(State(shared): State<Shared>, Path(id): Path<String>, body: Bytes) -> Reply {
    let body = parse_body(&body)?;
    let name = body.get("name").and_then(Value::as_str).map(str::to_owned);
    if let Some(name) = &name {
        check_name(name)?;
    }
    let data = decode_crl_data(&body)?;
    let reply = crl_reply(&shared, &id, |state, id| {
        let crl = state.crls.get_mut(id)?;
        if let Some(name) = name {
            crl.name = name;
        }
        if let Some(data) = data {
            crl.crl_data = data;
        }
        crl.updated_at = now();
        Some(crl.clone())
    })?;
    tracing::info!(crl = %id, "UpdateCrl");
    Ok(reply)
}

async fn delete_crl(State(shared): State<Shared>, Path(id): Path<String>) -> Reply {
    crl_reply(&shared, &id, |state, id| state.crls.remove(id))
}

fn set_crl_enabled(shared: &Shared, id: &str, enabled: bool) -> Reply {
    crl_reply(shared, id, |state, id| {
        let crl = state.crls.get_mut(id)?;
        crl.enabled = enabled;
        crl.updated_at = now();
        Some(crl.clone())
    })
}

async fn enable_crl(State(shared): State<Shared>, Path(id): Path<String>) -> Reply {
    set_crl_enabled(&shared, &id, true)
}

async fn disable_crl(State(shared): State<Shared>, Path(id): Path<String>) -> Reply {
    set_crl_enabled(&shared, &id, false)
}
