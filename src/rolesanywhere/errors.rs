//! Typed errors of a `CreateSession` call: the service's refusals mapped to what they mean, so a
//! caller (credential-process, the sidecar) can say "revoked" instead of "HTTP 403".

use crate::pki::private_key::PrivateKeyError;

/// The service's message for a certificate on an enabled CRL of the trust anchor.
pub const MESSAGE_CERTIFICATE_REVOKED: &str = "Certificate revoked";
/// The service's message when no chain to the trust anchor can be built.
pub const MESSAGE_UNTRUSTED_CERTIFICATE: &str = "Untrusted Signing Certificate";
/// The service's message when the SigV4-X509 signature does not verify.
pub const MESSAGE_INVALID_SIGNATURE: &str = "Invalid signature";

#[derive(Debug, thiserror::Error)]
pub enum CreateSessionError {
    #[error(
        "the certificate is revoked: Roles Anywhere found it on an enabled CRL (AccessDeniedException: {message})"
    )]
    CertificateRevoked { message: String },
    #[error(
        "the certificate is not trusted by the trust anchor (AccessDeniedException: {message})"
    )]
    UntrustedCertificate { message: String },
    #[error("Roles Anywhere rejected the request signature (AccessDeniedException: {message})")]
    InvalidSignature { message: String },
    #[error("access denied (AccessDeniedException: {message})")]
    AccessDenied { message: String },
    #[error("the request is invalid (ValidationException: {message})")]
    Validation { message: String },
    #[error("a trust anchor, profile or role was not found (ResourceNotFoundException: {message})")]
    ResourceNotFound { message: String },
    #[error(
        "throttled by Roles Anywhere (HTTP {status}, {error_type}): {message}; CreateSession allows 10 requests/second per account"
    )]
    Throttled {
        status: u16,
        error_type: String,
        message: String,
    },
    #[error("Roles Anywhere returned HTTP {status} {error_type}: {message}")]
    Service {
        status: u16,
        error_type: String,
        message: String,
    },
    #[error("invalid parameter: {0}")]
    InvalidInput(String),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("private key: {0}")]
    PrivateKey(#[from] PrivateKeyError),
    #[error("request to {endpoint} failed: {reason}")]
    Transport { endpoint: String, reason: String },
    #[error("unexpected CreateSession response (HTTP {status}): {reason}")]
    MalformedResponse { status: u16, reason: String },
}

/// The error type of a restJson1 error response: the `x-amzn-ErrorType` header (anything after
/// `:` dropped), else `__type` or `code` in the body (any `namespace#` prefix dropped).
pub fn service_error_type(header: Option<&str>, body: &serde_json::Value) -> Option<String> {
    let raw = header
        .map(str::to_owned)
        .or_else(|| {
            body.get("__type")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .or_else(|| body.get("code").and_then(|v| v.as_str()).map(str::to_owned))?;
    let without_suffix = raw.split(':').next().unwrap_or(&raw);
    Some(
        without_suffix
            .rsplit('#')
            .next()
            .unwrap_or(without_suffix)
            .to_owned(),
    )
}

/// Maps a service error response to its typed error.
pub fn classify_service_error(
    status: u16,
    error_type: Option<&str>,
    message: &str,
) -> CreateSessionError {
    let message = message.to_owned();
    match error_type {
        Some("AccessDeniedException") if message == MESSAGE_CERTIFICATE_REVOKED => {
            CreateSessionError::CertificateRevoked { message }
        }
        Some("AccessDeniedException") if message.starts_with(MESSAGE_UNTRUSTED_CERTIFICATE) => {
            CreateSessionError::UntrustedCertificate { message }
        }
        Some("AccessDeniedException") if message.starts_with(MESSAGE_INVALID_SIGNATURE) => {
            CreateSessionError::InvalidSignature { message }
        }
        Some("AccessDeniedException") => CreateSessionError::AccessDenied { message },
        Some("ValidationException") => CreateSessionError::Validation { message },
        Some("ResourceNotFoundException") => CreateSessionError::ResourceNotFound { message },
        Some(kind @ ("ThrottlingException" | "TooManyRequestsException")) => {
            CreateSessionError::Throttled {
                status,
                error_type: kind.to_owned(),
                message,
            }
        }
        _ if status == 429 => CreateSessionError::Throttled {
            status,
            error_type: error_type.unwrap_or("unknown").to_owned(),
            message,
        },
        other => CreateSessionError::Service {
            status,
            error_type: other.unwrap_or("unknown").to_owned(),
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_type_from_header_or_body() {
        assert_eq!(
            service_error_type(
                Some("AccessDeniedException:http://internal.amazon.com/"),
                &json!({})
            )
            .as_deref(),
            Some("AccessDeniedException")
        );
        assert_eq!(
            service_error_type(
                None,
                &json!({"__type": "com.amazonaws.rolesanywhere#ValidationException"})
            )
            .as_deref(),
            Some("ValidationException")
        );
        assert_eq!(service_error_type(None, &json!({})), None);
    }

    #[test]
    fn service_errors_map_to_typed_errors() {
        type IsExpected = fn(&CreateSessionError) -> bool;
        let cases: Vec<(u16, Option<&str>, &str, IsExpected)> = vec![
            (
                403,
                Some("AccessDeniedException"),
                "Certificate revoked",
                |e| matches!(e, CreateSessionError::CertificateRevoked { .. }),
            ),
            (
                403,
                Some("AccessDeniedException"),
                "Untrusted Signing Certificate",
                |e| matches!(e, CreateSessionError::UntrustedCertificate { .. }),
            ),
            (
                403,
                Some("AccessDeniedException"),
                "Invalid signature",
                |e| matches!(e, CreateSessionError::InvalidSignature { .. }),
            ),
            (
                403,
                Some("AccessDeniedException"),
                "Profile is disabled",
                |e| matches!(e, CreateSessionError::AccessDenied { .. }),
            ),
            (400, Some("ValidationException"), "bad", |e| {
                matches!(e, CreateSessionError::Validation { .. })
            }),
            (404, Some("ResourceNotFoundException"), "gone", |e| {
                matches!(e, CreateSessionError::ResourceNotFound { .. })
            }),
            (400, Some("ThrottlingException"), "slow down", |e| {
                matches!(e, CreateSessionError::Throttled { .. })
            }),
            (429, None, "slow down", |e| {
                matches!(e, CreateSessionError::Throttled { .. })
            }),
            (500, Some("InternalServerException"), "oops", |e| {
                matches!(e, CreateSessionError::Service { status: 500, .. })
            }),
        ];
        for (status, kind, message, expected) in cases {
            let error = classify_service_error(status, kind, message);
            assert!(expected(&error), "{status} {kind:?} {message}: {error}");
        }
    }
}
