//! The names iamra writes into other objects and reads back: labels, annotations, Secret keys and
//! its field manager. The controller and the webhook both use them; they are part of the API as
//! much as the CRDs are, so they live beside them.

/// The field manager of every server-side apply and status patch iamra makes.
pub const FIELD_MANAGER: &str = "iamra";

/// On every Secret and ConfigMap the controller creates; its watches select on it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "iamra";

/// Leaf certificate followed by its chain, PEM (cert-manager's layout).
pub const TLS_CERTIFICATE_KEY: &str = "tls.crt";
/// The private key, PEM PKCS#8.
pub const TLS_PRIVATE_KEY_KEY: &str = "tls.key";
/// The issuing CA's certificate, PEM.
pub const CA_CERTIFICATE_KEY: &str = "ca.crt";

/// The WorkloadCertificate a certificate Secret belongs to.
pub const CERTIFICATE_NAME_LABEL: &str = "iamra.dev/certificate-name";
/// Serial of the certificate written with the Secret, in the same atomic write.
pub const SERIAL_ANNOTATION: &str = "iamra.dev/serial-number";
/// Issuance revision of that certificate.
pub const REVISION_ANNOTATION: &str = "iamra.dev/revision";
/// Hash of the spec fields the certificate was issued for.
pub const SPEC_HASH_ANNOTATION: &str = "iamra.dev/spec-hash";

/// Namespace label that opts its pods in to injection.
pub const INJECTION_LABEL: &str = "iamra.dev/injection";
pub const INJECTION_LABEL_VALUE: &str = "enabled";
/// Pod annotation that opts a single pod out of injection in an opted-in namespace.
pub const INJECT_ANNOTATION: &str = "iamra.dev/inject";
/// Annotation on an injected pod naming its binding.
pub const INJECTED_BY_ANNOTATION: &str = "iamra.dev/injected-by";
/// Label on an injected pod, so the controller watches those pods only (to count them in the
/// binding's status) and never caches every pod of the cluster.
pub const INJECTED_LABEL: &str = "iamra.dev/injected";
