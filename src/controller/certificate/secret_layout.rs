//! The Secrets iamra writes: cert-manager's layout, plus labels and annotations that let the
//! controller recognise its own issuance after a restart.

use k8s_openapi::api::core::v1::Secret;

pub use crate::api::well_known::{
    CA_CERTIFICATE_KEY, CERTIFICATE_NAME_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE,
    REVISION_ANNOTATION, SERIAL_ANNOTATION, SPEC_HASH_ANNOTATION, TLS_CERTIFICATE_KEY,
    TLS_PRIVATE_KEY_KEY,
};

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
