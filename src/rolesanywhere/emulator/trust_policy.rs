//! Role trust policies (`AssumeRolePolicyDocument`) as the emulator evaluates them at
//! CreateSession: a pure parser and evaluator for the subset of the IAM policy grammar that
//! Roles Anywhere trust policies use.
//!
//! Semantics, from the IAM User Guide:
//!
//! - An explicit `Deny` that applies wins; otherwise at least one `Allow` must apply; otherwise
//!   the request is refused (implicit deny).
//! - A statement applies when its `Principal` names the caller, its `Action` matches, and every
//!   condition holds. Operators in a `Condition` block are ANDed, keys under one operator are
//!   ANDed, the values of one key are ORed (NOR for the negated operators) ("Conditions with
//!   multiple context keys or values",
//!   <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_multi-value-conditions.html>).
//! - "If the key that you specify in a policy condition is not present in the request context,
//!   the values do not match and the condition is false. If the policy condition requires that
//!   the key is not matched, such as `StringNotLike` or `ArnNotLike`, and the right key is not
//!   present, the condition is true", except for `...IfExists` (true when absent) and `Null`
//!   ("Condition operators",
//!   <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html>).
//!   `ForAllValues:` is true and `ForAnyValue:` false when the key is absent.
//! - `StringLike` matches `*` (any run of characters, also none) and `?` (one character),
//!   case-sensitively. `ArnEquals` and `ArnLike` behave alike: each of the six `:`-separated
//!   components is matched separately and may hold `*` and `?`.
//! - Condition key names are not case-sensitive.
//!
//! What Roles Anywhere needs of a trust policy ("The IAM Roles Anywhere trust model",
//! <https://docs.aws.amazon.com/rolesanywhere/latest/userguide/trust-model.html>, and "The IAM
//! Roles Anywhere authentication process",
//! <https://docs.aws.amazon.com/rolesanywhere/latest/userguide/authentication.html>): it must let
//! the service principal `rolesanywhere.amazonaws.com` call `sts:AssumeRole`, `sts:TagSession`
//! and `sts:SetSourceIdentity`, because the service assumes the role with the certificate's
//! attributes as session tags and its subject CN as source identity.
//!
//! Not supported (refused when the document is stored, never silently ignored): `NotPrincipal`,
//! `NotAction`, policy variables (`${...}`), and operators other than the String, Arn and `Null`
//! families. `Resource` is refused as IAM refuses it in a trust policy.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The principal Roles Anywhere assumes roles as.
pub const ROLES_ANYWHERE_SERVICE_PRINCIPAL: &str = "rolesanywhere.amazonaws.com";
pub const ACTION_ASSUME_ROLE: &str = "sts:AssumeRole";
pub const ACTION_TAG_SESSION: &str = "sts:TagSession";
pub const ACTION_SET_SOURCE_IDENTITY: &str = "sts:SetSourceIdentity";

/// Condition keys the emulator puts in the request context.
pub const KEY_PRINCIPAL_TAG_PREFIX: &str = "aws:PrincipalTag/";
pub const KEY_SOURCE_ARN: &str = "aws:SourceArn";
pub const KEY_SOURCE_IDENTITY: &str = "sts:SourceIdentity";

/// The policy language versions IAM accepts.
const POLICY_VERSIONS: &[&str] = &["2012-10-17", "2008-10-17"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the trust policy is not valid JSON: {0}")]
    NotJson(String),
    #[error("invalid trust policy: {0}")]
    Malformed(String),
    #[error(
        "condition operator {0:?} is not supported by the emulator (String*, Arn*, Null, with ForAnyValue:/ForAllValues: and ...IfExists)"
    )]
    UnsupportedOperator(String),
    #[error("{0} is not supported by the emulator")]
    Unsupported(String),
}

fn malformed(message: impl Into<String>) -> PolicyError {
    PolicyError::Malformed(message.into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// How a condition compares a context value with a policy value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    /// `ArnEquals` and `ArnLike` alike.
    ArnLike,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetQualifier {
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Operator {
    comparison: Comparison,
    negated: bool,
    if_exists: bool,
    qualifier: Option<SetQualifier>,
}

impl Operator {
    fn parse(name: &str) -> Result<Self, PolicyError> {
        let unsupported = || PolicyError::UnsupportedOperator(name.to_owned());
        let (qualifier, rest) = if let Some(rest) = name.strip_prefix("ForAnyValue:") {
            (Some(SetQualifier::ForAnyValue), rest)
        } else if let Some(rest) = name.strip_prefix("ForAllValues:") {
            (Some(SetQualifier::ForAllValues), rest)
        } else {
            (None, name)
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (rest, false),
        };
        let (comparison, negated) = match base {
            "StringEquals" => (Comparison::StringEquals, false),
            "StringNotEquals" => (Comparison::StringEquals, true),
            "StringEqualsIgnoreCase" => (Comparison::StringEqualsIgnoreCase, false),
            "StringNotEqualsIgnoreCase" => (Comparison::StringEqualsIgnoreCase, true),
            "StringLike" => (Comparison::StringLike, false),
            "StringNotLike" => (Comparison::StringLike, true),
            "ArnEquals" | "ArnLike" => (Comparison::ArnLike, false),
            "ArnNotEquals" | "ArnNotLike" => (Comparison::ArnLike, true),
            // `Null` tests presence itself: no qualifier or IfExists makes sense on it.
            "Null" if !if_exists && qualifier.is_none() => (Comparison::Null, false),
            _ => return Err(unsupported()),
        };
        Ok(Self {
            comparison,
            negated,
            if_exists,
            qualifier,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    operator: Operator,
    key: String,
    values: Vec<String>,
}

impl Condition {
    fn holds(&self, context: &RequestContext) -> bool {
        let present = context.get(&self.key);
        if self.operator.comparison == Comparison::Null {
            // `"Null": {"key": "true"}` holds when the key is absent.
            return self
                .values
                .iter()
                .any(|v| (v == "true") == present.is_empty());
        }
        if present.is_empty() {
            if self.operator.if_exists {
                return true;
            }
            return match self.operator.qualifier {
                Some(SetQualifier::ForAllValues) => true,
                Some(SetQualifier::ForAnyValue) => false,
                None => self.operator.negated,
            };
        }
        let value_satisfies = |value: &String| {
            let any = self
                .values
                .iter()
                .any(|pattern| compare(self.operator.comparison, pattern, value));
            any != self.operator.negated
        };
        match self.operator.qualifier {
            Some(SetQualifier::ForAllValues) => present.iter().all(value_satisfies),
            // The keys the emulator sets are single-valued: plain and ForAnyValue agree.
            None | Some(SetQualifier::ForAnyValue) => present.iter().any(value_satisfies),
        }
    }
}

fn compare(comparison: Comparison, pattern: &str, value: &str) -> bool {
    match comparison {
        Comparison::StringEquals => pattern == value,
        Comparison::StringEqualsIgnoreCase => pattern.to_lowercase() == value.to_lowercase(),
        Comparison::StringLike => wildcard_match(pattern, value),
        Comparison::ArnLike => arn_like(pattern, value),
        Comparison::Null => false,
    }
}

/// `*` matches any run of characters (also none), `?` exactly one; everything else itself.
pub fn wildcard_match(pattern: &str, value: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let value: Vec<char> = value.chars().collect();
    let (mut p, mut v) = (0, 0);
    // Where the last `*` was and how much of the value it has swallowed so far.
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, v));
                p += 1;
            }
            Some(c) if *c == '?' || *c == value[v] => {
                p += 1;
                v += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more character and retry from after it.
                Some((star_p, star_v)) => {
                    p = star_p + 1;
                    v = star_v + 1;
                    star = Some((star_p, star_v + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// ARN comparison: the six components (`arn:partition:service:region:account:resource`) are
/// matched one by one, so a `*` never spans a `:` outside the resource.
fn arn_like(pattern: &str, value: &str) -> bool {
    let pattern: Vec<&str> = pattern.splitn(6, ':').collect();
    let value: Vec<&str> = value.splitn(6, ':').collect();
    pattern.len() == 6
        && value.len() == 6
        && pattern
            .iter()
            .zip(&value)
            .all(|(p, v)| wildcard_match(p, v))
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Statement {
    sid: Option<String>,
    effect: Effect,
    /// The `Principal` names the Roles Anywhere service principal, or everyone.
    names_roles_anywhere: bool,
    actions: Vec<String>,
    conditions: Vec<Condition>,
}

impl Statement {
    fn applies(&self, action: &str, context: &RequestContext) -> bool {
        self.names_roles_anywhere
            && self.actions.iter().any(|pattern| {
                // Action names are not case-sensitive.
                wildcard_match(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
            })
            && self.conditions.iter().all(|c| c.holds(context))
    }
}

/// The values of the request that conditions test, keyed case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    values: BTreeMap<String, Vec<String>>,
}

impl RequestContext {
    pub fn insert(&mut self, key: &str, value: &str) {
        self.values
            .entry(key.to_lowercase())
            .or_default()
            .push(value.to_owned());
    }

    fn get(&self, key: &str) -> &[String] {
        self.values
            .get(&key.to_lowercase())
            .map_or(&[], Vec::as_slice)
    }
}

/// Why a trust policy refused one of the actions the session needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A `Deny` statement applied.
    ExplicitDeny { action: String, sid: Option<String> },
    /// No `Allow` statement applied.
    NotAllowed { action: String },
}

/// A parsed, validated trust policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPolicy {
    statements: Vec<Statement>,
}

impl TrustPolicy {
    /// Parses a policy given as JSON text (how IAM APIs carry policy documents).
    pub fn parse_str(text: &str) -> Result<Self, PolicyError> {
        let document: Value =
            serde_json::from_str(text).map_err(|e| PolicyError::NotJson(e.to_string()))?;
        Self::parse(&document)
    }

    pub fn parse(document: &Value) -> Result<Self, PolicyError> {
        let document = document
            .as_object()
            .ok_or_else(|| malformed("the document must be a JSON object"))?;
        check_fields(document, &["Version", "Id", "Statement"], "the policy")?;
        if let Some(version) = document.get("Version") {
            let version = version.as_str().unwrap_or_default();
            if !POLICY_VERSIONS.contains(&version) {
                return Err(malformed(format!(
                    "Version must be one of {POLICY_VERSIONS:?}"
                )));
            }
        }
        let statements = match document.get("Statement") {
            Some(Value::Array(list)) if !list.is_empty() => list.iter().collect(),
            Some(statement @ Value::Object(_)) => vec![statement],
            _ => {
                return Err(malformed(
                    "Statement must be an object or a non-empty list of objects",
                ));
            }
        };
        let statements = statements
            .into_iter()
            .enumerate()
            .map(|(index, statement)| parse_statement(index, statement))
            .collect::<Result<_, _>>()?;
        Ok(Self { statements })
    }

    fn decide(&self, action: &str, context: &RequestContext, effect: Effect) -> Option<&Statement> {
        self.statements
            .iter()
            .find(|s| s.effect == effect && s.applies(action, context))
    }

    /// Whether every one of `actions` is allowed and none denied. Denies are looked for first,
    /// over all actions, so an explicit deny is reported as such.
    pub fn authorize(&self, actions: &[&str], context: &RequestContext) -> Result<(), Refusal> {
        for action in actions {
            if let Some(deny) = self.decide(action, context, Effect::Deny) {
                return Err(Refusal::ExplicitDeny {
                    action: (*action).to_owned(),
                    sid: deny.sid.clone(),
                });
            }
        }
        for action in actions {
            if self.decide(action, context, Effect::Allow).is_none() {
                return Err(Refusal::NotAllowed {
                    action: (*action).to_owned(),
                });
            }
        }
        Ok(())
    }
}

/// IAM refuses unknown elements; so does the emulator, naming the ones it does not support.
fn check_fields(
    object: &Map<String, Value>,
    known: &[&str],
    what: &str,
) -> Result<(), PolicyError> {
    for field in object.keys() {
        match field.as_str() {
            "NotPrincipal" | "NotAction" => {
                return Err(PolicyError::Unsupported(format!("{field} (in {what})")));
            }
            "Resource" | "NotResource" => {
                return Err(malformed(format!(
                    "{what} has the prohibited field {field}: a trust policy has no resource"
                )));
            }
            name if known.contains(&name) => {}
            other => return Err(malformed(format!("{what} has an unknown field {other:?}"))),
        }
    }
    Ok(())
}

fn parse_statement(index: usize, statement: &Value) -> Result<Statement, PolicyError> {
    let what = format!("statement {index}");
    let statement = statement
        .as_object()
        .ok_or_else(|| malformed(format!("{what} is not an object")))?;
    check_fields(
        statement,
        &["Sid", "Effect", "Principal", "Action", "Condition"],
        &what,
    )?;
    let sid = match statement.get("Sid") {
        None => None,
        Some(Value::String(sid)) => Some(sid.clone()),
        Some(_) => return Err(malformed(format!("{what}: Sid must be a string"))),
    };
    let effect = match statement.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => return Err(malformed(format!("{what}: Effect must be Allow or Deny"))),
    };
    let names_roles_anywhere = parse_principal(
        statement.get("Principal").ok_or_else(|| {
            malformed(format!(
                "{what}: a trust policy statement needs a Principal"
            ))
        })?,
        &what,
    )?;
    let actions = string_or_list(statement.get("Action"), &format!("{what}: Action"))?;
    if let Some(bad) = actions.iter().find(|a| *a != "*" && !a.contains(':')) {
        return Err(malformed(format!(
            "{what}: action {bad:?} is not service:action"
        )));
    }
    let conditions = match statement.get("Condition") {
        None => Vec::new(),
        Some(block) => parse_conditions(block, &what)?,
    };
    Ok(Statement {
        sid,
        effect,
        names_roles_anywhere,
        actions,
        conditions,
    })
}

/// Whether the principal covers Roles Anywhere: `"*"`, `{"AWS": "*"}` or a `Service` list that
/// holds its service principal. Other principals are valid but never match this caller.
fn parse_principal(principal: &Value, what: &str) -> Result<bool, PolicyError> {
    match principal {
        Value::String(s) if s == "*" => Ok(true),
        Value::Object(types) if !types.is_empty() => {
            let mut names_roles_anywhere = false;
            for (kind, value) in types {
                let names = string_or_list(Some(value), &format!("{what}: Principal {kind}"))?;
                match kind.as_str() {
                    "Service" => {
                        names_roles_anywhere |= names
                            .iter()
                            .any(|n| n.eq_ignore_ascii_case(ROLES_ANYWHERE_SERVICE_PRINCIPAL));
                    }
                    "AWS" => names_roles_anywhere |= names.iter().any(|n| n == "*"),
                    "Federated" | "CanonicalUser" => {}
                    other => {
                        return Err(malformed(format!(
                            "{what}: unknown principal type {other:?}"
                        )));
                    }
                }
            }
            Ok(names_roles_anywhere)
        }
        _ => Err(malformed(format!(
            "{what}: Principal must be \"*\" or an object such as {{\"Service\": \"{ROLES_ANYWHERE_SERVICE_PRINCIPAL}\"}}"
        ))),
    }
}

fn parse_conditions(block: &Value, what: &str) -> Result<Vec<Condition>, PolicyError> {
    let block = block
        .as_object()
        .ok_or_else(|| malformed(format!("{what}: Condition must be an object")))?;
    let mut conditions = Vec::new();
    for (operator_name, keys) in block {
        let operator = Operator::parse(operator_name)?;
        let keys = keys.as_object().ok_or_else(|| {
            malformed(format!(
                "{what}: {operator_name} must map condition keys to values"
            ))
        })?;
        for (key, values) in keys {
            let values = condition_values(values, &format!("{what}: {operator_name} {key}"))?;
            if values.iter().any(|v| v.contains("${")) {
                return Err(PolicyError::Unsupported(format!(
                    "the policy variable in {what}: {operator_name} {key}"
                )));
            }
            if operator.comparison == Comparison::Null
                && values.iter().any(|v| v != "true" && v != "false")
            {
                return Err(malformed(format!(
                    "{what}: Null {key} must be \"true\" or \"false\""
                )));
            }
            conditions.push(Condition {
                operator,
                key: key.clone(),
                values,
            });
        }
    }
    Ok(conditions)
}

/// A condition value: a string, or a list of them; booleans and numbers count as their text, as
/// IAM reads `"Null": {"k": true}`.
fn condition_values(value: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let values = match value {
        Value::Array(list) => list.iter().map(scalar).collect::<Option<Vec<_>>>(),
        other => scalar(other).map(|s| vec![s]),
    };
    match values {
        Some(values) if !values.is_empty() => Ok(values),
        _ => Err(malformed(format!(
            "{what} must be a string or a non-empty list of strings"
        ))),
    }
}

fn string_or_list(value: Option<&Value>, what: &str) -> Result<Vec<String>, PolicyError> {
    let list = match value {
        Some(Value::String(s)) => Some(vec![s.clone()]),
        Some(Value::Array(list)) if !list.is_empty() => {
            list.iter().map(|v| v.as_str().map(str::to_owned)).collect()
        }
        _ => None,
    };
    list.ok_or_else(|| {
        malformed(format!(
            "{what} must be a string or a non-empty list of strings"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ALL_ACTIONS: &[&str] = &[
        ACTION_ASSUME_ROLE,
        ACTION_TAG_SESSION,
        ACTION_SET_SOURCE_IDENTITY,
    ];
    const ANCHOR: &str = "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/ta-1";

    fn context(uri: Option<&str>, cn: &str) -> RequestContext {
        let mut context = RequestContext::default();
        if let Some(uri) = uri {
            context.insert("aws:PrincipalTag/x509SAN/URI", uri);
        }
        context.insert("aws:PrincipalTag/x509Subject/CN", cn);
        context.insert(KEY_SOURCE_IDENTITY, cn);
        context.insert(KEY_SOURCE_ARN, ANCHOR);
        context
    }

    fn allow(condition: Value) -> Value {
        json!({
            "Effect": "Allow",
            "Principal": {"Service": ROLES_ANYWHERE_SERVICE_PRINCIPAL},
            "Action": ALL_ACTIONS,
            "Condition": condition,
        })
    }

    fn policy(statements: Value) -> TrustPolicy {
        TrustPolicy::parse(&json!({"Version": "2012-10-17", "Statement": statements})).unwrap()
    }

    #[test]
    fn wildcards() {
        let cases = [
            (
                "spiffe://cluster.local/ns/team-a/*",
                "spiffe://cluster.local/ns/team-a/sa/x",
                true,
            ),
            (
                "spiffe://cluster.local/ns/team-a/*",
                "spiffe://cluster.local/ns/team-b/sa/x",
                false,
            ),
            (
                "spiffe://cluster.local/ns/team-a/*",
                "spiffe://cluster.local/ns/team-a/",
                true,
            ),
            (
                "spiffe://cluster.local/ns/team-a/*",
                "spiffe://cluster.local/ns/team-a",
                false,
            ),
            ("*", "", true),
            ("", "", true),
            ("", "x", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a?c", "abbc", false),
            ("*/sa/x", "spiffe://td/ns/a/sa/x", true),
            ("*a*b*c*", "xxaxxbxxcxx", true),
            ("*a*b*c*", "xxaxxcxxbxx", false),
            ("a**", "a", true),
            ("case", "Case", false),
            ("naïve-?", "naïve-é", true),
        ];
        for (pattern, value, expected) in cases {
            assert_eq!(
                wildcard_match(pattern, value),
                expected,
                "{pattern:?} vs {value:?}"
            );
        }
    }

    #[test]
    fn arn_components_match_separately() {
        let cases = [
            (ANCHOR, ANCHOR, true),
            (
                "arn:aws:rolesanywhere:*:123456789012:trust-anchor/*",
                ANCHOR,
                true,
            ),
            ("arn:aws:rolesanywhere:us-east-1:*:*", ANCHOR, true),
            // A `*` in the region component does not swallow the account.
            ("arn:aws:rolesanywhere:*:trust-anchor/ta-1", ANCHOR, false),
            (
                "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/ta-2",
                ANCHOR,
                false,
            ),
            ("*", ANCHOR, false),
            (ANCHOR, "not-an-arn", false),
        ];
        for (pattern, value, expected) in cases {
            assert_eq!(
                arn_like(pattern, value),
                expected,
                "{pattern:?} vs {value:?}"
            );
        }
    }

    #[test]
    fn evaluation_table() {
        let team_a = context(Some("spiffe://cluster.local/ns/team-a/sa/x"), "x");
        let team_b = context(Some("spiffe://cluster.local/ns/team-b/sa/x"), "x");
        let no_uri = context(None, "x");
        let not_allowed = Err(Refusal::NotAllowed {
            action: ACTION_ASSUME_ROLE.into(),
        });
        let team_a_only = allow(json!({
            "StringLike": {"aws:PrincipalTag/x509SAN/URI": "spiffe://cluster.local/ns/team-a/*"},
            "ArnEquals": {"aws:SourceArn": ANCHOR},
        }));
        type Case<'a> = (&'a str, Value, &'a RequestContext, Result<(), Refusal>);
        let cases: Vec<Case> = vec![
            ("namespace allowed", team_a_only.clone(), &team_a, Ok(())),
            (
                "other namespace",
                team_a_only.clone(),
                &team_b,
                not_allowed.clone(),
            ),
            (
                "absent key fails a positive operator",
                team_a_only.clone(),
                &no_uri,
                not_allowed.clone(),
            ),
            (
                "any listed value matches",
                allow(json!({"StringEquals": {"aws:PrincipalTag/x509SAN/URI": [
                    "spiffe://cluster.local/ns/team-c/sa/x",
                    "spiffe://cluster.local/ns/team-b/sa/x",
                ]}})),
                &team_b,
                Ok(()),
            ),
            (
                "condition keys are case-insensitive",
                allow(
                    json!({"StringEquals": {"AWS:PRINCIPALTAG/X509SAN/URI": "spiffe://cluster.local/ns/team-a/sa/x"}}),
                ),
                &team_a,
                Ok(()),
            ),
            (
                "values are case-sensitive",
                allow(json!({"StringEquals": {"aws:PrincipalTag/x509Subject/CN": "X"}})),
                &team_a,
                not_allowed.clone(),
            ),
            (
                "IgnoreCase",
                allow(json!({"StringEqualsIgnoreCase": {"aws:PrincipalTag/x509Subject/CN": "X"}})),
                &team_a,
                Ok(()),
            ),
            (
                "StringNotEquals is NOR over the values",
                allow(json!({"StringNotEquals": {"aws:PrincipalTag/x509Subject/CN": ["y", "x"]}})),
                &team_a,
                not_allowed.clone(),
            ),
            (
                "a negated operator holds on an absent key",
                allow(
                    json!({"StringNotLike": {"aws:PrincipalTag/x509SAN/URI": "spiffe://*/ns/kube-system/*"}}),
                ),
                &no_uri,
                Ok(()),
            ),
            (
                "IfExists holds on an absent key",
                allow(
                    json!({"StringLikeIfExists": {"aws:PrincipalTag/x509SAN/URI": "spiffe://cluster.local/ns/team-a/*"}}),
                ),
                &no_uri,
                Ok(()),
            ),
            (
                "IfExists still checks a present key",
                allow(
                    json!({"StringLikeIfExists": {"aws:PrincipalTag/x509SAN/URI": "spiffe://cluster.local/ns/team-a/*"}}),
                ),
                &team_b,
                not_allowed.clone(),
            ),
            (
                "ForAnyValue is false on an absent key",
                allow(json!({"ForAnyValue:StringLike": {"aws:PrincipalTag/x509SAN/URI": "*"}})),
                &no_uri,
                not_allowed.clone(),
            ),
            (
                "ForAllValues is true on an absent key",
                allow(
                    json!({"ForAllValues:StringLike": {"aws:PrincipalTag/x509SAN/URI": "spiffe://cluster.local/ns/team-a/*"}}),
                ),
                &no_uri,
                Ok(()),
            ),
            (
                "Null true requires absence",
                allow(json!({"Null": {"aws:PrincipalTag/x509SAN/URI": "true"}})),
                &team_a,
                not_allowed.clone(),
            ),
            (
                "Null false requires presence",
                allow(json!({"Null": {"aws:PrincipalTag/x509SAN/URI": false}})),
                &team_a,
                Ok(()),
            ),
            (
                "operators and keys are ANDed",
                allow(json!({
                    "StringLike": {"aws:PrincipalTag/x509SAN/URI": "spiffe://cluster.local/ns/team-a/*"},
                    "StringEquals": {"aws:PrincipalTag/x509Subject/CN": "x", "sts:SourceIdentity": "other"},
                })),
                &team_a,
                not_allowed.clone(),
            ),
            (
                "another trust anchor",
                allow(
                    json!({"ArnLike": {"aws:SourceArn": "arn:aws:rolesanywhere:*:*:trust-anchor/other"}}),
                ),
                &team_a,
                not_allowed.clone(),
            ),
            (
                "a statement for another principal does not apply",
                json!({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}),
                &team_a,
                not_allowed.clone(),
            ),
            (
                "sts:* and a list principal",
                json!({"Effect": "Allow", "Principal": {"Service": ["ec2.amazonaws.com", ROLES_ANYWHERE_SERVICE_PRINCIPAL]}, "Action": "sts:*"}),
                &team_a,
                Ok(()),
            ),
            (
                "every action the session needs must be allowed",
                json!({"Effect": "Allow", "Principal": {"Service": ROLES_ANYWHERE_SERVICE_PRINCIPAL}, "Action": ["sts:AssumeRole", "sts:TagSession"]}),
                &team_a,
                Err(Refusal::NotAllowed {
                    action: ACTION_SET_SOURCE_IDENTITY.into(),
                }),
            ),
            (
                "deny wins over allow",
                json!([
                    allow(json!({"StringLike": {"aws:PrincipalTag/x509SAN/URI": "spiffe://cluster.local/*"}})),
                    {
                        "Sid": "NoTeamB",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "sts:TagSession",
                        "Condition": {"StringLike": {"aws:PrincipalTag/x509SAN/URI": "*/ns/team-b/*"}},
                    },
                ]),
                &team_b,
                Err(Refusal::ExplicitDeny {
                    action: ACTION_TAG_SESSION.into(),
                    sid: Some("NoTeamB".into()),
                }),
            ),
            (
                "a deny that does not apply leaves the allow",
                json!([
                    allow(json!({"StringLike": {"aws:PrincipalTag/x509SAN/URI": "spiffe://cluster.local/*"}})),
                    {
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "*",
                        "Condition": {"StringLike": {"aws:PrincipalTag/x509SAN/URI": "*/ns/team-b/*"}},
                    },
                ]),
                &team_a,
                Ok(()),
            ),
        ];
        for (name, statements, context, expected) in cases {
            assert_eq!(
                policy(statements).authorize(ALL_ACTIONS, context),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn invalid_documents_are_refused_with_a_reason() {
        let statement = |extra: Value| {
            let mut s = allow(json!({}));
            s.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            json!({"Statement": s})
        };
        let cases: Vec<(&str, Value, &str)> = vec![
            ("not an object", json!([]), "must be a JSON object"),
            (
                "no statement",
                json!({"Version": "2012-10-17"}),
                "Statement",
            ),
            (
                "empty statement list",
                json!({"Statement": []}),
                "Statement",
            ),
            (
                "bad version",
                json!({"Version": "2020-01-01", "Statement": allow(json!({}))}),
                "Version",
            ),
            (
                "bad effect",
                statement(json!({"Effect": "allow"})),
                "Effect",
            ),
            (
                "no principal",
                json!({"Statement": {"Effect": "Allow", "Action": "sts:AssumeRole"}}),
                "Principal",
            ),
            (
                "unknown operator",
                statement(json!({"Condition": {"StringMatches": {"k": "v"}}})),
                "StringMatches",
            ),
            (
                "numeric operator",
                statement(json!({"Condition": {"NumericLessThan": {"k": "1"}}})),
                "NumericLessThan",
            ),
            (
                "qualified Null",
                statement(json!({"Condition": {"ForAnyValue:Null": {"k": "true"}}})),
                "ForAnyValue:Null",
            ),
            (
                "Null value",
                statement(json!({"Condition": {"Null": {"k": "yes"}}})),
                "true",
            ),
            (
                "empty values",
                statement(json!({"Condition": {"StringEquals": {"k": []}}})),
                "non-empty",
            ),
            (
                "object value",
                statement(json!({"Condition": {"StringEquals": {"k": {}}}})),
                "string",
            ),
            (
                "policy variable",
                statement(json!({"Condition": {"StringEquals": {"k": "${aws:username}"}}})),
                "policy variable",
            ),
            (
                "resource",
                statement(json!({"Resource": "*"})),
                "prohibited field Resource",
            ),
            (
                "NotAction",
                statement(json!({"NotAction": "s3:*"})),
                "NotAction",
            ),
            (
                "unknown field",
                statement(json!({"Actions": "sts:AssumeRole"})),
                "unknown field",
            ),
            (
                "bad action",
                statement(json!({"Action": "AssumeRole"})),
                "service:action",
            ),
        ];
        for (name, document, needle) in cases {
            let error = TrustPolicy::parse(&document).expect_err(name).to_string();
            assert!(error.contains(needle), "{name}: {error}");
        }
        assert!(matches!(
            TrustPolicy::parse_str("{not json"),
            Err(PolicyError::NotJson(_))
        ));
        assert!(matches!(
            TrustPolicy::parse(&statement(json!({"Condition": {"StringMatches": {"k": "v"}}}))),
            Err(PolicyError::UnsupportedOperator(op)) if op == "StringMatches"
        ));
    }

    #[test]
    fn the_documented_example_parses() {
        // From "Attribute mapping and trust policy" in the Roles Anywhere User Guide.
        let text = r#"{
          "Version": "2012-10-17",
          "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "rolesanywhere.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
            "Condition": {
              "StringEquals": {"aws:PrincipalTag/x509Issuer/CN": "Bob"},
              "ArnEquals": {"aws:SourceArn": ["arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/ta-1"]}
            }
          }]
        }"#;
        let policy = TrustPolicy::parse_str(text).unwrap();
        let mut context = context(None, "x");
        assert!(policy.authorize(ALL_ACTIONS, &context).is_err());
        context.insert("aws:PrincipalTag/x509Issuer/CN", "Bob");
        assert_eq!(policy.authorize(ALL_ACTIONS, &context), Ok(()));
    }
}
