//! WorkloadCertificates: the reconciler, what it reads without asking the API server, the Secrets
//! it writes, and when a certificate needs issuing again.

mod cached_reads;
mod issuance_policy;
mod reconciler;
mod secret_layout;
mod watches;

pub use cached_reads::*;
pub use issuance_policy::*;
pub use reconciler::*;
pub use secret_layout::*;
pub(crate) use watches::*;
