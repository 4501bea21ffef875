//! `iamra sidecar` as a process against the in-process Roles Anywhere emulator: the AWS SDK's
//! default chain loads credentials from it and moto's STS accepts the signed call; tokens are
//! enforced; IMDSv2 works; a rotated certificate is picked up without restart; a revoked one
//! turns `/readyz` red. No Kubernetes here; moto is installed by `bash tests/install-deps.sh`.

// The certificate fixtures of the Roles Anywhere tests, shared rather than copied.
#[path = "../rolesanywhere/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;
mod harness;
mod rollout;
mod scenarios;
mod sdk;
