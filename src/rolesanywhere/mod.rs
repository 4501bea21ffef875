//! IAM Roles Anywhere: the SigV4-X509 `CreateSession` client, the `credential-process` command,
//! and a local emulator of the service (control plane + data plane) for development and tests
//! (the `dev-tools` feature).

pub mod credential_process;
pub mod crl_import;
#[cfg(feature = "dev-tools")]
pub mod emulator;
pub mod errors;
pub mod session;
pub mod sigv4x509;
