//! iamra: AWS access for Kubernetes workloads through IAM Roles Anywhere, without long-lived keys.

pub mod accept;
pub mod api;
pub mod backoff;
pub mod clock;
pub mod connection_slots;
pub mod controller;
pub mod fence;
#[cfg(feature = "dev-tools")]
pub mod localenv;
pub mod metrics;
pub mod operator;
pub mod pki;
pub mod rolesanywhere;
pub mod shared_watch;
pub mod shutdown;
pub mod sidecar;
pub mod signer;
pub mod telemetry;
pub mod webhook;
