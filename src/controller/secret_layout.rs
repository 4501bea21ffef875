//! The Secrets iamra writes: cert-manager's layout, plus labels and annotations that let the
//! controller recognise its own issuance after a restart.

use k8s_openapi::api::core::v1::Secret;

/// Leaf certificate followed by its chain, PEM.
pub const TLS_CERTIFICATE_KEY: &str = "tls.crt";
/// The private key, PEM PKCS#8.
pub const TLS_PRIVATE_KEY_KEY: &str = "tls.key";
/// The issuing CA's certificate, PEM.
pub const CA_CERTIFICATE_KEY: &str = "ca.crt";

/// On every Secret the controller creates; its watches select on it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "iamra";
/// The WorkloadCertificate a certificate Secret belongs to.
pub const CERTIFICATE_NAME_LABEL: &str = "iamra.dev/certificate-name";

/// Serial of the certificate written with the Secret, in the same atomic write.
pub const SERIAL_ANNOTATION: &str = "iamra.dev/serial-number";
/// Issuance revision of that certificate.
pub const REVISION_ANNOTATION: &str = "iamra.dev/revision";
/// Hash of the spec fields the certificate was issued for.
pub const SPEC_HASH_ANNOTATION: &str = "iamra.dev/spec-hash";

/// A data entry as UTF-8 text, if present.
pub fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|data| data.get(key))
        .and_then(|value| String::from_utf8(value.0.clone()).ok())
}

/// An annotation of the Secret, if present.
pub fn secret_annotation<'a>(secret: &'a Secret, key: &str) -> Option<&'a str> {
    secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(key))
        .map(String::as_str)
}
