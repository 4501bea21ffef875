//! Emulator-only: role trust policies, the IAM side of a CreateSession decision that the real
//! service reads from IAM. **These routes are not an AWS API**; no SDK calls them. They live
//! under `/emulator/` so they never collide with a Roles Anywhere path.
//!
//! - `PUT /emulator/roles/trust-policy`, body `{"roleArn": "arn:aws:iam::…:role/…", "policy":
//!   {…}}` (the policy as a JSON object, or as a string holding JSON the way IAM's own APIs carry
//!   it): validates and stores the role's trust policy, replacing any earlier one. 200 with
//!   `{"roleArn", "policy"}`; `ValidationException` (400) for a bad ARN or document.
//! - `GET /emulator/roles/trust-policy?roleArn=…`: 200 with `{"roleArn", "policy"}`, or
//!   `ResourceNotFoundException` (404).
//! - `DELETE /emulator/roles/trust-policy?roleArn=…`: forgets it (the role then trusts every
//!   certificate its profile lets through again); 200, or 404 when there was none.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::put;
use serde_json::{Value, json};

use super::trust_policy::TrustPolicy;
use super::{ServiceError, Shared};

/// The one path of these routes.
pub const TRUST_POLICY_PATH: &str = "/emulator/roles/trust-policy";

type Reply = Result<(StatusCode, Json<Value>), ServiceError>;

pub fn router() -> Router<Shared> {
    Router::new().route(
        TRUST_POLICY_PATH,
        put(put_trust_policy)
            .get(get_trust_policy)
            .delete(delete_trust_policy),
    )
}

fn check_role_arn(role_arn: &str) -> Result<(), ServiceError> {
    if !role_arn.starts_with("arn:") || !role_arn.contains(":role/") {
        return Err(ServiceError::validation(format!(
            "{role_arn:?} is not a role ARN"
        )));
    }
    Ok(())
}

/// Validates `policy` (a JSON object, or a JSON string holding the document) and stores it as
/// the trust policy of `role_arn`, replacing any earlier one. The in-process form of
/// `PUT /emulator/roles/trust-policy`.
pub fn set_role_trust_policy(
    shared: &Shared,
    role_arn: &str,
    policy: &Value,
) -> Result<(), ServiceError> {
    check_role_arn(role_arn)?;
    let document = match policy {
        Value::String(text) => serde_json::from_str(text).map_err(|e| {
            ServiceError::validation(format!("the trust policy is not valid JSON: {e}"))
        })?,
        other => other.clone(),
    };
    TrustPolicy::parse(&document).map_err(|e| ServiceError::validation(e.to_string()))?;
    shared.mutate(|state| {
        state
            .role_trust_policies
            .insert(role_arn.to_owned(), document);
        Ok(())
    })
}

/// Forgets the trust policy of `role_arn`; whether there was one.
pub fn remove_role_trust_policy(shared: &Shared, role_arn: &str) -> Result<bool, ServiceError> {
    shared.mutate(|state| Ok(state.role_trust_policies.remove(role_arn).is_some()))
}

fn role_arn_param(params: &HashMap<String, String>) -> Result<&str, ServiceError> {
    params
        .get("roleArn")
        .map(String::as_str)
        .ok_or_else(|| ServiceError::validation("roleArn is required"))
}

fn no_policy(role_arn: &str) -> ServiceError {
    ServiceError::not_found(format!("Role {role_arn} has no trust policy"))
}

async fn put_trust_policy(State(shared): State<Shared>, body: Bytes) -> Reply {
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ServiceError::validation(format!("request body is not valid JSON: {e}")))?;
    let role_arn = body
        .get("roleArn")
        .and_then(Value::as_str)
        .ok_or_else(|| ServiceError::validation("roleArn is required"))?;
    let policy = body
        .get("policy")
        .ok_or_else(|| ServiceError::validation("policy is required"))?;
    set_role_trust_policy(&shared, role_arn, policy)?;
    tracing::info!(role = %role_arn, "role trust policy set (emulator-only API)");
    let stored = shared.read(|s| s.role_trust_policies.get(role_arn).cloned());
    Ok((
        StatusCode::OK,
        Json(json!({ "roleArn": role_arn, "policy": stored })),
    ))
}

async fn get_trust_policy(
    State(shared): State<Shared>,
    Query(params): Query<HashMap<String, String>>,
) -> Reply {
    let role_arn = role_arn_param(&params)?;
    let policy = shared
        .read(|s| s.role_trust_policies.get(role_arn).cloned())
        .ok_or_else(|| no_policy(role_arn))?;
    Ok((
        StatusCode::OK,
        Json(json!({ "roleArn": role_arn, "policy": policy })),
    ))
}

async fn delete_trust_policy(
    State(shared): State<Shared>,
    Query(params): Query<HashMap<String, String>>,
) -> Reply {
    let role_arn = role_arn_param(&params)?;
    if !remove_role_trust_policy(&shared, role_arn)? {
        return Err(no_policy(role_arn));
    }
    tracing::info!(role = %role_arn, "role trust policy removed (emulator-only API)");
    Ok((StatusCode::OK, Json(json!({ "roleArn": role_arn }))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rolesanywhere::emulator::state::EmulatorState;

    const ROLE: &str = "arn:aws:iam::123456789012:role/team-a";

    fn shared() -> Shared {
        Shared::new(EmulatorState::new("us-east-1"), None)
    }

    fn valid() -> Value {
        json!({
            "Version": "2012-10-17",
            "Statement": {
                "Effect": "Allow",
                "Principal": {"Service": "rolesanywhere.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
            },
        })
    }

    #[test]
    fn stores_a_valid_policy_given_as_object_or_text() {
        let shared = shared();
        set_role_trust_policy(&shared, ROLE, &valid()).unwrap();
        set_role_trust_policy(&shared, ROLE, &Value::String(valid().to_string())).unwrap();
        assert_eq!(
            shared.read(|s| s.role_trust_policies.get(ROLE).cloned()),
            Some(valid()),
            "stored as the document, not as the string"
        );
        assert!(remove_role_trust_policy(&shared, ROLE).unwrap());
        assert!(!remove_role_trust_policy(&shared, ROLE).unwrap());
    }

    #[test]
    fn refuses_bad_input_with_validation_errors() {
        let shared = shared();
        let mut unknown_operator = valid();
        unknown_operator["Statement"]["Condition"] = json!({"StringMatches": {"k": "v"}});
        let cases = [
            (
                "arn:aws:iam::123456789012:user/u",
                valid(),
                "not a role ARN",
            ),
            (ROLE, Value::String("{".into()), "not valid JSON"),
            (ROLE, json!({"Statement": []}), "Statement"),
            (ROLE, unknown_operator, "StringMatches"),
        ];
        for (role, policy, needle) in cases {
            let error = set_role_trust_policy(&shared, role, &policy).unwrap_err();
            assert_eq!(error.error_type, "ValidationException");
            assert!(error.message.contains(needle), "{}", error.message);
        }
        assert!(shared.read(|s| s.role_trust_policies.is_empty()));
    }
}
