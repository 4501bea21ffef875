//! CRLs: ImportCrl, UpdateCrl, EnableCrl, DisableCrl, GetCrl, ListCrls, DeleteCrl, with the
//! service's size and per-trust-anchor limits.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{Reply, check_name, list_reply, not_found, now, parse_body, required_str, timestamp};
use crate::rolesanywhere::emulator::state::EmulatorState;
use crate::rolesanywhere::emulator::{ServiceError, Shared};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::pki::pem::der_of;
use crate::rolesanywhere::emulator::state::{Crl, new_resource_id};

/// ImportCrl/UpdateCrl reject CRL data above this size (service limit).
pub const ROLES_ANYWHERE_MAX_CRL_BYTES: usize = 300_000;
/// At most two CRLs per trust anchor (service quota, not adjustable).
pub const ROLES_ANYWHERE_MAX_CRLS_PER_TRUST_ANCHOR: usize = 2;

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
    let der = der_of(data, "X509 CRL")?;
    x509_parser::parse_x509_crl(&der).ok()?;
    Some(der)
}

pub(super) async fn import_crl(State(shared): State<Shared>, body: Bytes) -> Reply {
    shared.crl_quota.admit()?;
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

pub(super) async fn list_crls(
    State(shared): State<Shared>,
    Query(params): Query<HashMap<String, String>>,
) -> Reply {
    shared.crl_quota.admit()?;
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

pub(super) async fn get_crl(State(shared): State<Shared>, Path(id): Path<String>) -> Reply {
    shared.crl_quota.admit()?;
    let crl = shared
        .read(|s| s.crls.get(&id).cloned())
        .ok_or_else(|| not_found("CRL", &id))?;
    Ok((StatusCode::OK, Json(json!({ "crl": crl_detail(&crl) }))))
}

pub(super) async fn update_crl(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> Reply {
    shared.crl_quota.admit()?;
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

pub(super) async fn delete_crl(State(shared): State<Shared>, Path(id): Path<String>) -> Reply {
    shared.crl_quota.admit()?;
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

pub(super) async fn enable_crl(State(shared): State<Shared>, Path(id): Path<String>) -> Reply {
    shared.crl_quota.admit()?;
    set_crl_enabled(&shared, &id, true)
}

pub(super) async fn disable_crl(State(shared): State<Shared>, Path(id): Path<String>) -> Reply {
    shared.crl_quota.admit()?;
    set_crl_enabled(&shared, &id, false)
}
