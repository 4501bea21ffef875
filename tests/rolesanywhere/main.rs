//! IAM Roles Anywhere without AWS: the emulator (control plane through `aws-sdk-rolesanywhere`,
//! CreateSession through AWS's official credential helper and `iamra credential-process`).
//! No Kubernetes here. The official helper is built by `bash tests/install-deps.sh`.

mod aws_config_profile;
mod certificates;
mod control_plane;
mod emulator_binary;
mod fixtures;
mod iamra_credential_process;
mod official_helper;
mod rust_client;
mod scenarios;
mod support;
mod trust_policy;
