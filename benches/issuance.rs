//! Issuing many WorkloadCertificates on a real kube-apiserver + etcd, beside the limit of that
//! API server: two phases, each on a fresh API server. First bare Secret creates of the same
//! size as a workload Secret (what the API server can take), then iamra from the first apply to
//! the last Ready. Each phase reports certificates per second, the ratio to bare Secrets, the
//! controller's peak RSS and the API requests per certificate by verb, from the API server's own
//! `apiserver_request_total` (less the bench's applies). Then a steady-state minute: requests
//! with every certificate Ready. Everything runs on this machine, API server and etcd included.
//!
//!     cargo bench --bench issuance     (IAMRA_BENCH_CERTIFICATES=N, default 10000;
//!                                       IAMRA_BENCH_STEADY_SECONDS=S, default 60)

#[path = "../tests/rolesanywhere/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;
mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use iamra::api::*;
use iamra::localenv::{ControlPlane, ControlPlaneBinaries, free_loopback_port};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use support::api_requests::{RequestCounts, request_counts};
use support::{cpu_seconds, vm_hwm_kib, vm_rss_kib};

const NAMESPACE: &str = "bench";
/// Requests in flight from the bench, in both phases.
const CLIENT_CONCURRENCY: usize = 32;

fn certificate(index: usize) -> WorkloadCertificate {
    let name = format!("workload-{index}");
    WorkloadCertificate::new(
        &name,
        WorkloadCertificateSpec {
            issuer_ref: IssuerReference::issuer("ca"),
            service_account_name: None,
            subject: Some(Subject {
                common_name: Some(name.clone()),
                ..Default::default()
            }),
            uris: vec![format!("spiffe://cluster.local/ns/{NAMESPACE}/sa/{name}")],
            dns_names: vec![],
            key_algorithm: None,
            duration: None,
            renew_before: None,
            secret_name: format!("{name}-tls"),
            private_key_rotation_policy: None,
            secret_template: None,
        },
    )
}

/// A Secret the size of a workload Secret (chain, key and CA in PEM).
fn bare_secret(index: usize) -> Secret {
    let filler = |bytes: usize| ByteString(vec![b'A'; bytes]);
    Secret {
        metadata: ObjectMeta {
            name: Some(format!("workload-{index}-tls")),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            ("tls.crt".to_string(), filler(700)),
            ("tls.key".to_string(), filler(240)),
            ("ca.crt".to_string(), filler(600)),
        ])),
        ..Default::default()
    }
}

async fn fresh_cluster(binaries: &ControlPlaneBinaries) -> anyhow::Result<ControlPlane> {
    let control_plane = ControlPlane::start(binaries).await?;
    let client = control_plane.client().await?;
    Api::<Namespace>::all(client)
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(NAMESPACE.into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?;
    Ok(control_plane)
}

/// What one phase measured.
struct Phase {
    seconds: f64,
    /// The API requests of the phase, less the bench's own.
    requests: RequestCounts,
    /// Requests during the steady-state window after the last Ready.
    steady: Option<(Duration, RequestCounts)>,
    peak_rss_kib: Option<u64>,
    /// The controller's CPU seconds from the first apply to the last Ready.
    controller_cpu_seconds: Option<f64>,
    /// Resident memory once every certificate is Ready and the steady window is over.
    settled_rss_kib: Option<u64>,
    /// One Revocation with every certificate issued: time to the CRL signed, and the requests.
    crl_publish: Option<(f64, RequestCounts)>,
    /// Every certificate due at once (the controller's clock moved to their renewal time): time
    /// to all renewed, and the requests.
    renewal_storm: Option<(f64, RequestCounts)>,
}

async fn bare_secrets(binaries: &ControlPlaneBinaries, count: usize) -> anyhow::Result<Phase> {
    let control_plane = fresh_cluster(binaries).await?;
    let client = control_plane.client().await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let before = request_counts(&client).await?;
    let started = Instant::now();
    futures::stream::iter(0..count)
        .map(|index| {
            let secrets = &secrets;
            async move {
                secrets
                    .create(&PostParams::default(), &bare_secret(index))
                    .await
            }
        })
        .buffer_unordered(CLIENT_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    let requests = request_counts(&client).await?.since(&before);
    Ok(Phase {
        seconds,
        requests,
        steady: None,
        peak_rss_kib: None,
        controller_cpu_seconds: None,
        settled_rss_kib: None,
        crl_publish: None,
        renewal_storm: None,
    })
}

/// A counter or gauge sample of the controller's metrics (the first series of that name).
async fn metric(metrics_url: &str, series: &str) -> Option<f64> {
    let body = http_get_text(metrics_url).await?;
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Polls `series` until it reaches `at_least`; seconds taken.
async fn until_metric(metrics_url: &str, series: &str, at_least: f64) -> anyhow::Result<f64> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(3600);
    loop {
        if metric(metrics_url, series).await.unwrap_or(0.0) >= at_least {
            return Ok(started.elapsed().as_secs_f64());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{series} below {at_least} after an hour"
        );
        tokio::time::sleep(READY_POLL).await;
    }
}

const READY: &str = "iamra_certificates{state=\"ready\"}";
const CRL_SIGNED: &str = "iamra_crl_signing_duration_seconds_count";
const ISSUED: &str = "iamra_certificate_issuance_duration_seconds_count";

/// Revokes one certificate among `count` and waits for the CRL that carries it: its requests
/// stay O(1) in the number of certificates.
async fn crl_publish(
    client: &kube::Client,
    metrics_url: &str,
) -> anyhow::Result<(f64, RequestCounts)> {
    let revocations: Api<Revocation> = Api::namespaced(client.clone(), NAMESPACE);
    let signed = metric(metrics_url, CRL_SIGNED).await.unwrap_or(0.0);
    let before = request_counts(client).await?;
    let revocation = Revocation::new(
        "bench",
        RevocationSpec {
            issuer_ref: IssuerReference::issuer("ca"),
            serial_number: None,
            certificate_ref: Some(CertificateReference {
                name: "workload-0".into(),
            }),
            reason: Some(RevocationReason::KeyCompromise),
            revocation_time: None,
            reissue: Some(false),
        },
    );
    revocations
        .create(&PostParams::default(), &revocation)
        .await?;
    let seconds = until_metric(metrics_url, CRL_SIGNED, signed + 1.0).await?;
    // The Revocation's own status and events land just after.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut requests = request_counts(client).await?.since(&before);
    requests.subtract("POST", 1.0);
    Ok((seconds, requests))
}

/// Moves the controller's clock to the renewal time of every certificate (24 h certificates
/// renew 8 h before expiry) and waits until each was issued again.
async fn renewal_storm(
    client: &kube::Client,
    metrics_url: &str,
    clock_file: &std::path::Path,
    count: usize,
) -> anyhow::Result<(f64, RequestCounts)> {
    let issued = metric(metrics_url, ISSUED).await.unwrap_or(0.0);
    let before = request_counts(client).await?;
    std::fs::write(clock_file, (16 * 3600 + 60).to_string())?;
    let seconds = until_metric(metrics_url, ISSUED, issued + count as f64).await?;
    let requests = request_counts(client).await?.since(&before);
    Ok((seconds, requests))
}

async fn http_get_text(url: &str) -> Option<String> {
    use http_body_util::{BodyExt, Empty};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<hyper::body::Bytes>>();
    let response = client.get(url.parse().ok()?).await.ok()?;
    let body = response.into_body().collect().await.ok()?.to_bytes();
    String::from_utf8(body.to_vec()).ok()
}

async fn issuer_ready(issuers: &Api<Issuer>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let issuer = issuers.get("ca").await?;
        let ready = issuer.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == CONDITION_READY && c.status == "True")
        });
        if ready {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "the Issuer is not Ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn iamra(
    binaries: &ControlPlaneBinaries,
    count: usize,
    steady_for: Duration,
) -> anyhow::Result<Phase> {
    let control_plane = fresh_cluster(binaries).await?;
    let client = control_plane.client().await?;
    let log = std::fs::File::create(control_plane.workdir().join("controller.log"))?;
    let http_port = free_loopback_port()?;
    let clock_file = control_plane.workdir().join("controller.clock");
    // IAMRA_BENCH_PROFILER=heaptrack (or another program taking the command after it) runs the
    // controller under a profiler; the figures of that run are the profiler's, not iamra's.
    let mut command = match std::env::var("IAMRA_BENCH_PROFILER") {
        Ok(profiler) => {
            let mut command = Command::new(profiler);
            command.arg(env!("CARGO_BIN_EXE_iamra"));
            command
        }
        Err(_) => Command::new(env!("CARGO_BIN_EXE_iamra")),
    };
    let mut controller = command
        .args([
            "controller",
            "--namespace",
            NAMESPACE,
            "--leader-election=false",
        ])
        .arg(format!("--http-address=127.0.0.1:{http_port}"))
        .env("KUBECONFIG", control_plane.kubeconfig_path())
        .env("RUST_LOG", "warn")
        .env(iamra::clock::CLOCK_OFFSET_FILE_ENV, &clock_file)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let metrics_url = format!("http://127.0.0.1:{http_port}/metrics");

    let apply = PatchParams::apply("iamra-bench").force();
    let issuers: Api<Issuer> = Api::namespaced(client.clone(), NAMESPACE);
    let issuer = Issuer::new("ca", IssuerSpec::local("ca"));
    issuers.patch("ca", &apply, &Patch::Apply(&issuer)).await?;
    issuer_ready(&issuers).await?;
    let certificates: Api<WorkloadCertificate> = Api::namespaced(client.clone(), NAMESPACE);

    let before = request_counts(&client).await?;
    let cpu_before = cpu_seconds(controller.id());
    let started = Instant::now();
    futures::stream::iter(0..count)
        .map(|index| {
            let (certificates, apply) = (&certificates, &apply);
            async move {
                let certificate = certificate(index);
                let name = certificate.metadata.name.clone().unwrap_or_default();
                certificates
                    .patch(&name, apply, &Patch::Apply(&certificate))
                    .await
            }
        })
        .buffer_unordered(CLIENT_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    // The controller's own view of its certificates, so the bench adds no API requests.
    until_metric(&metrics_url, READY, count as f64).await?;
    let seconds = started.elapsed().as_secs_f64();
    let controller_cpu_seconds = Some(cpu_seconds(controller.id()) - cpu_before);
    let after = request_counts(&client).await?;
    let mut requests = after.since(&before);
    requests.subtract("APPLY", count as f64);

    tokio::time::sleep(steady_for).await;
    let steady = request_counts(&client).await?.since(&after);
    let peak_rss_kib = vm_hwm_kib(controller.id());
    let settled_rss_kib = vm_rss_kib(controller.id());
    let crl_publish = crl_publish(&client, &metrics_url).await?;
    let renewal_storm = renewal_storm(&client, &metrics_url, &clock_file, count).await?;
    let _ = controller.kill();
    let _ = controller.wait();
    Ok(Phase {
        seconds,
        requests,
        steady: Some((steady_for, steady)),
        peak_rss_kib: Some(peak_rss_kib),
        controller_cpu_seconds,
        settled_rss_kib: Some(settled_rss_kib),
        crl_publish: Some(crl_publish),
        renewal_storm: Some(renewal_storm),
    })
}

fn print_phase(name: &str, phase: &Phase, count: usize, limit: f64) {
    let rate = count as f64 / phase.seconds;
    let per = |total: f64| total / count as f64;
    println!(
        "| {name} | {:.1} s | {:.0}/s | {:.2}× | {} | {} | {:.1} ({}) |",
        phase.seconds,
        rate,
        rate / limit,
        phase
            .peak_rss_kib
            .map(|kib| format!("{:.1} MiB", kib as f64 / 1024.0))
            .unwrap_or_else(|| "–".into()),
        phase
            .controller_cpu_seconds
            .map(|cpu| format!("{:.2} ms", cpu * 1000.0 / count as f64))
            .unwrap_or_else(|| "–".into()),
        per(phase.requests.total()),
        phase.requests.per_verb(count),
    );
}

/// How often the bench polls the controller's metrics. Once a second: each scrape renders every
/// certificate's expiry series, and a scraper polling faster than Prometheus would (15-30 s)
/// would be most of what is measured.
const READY_POLL: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::var("IAMRA_BENCH_CERTIFICATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let steady_for = Duration::from_secs(
        std::env::var("IAMRA_BENCH_STEADY_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60),
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kube-bins/build.sh");
    let binaries = ControlPlaneBinaries::build_with(&script)?;

    let bare = bare_secrets(&binaries, count).await?;
    let limit = count as f64 / bare.seconds;
    let iamra = iamra(&binaries, count, steady_for).await?;

    println!(
        "{count} certificates (ECDSA P-256, local CA), {CLIENT_CONCURRENCY} client requests in flight, a fresh kube-apiserver + etcd per phase"
    );
    println!();
    println!(
        "| phase | first apply to last Ready | per second | × bare Secrets | controller peak RSS | controller CPU per certificate | API requests per certificate (by verb) |"
    );
    println!("|---|---|---|---|---|---|---|");
    print_phase("bare Secret creates", &bare, count, limit);
    print_phase("iamra", &iamra, count, limit);
    if let Some((window, steady)) = &iamra.steady {
        let minutes = window.as_secs_f64() / 60.0;
        println!();
        println!(
            "steady state, {:.0} s with all Ready: {:.3} API requests per certificate per minute ({})",
            window.as_secs_f64(),
            (steady.total() / count as f64 / minutes).max(0.0),
            steady.per_verb(count),
        );
    }
    if let (Some(peak), Some(settled)) = (iamra.peak_rss_kib, iamra.settled_rss_kib) {
        println!(
            "controller memory: peak {:.1} MiB while issuing, {:.1} MiB resident once all were Ready",
            peak as f64 / 1024.0,
            settled as f64 / 1024.0
        );
    }
    if let Some((seconds, requests)) = &iamra.crl_publish {
        println!(
            "a CRL publish with {count} certificates (one Revocation): CRL signed {seconds:.1} s after the apply; {:.0} API requests in all ({})",
            requests.total(),
            requests.per_verb(1),
        );
    }
    if let Some((seconds, requests)) = &iamra.renewal_storm {
        println!(
            "renewal storm, {count} certificates due at once: all renewed in {seconds:.1} s ({:.0}/s), {:.1} API requests per certificate ({}); a local CA, so no KMS or Roles Anywhere call is made",
            count as f64 / seconds,
            requests.total() / count as f64,
            requests.per_verb(count),
        );
    }
    Ok(())
}
