//! What only the platform team configures, through the controller's own flags, never through an
//! object a tenant can write: where AWS requests go, which KMS keys a namespace may sign with, and
//! which trust anchors a namespace's Issuers may import CRLs into, and the floors under the
//! durations a tenant may ask for.

use std::collections::BTreeSet;

use crate::controller::policy::minimums::PlatformMinimums;

/// The platform team's configuration of the controller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlatformConfig {
    /// KMS endpoint for every KMS Issuer (a VPC endpoint, an emulator); None: the regional one.
    pub kms_endpoint: Option<String>,
    /// Roles Anywhere endpoint of CRL imports; None: the regional one.
    pub rolesanywhere_endpoint: Option<String>,
    /// KMS keys namespaced Issuers may use.
    pub kms_key_grants: BTreeSet<KmsKeyGrant>,
    /// Trust anchors namespaced Issuers may import their CRLs into.
    pub trust_anchor_grants: BTreeSet<TrustAnchorGrant>,
    /// End the live sessions of revoked certificates with an inline Deny on the bound roles
    /// (needs `iam:GetRolePolicy` and `iam:PutRolePolicy` on them).
    pub end_live_sessions: bool,
    /// IAM endpoint for that; None: the global one.
    pub iam_endpoint: Option<String>,
    /// Floors under certificate lifetimes and CRL refresh intervals.
    pub minimums: PlatformMinimums,
}

/// One namespace's right to one AWS resource, written `<namespace>=<resource>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NamespaceGrant {
    pub namespace: String,
    /// Exactly as the Issuer must name it (a KMS key id, key ARN, alias or alias ARN; a trust
    /// anchor ARN).
    pub resource: String,
}

/// One namespace's right to use one KMS key in its Issuers.
pub type KmsKeyGrant = NamespaceGrant;
/// One namespace's right to import its Issuers' CRLs into one trust anchor (`*`: any).
pub type TrustAnchorGrant = NamespaceGrant;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("grant {0:?} is not <namespace>=<key id, key ARN or trust anchor ARN>")]
pub struct InvalidGrant(String);

impl std::str::FromStr for NamespaceGrant {
    type Err = InvalidGrant;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once('=') {
            Some((namespace, resource)) if !namespace.is_empty() && !resource.is_empty() => {
                Ok(Self {
                    namespace: namespace.to_string(),
                    resource: resource.to_string(),
                })
            }
            _ => Err(InvalidGrant(text.to_string())),
        }
    }
}

/// Grants a trust anchor to every Issuer of a namespace.
pub const ANY_TRUST_ANCHOR: &str = "*";

impl PlatformConfig {
    /// Whether an Issuer in `namespace` may sign with `key_id`. Names are compared exactly: a key
    /// granted by ARN is not granted by its alias, so a grant means what it says.
    pub fn grants_kms_key(&self, namespace: &str, key_id: &str) -> bool {
        self.kms_key_grants
            .iter()
            .any(|grant| grant.namespace == namespace && grant.resource == key_id)
    }

    /// Whether Issuers in `namespace` may import CRLs into `trust_anchor_arn`: granted by its
    /// exact ARN, or by `*` for a namespace trusted with every anchor. A CRL import fills one of
    /// the anchor's two slots, so an ungranted namespace could crowd out its owner's CRL.
    pub fn grants_trust_anchor(&self, namespace: &str, trust_anchor_arn: &str) -> bool {
        self.trust_anchor_grants.iter().any(|grant| {
            grant.namespace == namespace
                && (grant.resource == trust_anchor_arn || grant.resource == ANY_TRUST_ANCHOR)
        })
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

    #[test]
    fn trust_anchors_are_granted_per_namespace_by_arn_or_to_any() {
        let anchor = "arn:aws:rolesanywhere:eu-west-1:111122223333:trust-anchor/a";
        let config = PlatformConfig {
            trust_anchor_grants: [format!("team-a={anchor}"), "sandbox=*".to_string()]
                .iter()
                .map(|g| g.parse().unwrap())
                .collect(),
            ..Default::default()
        };
        assert!(config.grants_trust_anchor("team-a", anchor));
        assert!(!config.grants_trust_anchor("team-a", &format!("{anchor}x")));
        assert!(!config.grants_trust_anchor("team-b", anchor));
        assert!(config.grants_trust_anchor("sandbox", anchor));
        // `*` is not a wildcard for KMS keys.
        let config = PlatformConfig {
            kms_key_grants: ["sandbox=*".parse().unwrap()].into(),
            ..Default::default()
        };
        assert!(!config.grants_kms_key("sandbox", "alias/any"));
    }
}
