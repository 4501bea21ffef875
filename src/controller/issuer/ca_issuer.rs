//! An Issuer or a ClusterIssuer, as the CA and CRL steps see it: where its Secrets and CRL live,
//! how it is named in the ledger, events and the HTTP distribution point.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::api::{ClusterIssuer, IdentityPolicy, Issuer, IssuerKind, IssuerSpec, IssuerStatus};

/// The CA part of either kind of issuer.
#[derive(Clone, Debug)]
pub struct CaIssuer {
    pub kind: IssuerKind,
    pub name: String,
    /// Where its CA Secret and CRL ConfigMap live: the Issuer's namespace, or the controller's
    /// (`--cluster-resource-namespace`) for a ClusterIssuer.
    pub resource_namespace: String,
    pub spec: IssuerSpec,
    pub status: Option<IssuerStatus>,
    pub generation: Option<i64>,
    pub uid: String,
    /// The object events are about.
    pub reference: ObjectReference,
    /// The controller owner reference of what it creates (the CRL ConfigMap).
    pub owner: Option<OwnerReference>,
    /// A ClusterIssuer's tenancy: which namespaces may use it, and how identities are derived.
    pub tenancy: Option<Tenancy>,
}

/// What a ClusterIssuer adds to a CA.
#[derive(Clone, Debug)]
pub struct Tenancy {
    pub namespace_selector: LabelSelector,
    pub identity: IdentityPolicy,
}

impl CaIssuer {
    pub fn from_issuer(issuer: &Issuer) -> Self {
        let namespace = issuer.namespace().unwrap_or_default();
        Self {
            kind: IssuerKind::Issuer,
            name: issuer.name_any(),
            resource_namespace: namespace,
            spec: issuer.spec.clone(),
            status: issuer.status.clone(),
            generation: issuer.metadata.generation,
            uid: issuer.uid().unwrap_or_default(),
            reference: issuer.object_ref(&()),
            owner: issuer.controller_owner_ref(&()),
            tenancy: None,
        }
    }

    pub fn from_cluster_issuer(issuer: &ClusterIssuer, resource_namespace: &str) -> Self {
        Self {
            kind: IssuerKind::ClusterIssuer,
            name: issuer.name_any(),
            resource_namespace: resource_namespace.to_string(),
            spec: issuer.spec.ca_spec(),
            status: issuer.status.clone(),
            generation: issuer.metadata.generation,
            uid: issuer.uid().unwrap_or_default(),
            reference: issuer.object_ref(&()),
            owner: issuer.controller_owner_ref(&()),
            tenancy: Some(Tenancy {
                namespace_selector: issuer.spec.namespace_selector.clone(),
                identity: issuer.spec.identity.clone().unwrap_or_default(),
            }),
        }
    }

    /// The namespace it belongs to in the ledger and the HTTP paths: empty for a ClusterIssuer
    /// (no namespace is named so, so it collides with no Issuer).
    pub fn ledger_namespace(&self) -> &str {
        match self.kind {
            IssuerKind::Issuer => &self.resource_namespace,
            IssuerKind::ClusterIssuer => "",
        }
    }

    /// `Issuer <namespace>/<name>` or `ClusterIssuer <name>`, for messages.
    /// The Secret its CA certificate (and, for a local CA, its key) is kept in.
    pub fn ca_secret_name(&self) -> Option<&str> {
        match (&self.spec.local, &self.spec.kms) {
            (Some(local), _) => Some(&local.secret_name),
            (None, Some(kms)) => Some(&kms.certificate_secret_name),
            (None, None) => None,
        }
    }

    pub fn display(&self) -> String {
        match self.kind {
            IssuerKind::Issuer => format!("Issuer {}/{}", self.resource_namespace, self.name),
            IssuerKind::ClusterIssuer => format!("ClusterIssuer {}", self.name),
        }
    }

    /// Common name of a CA certificate the operator creates when the spec names no subject.
    pub fn default_ca_common_name(&self) -> String {
        match self.kind {
            IssuerKind::Issuer => format!("iamra {}/{}", self.resource_namespace, self.name),
            IssuerKind::ClusterIssuer => format!("iamra {}", self.name),
        }
    }

    /// The ConfigMap holding its CRL, in `resource_namespace`.
    pub fn crl_config_map_name(&self) -> String {
        match self.kind {
            IssuerKind::Issuer => crate::controller::crl::crl_config_map_name(&self.name),
            // An Issuer's ends in `-crl`; this one cannot, whatever the Issuer's name.
            IssuerKind::ClusterIssuer => format!("{}-crl.clusterissuer", self.name),
        }
    }

    /// Whether a Revocation naming `kind`/`name` is for this issuer, given its namespace.
    pub fn is_named_by(&self, kind: IssuerKind, name: &str, namespace: &str) -> bool {
        kind == self.kind
            && name == self.name
            && (self.kind == IssuerKind::ClusterIssuer || namespace == self.resource_namespace)
    }
}
