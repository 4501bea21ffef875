//! The custom resources of API group `iamra.dev`, version `v1alpha1`.
//!
//! Only types live here: every field carries the doc comment that becomes `kubectl explain`, and
//! everything the API server can check at admission (required fields, enums, formats, CEL rules) is
//! declared on the type so a bad object never reaches the controller.

mod authority_record;
mod binding;
mod certificate_record;
mod cluster_issuer;
mod crd;
mod duration;
mod issuer;
mod revocation;
mod shared;
pub mod well_known;
mod workload_certificate;

pub use authority_record::*;
pub use binding::*;
pub use certificate_record::*;
pub use cluster_issuer::*;
pub use crd::*;
pub use duration::*;
pub use issuer::*;
pub use revocation::*;
pub use shared::*;
pub use workload_certificate::*;

/// The API group of every iamra resource.
pub const API_GROUP: &str = "iamra.dev";
/// The one served and stored version.
pub const API_VERSION: &str = "v1alpha1";

/// The API of `K` in one namespace, or in all.
pub fn scoped_api<K>(client: &kube::Client, namespace: &Option<String>) -> kube::Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(namespace) => kube::Api::namespaced(client.clone(), namespace),
        None => kube::Api::all(client.clone()),
    }
}
