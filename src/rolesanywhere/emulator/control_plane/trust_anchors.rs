//! Trust anchors with a CERTIFICATE_BUNDLE source: Create, Get, List, Delete, Enable, Disable.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{Reply, check_name, list_reply, not_found, now, parse_body, required_str, timestamp};
use crate::pki::pem::parse_pem;
use crate::rolesanywhere::emulator::state::EmulatorState;
use crate::rolesanywhere::emulator::state::{TrustAnchor, new_resource_id};
use crate::rolesanywhere::emulator::{ServiceError, Shared};

/// `x509CertificateData` of a CERTIFICATE_BUNDLE source is at most this long.
pub const MAX_CERTIFICATE_BUNDLE_CHARS: usize = 8_000;

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

pub(super) async fn create_trust_anchor(State(shared): State<Shared>, body: Bytes) -> Reply {
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

pub(super) async fn list_trust_anchors(
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

pub(super) async fn get_trust_anchor(
    State(shared): State<Shared>,
    Path(id): Path<String>,
) -> Reply {
    let anchor = shared
        .read(|s| s.trust_anchors.get(&id).cloned())
        .ok_or_else(|| not_found("trust anchor", &id))?;
    Ok((
        StatusCode::OK,
        Json(json!({ "trustAnchor": trust_anchor_detail(&anchor) })),
    ))
}

pub(super) async fn delete_trust_anchor(
    State(shared): State<Shared>,
    Path(id): Path<String>,
) -> Reply {
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

pub(super) async fn enable_trust_anchor(
    State(shared): State<Shared>,
    Path(id): Path<String>,
) -> Reply {
    set_trust_anchor_enabled(&shared, &id, true)
}

pub(super) async fn disable_trust_anchor(
    State(shared): State<Shared>,
    Path(id): Path<String>,
) -> Reply {
    set_trust_anchor_enabled(&shared, &id, false)
}
