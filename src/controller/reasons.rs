//! Every reason the controller writes into a condition or an event: the one list, so a reason
//! is never spelled two ways, and users can look up what each means (README, "Conditions and
//! reasons").

// Every kind.

/// The spec cannot work as written; the message names the field.
pub const INVALID_SPEC: &str = "InvalidSpec";
/// A call to the API server failed; retried soon.
pub const KUBERNETES_API_ERROR: &str = "KubernetesAPIError";
/// The revocation ledger could not be read or written; retried soon.
pub const LEDGER_UNAVAILABLE: &str = "LedgerUnavailable";
/// Another controller instance wrote the ledger between this one's read and write; retried.
pub const CONCURRENT_WRITER: &str = "ConcurrentWriter";
/// A reconcile panicked (a bug); only this object fails, and it is retried.
pub const INTERNAL_ERROR: &str = "InternalError";
/// A duration is below the floor the platform team set (`--min-*` flags).
pub const BELOW_PLATFORM_MINIMUM: &str = "BelowPlatformMinimum";

// Issuers and ClusterIssuers: the CA.

/// The CA is loaded, its key matches its certificate, and it can sign.
pub const CA_READY: &str = "CAReady";
/// The controller created the CA (a new key, or a KMS-signed certificate).
pub const CA_CREATED: &str = "CACreated";
/// The CA certificate has expired.
pub const CA_EXPIRED: &str = "CAExpired";
/// The CA Secret is gone after the Issuer established it; it is never silently replaced.
pub const CA_SECRET_LOST: &str = "CASecretLost";
/// The CA changed in place while certificates of the old one are still valid.
pub const CA_CHANGE_STRANDS_CERTIFICATES: &str = "CAChangeStrandsCertificates";
/// No CA key could be generated.
pub const CA_KEY_GENERATION_FAILED: &str = "CAKeyGenerationFailed";
/// The CA key could not sign (a KMS error, for example).
pub const CA_SIGNING_FAILED: &str = "CASigningFailed";
/// The CA Secret lacks a usable certificate or key.
pub const INVALID_CA_SECRET: &str = "InvalidCASecret";
/// The CA certificate is not a usable CA (not a CA, wrong key, unparseable).
pub const INVALID_CA_CERTIFICATE: &str = "InvalidCACertificate";
/// The CA Secret does not exist and `bootstrap` is off.
pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
/// The KMS key is not granted to the Issuer's namespace by the platform team.
pub const KMS_KEY_NOT_GRANTED: &str = "KMSKeyNotGranted";
/// The KMS key cannot sign as a CA (wrong type or usage, disabled, unreachable).
pub const KMS_KEY_UNUSABLE: &str = "KMSKeyUnusable";
/// The ClusterIssuer's namespaceSelector does not admit the requesting namespace.
pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";

// Issuers and ClusterIssuers: the CRL.

/// A CRL with every revocation of the ledger was signed and published.
pub const CRL_PUBLISHED: &str = "CrlPublished";
/// Roles Anywhere accepted the CRL.
pub const CRL_IMPORTED: &str = "CrlImported";
/// Roles Anywhere had lost or changed its copy of the CRL; it was imported again.
pub const CRL_DRIFT_REPAIRED: &str = "CrlDriftRepaired";
/// The CRL exceeds what one Roles Anywhere import accepts.
pub const CRL_TOO_LARGE: &str = "CrlTooLarge";
/// A CRL of that name on the trust anchor belongs to someone else.
pub const CRL_NAME_TAKEN: &str = "CrlNameTaken";
/// The CRL is due to be split across the trust anchor's two slots, but the second was refused.
pub const CRL_SPLIT_REFUSED: &str = "CrlSplitRefused";
/// Roles Anywhere refused or failed the import; retried.
pub const IMPORT_FAILED: &str = "ImportFailed";
/// The trust anchor is not granted to the Issuer's namespace by the platform team.
pub const TRUST_ANCHOR_NOT_GRANTED: &str = "TrustAnchorNotGranted";
/// The CRL number in the ledger is out of range.
pub const INVALID_CRL_NUMBER: &str = "InvalidCrlNumber";
/// The current time is out of the range a CRL can carry.
pub const INVALID_TIME: &str = "InvalidTime";
/// The CRL is close to the size one import accepts.
pub const NEAR_IMPORT_LIMIT: &str = "NearImportLimit";
/// The CRL is well within the size one import accepts.
pub const WITHIN_IMPORT_LIMIT: &str = "WithinImportLimit";
/// A Revocation's certificate is in the published CRL.
pub const PUBLISHED: &str = "Published";
/// A Revocation's certificate is in the published CRL, which Roles Anywhere does not hold yet.
pub const AWAITING_IMPORT: &str = "AwaitingImport";
/// A Revocation's certificate is in the CRL Roles Anywhere holds.
pub const IMPORTED: &str = "Imported";
/// A newer CRL replaced this one before it was imported.
pub const SUPERSEDED: &str = "Superseded";

// WorkloadCertificates.

/// A certificate was issued into the Secret.
pub const ISSUED: &str = "Issued";
/// The certificate in the Secret is current; nothing to do.
pub const UP_TO_DATE: &str = "UpToDate";
/// The referenced Issuer or ClusterIssuer does not exist.
pub const ISSUER_NOT_FOUND: &str = "IssuerNotFound";
/// The referenced Issuer or ClusterIssuer is not Ready.
pub const ISSUER_NOT_READY: &str = "IssuerNotReady";
/// The requested subject or SANs are not what the ClusterIssuer's identity policy gives.
pub const IDENTITY_POLICY_VIOLATION: &str = "IdentityPolicyViolation";
/// The requested duration would outlive the CA certificate.
pub const CERTIFICATE_OUTLIVES_CA: &str = "CertificateOutlivesCA";
/// The Secret exists and was not written for this WorkloadCertificate; it is left untouched.
pub const SECRET_IN_USE: &str = "SecretInUse";
/// The certificate could not be signed.
pub const SIGNING_FAILED: &str = "SigningFailed";
/// Issuing again: the certificate was revoked.
pub const REVOKED: &str = "Revoked";
/// Issuing again: the Secret does not exist.
pub const SECRET_MISSING: &str = "SecretMissing";
/// Issuing again: the Secret holds no usable certificate.
pub const SECRET_INVALID: &str = "SecretInvalid";
/// Issuing again: the key in the Secret does not match the certificate or the requested algorithm.
pub const KEY_MISMATCH: &str = "KeyMismatch";
/// Issuing again: the Secret's certificate is not the one the controller wrote.
pub const SECRET_TAMPERED: &str = "SecretTampered";
/// Issuing again: the Issuer or its CA changed.
pub const ISSUER_CHANGED: &str = "IssuerChanged";
/// Issuing again: the spec fields the certificate was issued for changed.
pub const SPEC_CHANGED: &str = "SpecChanged";
/// Issuing again: the certificate expired.
pub const EXPIRED: &str = "Expired";
/// Issuing again: the certificate is within renewBefore of its expiry.
pub const RENEWAL_DUE: &str = "RenewalDue";

// Revocations.

/// Every target is recorded as revoked in the ledger, for good.
pub const ACCEPTED: &str = "Accepted";
/// Recorded as revoked; the CRL that carries it is not published yet.
pub const AWAITING_CRL: &str = "AwaitingCRL";
/// The certificate was not issued to the Revocation's namespace.
pub const NOT_YOUR_CERTIFICATE: &str = "NotYourCertificate";
/// The CA's ledger holds no certificate with that serial number.
pub const UNKNOWN_SERIAL: &str = "UnknownSerial";
/// The serial number is not hex of at most 20 octets.
pub const INVALID_SERIAL_NUMBER: &str = "InvalidSerialNumber";
/// The ledger holds no unexpired certificate of the WorkloadCertificate issued before the Revocation.
pub const TARGET_NOT_ISSUED: &str = "TargetNotIssued";
/// The referenced WorkloadCertificate does not exist.
pub const CERTIFICATE_NOT_FOUND: &str = "CertificateNotFound";
/// Deletion is held while a revoked certificate has not expired.
pub const CERTIFICATE_STILL_VALID: &str = "CertificateStillValid";
/// Deletion of the Revocation waits until its revoked certificates expire.
pub const DELETION_BLOCKED: &str = "DeletionBlocked";
/// Live sessions of the revoked certificate are denied on every bound role.
pub const DENIED_ON_ROLES: &str = "DeniedOnRoles";
/// Live sessions could not be denied on every bound role.
pub const LIVE_SESSIONS_NOT_ENDED: &str = "LiveSessionsNotEnded";
/// An IAM call failed while denying live sessions; retried.
pub const IAM_FAILED: &str = "IAMFailed";

// RolesAnywhereBindings.

/// The binding's WorkloadCertificate is not Ready.
pub const CERTIFICATE_NOT_READY: &str = "CertificateNotReady";
/// A WorkloadCertificate of the template's name exists and is not the binding's.
pub const CERTIFICATE_CONFLICT: &str = "CertificateConflict";
/// The role, trust anchor and profile ARNs do not fit together.
pub const INVALID_ARNS: &str = "InvalidArns";
/// The pod selector cannot be evaluated; it selects no pod.
pub const INVALID_SELECTOR: &str = "InvalidSelector";
/// The namespace is opted in to sidecar injection.
pub const NAMESPACE_LABELLED: &str = "NamespaceLabelled";
/// The namespace is not opted in to sidecar injection.
pub const NAMESPACE_NOT_LABELLED: &str = "NamespaceNotLabelled";

/// Every reason above, for the tests and the README.
pub const ALL: &[&str] = &[
    INVALID_SPEC,
    KUBERNETES_API_ERROR,
    LEDGER_UNAVAILABLE,
    CONCURRENT_WRITER,
    INTERNAL_ERROR,
    BELOW_PLATFORM_MINIMUM,
    CA_READY,
    CA_CREATED,
    CA_EXPIRED,
    CA_SECRET_LOST,
    CA_CHANGE_STRANDS_CERTIFICATES,
    CA_KEY_GENERATION_FAILED,
    CA_SIGNING_FAILED,
    INVALID_CA_SECRET,
    INVALID_CA_CERTIFICATE,
    SECRET_NOT_FOUND,
    KMS_KEY_NOT_GRANTED,
    KMS_KEY_UNUSABLE,
    NAMESPACE_NOT_ALLOWED,
    CRL_PUBLISHED,
    CRL_IMPORTED,
    CRL_DRIFT_REPAIRED,
    CRL_TOO_LARGE,
    CRL_NAME_TAKEN,
    CRL_SPLIT_REFUSED,
    IMPORT_FAILED,
    TRUST_ANCHOR_NOT_GRANTED,
    INVALID_CRL_NUMBER,
    INVALID_TIME,
    NEAR_IMPORT_LIMIT,
    WITHIN_IMPORT_LIMIT,
    PUBLISHED,
    AWAITING_IMPORT,
    IMPORTED,
    SUPERSEDED,
    ISSUED,
    UP_TO_DATE,
    ISSUER_NOT_FOUND,
    ISSUER_NOT_READY,
    IDENTITY_POLICY_VIOLATION,
    CERTIFICATE_OUTLIVES_CA,
    SECRET_IN_USE,
    SIGNING_FAILED,
    REVOKED,
    SECRET_MISSING,
    SECRET_INVALID,
    KEY_MISMATCH,
    SECRET_TAMPERED,
    ISSUER_CHANGED,
    SPEC_CHANGED,
    EXPIRED,
    RENEWAL_DUE,
    ACCEPTED,
    AWAITING_CRL,
    NOT_YOUR_CERTIFICATE,
    UNKNOWN_SERIAL,
    INVALID_SERIAL_NUMBER,
    TARGET_NOT_ISSUED,
    CERTIFICATE_NOT_FOUND,
    CERTIFICATE_STILL_VALID,
    DELETION_BLOCKED,
    DENIED_ON_ROLES,
    LIVE_SESSIONS_NOT_ENDED,
    IAM_FAILED,
    CERTIFICATE_NOT_READY,
    CERTIFICATE_CONFLICT,
    INVALID_ARNS,
    INVALID_SELECTOR,
    NAMESPACE_LABELLED,
    NAMESPACE_NOT_LABELLED,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_lists_every_reason() {
        let readme = include_str!("../../README.md");
        for reason in ALL {
            assert!(
                readme.contains(&format!("| `{reason}` |")),
                "README's reasons table lacks {reason}"
            );
        }
    }

    #[test]
    fn reasons_are_distinct_upper_camel_case() {
        let mut seen = std::collections::HashSet::new();
        for reason in ALL {
            assert!(seen.insert(reason), "{reason} listed twice");
            assert!(
                reason
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_uppercase())
                    && reason.chars().all(|c| c.is_ascii_alphanumeric()),
                "{reason}: a condition reason is UpperCamelCase"
            );
        }
    }
}
