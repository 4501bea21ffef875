//! Ending the live sessions of a revoked certificate. A CRL stops only *new* sessions: STS
//! credentials already issued live until their `durationSeconds` (up to 12 h). An inline Deny on
//! each bound role, for sessions of that certificate issued before the revocation, ends them at
//! once (IAM policy changes take effect within seconds to minutes).
//!
//! Condition key (IAM Roles Anywhere User Guide, "trust model"): a Roles Anywhere session's role
//! session name is the certificate's hex serial unless the profile accepts a custom one, so
//! `aws:userid` is `<role id>:<hex serial>`. Only that form is denied: a serial is random and
//! belongs to one certificate, so a tenant naming someone else's role in a binding can deny
//! nothing but sessions of its own revoked certificate, and every session of that certificate is
//! denied, also those created between the revocation and the CRL import. (Bindings with a custom
//! `roleSessionName` are skipped: that name is a tenant's choice and could match anyone's
//! sessions.) Each statement is removed once no session of its certificate can be alive: the
//! certificate's notAfter plus the longest session.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::fence::{LeadershipFence, LeadershipLapsed};
use crate::metrics::aws_error_message;

/// The inline policy on each bound role.
pub const POLICY_NAME: &str = "iamra-revoked-sessions";
/// Sessions live at most this long (CreateSession `durationSeconds` ceiling).
pub const MAX_SESSION_SECONDS: i64 = 43_200;
/// IAM's limit on a role's inline policies (characters, whitespace excluded).
pub const MAX_INLINE_POLICY_CHARS: usize = 10_240;
const SID_PREFIX: &str = "IamraRevoked";

/// One revoked certificate whose sessions a role must refuse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedSession {
    /// The hex serial: the role session name Roles Anywhere gives the certificate's sessions.
    pub serial: String,
    /// Unix seconds after which no session of the certificate can be alive.
    pub expires: i64,
}

/// Why the policy cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DenyPolicyError {
    #[error("the role's existing {POLICY_NAME} policy is not valid JSON")]
    Unreadable,
    #[error(
        "the Deny for {statements} revoked certificate(s) is {size} characters, over IAM's {MAX_INLINE_POLICY_CHARS} for a role's inline policies: shorten certificate lifetimes or bind fewer certificates to the role"
    )]
    TooLarge { statements: usize, size: usize },
}

fn sid(entry: &RevokedSession) -> String {
    let serial: String = entry
        .serial
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect();
    format!("{SID_PREFIX}{serial}U{}", entry.expires)
}

/// When a statement written by [`deny_policy`] stops mattering, from its Sid.
fn statement_expiry(statement: &Value) -> Option<i64> {
    let sid = statement.get("Sid")?.as_str()?.strip_prefix(SID_PREFIX)?;
    sid.rsplit_once('U')?.1.parse().ok()
}

/// The policy document with `add` denied, keeping what `existing` denies still and dropping
/// statements whose certificates can have no live session at `now`.
pub fn deny_policy(
    existing: Option<&str>,
    add: &[RevokedSession],
    now: i64,
) -> Result<String, DenyPolicyError> {
    let mut statements: Vec<Value> = match existing {
        Some(text) => {
            let document: Value =
                serde_json::from_str(text).map_err(|_| DenyPolicyError::Unreadable)?;
            match document.get("Statement") {
                Some(Value::Array(items)) => items.clone(),
                Some(item @ Value::Object(_)) => vec![item.clone()],
                _ => Vec::new(),
            }
        }
        None => Vec::new(),
    };
    statements.retain(|statement| statement_expiry(statement).is_none_or(|expiry| expiry > now));
    for entry in add {
        if entry.expires <= now {
            continue;
        }
        let sid = sid(entry);
        if statements
            .iter()
            .any(|s| s.get("Sid").and_then(Value::as_str) == Some(&sid))
        {
            continue;
        }
        statements.push(json!({
            "Sid": sid,
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {
                "StringLike": {"aws:userid": format!("*:{}", entry.serial)},
            },
        }));
    }
    let document = json!({"Version": "2012-10-17", "Statement": statements}).to_string();
    if document.len() > MAX_INLINE_POLICY_CHARS {
        return Err(DenyPolicyError::TooLarge {
            statements: statements.len(),
            size: document.len(),
        });
    }
    Ok(document)
}

/// The role name of an IAM role ARN (`arn:aws:iam::<account>:role/<path/>name`).
pub fn role_name(role_arn: &str) -> Option<&str> {
    role_arn.split_once(":role/")?.1.rsplit('/').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(serial: &str, expires: i64) -> RevokedSession {
        RevokedSession {
            serial: serial.into(),
            expires,
        }
    }

    #[test]
    fn denies_every_session_of_each_revoked_certificate() {
        let document = deny_policy(None, &[entry("4a0b", 2_000)], 1_000).unwrap();
        let parsed: Value = serde_json::from_str(&document).unwrap();
        let statement = &parsed["Statement"][0];
        assert_eq!(statement["Effect"], "Deny");
        assert_eq!(statement["Action"], "*");
        assert_eq!(statement["Condition"]["StringLike"]["aws:userid"], "*:4a0b");
        assert_eq!(statement["Condition"].as_object().unwrap().len(), 1);
    }

    #[test]
    fn merges_deduplicates_and_prunes_what_can_no_longer_be_alive() {
        let first = deny_policy(None, &[entry("aa", 2_000), entry("bb", 5_000)], 1_000).unwrap();
        // Again with one more, later: "aa" expired, "bb" kept once, "cc" added.
        let second = deny_policy(
            Some(&first),
            &[entry("bb", 5_000), entry("cc", 6_000)],
            3_000,
        )
        .unwrap();
        let parsed: Value = serde_json::from_str(&second).unwrap();
        let sids: Vec<&str> = parsed["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Sid"].as_str().unwrap())
            .collect();
        assert_eq!(sids, ["IamraRevokedbbU5000", "IamraRevokedccU6000"]);
        // Someone else's statement in our policy is kept.
        let foreign = r#"{"Version":"2012-10-17","Statement":{"Sid":"Theirs","Effect":"Deny","Action":"s3:*","Resource":"*"}}"#;
        let merged = deny_policy(Some(foreign), &[entry("dd", 9_000)], 1_000).unwrap();
        assert!(merged.contains("Theirs") && merged.contains("IamraRevokedddU9000"));
        assert_eq!(
            deny_policy(Some("not json"), &[], 0),
            Err(DenyPolicyError::Unreadable)
        );
    }

    #[test]
    fn refuses_a_policy_over_the_inline_limit() {
        let many: Vec<RevokedSession> = (0..200)
            .map(|i| entry(&format!("{i:018x}"), 9_999))
            .collect();
        assert!(matches!(
            deny_policy(None, &many, 0),
            Err(DenyPolicyError::TooLarge {
                statements: 200,
                ..
            })
        ));
    }

    #[test]
    fn role_names_from_arns() {
        assert_eq!(role_name("arn:aws:iam::111122223333:role/app"), Some("app"));
        assert_eq!(
            role_name("arn:aws:iam::111122223333:role/team/app"),
            Some("app")
        );
        assert_eq!(role_name("arn:aws:s3:::bucket"), None);
    }
}

/// Why live sessions could not be ended; said in the Revocation's `LiveSessionsEnded` condition.
#[derive(Debug, thiserror::Error)]
pub enum LiveSessionError {
    #[error("{0}")]
    Policy(#[from] DenyPolicyError),
    #[error("{0:?} is not an IAM role ARN")]
    NotARole(String),
    #[error(transparent)]
    NotLeading(#[from] LeadershipLapsed),
    #[error("IAM {operation} on role {role} failed: {message}")]
    Iam {
        operation: &'static str,
        role: String,
        message: String,
    },
}

/// Writes the Deny policy through IAM (`GetRolePolicy`, `PutRolePolicy`).
pub struct IamSessionRevoker {
    client: aws_sdk_iam::Client,
    /// One read-modify-write of a role's policy at a time, or concurrent Revocations could each
    /// write their statement over the other's.
    role_locks:
        std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
    /// The policy is written only while this replica leads.
    fence: Arc<LeadershipFence>,
}

/// IAM is a global service, signed in us-east-1.
const IAM_SIGNING_REGION: &str = "us-east-1";

impl IamSessionRevoker {
    pub fn new(
        sdk: &aws_config::SdkConfig,
        endpoint: Option<&str>,
        fence: Arc<LeadershipFence>,
    ) -> Self {
        let mut config = aws_sdk_iam::config::Builder::from(sdk)
            .region(aws_sdk_iam::config::Region::new(IAM_SIGNING_REGION))
            .retry_config(aws_sdk_iam::config::retry::RetryConfig::standard().with_max_attempts(4));
        if let Some(endpoint) = endpoint {
            config = config.endpoint_url(endpoint);
        }
        Self {
            client: aws_sdk_iam::Client::from_conf(config.build()),
            role_locks: Default::default(),
            fence,
        }
    }

    /// Adds `add` to the role's Deny policy (merged with what it holds, expired statements dropped).
    pub async fn deny(
        &self,
        role_arn: &str,
        add: &[RevokedSession],
        now: i64,
    ) -> Result<(), LiveSessionError> {
        let role =
            role_name(role_arn).ok_or_else(|| LiveSessionError::NotARole(role_arn.into()))?;
        let lock = self
            .role_locks
            .lock()
            .map(|mut locks| locks.entry(role.to_string()).or_default().clone())
            .unwrap_or_default();
        let _turn = lock.lock().await;
        let iam_error = |operation: &'static str, message: String| LiveSessionError::Iam {
            operation,
            role: role.to_string(),
            message,
        };
        let existing = match self
            .client
            .get_role_policy()
            .role_name(role)
            .policy_name(POLICY_NAME)
            .send()
            .await
        {
            // IAM returns policy documents URL-encoded (RFC 3986).
            Ok(output) => Some(
                percent_encoding::percent_decode_str(output.policy_document())
                    .decode_utf8_lossy()
                    .into_owned(),
            ),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_no_such_entity_exception()) =>
            {
                None
            }
            Err(error) => return Err(iam_error("GetRolePolicy", aws_error_message(&error))),
        };
        let document = deny_policy(existing.as_deref(), add, now)?;
        self.fence.check()?;
        self.client
            .put_role_policy()
            .role_name(role)
            .policy_name(POLICY_NAME)
            .policy_document(document)
            .send()
            .await
            .map_err(|error| iam_error("PutRolePolicy", aws_error_message(&error)))?;
        Ok(())
    }
}
