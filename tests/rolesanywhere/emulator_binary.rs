//! `iamra rolesanywhere-emulator` as a process: seeded from flags (one CA, one profile/role),
//! printing its ARNs, and keeping imported CRLs across a restart with `--state-file`.

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::fixtures::{self, Alg};
use crate::support::{ROLE_ARN, credential_process_with, helper_binary, iamra_binary, sdk};

struct EmulatorProcess {
    child: tokio::process::Child,
    ready: serde_json::Value,
}

async fn spawn_emulator(ca: &Path, state: &Path) -> EmulatorProcess {
    let mut child = tokio::process::Command::new(iamra_binary())
        .arg("rolesanywhere-emulator")
        .arg("--trust-anchor-certificate")
        .arg(ca)
        .arg("--state-file")
        .arg(state)
        .args(["--role-arn", ROLE_ARN])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).await.unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("ready line is not JSON ({e}): {line:?}"));
    EmulatorProcess { child, ready }
}

impl EmulatorProcess {
    fn field(&self, name: &str) -> String {
        self.ready[name].as_str().unwrap().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn seeded_emulator_process_keeps_crls_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let ca = fixtures::ca("seeded CA", Alg::EcdsaP256);
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca.pem).unwrap();
    let state = dir.path().join("state.json");
    let kept = fixtures::leaf(&ca, Alg::EcdsaP256);
    let revoked = fixtures::leaf(&ca, Alg::Rsa2048);
    let (kept_cert, kept_key) = fixtures::write_leaf(dir.path(), "kept", &kept);
    let (revoked_cert, revoked_key) = fixtures::write_leaf(dir.path(), "revoked", &revoked);

    let first = spawn_emulator(&ca_path, &state).await;
    let (anchor, profile) = (first.field("trustAnchorArn"), first.field("profileArn"));
    assert!(anchor.starts_with("arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/"));
    assert!(profile.starts_with("arn:aws:rolesanywhere:us-east-1:123456789012:profile/"));
    assert_eq!(first.ready["roleArns"][0], ROLE_ARN);
    let endpoint = first.field("endpoint");
    credential_process_with(
        &helper_binary(),
        &anchor,
        &profile,
        &revoked_cert,
        &revoked_key,
        &endpoint,
    )
    .await
    .credentials();
    sdk(&endpoint)
        .import_crl()
        .name("persisted")
        .crl_data(aws_sdk_rolesanywhere::primitives::Blob::new(
            fixtures::crl_pem(&ca, &[&revoked.serial], 1).as_bytes(),
        ))
        .trust_anchor_arn(&anchor)
        .enabled(true)
        .send()
        .await
        .unwrap();
    credential_process_with(
        &helper_binary(),
        &anchor,
        &profile,
        &revoked_cert,
        &revoked_key,
        &endpoint,
    )
    .await
    .assert_refused_with("AccessDeniedException: Certificate revoked");
    drop(first); // kill_on_drop

    let second = spawn_emulator(&ca_path, &state).await;
    assert_eq!(
        second.field("trustAnchorArn"),
        anchor,
        "seeding again reuses the stored anchor"
    );
    assert_eq!(second.field("profileArn"), profile);
    let endpoint = second.field("endpoint");
    let crls = sdk(&endpoint).list_crls().send().await.unwrap();
    assert_eq!(crls.crls().len(), 1);
    assert_eq!(crls.crls()[0].name(), Some("persisted"));
    credential_process_with(
        &iamra_binary(),
        &anchor,
        &profile,
        &revoked_cert,
        &revoked_key,
        &endpoint,
    )
    .await
    .assert_refused_with("Certificate revoked");
    credential_process_with(
        &helper_binary(),
        &anchor,
        &profile,
        &kept_cert,
        &kept_key,
        &endpoint,
    )
    .await
    .credentials();
    let mut second = second;
    second.child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn emulator_refuses_a_non_loopback_listen_address() {
    let output = tokio::process::Command::new(iamra_binary())
        .args(["rolesanywhere-emulator", "--listen", "0.0.0.0:0"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a loopback address"));
}
