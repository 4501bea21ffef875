//! Issuing many WorkloadCertificates on a real kube-apiserver + etcd: certificates per second
//! from the first apply to the last Ready, and the controller's peak RSS. The anchor is
//! cert-manager (client QPS 20 by default; users report 40 certificates taking up to 50 minutes
//! and more than 8 GB of memory with 30k Secrets). Everything runs on this machine, the API
//! server and etcd included, so compare with care.
//!
//!     cargo bench --bench issuance            (IAMRA_BENCH_CERTIFICATES=N, default 10000)

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use iamra::api::*;
use iamra::localenv::{ControlPlane, ControlPlaneBinaries, free_loopback_port};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};

const NAMESPACE: &str = "bench";

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

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

async fn ready_count(api: &Api<WorkloadCertificate>) -> anyhow::Result<usize> {
    let list = api.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .filter(|c| {
            c.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == CONDITION_READY && c.status == "True")
            })
        })
        .count())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::var("IAMRA_BENCH_CERTIFICATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kube-bins/build.sh");
    let binaries = ControlPlaneBinaries::build_with(&script)?;
    let control_plane = ControlPlane::start(&binaries).await?;
    let client = control_plane.client().await?;
    Api::<Namespace>::all(client.clone())
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
    let log = std::fs::File::create(control_plane.workdir().join("controller.log"))?;
    let mut controller = Command::new(env!("CARGO_BIN_EXE_iamra"))
        .args([
            "controller",
            "--namespace",
            NAMESPACE,
            "--leader-election=false",
        ])
        .arg(format!(
            "--http-address=127.0.0.1:{}",
            free_loopback_port()?
        ))
        .env("KUBECONFIG", control_plane.kubeconfig_path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;

    let apply = PatchParams::apply("iamra-bench").force();
    let issuers: Api<Issuer> = Api::namespaced(client.clone(), NAMESPACE);
    let issuer = Issuer::new("ca", IssuerSpec::local("ca"));
    issuers.patch("ca", &apply, &Patch::Apply(&issuer)).await?;
    let certificates: Api<WorkloadCertificate> = Api::namespaced(client.clone(), NAMESPACE);
    let rss_idle = vm_hwm_kib(controller.id());

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
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    let applied = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let ready = ready_count(&certificates).await?;
        if ready == count {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {ready} of {count} Ready after an hour"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let elapsed = started.elapsed();
    let rss = vm_hwm_kib(controller.id());
    let _ = controller.kill();
    let _ = controller.wait();
    println!(
        "{count} WorkloadCertificates (ECDSA P-256, local CA) on a local kube-apiserver + etcd"
    );
    println!(
        "  all applied after        {:>8.1} s",
        applied.as_secs_f64()
    );
    println!(
        "  all Ready with Secrets   {:>8.1} s",
        elapsed.as_secs_f64()
    );
    println!(
        "  certificates per second  {:>8.1}",
        count as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  controller peak RSS      {:>8} KiB (before the first: {rss_idle} KiB)",
        rss
    );
    Ok(())
}
