//! An Issuer's CRL: built from the ledger and published, imported into Roles Anywhere, reported
//! on the Issuer and its Revocations.

mod import;
mod mark;
mod publish;
mod reconcile;

pub use import::default_crl_name;
pub use publish::*;
pub use reconcile::*;
