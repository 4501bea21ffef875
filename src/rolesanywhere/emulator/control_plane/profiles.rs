//! Profiles (the roles a session may assume): Create, Get, List, Delete, Enable, Disable.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{Reply, check_name, list_reply, not_found, now, parse_body, required_str, timestamp};
use crate::rolesanywhere::emulator::state::EmulatorState;
use crate::rolesanywhere::emulator::state::{Profile, new_resource_id};
use crate::rolesanywhere::emulator::{ServiceError, Shared};

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

pub(super) async fn create_profile(State(shared): State<Shared>, body: Bytes) -> Reply {
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

pub(super) async fn list_profiles(
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

pub(super) async fn get_profile(State(shared): State<Shared>, Path(id): Path<String>) -> Reply {
    let profile = shared
        .read(|s| s.profiles.get(&id).cloned())
        .ok_or_else(|| not_found("profile", &id))?;
    Ok((
        StatusCode::OK,
        Json(json!({ "profile": profile_detail(&profile) })),
    ))
}

pub(super) async fn delete_profile(State(shared): State<Shared>, Path(id): Path<String>) -> Reply {
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

pub(super) async fn enable_profile(State(shared): State<Shared>, Path(id): Path<String>) -> Reply {
    set_profile_enabled(&shared, &id, true)
}

pub(super) async fn disable_profile(State(shared): State<Shared>, Path(id): Path<String>) -> Reply {
    set_profile_enabled(&shared, &id, false)
}
