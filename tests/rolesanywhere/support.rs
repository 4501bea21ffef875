//! Shared harness: an in-process emulator seeded with one CA, the SDK client, the official helper
//! binary, running a `credential-process` command, and a proxy that tampers with requests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use iamra::rolesanywhere::emulator::{self, EmulatorConfig, RunningEmulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fixtures::{self, Alg, Ca};

pub const REGION: &str = "us-east-1";
pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/iamra-test";
/// Must match tests/rolesanywhere-helper/build.sh.
pub const HELPER_VERSION: &str = "v1.4.0";

pub struct TestEnv {
    pub emulator: RunningEmulator,
    pub dir: tempfile::TempDir,
    pub ca: Ca,
    pub trust_anchor_arn: String,
    pub profile_arn: String,
}

impl TestEnv {
    pub fn endpoint(&self) -> String {
        self.emulator.endpoint()
    }
}

pub async fn start_env(alg: Alg) -> TestEnv {
    let ca = fixtures::ca("iamra test CA", alg);
    let emulator = emulator::start(EmulatorConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        region: REGION.to_owned(),
        state_file: None,
        enforce_crl_quota: false,
        enforce_session_quota: false,
    })
    .await
    .unwrap();
    let seeded = emulator::seed(&emulator.shared, &ca.pem, &[ROLE_ARN.to_owned()]).unwrap();
    TestEnv {
        emulator,
        dir: tempfile::tempdir().unwrap(),
        ca,
        trust_anchor_arn: seeded.trust_anchor_arn,
        profile_arn: seeded.profile_arn,
    }
}

pub fn sdk(endpoint: &str) -> aws_sdk_rolesanywhere::Client {
    use aws_sdk_rolesanywhere::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_rolesanywhere::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            "AKIDTEST",
            "test-secret",
            None,
            None,
            "test",
        ))
        .build();
    aws_sdk_rolesanywhere::Client::from_conf(config)
}

/// Imports `crl_pem` for the trust anchor through the real SDK, enabled.
pub async fn import_enabled_crl(env: &TestEnv, name: &str, crl_pem: &str) -> String {
    let out = sdk(&env.endpoint())
        .import_crl()
        .name(name)
        .crl_data(aws_sdk_rolesanywhere::primitives::Blob::new(
            crl_pem.as_bytes(),
        ))
        .trust_anchor_arn(&env.trust_anchor_arn)
        .enabled(true)
        .send()
        .await
        .unwrap();
    let crl = out.crl().unwrap();
    assert_eq!(crl.enabled(), Some(true));
    crl.crl_id().unwrap().to_owned()
}

/// AWS's official credential helper, built by tests/install-deps.sh.
pub fn helper_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("IAMRA_ROLESANYWHERE_HELPER") {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME").expect("HOME");
    let path = PathBuf::from(home)
        .join(".cache/iamra-test-bins")
        .join(format!("rolesanywhere-credential-helper-{HELPER_VERSION}"))
        .join("aws_signing_helper");
    assert!(
        path.is_file(),
        "the official Roles Anywhere credential helper is missing at {}; run `bash tests/install-deps.sh` \
         (or tests/rolesanywhere-helper/build.sh) first",
        path.display()
    );
    path
}

pub fn iamra_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_iamra"))
}

#[derive(Debug)]
pub struct Outcome {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// The credential_process JSON, checked for shape.
    pub fn credentials(&self) -> serde_json::Value {
        assert!(self.success, "credential-process failed: {}", self.stderr);
        let json: serde_json::Value = serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout));
        assert_eq!(json["Version"], 1);
        assert!(json["AccessKeyId"].as_str().unwrap().starts_with("ASIA"));
        assert_eq!(json["SecretAccessKey"].as_str().unwrap().len(), 40);
        assert!(!json["SessionToken"].as_str().unwrap().is_empty());
        let expiration = time::OffsetDateTime::parse(
            json["Expiration"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let remaining = expiration - time::OffsetDateTime::now_utc();
        assert!(
            remaining > time::Duration::minutes(55) && remaining <= time::Duration::minutes(60),
            "expiration {expiration} is not about an hour ahead"
        );
        json
    }

    pub fn assert_refused_with(&self, message: &str) {
        assert!(
            !self.success,
            "expected a refusal ({message}), got credentials: {}",
            self.stdout
        );
        assert!(
            self.stdout.trim().is_empty(),
            "nothing may be printed on stdout on failure: {}",
            self.stdout
        );
        assert!(
            self.stderr.contains(message),
            "stderr does not contain {message:?}: {}",
            self.stderr
        );
    }
}

/// Runs `<program> credential-process` with the helper's flags.
pub async fn credential_process(
    program: &Path,
    env: &TestEnv,
    certificate: &Path,
    key: &Path,
    endpoint: &str,
) -> Outcome {
    credential_process_with(
        program,
        &env.trust_anchor_arn,
        &env.profile_arn,
        certificate,
        key,
        endpoint,
    )
    .await
}

pub async fn credential_process_with(
    program: &Path,
    trust_anchor_arn: &str,
    profile_arn: &str,
    certificate: &Path,
    key: &Path,
    endpoint: &str,
) -> Outcome {
    run_credential_process(
        program,
        trust_anchor_arn,
        profile_arn,
        certificate,
        key,
        endpoint,
        None,
    )
    .await
}

pub async fn run_credential_process(
    program: &Path,
    trust_anchor_arn: &str,
    profile_arn: &str,
    certificate: &Path,
    key: &Path,
    endpoint: &str,
    intermediates: Option<&Path>,
) -> Outcome {
    let mut command = tokio::process::Command::new(program);
    command.arg("credential-process");
    if let Some(bundle) = intermediates {
        command.arg("--intermediates").arg(bundle);
    }
    let output = command
        .arg("--certificate")
        .arg(certificate)
        .arg("--private-key")
        .arg(key)
        .args(["--trust-anchor-arn", trust_anchor_arn])
        .args(["--profile-arn", profile_arn])
        .args(["--role-arn", ROLE_ARN])
        .args(["--endpoint", endpoint])
        .args(["--region", REGION])
        .args(["--session-duration", "3600"])
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    let outcome = Outcome {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    // The exchange, secrets redacted, for `--nocapture` readers.
    let program_name = program.file_name().unwrap_or_default().to_string_lossy();
    match serde_json::from_str::<serde_json::Value>(&outcome.stdout) {
        Ok(mut credentials) if outcome.success => {
            for field in ["SecretAccessKey", "SessionToken"] {
                credentials[field] = "<redacted>".into();
            }
            println!("{program_name} credential-process -> {credentials}");
        }
        _ => println!(
            "{program_name} credential-process -> exit {:?}: {}",
            output.status.code(),
            outcome.stderr.trim()
        ),
    }
    outcome
}

/// A one-request-per-connection HTTP/1.1 proxy that changes `"durationSeconds":3600` into `3700` in
/// the body (plain or chunked; the length does not change) after the client signed it (a well-formed, in-range value: only the signature can
/// catch it). Returns its address and how many requests it altered.
pub async fn tampering_proxy(upstream: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let altered = Arc::new(AtomicUsize::new(0));
    let counter = altered.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 8192];
                let header_end = loop {
                    let n = client.read(&mut buf).await.unwrap();
                    assert!(n > 0, "client closed before sending headers");
                    request.extend_from_slice(&buf[..n]);
                    if let Some(pos) = find(&request, b"\r\n\r\n") {
                        break pos + 4;
                    }
                };
                let head = String::from_utf8_lossy(&request[..header_end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                // The official helper (Go) sends the body chunked, without Content-Length.
                let chunked = head.contains("transfer-encoding: chunked");
                let complete = |request: &[u8]| {
                    if chunked {
                        request[header_end..].ends_with(b"0\r\n\r\n")
                    } else {
                        request.len() >= header_end + length
                    }
                };
                while !complete(&request) {
                    let n = client.read(&mut buf).await.unwrap();
                    assert!(n > 0, "client closed before sending the body");
                    request.extend_from_slice(&buf[..n]);
                }
                let (head, body) = request.split_at(header_end);
                let body = String::from_utf8_lossy(body).into_owned();
                let tampered =
                    body.replacen("\"durationSeconds\":3600", "\"durationSeconds\":3700", 1);
                if tampered != body {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                // Ask the emulator to close after answering, so copying the response ends.
                let head =
                    String::from_utf8_lossy(head).replacen("\r\n", "\r\nConnection: close\r\n", 1);
                let mut upstream = tokio::net::TcpStream::connect(upstream).await.unwrap();
                upstream.write_all(head.as_bytes()).await.unwrap();
                upstream.write_all(tampered.as_bytes()).await.unwrap();
                let mut response = Vec::new();
                upstream.read_to_end(&mut response).await.unwrap();
                client.write_all(&response).await.unwrap();
                let _ = client.shutdown().await;
            });
        }
    });
    (addr, altered)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
