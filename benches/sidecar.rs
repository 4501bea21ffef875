//! The sidecar's cost, side by side with AWS's official helper (`aws_signing_helper serve`)
//! against the same in-process Roles Anywhere emulator: peak RSS (VmHWM) and the latency of a
//! credential request answered from cache over loopback (IMDSv2 for both, plus the sidecar's
//! container endpoint), and what one `credential-process` run costs (one CreateSession, process
//! start included): CPU, wall time and peak RSS, medians of 15 runs of each, alternated. Not run in CI; one run on a shared machine is
//! noisy, so compare ratios.
//!
//!     cargo bench --bench sidecar     (IAMRA_BENCH_REQUESTS=N requests, IAMRA_BENCH_SESSIONS=N runs)

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

/// One `credential-process` run, as the kernel accounted it.
#[derive(Clone, Copy, Debug)]
struct Run {
    cpu_ms: f64,
    wall_ms: f64,
    peak_rss_kib: u64,
}

/// Runs `command` to its end and reads its own CPU time and peak RSS from `wait4`.
fn run_once(mut command: std::process::Command) -> Run {
    let started = Instant::now();
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("credential-process: {e}"));
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills; `pid` is our own child, not yet reaped
    // (the `Child` is forgotten so that nothing else reaps it).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    std::mem::forget(child);
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "credential-process failed: status {status}"
    );
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    Run {
        cpu_ms: ms(usage.ru_utime) + ms(usage.ru_stime),
        wall_ms,
        peak_rss_kib: usage.ru_maxrss as u64,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Medians of CPU, wall time and peak RSS over `runs`.
fn medians(runs: &[Run]) -> Run {
    Run {
        cpu_ms: median(runs.iter().map(|r| r.cpu_ms).collect()),
        wall_ms: median(runs.iter().map(|r| r.wall_ms).collect()),
        peak_rss_kib: median(runs.iter().map(|r| r.peak_rss_kib as f64).collect()) as u64,
    }
}

/// `runs` credential-process runs of each program, alternating so that both see the same
/// machine; the emulator answers on this runtime's other threads meanwhile.
async fn credential_process_runs(
    mut ours: impl FnMut() -> tokio::process::Command,
    mut theirs: Option<impl FnMut() -> tokio::process::Command>,
    runs: usize,
) -> (Vec<Run>, Vec<Run>) {
    let (mut our_runs, mut their_runs) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let command = ours().into_std();
        our_runs.push(
            tokio::task::spawn_blocking(move || run_once(command))
                .await
                .unwrap_or_else(|e| panic!("run: {e}")),
        );
        if let Some(theirs) = theirs.as_mut() {
            let command = theirs().into_std();
            their_runs.push(
                tokio::task::spawn_blocking(move || run_once(command))
                    .await
                    .unwrap_or_else(|e| panic!("run: {e}")),
            );
        }
    }
    (our_runs, their_runs)
}

fn print_process(name: &str, run: &Run, runs: usize) {
    println!(
        "{name:<34} median of {runs}: {:.1} ms CPU, {:.1} ms wall, {} KiB peak RSS",
        run.cpu_ms, run.wall_ms, run.peak_rss_kib
    );
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
        .unwrap_or(15);
    let helper = official_helper();
    let (our_runs, their_runs) = credential_process_runs(
        || command(Path::new(env!("CARGO_BIN_EXE_iamra")), "credential-process"),
        helper
            .as_ref()
            .map(|helper| move || command(helper, "credential-process")),
        runs,
    )
    .await;
    let our_process = medians(&our_runs);

    println!("{n} sequential credential requests from cache over loopback (keep-alive)\n");
    print("iamra sidecar /credentials", &container);
    print("iamra sidecar IMDSv2", &ours.imds);
    println!(
        "{:<34} {} KiB",
        "iamra sidecar peak RSS (VmHWM)", ours.rss_kib
    );
    print_process("iamra credential-process", &our_process, runs);

    // The official helper, when built (bash tests/install-deps.sh).
    let Some(helper) = helper else {
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
    let their_process = medians(&their_runs);
    print("official helper serve IMDSv2", &theirs.imds);
    println!(
        "{:<34} {} KiB",
        "official helper peak RSS (VmHWM)", theirs.rss_kib
    );
    print_process("official credential-process", &their_process, runs);
    println!(
        "\nratios iamra / official: sidecar RSS {:.2}, IMDS mean latency {:.2}, p99 {:.2}",
        ours.rss_kib as f64 / theirs.rss_kib.max(1) as f64,
        ours.imds.mean_us / theirs.imds.mean_us,
        ours.imds.p99_us / theirs.imds.p99_us,
    );
    println!(
        "ratios iamra / official credential-process (medians): CPU {:.2}, wall {:.2}, peak RSS {:.2}",
        our_process.cpu_ms / their_process.cpu_ms.max(f64::EPSILON),
        our_process.wall_ms / their_process.wall_ms.max(f64::EPSILON),
        our_process.peak_rss_kib as f64 / their_process.peak_rss_kib.max(1) as f64,
    );
}
