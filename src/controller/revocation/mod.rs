//! Revocations: recorded in the ledger for good, live sessions ended, deletion held until expiry.

mod live_sessions;
mod reconciler;
mod watches;

pub use live_sessions::*;
pub use reconciler::*;
pub(crate) use watches::*;
