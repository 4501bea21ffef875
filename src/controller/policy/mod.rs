//! What the platform team decides and no tenant can change: AWS endpoints and grants, the floors
//! under what a tenant may ask for, and a ClusterIssuer's identity policy.

pub(crate) mod identity;
pub(crate) mod minimums;
pub(crate) mod platform;
