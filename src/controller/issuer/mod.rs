//! Issuers and ClusterIssuers: the reconciler, and how the CA and CRL steps see either kind.

mod ca_issuer;
mod reconciler;
mod watches;

pub use ca_issuer::*;
pub use reconciler::*;
pub(crate) use watches::*;
