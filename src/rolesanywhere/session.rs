//! The `CreateSession` client: signs the request with the workload certificate's key
//! (SigV4-X509, see [`super::sigv4x509`]), posts it, and returns the temporary credentials.

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use time::OffsetDateTime;

use super::errors::{CreateSessionError, classify_service_error, service_error_type};
use super::sigv4x509::{
    self, SESSIONS_PATH, SigningAlgorithm, canonical_headers, canonical_query_string,
    canonical_request, credential_scope, format_amz_date, string_to_sign,
};
use crate::pki::pem::blocks_labelled;
use crate::pki::private_key::{PrivateKey, PrivateKeyKind};

/// Roles Anywhere's bounds for `durationSeconds` (the API rejects anything else).
pub const MIN_SESSION_SECONDS: u32 = 900;
pub const MAX_SESSION_SECONDS: u32 = 43_200;
pub const DEFAULT_SESSION_SECONDS: u32 = 3_600;
/// The service accepts at most this many certificates in `X-Amz-X509-Chain`.
pub const MAX_CHAIN_CERTIFICATES: usize = 5;
/// One CreateSession should answer in well under this; the caller retries, not us.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The certificate, its optional intermediates and the private key that signs with it.
pub struct SigningIdentity {
    certificate_der: Vec<u8>,
    chain_der: Vec<Vec<u8>>,
    serial_decimal: String,
    key: PrivateKey,
}

impl std::fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningIdentity")
            .field("serial", &self.serial_decimal)
            .field("chain_len", &self.chain_der.len())
            .finish_non_exhaustive()
    }
}

impl SigningIdentity {
    /// `certificate_pem`: the leaf first (extra certificates after it count as intermediates);
    /// `intermediates_pem`: an optional bundle, sent in `X-Amz-X509-Chain`.
    pub fn from_pem(
        certificate_pem: &str,
        private_key_pem: &str,
        intermediates_pem: Option<&str>,
    ) -> Result<Self, CreateSessionError> {
        let pem_certificates = |text: &str| -> Result<Vec<Vec<u8>>, CreateSessionError> {
            blocks_labelled(text, "CERTIFICATE")
                .map_err(|e| CreateSessionError::Certificate(e.to_string()))
        };
        let mut certificates = pem_certificates(certificate_pem)?;
        if certificates.is_empty() {
            return Err(CreateSessionError::Certificate(
                "no CERTIFICATE block in the certificate file".into(),
            ));
        }
        let certificate_der = certificates.remove(0);
        let mut chain_der = certificates;
        if let Some(bundle) = intermediates_pem {
            chain_der.extend(pem_certificates(bundle)?);
        }
        let key = PrivateKey::from_pem(private_key_pem)?;
        Self::new(certificate_der, chain_der, key)
    }

    pub fn new(
        certificate_der: Vec<u8>,
        chain_der: Vec<Vec<u8>>,
        key: PrivateKey,
    ) -> Result<Self, CreateSessionError> {
        if chain_der.len() > MAX_CHAIN_CERTIFICATES {
            return Err(CreateSessionError::Certificate(format!(
                "{} intermediate certificates; Roles Anywhere accepts at most {MAX_CHAIN_CERTIFICATES}",
                chain_der.len()
            )));
        }
        let (_, certificate) =
            x509_parser::parse_x509_certificate(&certificate_der).map_err(|e| {
                CreateSessionError::Certificate(format!("not an X.509 certificate: {e}"))
            })?;
        if certificate.public_key().subject_public_key.data.as_ref() != key.public_key_bits() {
            return Err(CreateSessionError::Certificate(
                "the private key does not belong to the certificate".into(),
            ));
        }
        let serial_decimal = sigv4x509::decimal_serial(certificate.tbs_certificate.raw_serial());
        Ok(Self {
            certificate_der,
            chain_der,
            serial_decimal,
            key,
        })
    }

    pub fn serial_decimal(&self) -> &str {
        &self.serial_decimal
    }

    pub fn algorithm(&self) -> SigningAlgorithm {
        match self.key.algorithm() {
            PrivateKeyKind::EcdsaP256 => SigningAlgorithm::EcdsaSha256,
            PrivateKeyKind::Rsa => SigningAlgorithm::RsaSha256,
        }
    }
}

/// What to ask for; the ARNs go in the query string, as the official helper sends them.
#[derive(Debug, Clone)]
pub struct SessionRequest {
    pub trust_anchor_arn: String,
    pub profile_arn: String,
    pub role_arn: String,
    pub duration_seconds: u32,
    pub role_session_name: Option<String>,
    /// Signing region; defaults to the trust anchor's.
    pub region: String,
    /// Base URL, e.g. `https://rolesanywhere.eu-west-1.amazonaws.com` or `http://127.0.0.1:8080`.
    pub endpoint: String,
}

impl SessionRequest {
    /// Fills region and endpoint from the trust anchor ARN when not given, and checks what the
    /// official helper checks before sending.
    pub fn new(
        trust_anchor_arn: &str,
        profile_arn: &str,
        role_arn: &str,
        duration_seconds: Option<u32>,
        role_session_name: Option<String>,
        region: Option<&str>,
        endpoint: Option<&str>,
    ) -> Result<Self, CreateSessionError> {
        let anchor_region = arn_region(trust_anchor_arn).ok_or_else(|| {
            CreateSessionError::InvalidInput(format!("{trust_anchor_arn:?} is not an ARN"))
        })?;
        let profile_region = arn_region(profile_arn).ok_or_else(|| {
            CreateSessionError::InvalidInput(format!("{profile_arn:?} is not an ARN"))
        })?;
        if anchor_region != profile_region {
            return Err(CreateSessionError::InvalidInput(
                "trust anchor and profile regions don't match".into(),
            ));
        }
        let duration_seconds = duration_seconds.unwrap_or(DEFAULT_SESSION_SECONDS);
        if !(MIN_SESSION_SECONDS..=MAX_SESSION_SECONDS).contains(&duration_seconds) {
            return Err(CreateSessionError::InvalidInput(format!(
                "session duration {duration_seconds}s is outside {MIN_SESSION_SECONDS}-{MAX_SESSION_SECONDS}s"
            )));
        }
        let region = region.unwrap_or(anchor_region).to_owned();
        let endpoint = endpoint
            .map(|e| e.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| default_endpoint(&region));
        Ok(Self {
            trust_anchor_arn: trust_anchor_arn.to_owned(),
            profile_arn: profile_arn.to_owned(),
            role_arn: role_arn.to_owned(),
            duration_seconds,
            role_session_name,
            region,
            endpoint,
        })
    }
}

/// `https://rolesanywhere.{region}.amazonaws.com` (`.com.cn` in the China regions).
pub fn default_endpoint(region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://rolesanywhere.{region}.{suffix}")
}

/// `arn:partition:service:region:account:resource` → region.
pub fn arn_region(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    (parts.next()? == "arn").then_some(())?;
    let (_partition, _service, region) = (parts.next()?, parts.next()?, parts.next()?);
    parts.next()?;
    parts.next()?;
    Some(region)
}

/// A signed request, ready to send.
#[derive(Debug, Clone)]
pub struct SignedRequest {
    /// Absolute URL with the query string.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Where the ARNs travel; the service accepts both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArnPlacement {
    /// `?profileArn=…&roleArn=…&trustAnchorArn=…`, what the official helper sends.
    QueryString,
    /// In the JSON body next to `durationSeconds`.
    Body,
}

/// Builds and signs the CreateSession request at `now` (pure apart from the ECDSA nonce).
pub fn sign_create_session(
    identity: &SigningIdentity,
    request: &SessionRequest,
    now: OffsetDateTime,
) -> Result<SignedRequest, CreateSessionError> {
    sign_create_session_with(identity, request, now, ArnPlacement::QueryString)
}

pub fn sign_create_session_with(
    identity: &SigningIdentity,
    request: &SessionRequest,
    now: OffsetDateTime,
    placement: ArnPlacement,
) -> Result<SignedRequest, CreateSessionError> {
    let authority = request
        .endpoint
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(&request.endpoint)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    if authority.is_empty() {
        return Err(CreateSessionError::InvalidInput(format!(
            "endpoint {:?} has no host",
            request.endpoint
        )));
    }
    let mut body = serde_json::json!({ "durationSeconds": request.duration_seconds });
    if let Some(name) = &request.role_session_name {
        body["roleSessionName"] = serde_json::Value::String(name.clone());
    }
    let arns = [
        ("profileArn".to_owned(), request.profile_arn.clone()),
        ("roleArn".to_owned(), request.role_arn.clone()),
        (
            "trustAnchorArn".to_owned(),
            request.trust_anchor_arn.clone(),
        ),
    ];
    let query = match placement {
        ArnPlacement::QueryString => canonical_query_string(&arns),
        ArnPlacement::Body => {
            for (name, value) in &arns {
                body[name.as_str()] = serde_json::Value::String(value.clone());
            }
            String::new()
        }
    };
    let body = body.to_string().into_bytes();
    let amz_date = format_amz_date(now);
    let mut headers = vec![
        ("Content-Type".to_owned(), "application/json".to_owned()),
        ("Host".to_owned(), authority),
        ("X-Amz-Date".to_owned(), amz_date.clone()),
        (
            "X-Amz-X509".to_owned(),
            STANDARD.encode(&identity.certificate_der),
        ),
    ];
    if !identity.chain_der.is_empty() {
        let chain: Vec<String> = identity
            .chain_der
            .iter()
            .map(|der| STANDARD.encode(der))
            .collect();
        headers.push(("X-Amz-X509-Chain".to_owned(), chain.join(",")));
    }
    let canonical = canonical_headers(&headers);
    let canonical_request = canonical_request(
        "POST",
        SESSIONS_PATH,
        &query,
        &canonical,
        &crate::pki::sha256_hex(&body),
    );
    let scope = credential_scope(&amz_date, &request.region);
    let algorithm = identity.algorithm();
    let to_sign = string_to_sign(algorithm, &amz_date, &scope, &canonical_request);
    let signature = identity.key.sign_sha256(to_sign.as_bytes())?;
    headers.push((
        "Authorization".to_owned(),
        sigv4x509::authorization_header(
            algorithm,
            &identity.serial_decimal,
            &scope,
            &canonical.signed_headers,
            &signature,
        ),
    ));
    Ok(SignedRequest {
        url: if query.is_empty() {
            format!("{}{SESSIONS_PATH}", request.endpoint)
        } else {
            format!("{}{SESSIONS_PATH}?{query}", request.endpoint)
        },
        headers,
        body,
    })
}

/// Temporary credentials. `Debug` shows only the access key id and expiration.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// RFC 3339, as the service returns it.
    pub expiration: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

/// Parses a CreateSession response: 201 with `credentialSet[0].credentials`, or an error shape.
pub fn parse_create_session_response(
    status: u16,
    error_type_header: Option<&str>,
    body: &[u8],
) -> Result<Credentials, CreateSessionError> {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    if !(200..300).contains(&status) {
        let message = json
            .get("message")
            .or_else(|| json.get("Message"))
            .and_then(|m| m.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
        let error_type = service_error_type(error_type_header, &json);
        return Err(classify_service_error(
            status,
            error_type.as_deref(),
            &message,
        ));
    }
    let malformed = |reason: &str| CreateSessionError::MalformedResponse {
        status,
        reason: reason.to_owned(),
    };
    let credentials = json
        .get("credentialSet")
        .and_then(|set| set.get(0))
        .and_then(|entry| entry.get("credentials"))
        .ok_or_else(|| malformed("no credentialSet[0].credentials"))?;
    let field = |name: &str| {
        credentials
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| malformed(&format!("credentials.{name} missing")))
    };
    Ok(Credentials {
        access_key_id: field("accessKeyId")?,
        secret_access_key: field("secretAccessKey")?,
        session_token: field("sessionToken")?,
        expiration: field("expiration")?,
    })
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// Clients kept for the life of the process: loading the system's trust roots costs more CPU
/// than a CreateSession itself, so it is done once, and only for https endpoints.
static HTTPS_CLIENT: OnceLock<Result<HttpClient, String>> = OnceLock::new();
static PLAIN_CLIENT: OnceLock<Result<HttpClient, String>> = OnceLock::new();

type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

fn build_client(connector: Connector) -> HttpClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        // No idle connections: a CreateSession is rare, and a pooled connection would belong
        // to the runtime that opened it, which may be gone by the next call.
        .pool_max_idle_per_host(0)
        .build(connector)
}

/// A connector that speaks plain http; it trusts no root, so an https URL would fail.
fn plain_connector() -> Result<Connector, String> {
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS configuration: {e}"))?
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build())
}

fn native_roots_connector() -> Result<Connector, String> {
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("loading the system trust roots: {e}"))?
        .https_or_http()
        .enable_http1()
        .build())
}

/// The client for `endpoint`: with the system's trust roots for https, without for plain http
/// (the local emulator).
fn http_client(endpoint: &str) -> Result<HttpClient, String> {
    let (cell, connector): (_, fn() -> Result<Connector, String>) =
        if endpoint.starts_with("http://") {
            (&PLAIN_CLIENT, plain_connector)
        } else {
            (&HTTPS_CLIENT, native_roots_connector)
        };
    cell.get_or_init(|| connector().map(build_client)).clone()
}

/// Signs, sends and parses one CreateSession.
#[tracing::instrument(skip_all, fields(endpoint = %request.endpoint, serial = %identity.serial_decimal))]
pub async fn create_session(
    identity: &SigningIdentity,
    request: &SessionRequest,
) -> Result<Credentials, CreateSessionError> {
    let signed = sign_create_session(identity, request, OffsetDateTime::now_utc())?;
    send_create_session(signed, &request.endpoint).await
}

/// Posts a signed request and parses the answer.
pub async fn send_create_session(
    signed: SignedRequest,
    endpoint: &str,
) -> Result<Credentials, CreateSessionError> {
    let transport = |reason: String| CreateSessionError::Transport {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let client = http_client(endpoint).map_err(transport)?;
    let mut builder = http::Request::builder().method("POST").uri(&signed.url);
    for (name, value) in &signed.headers {
        builder = builder.header(name, value);
    }
    let http_request = builder
        .body(Full::new(Bytes::from(signed.body)))
        .map_err(|e| transport(format!("building the request: {e}")))?;
    let response = tokio::time::timeout(REQUEST_TIMEOUT, client.request(http_request))
        .await
        .map_err(|_| transport(format!("no response within {REQUEST_TIMEOUT:?}")))?
        .map_err(|e| transport(e.to_string()))?;
    let status = response.status().as_u16();
    let error_type = response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = tokio::time::timeout(REQUEST_TIMEOUT, response.into_body().collect())
        .await
        .map_err(|_| transport("response body timed out".into()))?
        .map_err(|e| transport(e.to_string()))?
        .to_bytes();
    let result = parse_create_session_response(status, error_type.as_deref(), &body);
    match &result {
        Ok(credentials) => tracing::debug!(
            access_key_id = %credentials.access_key_id,
            expiration = %credentials.expiration,
            "CreateSession succeeded"
        ),
        Err(error) => tracing::debug!(%error, status, "CreateSession failed"),
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXED_KEY: &str = include_str!("testdata/fixed-rsa2048.key.pem");
    const FIXED_CERT: &str = include_str!("testdata/fixed-rsa2048.crt.pem");
    /// Computed with Python (canonical request) and `openssl dgst -sha256 -sign` (see testdata/).
    const FIXED_SIGNATURE: &str = "6019af060624046a3d4b403ad54a57ebecb85a76d7a43902881ab5782d2a7bb270057a0d60467b628e869c1cfd463227ea888f9a8f9eab988cc96f054c5c59e6134dc8773fb90e02c27141cfad552945e45272808c8cb708482c4226eb04fba250e78e2069688e360c214e219964ae1634d6ad0808ece4600ce2679239633351aadbeccb5a74a3dc6c86240ec0375bbe102818fb65afa3642306ba1bb5fda91160d98462d98d9c6d4ed1a32640d3d75340e51ebbffbb44340a38de5176ea62e0234642e62efa86498639ddcbf3721c5e13b3f6c6fe177c26b867104d4981fe002e1a9bcd8eeb82aa7a2f6c775d4d32dcd0b00da97a4621f049d70c9d52a52143";

    /// A fixed key, certificate, date and request: RSA PKCS#1 v1.5 is deterministic, so the whole
    /// `Authorization` header is known in advance.
    #[test]
    fn signs_a_fixed_request_exactly_as_computed_independently() {
        let identity = SigningIdentity::from_pem(FIXED_CERT, FIXED_KEY, None).unwrap();
        assert_eq!(identity.serial_decimal(), "1234567890123456789012345");
        assert_eq!(identity.algorithm(), SigningAlgorithm::RsaSha256);
        let request = SessionRequest::new(
            "arn:aws:rolesanywhere:eu-west-1:123456789012:trust-anchor/ta-1",
            "arn:aws:rolesanywhere:eu-west-1:123456789012:profile/p-1",
            "arn:aws:iam::123456789012:role/app",
            None,
            None,
            None,
            None,
        )
        .unwrap();
        let signed = sign_create_session(
            &identity,
            &request,
            time::macros::datetime!(2024-03-05 07:08:09 UTC),
        )
        .unwrap();
        assert_eq!(
            signed.url,
            "https://rolesanywhere.eu-west-1.amazonaws.com/sessions?\
             profileArn=arn%3Aaws%3Arolesanywhere%3Aeu-west-1%3A123456789012%3Aprofile%2Fp-1\
             &roleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fapp\
             &trustAnchorArn=arn%3Aaws%3Arolesanywhere%3Aeu-west-1%3A123456789012%3Atrust-anchor%2Fta-1"
        );
        assert_eq!(signed.body, br#"{"durationSeconds":3600}"#);
        let authorization = signed
            .headers
            .iter()
            .find(|(name, _)| name == "Authorization")
            .map(|(_, value)| value.as_str())
            .unwrap();
        assert_eq!(
            authorization,
            format!(
                "AWS4-X509-RSA-SHA256 Credential=1234567890123456789012345/\
                 20240305/eu-west-1/rolesanywhere/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-x509, Signature={FIXED_SIGNATURE}"
            )
        );
    }

    #[test]
    fn arn_regions() {
        assert_eq!(
            arn_region("arn:aws:rolesanywhere:eu-west-1:123456789012:trust-anchor/x"),
            Some("eu-west-1")
        );
        assert_eq!(arn_region("arn:aws:iam::1:role/x"), Some(""));
        assert_eq!(arn_region("not-an-arn"), None);
        assert_eq!(arn_region("arn:aws:x:r"), None);
    }

    #[test]
    fn request_checks_regions_and_duration() {
        let anchor = "arn:aws:rolesanywhere:eu-west-1:1:trust-anchor/a";
        let profile = "arn:aws:rolesanywhere:eu-west-1:1:profile/p";
        let role = "arn:aws:iam::1:role/r";
        let request = SessionRequest::new(anchor, profile, role, None, None, None, None).unwrap();
        assert_eq!(request.region, "eu-west-1");
        assert_eq!(
            request.endpoint,
            "https://rolesanywhere.eu-west-1.amazonaws.com"
        );
        assert_eq!(request.duration_seconds, 3600);
        let other = "arn:aws:rolesanywhere:us-east-1:1:profile/p";
        assert!(SessionRequest::new(anchor, other, role, None, None, None, None).is_err());
        assert!(SessionRequest::new(anchor, profile, role, Some(899), None, None, None).is_err());
        assert!(
            SessionRequest::new(anchor, profile, role, Some(43_201), None, None, None).is_err()
        );
    }

    #[test]
    fn parses_credential_set_and_errors() {
        let body = br#"{"credentialSet":[{"credentials":{"accessKeyId":"ASIA1","secretAccessKey":"s","sessionToken":"t","expiration":"2024-01-01T00:00:00Z"}}],"subjectArn":"x"}"#;
        let credentials = parse_create_session_response(201, None, body).unwrap();
        assert_eq!(credentials.access_key_id, "ASIA1");
        assert!(!format!("{credentials:?}").contains("\"s\""));
        let revoked = parse_create_session_response(
            403,
            Some("AccessDeniedException"),
            br#"{"message":"Certificate revoked"}"#,
        );
        assert!(matches!(
            revoked,
            Err(CreateSessionError::CertificateRevoked { .. })
        ));
        assert!(matches!(
            parse_create_session_response(201, None, b"{}"),
            Err(CreateSessionError::MalformedResponse { .. })
        ));
    }
}
