//! etcd and kube-apiserver as child processes on loopback.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};

use super::ports::free_loopback_port;
use super::serving_certs;
use crate::api::custom_resource_definitions;

/// The Kubernetes release the local control plane is built from (kube 5 needs ≥ 1.33).
pub const KUBERNETES_VERSION: &str = "v1.34.4";
/// Field manager for what the local environment applies.
const FIELD_MANAGER: &str = "iamra-localenv";
/// A cold API server on 2 busy cores has been seen to need ~20 s; leave room.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Lines of a failed server's log shown in the error.
const LOG_TAIL_LINES: usize = 40;

/// The kubeconfig contexts of a local control plane.
pub const ADMIN_CONTEXT: &str = "admin";
/// The API server's audit log of writes (JSON lines, Metadata level), in the work directory.
pub const AUDIT_LOG: &str = "audit.log";
/// A user with no RBAC bindings at all: every request it makes is forbidden.
pub const UNPRIVILEGED_CONTEXT: &str = "unprivileged";

#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    #[error("kube-apiserver or etcd binary missing at {0}: run tests/kube-bins/build.sh")]
    MissingBinary(PathBuf),
    #[error("building the control plane binaries with {script} failed: {detail}")]
    Build { script: PathBuf, detail: String },
    #[error("I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("generating the control plane certificates: {0}")]
    Certificates(#[from] rcgen::Error),
    #[error(
        "{name} exited before the API server was ready ({status}); its log ends with:\n{log_tail}"
    )]
    ServerExited {
        name: &'static str,
        status: String,
        log_tail: String,
    },
    #[error("the API server was not ready within {0:?}; its log ends with:\n{1}")]
    NotReady(Duration, String),
    #[error("kube client: {0}")]
    Kube(#[from] kube::Error),
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("writing the kubeconfig: {0}")]
    KubeconfigYaml(#[from] serde_yaml_ng::Error),
    #[error("CRD {0} did not become Established: {1}")]
    CrdNotEstablished(String, String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ControlPlaneError + '_ {
    move |source| ControlPlaneError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where the kube-apiserver and etcd binaries are.
#[derive(Clone, Debug)]
pub struct ControlPlaneBinaries {
    pub kube_apiserver: PathBuf,
    pub etcd: PathBuf,
}

impl ControlPlaneBinaries {
    /// The binaries in `dir`, which must both exist.
    pub fn in_dir(dir: &Path) -> Result<Self, ControlPlaneError> {
        let binaries = Self {
            kube_apiserver: dir.join("kube-apiserver"),
            etcd: dir.join("etcd"),
        };
        for path in [&binaries.kube_apiserver, &binaries.etcd] {
            if !path.is_file() {
                return Err(ControlPlaneError::MissingBinary(path.clone()));
            }
        }
        Ok(binaries)
    }

    /// Runs the build script (which returns at once when its cache is warm) and uses the
    /// directory it prints on its last line.
    pub fn build_with(script: &Path) -> Result<Self, ControlPlaneError> {
        let output = Command::new("bash")
            .arg(script)
            .env("KUBE_VERSION", KUBERNETES_VERSION)
            .stderr(Stdio::inherit())
            .output()
            .map_err(io_error(script))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(ControlPlaneError::Build {
                script: script.to_path_buf(),
                detail: format!("{}; stdout: {stdout}", output.status),
            });
        }
        let dir = stdout.lines().last().unwrap_or_default().trim();
        Self::in_dir(Path::new(dir))
    }
}

/// A child process killed (and reaped) when dropped, and when its parent dies.
struct ManagedProcess {
    name: &'static str,
    child: Child,
    log_path: PathBuf,
}

impl ManagedProcess {
    fn spawn(
        name: &'static str,
        command: &mut Command,
        log_path: PathBuf,
    ) -> Result<Self, ControlPlaneError> {
        let log = File::create(&log_path).map_err(io_error(&log_path))?;
        let log_err = log.try_clone().map_err(io_error(&log_path))?;
        command.stdin(Stdio::null()).stdout(log).stderr(log_err);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent. It makes the
        // kernel kill the server if the process that started it dies without dropping it.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().map_err(io_error(Path::new(name)))?;
        Ok(Self {
            name,
            child,
            log_path,
        })
    }

    fn exited(&mut self) -> Option<ControlPlaneError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(ControlPlaneError::ServerExited {
                name: self.name,
                status: status.to_string(),
                log_tail: log_tail(&self.log_path),
            }),
            _ => None,
        }
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

fn random_token() -> Result<String, ControlPlaneError> {
    let path = Path::new("/dev/urandom");
    let mut bytes = [0u8; 24];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(io_error(path))?;
    Ok(hex::encode(bytes))
}

/// A running etcd + kube-apiserver pair with the iamra CRDs installed. Dropping it stops both and
/// removes their data.
pub struct ControlPlane {
    // Field order is drop order: the API server stops before etcd.
    apiserver: ManagedProcess,
    etcd: ManagedProcess,
    url: String,
    kubeconfig_path: PathBuf,
    workdir: tempfile::TempDir,
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver on free loopback ports, waits until the API server is
    /// ready, and installs the CRDs.
    pub async fn start(binaries: &ControlPlaneBinaries) -> Result<Self, ControlPlaneError> {
        // IAMRA_KEEP_LOGS=1 keeps the servers' logs and data after the run, for debugging.
        let workdir = tempfile::Builder::new()
            .prefix("iamra-control-plane-")
            .disable_cleanup(std::env::var_os("IAMRA_KEEP_LOGS").is_some())
            .tempdir()
            .map_err(io_error(&std::env::temp_dir()))?;
        let dir = workdir.path().to_path_buf();
        let write = |name: &str, contents: &str| -> Result<PathBuf, ControlPlaneError> {
            let path = dir.join(name);
            fs::write(&path, contents).map_err(io_error(&path))?;
            Ok(path)
        };

        let pki = serving_certs::generate()?;
        let serving_cert_path = write("apiserver.crt", &pki.serving_certificate_pem)?;
        let serving_key_path = write("apiserver.key", &pki.serving_key_pem)?;
        let sa_key_path = write("service-account.key", &pki.service_account_key_pem)?;
        let sa_public_key_path = write("service-account.pub", &pki.service_account_public_key_pem)?;
        let admin_token = random_token()?;
        let unprivileged_token = random_token()?;
        let tokens_path = write(
            "tokens.csv",
            &format!(
                "{admin_token},iamra-admin,uid-admin,\"system:masters\"\n{unprivileged_token},iamra-unprivileged,uid-unprivileged\n"
            ),
        )?;

        // Every write with who made it (user agent: the controller replica), for tests that
        // check which replica wrote when.
        let audit_policy_path = write(
            "audit-policy.yaml",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n  verbs: [create, update, patch, delete, deletecollection]\n- level: None\n",
        )?;

        let etcd_client_port = free_loopback_port().map_err(io_error(&dir))?;
        let etcd_peer_port = free_loopback_port().map_err(io_error(&dir))?;
        let etcd_client_url = format!("http://127.0.0.1:{etcd_client_port}");
        let etcd_peer_url = format!("http://127.0.0.1:{etcd_peer_port}");
        let etcd = ManagedProcess::spawn(
            "etcd",
            Command::new(&binaries.etcd)
                .arg("--name=local")
                .arg(format!("--data-dir={}", dir.join("etcd").display()))
                .arg(format!("--listen-client-urls={etcd_client_url}"))
                .arg(format!("--advertise-client-urls={etcd_client_url}"))
                .arg(format!("--listen-peer-urls={etcd_peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={etcd_peer_url}"))
                .arg(format!("--initial-cluster=local={etcd_peer_url}"))
                // Throwaway data: skipping fsync makes every write an order of magnitude cheaper.
                .arg("--unsafe-no-fsync")
                .arg("--log-level=warn"),
            dir.join("etcd.log"),
        )?;

        let apiserver_port = free_loopback_port().map_err(io_error(&dir))?;
        let url = format!("https://127.0.0.1:{apiserver_port}");
        let apiserver = ManagedProcess::spawn(
            "kube-apiserver",
            Command::new(&binaries.kube_apiserver)
                .arg(format!("--etcd-servers={etcd_client_url}"))
                .arg("--bind-address=127.0.0.1")
                .arg("--advertise-address=127.0.0.1")
                .arg(format!("--secure-port={apiserver_port}"))
                .arg(format!("--tls-cert-file={}", serving_cert_path.display()))
                .arg(format!(
                    "--tls-private-key-file={}",
                    serving_key_path.display()
                ))
                .arg(format!("--cert-dir={}", dir.join("certs").display()))
                .arg(format!("--token-auth-file={}", tokens_path.display()))
                .arg("--authorization-mode=RBAC")
                .arg("--service-account-issuer=https://kubernetes.default.svc")
                .arg(format!(
                    "--service-account-key-file={}",
                    sa_public_key_path.display()
                ))
                .arg(format!(
                    "--service-account-signing-key-file={}",
                    sa_key_path.display()
                ))
                .arg("--service-cluster-ip-range=10.96.0.0/16")
                .arg("--allow-privileged=true")
                // No controller-manager runs here to create default ServiceAccounts.
                .arg("--disable-admission-plugins=ServiceAccount")
                .arg(format!(
                    "--audit-policy-file={}",
                    audit_policy_path.display()
                ))
                .arg(format!(
                    "--audit-log-path={}",
                    dir.join(AUDIT_LOG).display()
                ))
                .arg("--v=1"),
            dir.join("kube-apiserver.log"),
        )?;

        let kubeconfig_path = write(
            "kubeconfig",
            &kubeconfig_yaml(
                &url,
                &pki.ca_certificate_pem,
                &[
                    (ADMIN_CONTEXT, &admin_token),
                    (UNPRIVILEGED_CONTEXT, &unprivileged_token),
                ],
            )?,
        )?;

        let mut control_plane = Self {
            apiserver,
            etcd,
            url,
            kubeconfig_path,
            workdir,
        };
        control_plane.wait_ready().await?;
        control_plane.install_crds().await?;
        Ok(control_plane)
    }

    /// The API server URL (`https://127.0.0.1:<port>`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A kubeconfig with the contexts [`ADMIN_CONTEXT`] (current) and [`UNPRIVILEGED_CONTEXT`].
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The directory holding the servers' logs and data.
    pub fn workdir(&self) -> &Path {
        self.workdir.path()
    }

    /// The API server's audit log of writes (see [`AUDIT_LOG`]).
    pub fn audit_log_path(&self) -> PathBuf {
        self.workdir.path().join(AUDIT_LOG)
    }

    /// A client for one of the kubeconfig's contexts.
    pub async fn client_for(&self, context: &str) -> Result<kube::Client, ControlPlaneError> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig_path)?;
        let options = KubeConfigOptions {
            context: Some(context.to_string()),
            ..Default::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// A cluster-admin client.
    pub async fn client(&self) -> Result<kube::Client, ControlPlaneError> {
        self.client_for(ADMIN_CONTEXT).await
    }

    async fn wait_ready(&mut self) -> Result<(), ControlPlaneError> {
        let client = self.client().await?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(error) = self.apiserver.exited().or_else(|| self.etcd.exited()) {
                return Err(error);
            }
            let request = http::Request::get("/readyz").body(Vec::new());
            if let Ok(request) = request
                && client.request_text(request).await.is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ControlPlaneError::NotReady(
                    READY_TIMEOUT,
                    log_tail(&self.apiserver.log_path),
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn install_crds(&self) -> Result<(), ControlPlaneError> {
        let client = self.client().await?;
        let crds: Api<CustomResourceDefinition> = Api::all(client);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        for crd in custom_resource_definitions() {
            let name = crd.metadata.name.clone().unwrap_or_default();
            crds.patch(&name, &params, &Patch::Apply(&crd)).await?;
            let established =
                await_condition(crds.clone(), &name, conditions::is_crd_established());
            match tokio::time::timeout(READY_TIMEOUT, established).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    return Err(ControlPlaneError::CrdNotEstablished(
                        name,
                        error.to_string(),
                    ));
                }
                Err(_) => {
                    return Err(ControlPlaneError::CrdNotEstablished(
                        name,
                        "timed out".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A kubeconfig with one context (and user) per `(name, token)`, the first one current.
fn kubeconfig_yaml(
    url: &str,
    ca_pem: &str,
    users: &[(&str, &str)],
) -> Result<String, serde_yaml_ng::Error> {
    use base64::Engine;
    let ca_data = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": url, "certificate-authority-data": ca_data}}],
        "users": users.iter().map(|(name, token)| serde_json::json!({"name": name, "user": {"token": token}})).collect::<Vec<_>>(),
        "contexts": users.iter().map(|(name, _)| serde_json::json!({"name": name, "context": {"cluster": "local", "user": name, "namespace": "default"}})).collect::<Vec<_>>(),
        "current-context": users.first().map(|(name, _)| *name).unwrap_or_default(),
    });
    serde_yaml_ng::to_string(&kubeconfig)
}
