//! The data plane: `POST /sessions` (CreateSession). Verifies the SigV4-X509 signature, the date,
//! the certificate path to the trust anchor, the certificate profile, the enabled CRLs, the
//! profile/role and the role's trust policy (when one is registered), then returns fake but
//! well-formed temporary credentials (HTTP 201).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use super::attributes::{CertificateNames, PrincipalTags, default_principal_tags};
use super::state::{Crl, Profile, TrustAnchor};
use super::trust_policy::{
    ACTION_ASSUME_ROLE, ACTION_SET_SOURCE_IDENTITY, ACTION_TAG_SESSION, KEY_PRINCIPAL_TAG_PREFIX,
    KEY_SOURCE_ARN, KEY_SOURCE_IDENTITY, Refusal, RequestContext, TrustPolicy,
};
use super::verify::{
    CertificateRejection, check_leaf_profile, check_not_revoked, verify_path,
    verify_request_signature,
};
use super::{MAX_CLOCK_SKEW, ServiceError, Shared};
use crate::pki::pem::blocks_labelled;
use crate::rolesanywhere::errors::MESSAGE_INVALID_SIGNATURE;
use crate::rolesanywhere::session::{
    DEFAULT_SESSION_SECONDS, MAX_SESSION_SECONDS, MIN_SESSION_SECONDS,
};
use crate::rolesanywhere::sigv4x509::{
    self, HEADER_AMZ_DATE, HEADER_X509, HEADER_X509_CHAIN, SERVICE_NAME, SESSIONS_PATH,
    canonical_query_string, canonical_request, parse_amz_date, parse_authorization, string_to_sign,
};

pub fn router() -> Router<Shared> {
    Router::new().route(SESSIONS_PATH, post(create_session))
}

async fn create_session(
    State(shared): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(throttled) = shared.session_quota.admit() {
        return throttled.into_response();
    }
    match handle_create_session(&shared, &uri, &headers, &body, OffsetDateTime::now_utc()) {
        Ok(reply) => (StatusCode::CREATED, axum::Json(reply)).into_response(),
        Err(error) => {
            tracing::info!(error_type = error.error_type, message = %error.message, "CreateSession refused");
            error.into_response()
        }
    }
}

/// All values of a header, joined by `,` (how SigV4 canonicalises repeated headers).
fn header_values(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn invalid_signature() -> ServiceError {
    ServiceError::access_denied(MESSAGE_INVALID_SIGNATURE)
}

/// A request whose SigV4-X509 signature verified.
pub struct VerifiedRequest {
    pub serial_decimal: String,
    /// DER of the signing certificate (`X-Amz-X509`).
    pub leaf_der: Vec<u8>,
    /// Decoded query-string parameters.
    pub query: Vec<(String, String)>,
}

/// The whole CreateSession decision, apart from the HTTP plumbing.
pub fn handle_create_session(
    shared: &Shared,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Value, ServiceError> {
    let region = shared.read(|s| s.region.clone());
    // 1. The signature, over exactly the headers the client says it signed.
    let verified = verify_signed_request(uri, headers, body, &region, now)?;
    let (_, leaf) = x509_parser::parse_x509_certificate(&verified.leaf_der)
        .map_err(|_| ServiceError::validation("X-Amz-X509 is not a base64 DER certificate"))?;
    let query = verified.query;
    let serial_decimal = verified.serial_decimal;

    // 2. The parameters: ARNs in the query string or the JSON body.
    let SessionParameters {
        trust_anchor_arn,
        profile_arn,
        role_arn,
        duration,
        role_session_name,
    } = session_parameters(&query, body)?;

    // 3. Trust anchor, profile and role.
    let Resolved {
        anchor,
        profile,
        crls,
        trust_policy,
    } = resolve(shared, &trust_anchor_arn, &profile_arn, &role_arn)?;
    if role_session_name.is_some() && !profile.accept_role_session_name {
        return Err(ServiceError::validation(
            "The profile does not accept role session names",
        ));
    }

    // 4. The certificate: profile, path to the anchor, validity, revocation.
    let reject = |r: CertificateRejection| {
        tracing::info!(reason = %r, serial = %serial_decimal, "certificate refused");
        ServiceError::access_denied(r.service_message())
    };
    verify_certificate(&leaf, headers, &anchor, &crls, now)?.map_err(reject)?;

    // 5. The role's trust policy: what IAM decides when the service assumes the role with the
    //    certificate's attributes as session tags and its subject CN as source identity.
    let names = CertificateNames::from_certificate(&leaf)
        .map_err(|e| reject(CertificateRejection::Unacceptable(e.to_string())))?;
    let tags = default_principal_tags(&names);
    // "Sessions issued by IAM Roles Anywhere have the source identity set to the common name(s)
    // (CN) of the subject(s) you use in end-entity certificate(s)" (Roles Anywhere User Guide,
    // "The IAM Roles Anywhere trust model",
    // https://docs.aws.amazon.com/rolesanywhere/latest/userguide/trust-model.html).
    let source_identity = names.subject_common_name();
    if let Some(document) = &trust_policy {
        authorize_role(
            &role_arn,
            document,
            &tags,
            source_identity,
            &trust_anchor_arn,
        )?;
    }

    // 6. Credentials (fake, in the shapes and lengths STS uses).
    let duration = profile
        .duration_seconds
        .map_or(duration, |max| duration.min(max));
    // "IAM Roles Anywhere sets this [the session name] automatically, using the hex-encoded
    // serial number of the authenticating certificate" (same page). Hex of the serial's value,
    // without DER sign padding: the form WorkloadCertificate status.serialNumber holds, so a
    // session ARN can be matched to the certificate it came from.
    let session_name = role_session_name
        .clone()
        .unwrap_or_else(|| crate::pki::serial_hex(leaf.tbs_certificate.raw_serial()));
    let reply = credential_set(
        &region,
        &role_arn,
        &session_name,
        source_identity,
        duration,
        now,
    )?;
    tracing::info!(
        serial = %serial_decimal,
        role = %role_arn,
        access_key_id = %reply["credentialSet"][0]["credentials"]["accessKeyId"],
        "CreateSession granted"
    );
    Ok(reply)
}

/// What a CreateSession asks for.
struct SessionParameters {
    trust_anchor_arn: String,
    profile_arn: String,
    role_arn: String,
    duration: u32,
    role_session_name: Option<String>,
}

/// The parameters, from the query string or the JSON body (the SDK sends the body, the helper
/// both).
fn session_parameters(
    query: &[(String, String)],
    body: &[u8],
) -> Result<SessionParameters, ServiceError> {
    let json: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|_| ServiceError::validation("request body is not valid JSON"))?
    };
    let param = |name: &str| -> Option<String> {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| json.get(name).and_then(Value::as_str).map(str::to_owned))
    };
    let required = |name: &str| {
        param(name).ok_or_else(|| ServiceError::validation(format!("{name} is required")))
    };
    let trust_anchor_arn = required("trustAnchorArn")?;
    let profile_arn = required("profileArn")?;
    let role_arn = required("roleArn")?;
    let duration = match json.get("durationSeconds") {
        None | Some(Value::Null) => DEFAULT_SESSION_SECONDS,
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| (MIN_SESSION_SECONDS..=MAX_SESSION_SECONDS).contains(n))
            .ok_or_else(|| {
                ServiceError::validation(format!(
                    "durationSeconds must be {MIN_SESSION_SECONDS}-{MAX_SESSION_SECONDS}"
                ))
            })?,
    };
    let role_session_name = json
        .get("roleSessionName")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(SessionParameters {
        trust_anchor_arn,
        profile_arn,
        role_arn,
        duration,
        role_session_name,
    })
}

/// The trust anchor, profile, enabled CRLs and role trust policy a session names.
struct Resolved {
    anchor: TrustAnchor,
    profile: Profile,
    crls: Vec<Crl>,
    trust_policy: Option<serde_json::Value>,
}

/// Looks up what the session names: each must exist and be enabled, and the role must be in the
/// profile.
fn resolve(
    shared: &Shared,
    trust_anchor_arn: &str,
    profile_arn: &str,
    role_arn: &str,
) -> Result<Resolved, ServiceError> {
    let (anchor, profile, crls, trust_policy) = shared.read(|state| {
        let anchor = state.trust_anchor_by_arn(trust_anchor_arn).cloned();
        let profile = state.profile_by_arn(profile_arn).cloned();
        let crls: Vec<_> = state
            .crls_of(trust_anchor_arn)
            .filter(|c| c.enabled)
            .cloned()
            .collect();
        let trust_policy = state.role_trust_policies.get(role_arn).cloned();
        (anchor, profile, crls, trust_policy)
    });
    let anchor = anchor.ok_or_else(|| {
        ServiceError::not_found(format!("Trust anchor {trust_anchor_arn} not found"))
    })?;
    if !anchor.enabled {
        return Err(ServiceError::access_denied("Trust anchor is disabled"));
    }
    let profile = profile
        .ok_or_else(|| ServiceError::not_found(format!("Profile {profile_arn} not found")))?;
    if !profile.enabled {
        return Err(ServiceError::access_denied("Profile is disabled"));
    }
    if !profile.role_arns.iter().any(|arn| arn == role_arn) {
        return Err(ServiceError::access_denied(format!(
            "Role {role_arn} is not in profile {profile_arn}"
        )));
    }
    Ok(Resolved {
        anchor,
        profile,
        crls,
        trust_policy,
    })
}

/// The certificate as the service checks it: its profile, a path to the trust anchor (with the
/// chain the client sent), validity, and the anchor's enabled CRLs. The outer error is a
/// malformed request; the inner one the certificate's refusal.
fn verify_certificate(
    leaf: &x509_parser::certificate::X509Certificate<'_>,
    headers: &HeaderMap,
    anchor: &TrustAnchor,
    crls: &[Crl],
    now: OffsetDateTime,
) -> Result<Result<(), CertificateRejection>, ServiceError> {
    if let Err(rejection) = check_leaf_profile(leaf) {
        return Ok(Err(rejection));
    }
    let chain_der: Vec<Vec<u8>> = match header_values(headers, HEADER_X509_CHAIN) {
        Some(chain) => chain
            .split(',')
            .map(|b64| STANDARD.decode(b64.trim()))
            .collect::<Result<_, _>>()
            .map_err(|_| ServiceError::validation("X-Amz-X509-Chain is not base64 DER"))?,
        None => Vec::new(),
    };
    let intermediates = chain_der
        .iter()
        .map(|der| x509_parser::parse_x509_certificate(der).map(|(_, c)| c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ServiceError::validation("X-Amz-X509-Chain holds an invalid certificate"))?;
    let anchor_der = blocks_labelled(&anchor.certificate_bundle_pem, "CERTIFICATE")
        .map_err(|_| ServiceError::internal("stored trust anchor is not PEM"))?;
    let anchors = anchor_der
        .iter()
        .filter_map(|der| {
            x509_parser::parse_x509_certificate(der)
                .ok()
                .map(|(_, c)| c)
        })
        .collect::<Vec<_>>();
    let issuer = match verify_path(leaf, &intermediates, &anchors, now.unix_timestamp()) {
        Ok(issuer) => issuer,
        Err(rejection) => return Ok(Err(rejection)),
    };
    let crl_der: Vec<(String, Vec<u8>)> = crls
        .iter()
        .filter_map(|c| super::control_plane::crl_der(&c.crl_data).map(|der| (c.name.clone(), der)))
        .collect();
    let parsed_crls: Vec<_> = crl_der
        .iter()
        .filter_map(|(name, der)| {
            x509_parser::parse_x509_crl(der)
                .ok()
                .map(|(_, crl)| (name.clone(), crl))
        })
        .collect();
    Ok(check_not_revoked(leaf, issuer, &parsed_crls))
}

/// Evaluates the role's trust policy for the actions this session needs: `sts:AssumeRole`, plus
/// `sts:TagSession` when there are principal tags and `sts:SetSourceIdentity` when there is a
/// source identity (what STS asks of an AssumeRole carrying them).
fn authorize_role(
    role_arn: &str,
    document: &Value,
    tags: &PrincipalTags,
    source_identity: Option<&str>,
    trust_anchor_arn: &str,
) -> Result<(), ServiceError> {
    // Documents are validated when stored; only a hand-edited state file gets here invalid.
    let policy = TrustPolicy::parse(document).map_err(|e| {
        tracing::error!(role = %role_arn, error = %e, "stored trust policy is invalid");
        ServiceError::internal(format!(
            "the stored trust policy of {role_arn} is invalid: {e}"
        ))
    })?;
    let mut context = RequestContext::default();
    for (key, value) in tags.iter() {
        context.insert(&format!("{KEY_PRINCIPAL_TAG_PREFIX}{key}"), value);
    }
    context.insert(KEY_SOURCE_ARN, trust_anchor_arn);
    let mut actions = vec![ACTION_ASSUME_ROLE];
    if !tags.is_empty() {
        actions.push(ACTION_TAG_SESSION);
    }
    if let Some(source_identity) = source_identity {
        context.insert(KEY_SOURCE_IDENTITY, source_identity);
        actions.push(ACTION_SET_SOURCE_IDENTITY);
    }
    policy.authorize(&actions, &context).map_err(|refusal| {
        let identity = identity_summary(tags);
        // The emulator's wording (the real service's text was not observed); it always names
        // the role and says "trust policy", so a refusal is told apart from a CRL or path one.
        let message = match refusal {
            Refusal::NotAllowed { action } if action == ACTION_ASSUME_ROLE => {
                format!("Role {role_arn} trust policy does not allow this certificate ({identity})")
            }
            Refusal::NotAllowed { action } => format!(
                "Role {role_arn} trust policy does not allow {action} for this certificate \
                 ({identity}); Roles Anywhere needs {ACTION_ASSUME_ROLE}, {ACTION_TAG_SESSION} \
                 and {ACTION_SET_SOURCE_IDENTITY}"
            ),
            Refusal::ExplicitDeny { action, sid } => format!(
                "Role {role_arn} trust policy denies {action} to this certificate ({identity}) \
                 by {}",
                sid.map_or_else(
                    || "an explicit Deny".to_owned(),
                    |sid| format!("statement {sid:?}")
                )
            ),
        };
        ServiceError::access_denied(message)
    })
}

/// The identity a tenant policy usually conditions on, for refusal messages.
fn identity_summary(tags: &PrincipalTags) -> String {
    let shown: Vec<String> = ["x509Subject/CN", "x509SAN/URI"]
        .iter()
        .filter_map(|key| tags.get(key).map(|value| format!("{key}={value}")))
        .collect();
    if shown.is_empty() {
        "no x509Subject/CN or x509SAN/URI".to_owned()
    } else {
        shown.join(", ")
    }
}

const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const BASE64_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The CreateSession answer: random credentials in the shapes and lengths STS uses.
fn credential_set(
    region: &str,
    role_arn: &str,
    session_name: &str,
    source_identity: Option<&str>,
    duration_seconds: u32,
    now: OffsetDateTime,
) -> Result<Value, ServiceError> {
    let expiration = (now + time::Duration::seconds(i64::from(duration_seconds)))
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .map_err(|_| ServiceError::internal("formatting the expiration"))?;
    let role_name = role_arn.rsplit('/').next().unwrap_or(role_arn);
    let account = role_arn.split(':').nth(4).unwrap_or_default();
    let mut reply = json!({
        "credentialSet": [{
            "assumedRoleUser": {
                "arn": format!("arn:aws:sts::{account}:assumed-role/{role_name}/{session_name}"),
                "assumedRoleId": format!("AROA{}:{session_name}", random_token(17, UPPER_ALNUM)?),
            },
            "credentials": {
                "accessKeyId": format!("ASIA{}", random_token(16, UPPER_ALNUM)?),
                "secretAccessKey": random_token(40, BASE64_CHARS)?,
                "sessionToken": random_token(356, BASE64_CHARS)?,
                "expiration": expiration,
            },
            "packedPolicySize": 0,
            "roleArn": role_arn,
        }],
        "subjectArn": format!(
            "arn:aws:rolesanywhere:{region}:{account}:subject/{}",
            super::state::new_resource_id()
        ),
    });
    // A subject without a CN gives the session no source identity.
    if let Some(source_identity) = source_identity {
        reply["credentialSet"][0]["sourceIdentity"] = json!(source_identity);
    }
    Ok(reply)
}

fn random_token(len: usize, alphabet: &[u8]) -> Result<String, ServiceError> {
    let mut bytes = vec![0u8; len];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| ServiceError::internal("no system randomness"))?;
    Ok(bytes
        .iter()
        .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
        .collect())
}

/// Verifies the SigV4-X509 signature as the service does: date within [`MAX_CLOCK_SKEW`], scope
/// of this region and service, `host`, `x-amz-date` and `x-amz-x509` signed, the credential's
/// serial is the certificate's, and the certificate's key signed the string to sign.
pub fn verify_signed_request(
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    region: &str,
    now: OffsetDateTime,
) -> Result<VerifiedRequest, ServiceError> {
    let authorization = header_values(headers, "authorization")
        .ok_or_else(|| ServiceError::access_denied("Missing Authorization header"))?;
    let authorization = parse_authorization(&authorization)
        .map_err(|e| ServiceError::access_denied(e.to_string()))?;
    let amz_date = header_values(headers, HEADER_AMZ_DATE)
        .ok_or_else(|| ServiceError::access_denied("Missing X-Amz-Date header"))?;
    let signed_at =
        parse_amz_date(&amz_date).map_err(|e| ServiceError::access_denied(e.to_string()))?;
    if (now - signed_at).abs() > MAX_CLOCK_SKEW {
        return Err(ServiceError::access_denied(format!(
            "Signature expired: {amz_date} is outside 5 minutes of the server time {}",
            sigv4x509::format_amz_date(now)
        )));
    }
    if authorization.service != SERVICE_NAME
        || authorization.region != region
        || authorization.scope_date != amz_date.get(..8).unwrap_or_default()
    {
        return Err(ServiceError::access_denied(format!(
            "Credential scope {} does not match {}",
            authorization.scope,
            sigv4x509::credential_scope(&amz_date, region)
        )));
    }
    for required in ["host", HEADER_AMZ_DATE, HEADER_X509] {
        if !authorization.signed_headers.iter().any(|h| h == required) {
            return Err(ServiceError::access_denied(format!(
                "{required} must be a signed header"
            )));
        }
    }
    let mut signed = Vec::with_capacity(authorization.signed_headers.len());
    for name in &authorization.signed_headers {
        let value = header_values(headers, name).ok_or_else(invalid_signature)?;
        signed.push((name.clone(), value));
    }
    let canonical = sigv4x509::canonical_headers(&signed);
    if canonical.signed_headers != authorization.signed_headers.join(";") {
        // Unsorted or repeated names: the client's canonical form cannot be this one.
        return Err(invalid_signature());
    }
    let query = query_pairs(uri);
    let canonical_request = canonical_request(
        "POST",
        uri.path(),
        &canonical_query_string(&query),
        &canonical,
        &crate::pki::sha256_hex(body),
    );
    let to_sign = string_to_sign(
        authorization.algorithm,
        &amz_date,
        &authorization.scope,
        &canonical_request,
    );
    let leaf_der = header_values(headers, HEADER_X509)
        .and_then(|b64| STANDARD.decode(b64.trim()).ok())
        .ok_or_else(|| ServiceError::validation("X-Amz-X509 is not a base64 DER certificate"))?;
    let (_, leaf) = x509_parser::parse_x509_certificate(&leaf_der)
        .map_err(|_| ServiceError::validation("X-Amz-X509 is not a base64 DER certificate"))?;
    if sigv4x509::decimal_serial(leaf.tbs_certificate.raw_serial()) != authorization.serial_decimal
    {
        return Err(invalid_signature());
    }
    if !verify_request_signature(
        &leaf,
        authorization.algorithm,
        to_sign.as_bytes(),
        &authorization.signature,
    ) {
        return Err(invalid_signature());
    }
    Ok(VerifiedRequest {
        serial_decimal: authorization.serial_decimal,
        leaf_der,
        query,
    })
}
