//! `iamra local-demo`: the whole story on one machine, on embedded defaults. A local control
//! plane, the Roles Anywhere emulator and the controller (this binary) with a bootstrapped CA;
//! a workload certificate trades for credentials through `iamra credential-process` and through
//! the credential sidecar the webhook injects into a pod; a Revocation is applied, the next
//! attempt is refused with "Certificate revoked", and the sidecar moves to the reissued
//! certificate without a restart.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};

use super::demo_sidecar::{get, injected_sidecar_args, localize, mount_secret, start_sidecar};
use super::{ControlPlane, ControlPlaneBinaries, free_loopback_port};
use crate::api::*;
use crate::rolesanywhere::emulator::{self, EmulatorConfig};
use crate::webhook::{INJECTION_LABEL, INJECTION_LABEL_VALUE, SIDECAR_CONTAINER};

const NAMESPACE: &str = "iamra-demo";
const REGION: &str = "eu-west-1";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/demo-workload";
const WAIT: Duration = Duration::from_secs(60);

/// Where the demo finds kube-apiserver and etcd.
pub enum BinariesSource {
    Directory(PathBuf),
    BuildScript(PathBuf),
}

/// Kills the controller when the demo ends, however it ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn step(text: &str) {
    println!("==> {text}");
}

async fn wait_until<T, F, Fut>(what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ready(
    conditions: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>,
) -> bool {
    conditions.is_some_and(|c| {
        c.iter()
            .any(|c| c.type_ == CONDITION_READY && c.status == "True")
    })
}

/// Runs `iamra credential-process`; Ok(stdout) on success, Err(stderr) on refusal.
fn credential_process(iamra: &Path, args: &[String]) -> anyhow::Result<Result<String, String>> {
    let output = Command::new(iamra)
        .arg("credential-process")
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
    Ok(if output.status.success() {
        Ok(stdout)
    } else {
        Err(stderr)
    })
}

/// The credentials JSON with the secret parts replaced, fit to print.
fn redact(json: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(mut value) => {
            for field in ["SecretAccessKey", "SessionToken", "Token"] {
                if let Some(secret) = value.get_mut(field) {
                    *secret = serde_json::Value::String("<redacted>".into());
                }
            }
            value.to_string()
        }
        Err(_) => "<unparseable output>".into(),
    }
}

/// What every step of the demo works with.
struct Demo {
    client: kube::Client,
    /// The control plane's work directory: files the demo writes, and the logs.
    work: PathBuf,
    /// This binary: the controller, the sidecar and `credential-process` are its subcommands.
    iamra: PathBuf,
    apply: PatchParams,
}

/// The injected sidecar, running as the kubelet would run it.
struct RunningSidecar {
    _process: ChildGuard,
    credentials_url: String,
    token: String,
    /// The credentials it served first.
    first: String,
    certificate_dir: PathBuf,
}

/// Runs the demo, printing each step; returns the seconds from applying the Revocation to the
/// first refused CreateSession.
pub async fn run(binaries: BinariesSource) -> anyhow::Result<f64> {
    let binaries = match binaries {
        BinariesSource::Directory(dir) => ControlPlaneBinaries::in_dir(&dir)?,
        BinariesSource::BuildScript(script) => {
            step("building (or finding cached) kube-apiserver and etcd");
            ControlPlaneBinaries::build_with(&script)?
        }
    };
    step("starting etcd and kube-apiserver on loopback, installing the CRDs");
    let control_plane = ControlPlane::start(&binaries).await?;
    let demo = Demo {
        client: control_plane.client().await?,
        work: control_plane.workdir().to_path_buf(),
        iamra: std::env::current_exe().context("locating this binary")?,
        apply: PatchParams::apply("iamra-demo").force(),
    };
    println!(
        "    data and logs in {} (removed at the end)",
        demo.work.display()
    );

    step("starting the IAM Roles Anywhere emulator");
    let emulator = emulator::start(EmulatorConfig {
        listen: "127.0.0.1:0".parse()?,
        region: REGION.into(),
        state_file: None,
        enforce_crl_quota: true,
        enforce_session_quota: true,
    })
    .await?;
    create_namespace(&demo).await?;

    step("starting `iamra controller`");
    let (_controller, controller_log) =
        start_controller(&demo, &control_plane, &emulator.endpoint())?;

    step("applying an Issuer: the controller bootstraps a self-signed CA");
    let arns = bootstrap_issuer(&demo, &emulator).await?;

    step("applying a WorkloadCertificate");
    let (serial, args) = issue_certificate(&demo, &arns, &emulator.endpoint()).await?;

    step("getting AWS credentials with `iamra credential-process`");
    match credential_process(&demo.iamra, &args)? {
        Ok(json) => println!("    {}", redact(&json)),
        Err(error) => anyhow::bail!("credential-process failed before any revocation: {error}"),
    }

    step(
        "applying a RolesAnywhereBinding and creating a pod it selects: the webhook injects the sidecar",
    );
    let sidecar_args = inject_pod(&demo, &arns).await?;

    step("running the injected sidecar as the kubelet would (Secret mounted, same arguments)");
    let sidecar = run_sidecar(&demo, &sidecar_args).await?;

    step("applying a Revocation of the workload's certificate (reason keyCompromise, reissue)");
    let seconds = revoke(&demo, &args, &controller_log).await?;

    step(
        "the controller reissued the certificate with a fresh key; the sidecar follows the volume",
    );
    follow_reissue(&demo, &serial, &sidecar).await?;

    emulator.shutdown().await;
    step("cleaning up (controller, emulator, kube-apiserver, etcd and their data)");
    Ok(seconds)
}

/// The demo's namespace, opted in to sidecar injection.
async fn create_namespace(demo: &Demo) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(demo.client.clone());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(NAMESPACE.into()),
            labels: Some([(INJECTION_LABEL.into(), INJECTION_LABEL_VALUE.into())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &namespace)
        .await?;
    Ok(())
}

/// `iamra controller` for the demo's namespace, with the webhook on loopback and the emulator as
/// the platform's Roles Anywhere endpoint; and its log file.
fn start_controller(
    demo: &Demo,
    control_plane: &ControlPlane,
    emulator_endpoint: &str,
) -> anyhow::Result<(ChildGuard, PathBuf)> {
    let controller_log = demo.work.join("controller.log");
    let log = std::fs::File::create(&controller_log)?;
    let webhook_port = free_loopback_port()?;
    let controller = ChildGuard(
        Command::new(&demo.iamra)
            .args(["controller", "--namespace", NAMESPACE])
            .arg(format!(
                "--http-address=127.0.0.1:{}",
                free_loopback_port()?
            ))
            // The API server calls the webhook on loopback; its CA lands in the
            // MutatingWebhookConfiguration's caBundle.
            .arg(format!("--webhook-address=127.0.0.1:{webhook_port}"))
            .arg(format!("--webhook-url=https://127.0.0.1:{webhook_port}"))
            .arg("--webhook-configuration=iamra-local-demo")
            .arg(format!("--webhook-secret-namespace={NAMESPACE}"))
            // The platform's endpoint, for CRL imports and the injected sidecars alike.
            .arg(format!("--rolesanywhere-endpoint={}", emulator_endpoint))
            // The demo's namespace is the only tenant: it may import into the emulator's anchor.
            .arg(format!("--trust-anchor-grant={NAMESPACE}=*"))
            .env("KUBECONFIG", control_plane.kubeconfig_path())
            // The emulator takes any credentials; these keep the SDK off real AWS and IMDS.
            .env("AWS_ACCESS_KEY_ID", "local-demo")
            .env("AWS_SECRET_ACCESS_KEY", "local-demo")
            .env("AWS_REGION", REGION)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the controller")?,
    );
    Ok((controller, controller_log))
}

/// The Issuer, Ready with its bootstrapped CA, which the emulator then trusts; the Issuer then
/// imports its CRL into that trust anchor.
async fn bootstrap_issuer(
    demo: &Demo,
    emulator: &emulator::RunningEmulator,
) -> anyhow::Result<emulator::SeededArns> {
    let issuers: Api<Issuer> = Api::namespaced(demo.client.clone(), NAMESPACE);
    let mut issuer = Issuer::new("demo-ca", IssuerSpec::local("demo-ca"));
    issuers
        .patch("demo-ca", &demo.apply, &Patch::Apply(&issuer))
        .await?;
    let ca_pem = wait_until("the Issuer to be Ready", || async {
        let issuer = issuers.get("demo-ca").await?;
        Ok(issuer
            .status
            .filter(|s| ready(Some(&s.conditions)))
            .and_then(|s| s.ca_certificate))
    })
    .await?;
    let arns = emulator::seed(&emulator.shared, &ca_pem, &[ROLE_ARN.to_string()])?;
    println!(
        "    trust anchor {} (source: the Issuer's CA)",
        arns.trust_anchor_arn
    );
    issuer.spec.roles_anywhere = Some(RolesAnywhereCrlTarget {
        trust_anchor_arn: arns.trust_anchor_arn.clone(),
        region: None,
        crl_name: None,
    });
    issuers
        .patch("demo-ca", &demo.apply, &Patch::Apply(&issuer))
        .await?;
    Ok(arns)
}

/// The workload's certificate, issued into its Secret: its serial, and the `credential-process`
/// arguments that use it (the Secret's files written into the work directory).
async fn issue_certificate(
    demo: &Demo,
    arns: &emulator::SeededArns,
    emulator_endpoint: &str,
) -> anyhow::Result<(String, Vec<String>)> {
    let certificates: Api<WorkloadCertificate> = Api::namespaced(demo.client.clone(), NAMESPACE);
    let certificate = WorkloadCertificate::new(
        "payments-api",
        WorkloadCertificateSpec {
            issuer_ref: IssuerReference::issuer("demo-ca"),
            service_account_name: None,
            subject: Some(Subject {
                common_name: Some("payments-api".into()),
                ..Default::default()
            }),
            uris: vec![format!(
                "spiffe://cluster.local/ns/{NAMESPACE}/sa/payments-api"
            )],
            dns_names: vec![],
            key_algorithm: None,
            duration: None,
            renew_before: None,
            secret_name: "payments-api-tls".into(),
            private_key_rotation_policy: None,
            secret_template: None,
        },
    );
    certificates
        .patch("payments-api", &demo.apply, &Patch::Apply(&certificate))
        .await?;
    let serial = wait_until("the certificate to be issued", || async {
        let certificate = certificates.get("payments-api").await?;
        Ok(certificate
            .status
            .filter(|s| ready(Some(&s.conditions)))
            .and_then(|s| s.serial_number))
    })
    .await?;
    println!("    certificate {serial} in Secret {NAMESPACE}/payments-api-tls");
    let secrets: Api<Secret> = Api::namespaced(demo.client.clone(), NAMESPACE);
    let secret = secrets.get("payments-api-tls").await?;
    let file = |key: &str| -> anyhow::Result<PathBuf> {
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .with_context(|| format!("Secret has no {key}"))?;
        let path = demo.work.join(key);
        std::fs::write(&path, &bytes.0)?;
        Ok(path)
    };
    let (certificate_file, key_file) = (file("tls.crt")?, file("tls.key")?);
    let args: Vec<String> = vec![
        "--certificate".into(),
        certificate_file.display().to_string(),
        "--private-key".into(),
        key_file.display().to_string(),
        "--trust-anchor-arn".into(),
        arns.trust_anchor_arn.clone(),
        "--profile-arn".into(),
        arns.profile_arn.clone(),
        "--role-arn".into(),
        ROLE_ARN.into(),
        "--endpoint".into(),
        emulator_endpoint.to_string(),
    ];
    Ok((serial, args))
}

/// The binding, Ready, and a pod it selects created through the webhook: the sidecar's
/// arguments as injected.
async fn inject_pod(demo: &Demo, arns: &emulator::SeededArns) -> anyhow::Result<Vec<String>> {
    let bindings: Api<RolesAnywhereBinding> = Api::namespaced(demo.client.clone(), NAMESPACE);
    let binding = RolesAnywhereBinding::new(
        "payments-api",
        RolesAnywhereBindingSpec {
            selector: Some(LabelSelector {
                match_labels: Some([("app".into(), "payments-api".into())].into()),
                ..Default::default()
            }),
            service_account_name: None,
            certificate_ref: Some(CertificateReference {
                name: "payments-api".into(),
            }),
            certificate_template: None,
            trust_anchor_arn: arns.trust_anchor_arn.clone(),
            profile_arn: arns.profile_arn.clone(),
            role_arn: ROLE_ARN.into(),
            region: None,
            session_duration_seconds: None,
            role_session_name: None,
        },
    );
    bindings
        .patch("payments-api", &demo.apply, &Patch::Apply(&binding))
        .await?;
    wait_until("the RolesAnywhereBinding to be Ready", || async {
        let binding = bindings.get("payments-api").await?;
        Ok(ready(binding.status.as_ref().map(|s| &s.conditions)).then_some(()))
    })
    .await?;
    // The webhook's configuration is written once the webhook serves.
    let configurations: Api<
        k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration,
    > = Api::all(demo.client.clone());
    wait_until("the webhook to be configured", || async {
        Ok(configurations
            .get_opt("iamra-local-demo")
            .await?
            .map(|_| ()))
    })
    .await?;
    let pods: Api<Pod> = Api::namespaced(demo.client.clone(), NAMESPACE);
    let pod = pods
        .create(
            &PostParams::default(),
            &Pod {
                metadata: ObjectMeta {
                    name: Some("payments-api".into()),
                    labels: Some([("app".into(), "payments-api".into())].into()),
                    ..Default::default()
                },
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "app".into(),
                        image: Some("payments-api:1.0".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await?;
    let sidecar_args = injected_sidecar_args(&pod)?;
    let app_env: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|spec| spec.containers.iter())
        .flat_map(|c| c.env.iter().flatten())
        .map(|e| format!("{}={}", e.name, e.value.clone().unwrap_or_default()))
        .collect();
    println!("    pod payments-api: native sidecar {SIDECAR_CONTAINER}; app env {app_env:?}");
    Ok(sidecar_args)
}

/// The injected sidecar, started with the Secret mounted as the kubelet would, once it serves
/// credentials (and refuses a request without its token).
async fn run_sidecar(demo: &Demo, sidecar_args: &[String]) -> anyhow::Result<RunningSidecar> {
    let secrets: Api<Secret> = Api::namespaced(demo.client.clone(), NAMESPACE);
    let pod_dir = demo.work.join("pod");
    let certificate_dir = pod_dir.join("certificate");
    let token_file = pod_dir.join("token");
    mount_secret(&secrets.get("payments-api-tls").await?, &certificate_dir)?;
    let listen = format!("127.0.0.1:{}", free_loopback_port()?);
    let health = format!("127.0.0.1:{}", free_loopback_port()?);
    let process = ChildGuard(start_sidecar(
        &demo.iamra,
        &localize(
            sidecar_args,
            &certificate_dir,
            &token_file,
            &listen,
            &health,
        ),
        &demo.work.join("sidecar.log"),
    )?);
    let credentials_url = format!("http://{listen}/credentials");
    let first = wait_until("the sidecar to serve credentials", || async {
        let Ok(token) = std::fs::read_to_string(&token_file) else {
            return Ok(None);
        };
        Ok(match get(&credentials_url, Some(token.trim())).await {
            Ok((200, body)) => Some(body),
            _ => None,
        })
    })
    .await?;
    let token = std::fs::read_to_string(&token_file)?;
    let (unauthorized, _) = get(&credentials_url, None).await?;
    println!(
        "    GET {credentials_url} (the SDK's container credentials provider): {}",
        redact(&first)
    );
    println!("    without the token file's value: HTTP {unauthorized}");
    Ok(RunningSidecar {
        _process: process,
        credentials_url,
        token,
        first,
        certificate_dir,
    })
}

/// The Revocation, applied; returns the seconds until Roles Anywhere refused the certificate.
async fn revoke(demo: &Demo, args: &[String], controller_log: &Path) -> anyhow::Result<f64> {
    let issuers: Api<Issuer> = Api::namespaced(demo.client.clone(), NAMESPACE);
    let revocations: Api<Revocation> = Api::namespaced(demo.client.clone(), NAMESPACE);
    let revocation = Revocation::new(
        "payments-api-key-leak",
        RevocationSpec {
            issuer_ref: IssuerReference::issuer("demo-ca"),
            serial_number: None,
            certificate_ref: Some(CertificateReference {
                name: "payments-api".into(),
            }),
            reason: Some(RevocationReason::KeyCompromise),
            revocation_time: None,
            reissue: Some(true),
        },
    );
    let started = Instant::now();
    revocations
        .patch(
            "payments-api-key-leak",
            &demo.apply,
            &Patch::Apply(&revocation),
        )
        .await?;
    let refusal = wait_until("Roles Anywhere to refuse the certificate", || async {
        match credential_process(&demo.iamra, args)? {
            Err(error) if error.contains("Certificate revoked") => Ok(Some(error)),
            Err(error) => anyhow::bail!("credential-process failed for another reason: {error}"),
            Ok(_) => Ok(None),
        }
    })
    .await;
    let refusal = match refusal {
        Ok(refusal) => refusal,
        Err(error) => {
            let conditions = issuers
                .get("demo-ca")
                .await?
                .status
                .map(|s| s.conditions)
                .unwrap_or_default();
            let said: Vec<String> = conditions
                .iter()
                .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
                .collect();
            anyhow::bail!(
                "{error}; the Issuer says {said:?}; controller log: {}",
                controller_log.display()
            );
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    step("the next attempt is refused");
    println!("    {refusal}");
    println!(
        "==> revoked in {seconds:.2} s: apply of the Revocation to the first refused CreateSession"
    );
    Ok(seconds)
}

/// The reissued certificate, mounted again: the sidecar, not restarted, serves credentials of
/// the new certificate.
async fn follow_reissue(demo: &Demo, serial: &str, sidecar: &RunningSidecar) -> anyhow::Result<()> {
    let certificates: Api<WorkloadCertificate> = Api::namespaced(demo.client.clone(), NAMESPACE);
    let secrets: Api<Secret> = Api::namespaced(demo.client.clone(), NAMESPACE);
    let reissued = wait_until("the reissued certificate", || async {
        let certificate = certificates.get("payments-api").await?;
        Ok(certificate
            .status
            .filter(|s| ready(Some(&s.conditions)))
            .and_then(|s| s.serial_number)
            .filter(|new| new != serial))
    })
    .await?;
    mount_secret(
        &secrets.get("payments-api-tls").await?,
        &sidecar.certificate_dir,
    )?;
    let access_key = |body: &str| {
        serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["AccessKeyId"].as_str().map(String::from))
    };
    let before = access_key(&sidecar.first);
    let rotated = wait_until("the sidecar to use the reissued certificate", || async {
        Ok(
            match get(&sidecar.credentials_url, Some(sidecar.token.trim())).await {
                Ok((200, body)) if access_key(&body) != before => Some(body),
                _ => None,
            },
        )
    })
    .await?;
    println!(
        "    certificate {reissued}; sidecar, not restarted: {}",
        redact(&rotated)
    );
    Ok(())
}
