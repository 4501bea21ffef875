//! What every controller runs on: leader election, the HTTP server, metrics, events, retry
//! backoff, fair shares of the reconcile slots, and the watch triggers.

pub(crate) mod aws_timeouts;
pub(crate) mod backoff;
pub(crate) mod events;
pub(crate) mod fair_share;
pub(crate) mod http;
pub(crate) mod leader;
pub(crate) mod metrics;
pub(crate) mod panic_safe;
pub(crate) mod triggers;
