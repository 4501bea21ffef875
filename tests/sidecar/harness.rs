//! The pieces a sidecar test needs: an emulator that records every CreateSession it answers,
//! the sidecar process, a moto server, and a tiny HTTP client.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use iamra::rolesanywhere::emulator::{self, Shared, state::EmulatorState};

use crate::fixtures::{self, Alg, Ca, Leaf};

pub const REGION: &str = "us-east-1";
pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/iamra-sidecar-test";
pub const ROLE_NAME: &str = "iamra-sidecar-test";

/// One CreateSession the emulator answered.
#[derive(Debug, Clone)]
pub struct SessionSeen {
    /// The decimal serial in `Authorization: … Credential=<serial>/…`.
    pub serial: String,
    pub status: u16,
    pub access_key_id: Option<String>,
}

pub type Sessions = Arc<Mutex<Vec<SessionSeen>>>;

pub struct Env {
    pub addr: SocketAddr,
    pub sessions: Sessions,
    pub dir: tempfile::TempDir,
    pub ca: Ca,
    pub trust_anchor_arn: String,
    pub profile_arn: String,
    /// The emulator's state, and its CreateSession quota log.
    pub shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Env {
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn sessions(&self) -> Vec<SessionSeen> {
        self.sessions.lock().unwrap().clone()
    }

    /// Imports an enabled CRL of the test CA revoking `serials`, through `aws-sdk-rolesanywhere`
    /// against the emulator's control plane (what the operator does on a Revocation).
    pub async fn revoke(&self, serials: &[&[u8]], number: u64) {
        use aws_sdk_rolesanywhere::config::{BehaviorVersion, Credentials, Region};
        let crl = fixtures::crl_pem(&self.ca, serials, number);
        let config = aws_sdk_rolesanywhere::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new("AKIDTEST", "test", None, None, "test"))
            .build();
        let out = aws_sdk_rolesanywhere::Client::from_conf(config)
            .import_crl()
            .name(format!("sidecar-test-{number}"))
            .crl_data(aws_sdk_rolesanywhere::primitives::Blob::new(crl.as_bytes()))
            .trust_anchor_arn(&self.trust_anchor_arn)
            .enabled(true)
            .send()
            .await
            .unwrap();
        assert_eq!(out.crl().and_then(|c| c.enabled()), Some(true));
    }
}

pub fn decimal(serial: &[u8]) -> String {
    iamra::rolesanywhere::sigv4x509::decimal_serial(serial)
}

async fn record(State(sessions): State<Sessions>, request: Request, next: Next) -> Response {
    let serial = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_owned();
    let is_session = request.uri().path() == "/sessions";
    let response = next.run(request).await;
    if !is_session {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let access_key_id = json["credentialSet"][0]["credentials"]["accessKeyId"]
        .as_str()
        .map(str::to_owned);
    sessions.lock().unwrap().push(SessionSeen {
        serial,
        status: parts.status.as_u16(),
        access_key_id,
    });
    Response::from_parts(parts, Body::from(bytes))
}

/// An emulator seeded with a fresh ECDSA CA and [`ROLE_ARN`], recording every CreateSession.
pub async fn start_env() -> Env {
    start_env_with_quota(false).await
}

/// [`start_env`], refusing CreateSession beyond the account's 10/s when `enforce_quota`.
pub async fn start_env_with_quota(enforce_quota: bool) -> Env {
    let ca = fixtures::ca("iamra sidecar test CA", Alg::EcdsaP256);
    let mut shared = Shared::new(EmulatorState::new(REGION), None);
    shared.session_quota = emulator::session_quota::SessionQuota::new(enforce_quota);
    let seeded = emulator::seed(&shared, &ca.pem, &[ROLE_ARN.to_owned()]).unwrap();
    let sessions: Sessions = Arc::default();
    let app = emulator::router(shared.clone()).layer(axum::middleware::from_fn_with_state(
        sessions.clone(),
        record,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Env {
        addr,
        sessions,
        dir: tempfile::tempdir().unwrap(),
        ca,
        trust_anchor_arn: seeded.trust_anchor_arn,
        profile_arn: seeded.profile_arn,
        shared,
        server,
    }
}

/// Writes certificate and key the way a Secret volume update lands: each file replaced by a
/// rename, never half-written.
pub fn install_leaf(dir: &Path, leaf: &Leaf) -> (PathBuf, PathBuf) {
    let cert = dir.join("tls.crt");
    let key = dir.join("tls.key");
    for (path, content) in [(&key, &leaf.key_pem), (&cert, &leaf.cert_pem)] {
        let staging = path.with_extension("tmp");
        std::fs::write(&staging, content).unwrap();
        std::fs::rename(&staging, path).unwrap();
    }
    (cert, key)
}

/// A loopback port free now and never handed out before in this process: the kernel may give
/// a just-released port again, and tests starting sidecars in parallel would then collide.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub struct Sidecar {
    /// Killed when the test ends.
    _child: tokio::process::Child,
    pub base: String,
    pub health: String,
    pub token_file: PathBuf,
    pub log: PathBuf,
}

impl Sidecar {
    pub fn token(&self) -> String {
        std::fs::read_to_string(&self.token_file).unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET /credentials with the right token.
    pub async fn credentials(&self) -> (u16, serde_json::Value) {
        let (status, body) = get(
            &format!("{}/credentials", self.base),
            &[("authorization", &self.token())],
        )
        .await;
        (status, serde_json::from_str(&body).unwrap_or_default())
    }

    pub async fn readyz(&self) -> (u16, String) {
        get(&format!("{}/readyz", self.health), &[]).await
    }

    /// Waits up to `timeout` for `condition` on `/readyz`'s status and body.
    pub async fn wait_readyz(&self, timeout: Duration, condition: impl Fn(u16, &str) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (status, body) = self.readyz().await;
            if condition(status, &body) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "readyz stayed {status} {body}; sidecar log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Starts `iamra sidecar` for `env` with the certificate files and extra flags; waits until ready.
pub async fn start_sidecar(env: &Env, cert: &Path, key: &Path, extra: &[&str]) -> Sidecar {
    let port = free_port();
    let health_port = free_port();
    let token_file = env.dir.path().join(format!("token-{port}"));
    let log = env.dir.path().join(format!("sidecar-{port}.log"));
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_iamra"))
        .arg("sidecar")
        .arg("--certificate")
        .arg(cert)
        .arg("--private-key")
        .arg(key)
        .args(["--trust-anchor-arn", &env.trust_anchor_arn])
        .args(["--profile-arn", &env.profile_arn])
        .args(["--role-arn", ROLE_ARN])
        .args(["--region", REGION])
        .args(["--endpoint", &env.endpoint()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--health-listen", &format!("127.0.0.1:{health_port}")])
        .arg("--token-file")
        .arg(&token_file)
        .args(extra)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let sidecar = Sidecar {
        _child: child,
        base: format!("http://127.0.0.1:{port}"),
        health: format!("http://127.0.0.1:{health_port}"),
        token_file,
        log,
    };
    // Listening (any answer from /healthz).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while get(&format!("{}/healthz", sidecar.health), &[]).await.0 != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sidecar did not start:\n{}",
            sidecar.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sidecar
}

/// [`start_sidecar`], then waits for its first credentials.
pub async fn start_ready_sidecar(env: &Env, cert: &Path, key: &Path, extra: &[&str]) -> Sidecar {
    let sidecar = start_sidecar(env, cert, key, extra).await;
    sidecar
        .wait_readyz(Duration::from_secs(30), |status, _| status == 200)
        .await;
    sidecar
}

/// One HTTP/1.1 request; returns status and body.
pub async fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let client: hyper_util::client::legacy::Client<_, Empty<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = client.request(builder.body(Empty::new()).unwrap()).await;
    let response = match response {
        Ok(response) => response,
        Err(error) => return (0, error.to_string()),
    };
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    request("GET", url, headers).await
}

/// moto's server on a free loopback port (STS accepts any SigV4-signed credentials).
pub struct Moto {
    _child: tokio::process::Child,
    pub url: String,
}

pub async fn start_moto(log_dir: &Path) -> Moto {
    let port = free_port();
    let child = tokio::process::Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log_dir.join("moto.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 with moto[server]: run `bash tests/install-deps.sh`");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "moto did not listen on {url}: {}",
            std::fs::read_to_string(log_dir.join("moto.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Moto { _child: child, url }
}
