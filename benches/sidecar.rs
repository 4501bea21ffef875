//! The sidecar's cost, side by side with AWS's official helper (`aws_signing_helper serve`)
//! against the same in-process Roles Anywhere emulator: peak RSS (VmHWM) and the latency of a
//! credential request answered from cache over loopback (IMDSv2 for both, plus the sidecar's
//! container endpoint), and the CPU one CreateSession costs (a `credential-process` run: one
//! CreateSession, process start included). Not run in CI; one run on a shared machine is
//! noisy, so compare ratios.
//!
//!     cargo bench --bench sidecar            (IAMRA_BENCH_REQUESTS=N to change the count)

#[path = "../tests/rolesanywhere/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use support::{Credentials, HELPER, free_port, official_helper, vm_hwm_kib};

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Empty<Bytes>,
>;

async fn call(client: &Client, method: &str, url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let Ok(request) = builder.body(Empty::new()) else {
        return (0, String::new());
    };
    match client.request(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
        Err(_) => (0, String::new()),
    }
}

struct Stats {
    mean_us: f64,
    p50_us: f64,
    p99_us: f64,
}

/// Times `n` sequential GETs of `url` on one keep-alive connection.
async fn measure(client: &Client, url: &str, headers: &[(&str, &str)], n: usize) -> Stats {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let (status, _) = call(client, "GET", url, headers).await;
        samples.push(start.elapsed());
        assert_eq!(status, 200, "{url}");
    }
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    Stats {
        mean_us: samples.iter().map(|d| us(*d)).sum::<f64>() / n as f64,
        p50_us: us(samples[n / 2]),
        p99_us: us(samples[(n * 99 / 100).min(n - 1)]),
    }
}

async fn wait_for(client: &Client, url: &str, headers: &[(&str, &str)]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while call(client, "GET", url, headers).await.0 != 200 {
        assert!(Instant::now() < deadline, "{url} never answered 200");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn imds_token(client: &Client, base: &str) -> String {
    let (status, token) = call(
        client,
        "PUT",
        &format!("{base}/latest/api/token"),
        &[("x-aws-ec2-metadata-token-ttl-seconds", "21600")],
    )
    .await;
    assert_eq!(status, 200);
    token
}

struct Measured {
    rss_kib: u64,
    imds: Stats,
}

fn print(name: &str, stats: &Stats) {
    println!(
        "{name:<34} mean {:>8.1} µs   p50 {:>8.1} µs   p99 {:>8.1} µs",
        stats.mean_us, stats.p50_us, stats.p99_us
    );
}

/// CPU seconds (user + system) of this process's reaped children: `cutime` + `cstime` of
/// /proc/self/stat, in USER_HZ (100 per second on Linux, whatever the kernel's HZ).
fn children_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name; the first of them is field 3 (state).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(13) + ticks(14)) / 100.0
}

/// Mean CPU and wall milliseconds of one `credential-process` run, over `runs` runs.
async fn cpu_per_create_session(
    mut command: impl FnMut() -> tokio::process::Command,
    runs: usize,
) -> (f64, f64) {
    let cpu_before = children_cpu_seconds();
    let started = Instant::now();
    for _ in 0..runs {
        let status = command()
            .status()
            .await
            .unwrap_or_else(|e| panic!("credential-process: {e}"));
        assert!(status.success(), "credential-process failed: {status}");
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = children_cpu_seconds() - cpu_before;
    (cpu * 1000.0 / runs as f64, wall * 1000.0 / runs as f64)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("IAMRA_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let setup = Credentials::start().await;
    let command = |program: &Path, subcommand: &str| setup.command(program, subcommand);
    let dir = &setup.dir;
    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();

    // iamra sidecar.
    let port = free_port();
    let mut sidecar_cmd = command(Path::new(env!("CARGO_BIN_EXE_iamra")), "sidecar");
    sidecar_cmd
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--health-listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--token-file")
        .arg(dir.path().join("token"));
    let sidecar = sidecar_cmd.spawn().unwrap_or_else(|e| panic!("iamra: {e}"));
    let base = format!("http://127.0.0.1:{port}");
    let token_file = dir.path().join("token");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !token_file.exists() {
        assert!(Instant::now() < deadline, "no token file");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let token = std::fs::read_to_string(&token_file).unwrap_or_default();
    let auth = [("authorization", token.as_str())];
    let container_url = format!("{base}/credentials");
    wait_for(&client, &container_url, &auth).await;
    let container = measure(&client, &container_url, &auth, n).await;
    let imds = imds_token(&client, &base).await;
    let imds_url = format!("{base}/latest/meta-data/iam/security-credentials/iamra-bench");
    let imds_headers = [("x-aws-ec2-metadata-token", imds.as_str())];
    let ours = Measured {
        imds: measure(&client, &imds_url, &imds_headers, n).await,
        rss_kib: vm_hwm_kib(sidecar.id().unwrap_or(0)),
    };
    drop(sidecar);
    let runs: usize = std::env::var("IAMRA_BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let (our_cpu_ms, our_wall_ms) = cpu_per_create_session(
        || command(Path::new(env!("CARGO_BIN_EXE_iamra")), "credential-process"),
        runs,
    )
    .await;

    println!("{n} sequential credential requests from cache over loopback (keep-alive)\n");
    print("iamra sidecar /credentials", &container);
    print("iamra sidecar IMDSv2", &ours.imds);
    println!(
        "{:<34} {} KiB",
        "iamra sidecar peak RSS (VmHWM)", ours.rss_kib
    );
    println!(
        "{:<34} {our_cpu_ms:.1} ms CPU, {our_wall_ms:.1} ms wall (mean of {runs} credential-process runs)",
        "iamra per CreateSession"
    );

    // The official helper, when built (bash tests/install-deps.sh).
    let Some(helper) = official_helper() else {
        println!("\nofficial helper not found at ~/{HELPER}: no comparison");
        return;
    };
    let port = free_port();
    let mut helper_cmd = command(&helper, "serve");
    helper_cmd.args(["--port", &port.to_string()]);
    let official = helper_cmd.spawn().unwrap_or_else(|e| panic!("helper: {e}"));
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let token = loop {
        let (status, token) = call(
            &client,
            "PUT",
            &format!("{base}/latest/api/token"),
            &[("x-aws-ec2-metadata-token-ttl-seconds", "21600")],
        )
        .await;
        if status == 200 {
            break token;
        }
        assert!(Instant::now() < deadline, "the helper never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let headers = [("x-aws-ec2-metadata-token", token.as_str())];
    let (_, role) = call(
        &client,
        "GET",
        &format!("{base}/latest/meta-data/iam/security-credentials/"),
        &headers,
    )
    .await;
    let url = format!(
        "{base}/latest/meta-data/iam/security-credentials/{}",
        role.trim()
    );
    wait_for(&client, &url, &headers).await;
    let theirs = Measured {
        imds: measure(&client, &url, &headers, n).await,
        rss_kib: vm_hwm_kib(official.id().unwrap_or(0)),
    };
    drop(official);
    let (their_cpu_ms, their_wall_ms) =
        cpu_per_create_session(|| command(&helper, "credential-process"), runs).await;
    print("official helper serve IMDSv2", &theirs.imds);
    println!(
        "{:<34} {} KiB",
        "official helper peak RSS (VmHWM)", theirs.rss_kib
    );
    println!(
        "{:<34} {their_cpu_ms:.1} ms CPU, {their_wall_ms:.1} ms wall (mean of {runs} credential-process runs)",
        "official helper per CreateSession"
    );
    println!(
        "\nratios iamra / official: RSS {:.2}, IMDS mean latency {:.2}, p99 {:.2}, CPU per CreateSession {:.2}",
        ours.rss_kib as f64 / theirs.rss_kib.max(1) as f64,
        ours.imds.mean_us / theirs.imds.mean_us,
        ours.imds.p99_us / theirs.imds.p99_us,
        our_cpu_ms / their_cpu_ms.max(f64::EPSILON),
    );
}
