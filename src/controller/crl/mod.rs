//! An Issuer's CRL: built from the ledger and published, imported into Roles Anywhere, reported
//! on the Issuer and its Revocations.

mod publish;
mod reconcile;

pub use publish::*;
pub use reconcile::*;
