//! A local development environment: a real etcd and kube-apiserver on loopback, with the CRDs
//! installed. The integration tests run on it, and so does the local end-to-end run.

mod control_plane;
pub mod demo;
mod demo_sidecar;
mod ports;
mod serving_certs;

pub use control_plane::{
    ADMIN_CONTEXT, ControlPlane, ControlPlaneBinaries, ControlPlaneError, KUBERNETES_VERSION,
    UNPRIVILEGED_CONTEXT,
};
pub use ports::free_loopback_port;
