//! Idle connections as a denial of service. A peer opens 10,000 connections and never sends a
//! byte, reconnecting whenever one is closed; meanwhile a client (the API server, the app) makes
//! requests, each on a new connection. Measured in one run, each side by side with itself
//! undisturbed, and the sidecar beside AWS's official helper (`aws_signing_helper serve`, when
//! built) under the same load:
//! - the webhook's admission latency (TLS, `POST /mutate-pods`) p50 / p99, and failures;
//! - the sidecar's IMDSv2 credential latency p50 / p99, and its peak RSS (VmHWM).
//!
//! Not run in CI (it needs 20,000 file descriptors and both cores for a minute).
//!
//!     cargo bench --bench idle_connections     (IAMRA_BENCH_IDLE=N, IAMRA_BENCH_REQUESTS=N)

#[path = "../tests/rolesanywhere/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use iamra::webhook::{AdmissionState, ReloadableCertificate, SidecarImage, serve_admissions};
use support::{Credentials, HELPER, free_port, official_helper, vm_hwm_kib};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The peer: `n` connections that never send anything, each reopened 100 ms after the server
/// closes it, until `stop`.
struct IdlePeer {
    stop: Arc<AtomicBool>,
    open: Arc<AtomicU64>,
    closed_by_server: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl IdlePeer {
    async fn start(address: SocketAddr, n: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(AtomicU64::new(0));
        let closed_by_server = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let (stop, open, closed) = (stop.clone(), open.clone(), closed_by_server.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut stream) = TcpStream::connect(address).await else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    open.fetch_add(1, Ordering::Relaxed);
                    let mut byte = [0u8; 1];
                    let ended = tokio::select! {
                        _ = stream.read(&mut byte) => true,
                        () = async { while !stop.load(Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        } } => false,
                    };
                    open.fetch_sub(1, Ordering::Relaxed);
                    if ended {
                        closed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }));
        }
        // Until every connection was opened once.
        let deadline = Instant::now() + Duration::from_secs(60);
        while (open.load(Ordering::Relaxed) + closed_by_server.load(Ordering::Relaxed)) < n as u64
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            stop,
            open,
            closed_by_server,
            tasks,
        }
    }

    async fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let (open, closed) = (
            self.open.load(Ordering::Relaxed),
            self.closed_by_server.load(Ordering::Relaxed),
        );
        for task in self.tasks {
            let _ = task.await;
        }
        (open, closed)
    }
}

struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    failures: usize,
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:>7.2} ms   p99 {:>7.2} ms   failures {}",
            self.p50_ms, self.p99_ms, self.failures
        )
    }
}

/// `n` requests one after the other, each through `request` (a new connection each).
async fn latency<F, Fut>(n: usize, mut request: F) -> Latency
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut samples = Vec::with_capacity(n);
    let mut failures = 0;
    for _ in 0..n {
        let started = Instant::now();
        let ok = tokio::time::timeout(Duration::from_secs(30), request())
            .await
            .unwrap_or(false);
        samples.push(started.elapsed());
        if !ok {
            failures += 1;
        }
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Latency {
        p50_ms: ms(samples[n / 2]),
        p99_ms: ms(samples[(n * 99 / 100).min(n - 1)]),
        failures,
    }
}

/// One HTTP/1.1 request on a new connection over `io`; whether it got a 2xx.
async fn request_over<I>(io: I, request: http::Request<Full<Bytes>>) -> bool
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let Ok((mut sender, connection)) = hyper::client::conn::http1::handshake(io).await else {
        return false;
    };
    tokio::spawn(connection);
    match sender.send_request(request).await {
        Ok(response) => {
            let ok = response.status().is_success();
            let _ = response.into_body().collect().await;
            ok
        }
        Err(_) => false,
    }
}

async fn plain_request(address: SocketAddr, request: http::Request<Full<Bytes>>) -> bool {
    match TcpStream::connect(address).await {
        Ok(stream) => request_over(hyper_util::rt::TokioIo::new(stream), request).await,
        Err(_) => false,
    }
}

fn get(url: &str, headers: &[(&str, &str)]) -> http::Request<Full<Bytes>> {
    let mut builder = http::Request::builder().method("GET").uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .header("host", "127.0.0.1")
        .body(Full::new(Bytes::new()))
        .unwrap_or_default()
}

async fn imds_token(address: SocketAddr) -> Option<String> {
    let request = http::Request::builder()
        .method("PUT")
        .uri("/latest/api/token")
        .header("host", "127.0.0.1")
        .header("x-aws-ec2-metadata-token-ttl-seconds", "21600")
        .body(Full::new(Bytes::new()))
        .ok()?;
    body_of(address, request).await
}

/// A credentials server under test: its IMDSv2 credentials URL path and token.
struct CredentialServer {
    name: &'static str,
    address: SocketAddr,
    child: tokio::process::Child,
    path: String,
    token: String,
}

/// The body of `request`'s answer on a new connection, when it is a 2xx.
async fn body_of(address: SocketAddr, request: http::Request<Full<Bytes>>) -> Option<String> {
    let stream = TcpStream::connect(address).await.ok()?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some(String::from_utf8_lossy(&body).into_owned())
}

async fn start_credential_server(
    name: &'static str,
    mut command: tokio::process::Command,
    address: SocketAddr,
) -> CredentialServer {
    let child = command.spawn().unwrap_or_else(|e| panic!("{name}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let listing = "/latest/meta-data/iam/security-credentials/";
    let (token, path) = loop {
        if let Some(token) = imds_token(address).await {
            let headers = [("x-aws-ec2-metadata-token", token.as_str())];
            // The role name as the server lists it.
            if let Some(role) = body_of(address, get(listing, &headers)).await {
                let path = format!("{listing}{}", role.trim());
                if plain_request(address, get(&path, &headers)).await {
                    break (token, path);
                }
            }
        }
        assert!(Instant::now() < deadline, "{name} never served credentials");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    CredentialServer {
        name,
        address,
        child,
        path,
        token,
    }
}

async fn measure_credential_server(server: &CredentialServer, idle: usize, n: usize) {
    let headers = [("x-aws-ec2-metadata-token", server.token.as_str())];
    let (address, path) = (server.address, server.path.clone());
    let request = || plain_request(address, get(&path, &headers));
    let calm = latency(n, request).await;
    let peer = IdlePeer::start(address, idle).await;
    let loaded = latency(n, request).await;
    let rss = vm_hwm_kib(server.child.id().unwrap_or(0));
    let (open, closed) = peer.stop().await;
    println!("{:<24} undisturbed        {calm}", server.name);
    println!(
        "{:<24} {idle} idle peers   {loaded}   (peer connections open at the end {open}, closed by the server {closed})",
        server.name
    );
    println!(
        "{:<24} peak RSS {:.1} MiB; p99 ratio loaded/undisturbed {:.2}",
        server.name,
        rss as f64 / 1024.0,
        loaded.p99_ms / calm.p99_ms.max(f64::EPSILON)
    );
}

async fn webhook(idle: usize, n: usize) {
    let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("key: {e}"));
    let certificate = rcgen::CertificateParams::new(vec!["webhook.bench".to_string()])
        .and_then(|params| params.self_signed(&key))
        .unwrap_or_else(|e| panic!("certificate: {e}"));
    let reloadable = Arc::new(
        ReloadableCertificate::new(&certificate.pem(), &key.serialize_pem())
            .unwrap_or_else(|e| panic!("tls: {e}")),
    );
    let (bindings, _bindings_writer) = kube::runtime::reflector::store();
    let (certificates, _certificates_writer) = kube::runtime::reflector::store();
    let state = Arc::new(AdmissionState {
        bindings,
        certificates,
        image: SidecarImage {
            image: "iamra:bench".into(),
            pull_policy: None,
        },
        sidecar_endpoint: None,
    });
    let address = serve_admissions(
        "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()),
        reloadable,
        state,
    )
    .await
    .unwrap_or_else(|e| panic!("webhook: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(certificate.der().clone())
        .unwrap_or_else(|e| panic!("root: {e}"));
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap_or_else(|e| panic!("tls config: {e}"))
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "bench",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": "bench",
            "userInfo": {},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app"},
                       "spec": {"containers": [{"name": "app", "image": "app:1"}]}}
        }
    })
    .to_string();
    let request = || {
        let connector = connector.clone();
        let body = review.clone();
        async move {
            let Ok(stream) = TcpStream::connect(address).await else {
                return false;
            };
            let Ok(name) = rustls::pki_types::ServerName::try_from("webhook.bench") else {
                return false;
            };
            let Ok(tls) = connector.connect(name, stream).await else {
                return false;
            };
            let Ok(request) = http::Request::builder()
                .method("POST")
                .uri(iamra::webhook::MUTATE_PODS_PATH)
                .header("host", "webhook.bench")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
            else {
                return false;
            };
            request_over(hyper_util::rt::TokioIo::new(tls), request).await
        }
    };
    let calm = latency(n, request).await;
    let peer = IdlePeer::start(address, idle).await;
    let loaded = latency(n, request).await;
    let (open, closed) = peer.stop().await;
    println!(
        "{:<24} undisturbed        {calm}",
        "webhook (TLS, admission)"
    );
    println!(
        "{:<24} {idle} idle peers   {loaded}   (peer connections open at the end {open}, closed by the server {closed})",
        "webhook (TLS, admission)"
    );
    println!(
        "{:<24} p99 ratio loaded/undisturbed {:.2}",
        "webhook (TLS, admission)",
        loaded.p99_ms / calm.p99_ms.max(f64::EPSILON)
    );
}

#[tokio::main]
async fn main() {
    let idle = env_count("IAMRA_BENCH_IDLE", 10_000);
    let n = env_count("IAMRA_BENCH_REQUESTS", 500);
    println!("{n} requests, each on a new connection, undisturbed and beside {idle} idle peers\n");
    webhook(idle, n).await;

    let setup = Credentials::start().await;
    let command = |program: &Path, subcommand: &str| setup.command(program, subcommand);
    let port = free_port();
    let mut sidecar = command(Path::new(env!("CARGO_BIN_EXE_iamra")), "sidecar");
    sidecar
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--health-listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--startup-spread-ms", "0"])
        .arg("--token-file")
        .arg(setup.dir.path().join("token"));
    let address: SocketAddr = format!("127.0.0.1:{port}")
        .parse()
        .unwrap_or_else(|_| unreachable!());
    let ours = start_credential_server("iamra sidecar", sidecar, address).await;
    measure_credential_server(&ours, idle, n).await;
    drop(ours);

    let Some(helper) = official_helper() else {
        println!("\nofficial helper not found at ~/{HELPER}: no comparison");
        return;
    };
    let port = free_port();
    let mut official = command(&helper, "serve");
    official.args(["--port", &port.to_string()]);
    let address: SocketAddr = format!("127.0.0.1:{port}")
        .parse()
        .unwrap_or_else(|_| unreachable!());
    let theirs = start_credential_server("official helper serve", official, address).await;
    measure_credential_server(&theirs, idle, n).await;
}
