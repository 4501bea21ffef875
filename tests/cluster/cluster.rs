//! The shared control plane and the helpers every test uses.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use iamra::localenv::{ControlPlane, ControlPlaneBinaries};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use libtest_mimic::{Failed, Trial};

use crate::processes::{MotoFlavor, MotoServer, TestProcess, start_controller};

/// The control plane of this test binary, shared by all its tests.
#[derive(Clone)]
pub struct TestCluster {
    inner: Arc<Inner>,
}

struct Inner {
    // Held so the servers run until the cluster is dropped at the end of main.
    control_plane: Option<ControlPlane>,
    moto: Option<MotoServer>,
    kubeconfig: PathBuf,
    namespaces_created: AtomicUsize,
    // Each test runs its own Tokio runtime; the control plane was started on this one.
    _runtime: Option<tokio::runtime::Runtime>,
}

impl TestCluster {
    /// Builds (or finds cached) binaries and starts the control plane with the CRDs installed.
    pub fn start() -> anyhow::Result<Self> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kube-bins/build.sh");
        let binaries = match std::env::var_os("IAMRA_TEST_BINS") {
            Some(dir) => ControlPlaneBinaries::in_dir(Path::new(&dir))?,
            None => ControlPlaneBinaries::build_with(&script)?,
        };
        let runtime = tokio::runtime::Runtime::new()?;
        let control_plane = runtime.block_on(ControlPlane::start(&binaries))?;
        let moto = MotoServer::start(control_plane.workdir(), MotoFlavor::DigestAware)?;
        eprintln!(
            "control plane at {} (logs in {})",
            control_plane.url(),
            control_plane.workdir().display()
        );
        Ok(Self {
            inner: Arc::new(Inner {
                kubeconfig: control_plane.kubeconfig_path().to_path_buf(),
                control_plane: Some(control_plane),
                moto: Some(moto),
                namespaces_created: AtomicUsize::new(0),
                _runtime: Some(runtime),
            }),
        })
    }

    /// A placeholder for `--list`, where no test runs.
    pub fn not_started() -> Self {
        Self {
            inner: Arc::new(Inner {
                control_plane: None,
                moto: None,
                kubeconfig: PathBuf::new(),
                namespaces_created: AtomicUsize::new(0),
                _runtime: None,
            }),
        }
    }

    fn control_plane(&self) -> anyhow::Result<&ControlPlane> {
        self.inner
            .control_plane
            .as_ref()
            .context("the control plane was not started")
    }

    /// A cluster-admin client.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        Ok(self.control_plane()?.client().await?)
    }

    /// A client for a named kubeconfig context.
    pub async fn client_for(&self, context: &str) -> anyhow::Result<kube::Client> {
        Ok(self.control_plane()?.client_for(context).await?)
    }

    /// The API server's audit log of writes (JSON lines).
    pub fn audit_log_path(&self) -> anyhow::Result<PathBuf> {
        Ok(self.control_plane()?.audit_log_path())
    }

    /// The API server URL.
    pub fn url(&self) -> anyhow::Result<String> {
        Ok(self.control_plane()?.url().to_string())
    }

    /// The moto server's URL, the KMS endpoint of the tests.
    pub fn kms_endpoint(&self) -> anyhow::Result<String> {
        Ok(self
            .inner
            .moto
            .as_ref()
            .context("moto was not started")?
            .url
            .clone())
    }

    /// A moto server of its own, for a test that needs a particular flavour.
    pub fn start_moto(&self, flavor: MotoFlavor) -> anyhow::Result<MotoServer> {
        MotoServer::start(self.control_plane()?.workdir(), flavor)
    }

    /// Starts an `iamra controller` process that watches `namespace`.
    pub fn start_controller(&self, namespace: &str) -> anyhow::Result<TestProcess> {
        self.start_controller_with(namespace, &[], &[])
    }

    /// Starts an `iamra controller` whose floors (`--min-*`) let a certificate live one minute
    /// and a CRL be re-signed every minute, for the tests that wait for an expiry.
    pub fn start_controller_for_short_lifetimes(
        &self,
        namespace: &str,
    ) -> anyhow::Result<TestProcess> {
        self.start_controller_with(
            namespace,
            &[],
            &[
                ("IAMRA_MIN_CERTIFICATE_DURATION", "1m"),
                ("IAMRA_MIN_RENEW_BEFORE", "10s"),
                ("IAMRA_MIN_RENEWAL_INTERVAL", "10s"),
                ("IAMRA_MIN_CRL_REFRESH_INTERVAL", "1m"),
            ],
        )
    }

    /// Starts an `iamra controller` process with more arguments and environment variables. Its
    /// KMS endpoint (a platform setting) is the shared moto server unless `env` says otherwise,
    /// and the watched namespace is granted every trust anchor.
    pub fn start_controller_with(
        &self,
        namespace: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<TestProcess> {
        let kms_endpoint = self.kms_endpoint()?;
        // The test namespace's Issuers may import into any trust anchor (each test makes its
        // own); `env` can name a narrower grant, which then wins.
        let any_anchor = format!("{namespace}=*");
        let mut environment = vec![
            ("IAMRA_KMS_ENDPOINT", kms_endpoint.as_str()),
            ("IAMRA_TRUST_ANCHOR_GRANTS", any_anchor.as_str()),
        ];
        environment.extend_from_slice(env);
        start_controller(
            &self.inner.kubeconfig,
            namespace,
            self.control_plane()?.workdir(),
            args,
            &environment,
        )
    }

    /// Starts an `iamra controller` whose Roles Anywhere endpoint (CRL imports and injected
    /// sidecars) is `endpoint`, with more arguments.
    pub fn start_controller_for_rolesanywhere(
        &self,
        namespace: &str,
        endpoint: &str,
        args: &[&str],
    ) -> anyhow::Result<TestProcess> {
        self.start_controller_with(
            namespace,
            args,
            &[("IAMRA_ROLESANYWHERE_ENDPOINT", endpoint)],
        )
    }

    /// Starts an `iamra controller` process that watches `namespace` as the identity of another
    /// kubeconfig (a ServiceAccount's token), with more arguments and environment variables.
    pub fn start_controller_as(
        &self,
        kubeconfig: &Path,
        namespace: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<TestProcess> {
        start_controller(
            kubeconfig,
            namespace,
            self.control_plane()?.workdir(),
            args,
            env,
        )
    }

    /// The cluster-admin kubeconfig file.
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.inner.kubeconfig
    }

    /// Creates a fresh namespace named after the test.
    pub async fn namespace(&self, client: &kube::Client, prefix: &str) -> anyhow::Result<String> {
        let index = self.inner.namespaces_created.fetch_add(1, Ordering::SeqCst);
        let name = format!("{}-{index}", prefix.replace('_', "-"));
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(name)
    }
}

/// A test that runs async code against the cluster on a runtime of its own.
pub fn trial<F, Fut>(name: &str, cluster: &TestCluster, test: F) -> Trial
where
    F: FnOnce(TestCluster) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let cluster = cluster.clone();
    Trial::test(name, move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Failed::from(e.to_string()))?;
        runtime
            .block_on(test(cluster))
            .map_err(|e| Failed::from(format!("{e:#}")))
    })
}

/// The sample manifests shipped in `config/samples/`, by file name.
pub fn sample(file_name: &str) -> anyhow::Result<serde_json::Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/samples")
        .join(file_name);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml_ng::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// A dynamic API for the iamra kind named in `object`, in `namespace` (cluster-wide for a
/// ClusterIssuer).
pub fn api_for(
    client: &kube::Client,
    namespace: &str,
    object: &serde_json::Value,
) -> anyhow::Result<Api<kube::api::DynamicObject>> {
    use iamra::api::{
        ClusterIssuer, Issuer, Revocation, RolesAnywhereBinding, WorkloadCertificate,
    };
    use kube::api::ApiResource;
    let kind = object["kind"].as_str().context("object has no kind")?;
    if kind == "ClusterIssuer" {
        let resource = ApiResource::erase::<ClusterIssuer>(&());
        return Ok(Api::all_with(client.clone(), &resource));
    }
    let resource = match kind {
        "Issuer" => ApiResource::erase::<Issuer>(&()),
        "WorkloadCertificate" => ApiResource::erase::<WorkloadCertificate>(&()),
        "Revocation" => ApiResource::erase::<Revocation>(&()),
        "RolesAnywhereBinding" => ApiResource::erase::<RolesAnywhereBinding>(&()),
        other => anyhow::bail!("not an iamra kind: {other}"),
    };
    Ok(Api::namespaced_with(client.clone(), namespace, &resource))
}

/// Polls `check` until it returns Some, failing after `timeout` with `what` and the last state.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: std::time::Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(error) => last_error = Some(error),
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "timed out after {timeout:?} waiting for {what}; last error: {last_error:?}"
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
