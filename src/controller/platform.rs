//! What only the platform team configures, through the controller's own flags, never through an
//! object a tenant can write: where AWS requests go, and which KMS keys a namespace may sign with.

use std::collections::BTreeSet;

/// The platform team's configuration of the controller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlatformConfig {
    /// KMS endpoint for every KMS Issuer (a VPC endpoint, an emulator); None: the regional one.
    pub kms_endpoint: Option<String>,
    /// Roles Anywhere endpoint of CRL imports; None: the regional one.
    pub rolesanywhere_endpoint: Option<String>,
    /// KMS keys namespaced Issuers may use.
    pub kms_key_grants: BTreeSet<KmsKeyGrant>,
    /// End the live sessions of revoked certificates with an inline Deny on the bound roles
    /// (needs `iam:GetRolePolicy` and `iam:PutRolePolicy` on them).
    pub end_live_sessions: bool,
    /// IAM endpoint for that; None: the global one.
    pub iam_endpoint: Option<String>,
}

/// One namespace's right to use one KMS key in its Issuers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KmsKeyGrant {
    pub namespace: String,
    /// Exactly as the Issuer must name it (key id, key ARN, alias or alias ARN).
    pub key_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("KMS key grant {0:?} is not <namespace>=<key id or ARN>")]
pub struct InvalidKmsKeyGrant(String);

impl std::str::FromStr for KmsKeyGrant {
    type Err = InvalidKmsKeyGrant;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once('=') {
            Some((namespace, key_id)) if !namespace.is_empty() && !key_id.is_empty() => Ok(Self {
                namespace: namespace.to_string(),
                key_id: key_id.to_string(),
            }),
            _ => Err(InvalidKmsKeyGrant(text.to_string())),
        }
    }
}

impl PlatformConfig {
    /// Whether an Issuer in `namespace` may sign with `key_id`. Names are compared exactly: a key
    /// granted by ARN is not granted by its alias, so a grant means what it says.
    pub fn grants_kms_key(&self, namespace: &str, key_id: &str) -> bool {
        self.kms_key_grants
            .iter()
            .any(|grant| grant.namespace == namespace && grant.key_id == key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_per_namespace_and_exact() {
        let config = PlatformConfig {
            kms_key_grants: [
                "team-a=arn:aws:kms:eu-west-1:111122223333:key/1",
                "team-b=alias/b",
            ]
            .iter()
            .map(|g| g.parse().unwrap())
            .collect(),
            ..Default::default()
        };
        assert!(config.grants_kms_key("team-a", "arn:aws:kms:eu-west-1:111122223333:key/1"));
        assert!(!config.grants_kms_key("team-b", "arn:aws:kms:eu-west-1:111122223333:key/1"));
        assert!(!config.grants_kms_key("team-a", "1"));
        assert!(config.grants_kms_key("team-b", "alias/b"));
        for bad in ["", "=k", "ns=", "no-separator"] {
            assert!(bad.parse::<KmsKeyGrant>().is_err(), "{bad}");
        }
    }
}
