//! The `iamra` command line: one binary, one subcommand per part.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use iamra::api::parse_duration;
use iamra::api::{crd_file_name, crd_yaml, custom_resource_definitions};
use iamra::controller::{
    KmsKeyGrant, LeaderElectionConfig, PlatformConfig, PlatformMinimums, TrustAnchorGrant,
    default_identity,
};
#[cfg(feature = "dev-tools")]
use iamra::localenv::demo;
use iamra::operator::{OperatorOptions, RunError};
use iamra::rolesanywhere::credential_process::{self, CredentialProcessArgs};
#[cfg(feature = "dev-tools")]
use iamra::rolesanywhere::emulator::command::{self as emulator, EmulatorArgs};
use iamra::sidecar::{self, SidecarArgs};
use iamra::telemetry::{self, LogFormat};
use iamra::webhook::{SidecarImage, WebhookEndpoint, WebhookOptions};

#[derive(Parser)]
#[command(
    name = "iamra",
    version,
    about = "AWS IAM Roles Anywhere for Kubernetes workloads"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        env = "IAMRA_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start; the size of the controller's variant costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the operator against the current kubeconfig (or in-cluster configuration).
    Controller(ControllerArgs),
    /// Run the whole story locally: control plane, Roles Anywhere emulator, controller, a
    /// certificate traded for credentials, then a Revocation refused within seconds.
    #[cfg(feature = "dev-tools")]
    LocalDemo {
        /// Directory holding kube-apiserver and etcd; default: build or reuse the cached ones
        /// with tests/kube-bins/build.sh.
        #[arg(long, env = "IAMRA_TEST_BINS")]
        kube_binaries: Option<PathBuf>,
    },
    /// Print the CustomResourceDefinitions generated from the API types.
    Crds {
        /// Write one file per CRD into this directory instead of printing them.
        #[arg(long)]
        output_dir: Option<PathBuf>,
    },
    /// Print temporary AWS credentials for `credential_process` in ~/.aws/config (a drop-in for
    /// `aws_signing_helper credential-process`).
    CredentialProcess(CredentialProcessArgs),
    /// Run a local IAM Roles Anywhere (control plane + CreateSession) on loopback.
    #[cfg(feature = "dev-tools")]
    RolesanywhereEmulator(EmulatorArgs),
    /// Serve temporary AWS credentials on loopback (container-credentials endpoint and IMDSv2),
    /// refreshed before expiry from the mounted certificate, following its rotation.
    Sidecar(SidecarArgs),
}

/// Where and how the controller runs.
#[derive(clap::Args)]
struct ControllerArgs {
    /// Watch only this namespace instead of the whole cluster.
    #[arg(long, env = "IAMRA_NAMESPACE")]
    namespace: Option<String>,
    /// Reconciles of one kind running at once; one namespace gets at most a quarter of them.
    #[arg(long, env = "IAMRA_CONCURRENCY", default_value_t = iamra::controller::DEFAULT_CONCURRENCY)]
    concurrency: u16,
    /// Address of the HTTP server: CRL distribution points (/crl/<namespace>/<issuer>.crl),
    /// Prometheus metrics (/metrics) and health (/healthz, /readyz).
    #[arg(long, default_value = "0.0.0.0:8080", env = "IAMRA_HTTP_ADDRESS")]
    http_address: std::net::SocketAddr,
    #[command(flatten)]
    webhook: WebhookArgs,
    #[command(flatten)]
    leader_election: LeaderElectionArgs,
    #[command(flatten)]
    platform: PlatformArgs,
    /// Namespace of ClusterIssuers' CA Secrets and CRL ConfigMaps; a Revocation here is the
    /// platform team's and may revoke any serial of a ClusterIssuer. Default: the
    /// controller's own ($POD_NAMESPACE), else `iamra-system`.
    #[arg(long, env = "IAMRA_CLUSTER_RESOURCE_NAMESPACE")]
    cluster_resource_namespace: Option<String>,
    /// Reconcile ClusterIssuers (their CA and CRL). Default: true when watching every
    /// namespace, false with --namespace (cluster-scoped objects belong to one controller).
    #[arg(long, env = "IAMRA_RECONCILE_CLUSTER_ISSUERS", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    reconcile_cluster_issuers: Option<bool>,
    /// How often each CRL imported into Roles Anywhere is checked (GetCrl) and repaired if it
    /// was disabled, deleted or overwritten out of band.
    #[arg(long, env = "IAMRA_CRL_DRIFT_CHECK_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    crl_drift_check_interval: Duration,
}

/// What only the platform team decides: where AWS requests go and which KMS keys namespaces may
/// use. Flags of the controller, so no object a tenant writes can change them.
#[derive(clap::Args)]
struct PlatformArgs {
    /// KMS endpoint URL for every KMS-backed Issuer (a VPC endpoint or an emulator); default:
    /// the regional endpoint (or `AWS_ENDPOINT_URL_KMS`).
    #[arg(long, env = "IAMRA_KMS_ENDPOINT")]
    kms_endpoint: Option<String>,
    /// IAM Roles Anywhere endpoint URL of CRL imports, and of the injected sidecars unless
    /// --sidecar-rolesanywhere-endpoint says otherwise; default: the regional endpoint.
    #[arg(long, env = "IAMRA_ROLESANYWHERE_ENDPOINT")]
    rolesanywhere_endpoint: Option<String>,
    /// `<namespace>=<KMS key id or ARN>`: lets Issuers in that namespace use that key (named
    /// exactly so). Repeat it, or separate grants with commas in the environment variable.
    /// Without a grant a namespaced Issuer cannot use any KMS key.
    #[arg(
        long = "kms-key-grant",
        env = "IAMRA_KMS_KEY_GRANTS",
        value_delimiter = ','
    )]
    kms_key_grants: Vec<KmsKeyGrant>,
    /// `<namespace>=<trust anchor ARN>`: lets Issuers in that namespace import their CRLs into
    /// that trust anchor; `<namespace>=*` into any. Repeat it, or separate grants with commas in
    /// the environment variable. Without a grant a namespaced Issuer's CRL is not imported
    /// (ClusterIssuers need none).
    #[arg(
        long = "trust-anchor-grant",
        env = "IAMRA_TRUST_ANCHOR_GRANTS",
        value_delimiter = ','
    )]
    trust_anchor_grants: Vec<TrustAnchorGrant>,
    /// End the live sessions of a revoked certificate at once: an inline Deny (policy
    /// `iamra-revoked-sessions`) on every role a RolesAnywhereBinding of the certificate names,
    /// for its sessions issued before the revocation. Needs `iam:GetRolePolicy` and
    /// `iam:PutRolePolicy` on those roles.
    #[arg(long, env = "IAMRA_END_LIVE_SESSIONS", num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = clap::ArgAction::Set)]
    end_live_sessions: bool,
    /// IAM endpoint URL (an emulator); default: the global endpoint (or `AWS_ENDPOINT_URL_IAM`).
    #[arg(long, env = "IAMRA_IAM_ENDPOINT")]
    iam_endpoint: Option<String>,
    /// Shortest `spec.duration` of a WorkloadCertificate; a shorter one is refused
    /// (`BelowPlatformMinimum`).
    #[arg(long, env = "IAMRA_MIN_CERTIFICATE_DURATION", default_value = "1h", value_parser = parse_duration)]
    min_certificate_duration: Duration,
    /// Shortest `spec.renewBefore` of a WorkloadCertificate.
    #[arg(long, env = "IAMRA_MIN_RENEW_BEFORE", default_value = "5m", value_parser = parse_duration)]
    min_renew_before: Duration,
    /// Shortest time a certificate is used before it is renewed (`duration - renewBefore`).
    #[arg(long, env = "IAMRA_MIN_RENEWAL_INTERVAL", default_value = "30m", value_parser = parse_duration)]
    min_renewal_interval: Duration,
    /// Shortest `crl.refreshInterval` of an Issuer; a shorter one is raised to it (with a
    /// Warning event), never refused.
    #[arg(long, env = "IAMRA_MIN_CRL_REFRESH_INTERVAL", default_value = "15m", value_parser = parse_duration)]
    min_crl_refresh_interval: Duration,
}

impl PlatformArgs {
    fn config(self) -> PlatformConfig {
        PlatformConfig {
            kms_endpoint: self.kms_endpoint,
            rolesanywhere_endpoint: self.rolesanywhere_endpoint,
            kms_key_grants: self.kms_key_grants.into_iter().collect(),
            trust_anchor_grants: self.trust_anchor_grants.into_iter().collect(),
            end_live_sessions: self.end_live_sessions,
            iam_endpoint: self.iam_endpoint,
            minimums: PlatformMinimums {
                certificate_duration: self.min_certificate_duration,
                renew_before: self.min_renew_before,
                renewal_interval: self.min_renewal_interval,
                crl_refresh_interval: self.min_crl_refresh_interval,
            },
        }
    }
}

/// The pod-injection webhook's flags.
#[derive(clap::Args)]
struct WebhookArgs {
    /// Serve the mutating webhook (HTTPS) on this address; without it no webhook runs.
    #[arg(long, env = "IAMRA_WEBHOOK_ADDRESS")]
    webhook_address: Option<std::net::SocketAddr>,
    /// `<namespace>/<name>` of the Service (port 443) the API server reaches the webhook by.
    #[arg(long, env = "IAMRA_WEBHOOK_SERVICE", conflicts_with = "webhook_url")]
    webhook_service: Option<String>,
    /// https URL the API server reaches the webhook by, for a controller outside the cluster
    /// (`/mutate-pods` is appended).
    #[arg(long, env = "IAMRA_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// Name of the MutatingWebhookConfiguration the controller creates and keeps current.
    #[arg(long, env = "IAMRA_WEBHOOK_CONFIGURATION", default_value = "iamra")]
    webhook_configuration: String,
    /// Namespace of the webhook's CA and serving certificate Secrets. Default: the
    /// controller's own (POD_NAMESPACE), else `default`.
    #[arg(long, env = "IAMRA_WEBHOOK_SECRET_NAMESPACE")]
    webhook_secret_namespace: Option<String>,
    /// Image of the injected credential sidecar (the iamra image itself).
    #[arg(long, env = "IAMRA_SIDECAR_IMAGE", default_value = concat!("iamra:", env!("CARGO_PKG_VERSION")))]
    sidecar_image: String,
    /// ClusterRole that owns the MutatingWebhookConfiguration, so that deleting the installation
    /// (the ClusterRole) deletes the configuration too instead of leaving a webhook that refuses
    /// pods. The Helm chart passes its own.
    #[arg(long, env = "IAMRA_WEBHOOK_OWNER_CLUSTER_ROLE")]
    webhook_owner_cluster_role: Option<String>,
    /// IAM Roles Anywhere endpoint URL the injected sidecars call; default: the controller's
    /// --rolesanywhere-endpoint, else the regional endpoint.
    #[arg(long, env = "IAMRA_SIDECAR_ROLESANYWHERE_ENDPOINT")]
    sidecar_rolesanywhere_endpoint: Option<String>,
    /// Pull policy of the injected sidecar image; default: Kubernetes' own.
    #[arg(long, env = "IAMRA_SIDECAR_IMAGE_PULL_POLICY")]
    sidecar_image_pull_policy: Option<String>,
}

impl WebhookArgs {
    fn options(
        self,
        namespace: Option<String>,
        rolesanywhere_endpoint: Option<String>,
    ) -> anyhow::Result<Option<WebhookOptions>> {
        let Some(address) = self.webhook_address else {
            return Ok(None);
        };
        let endpoint = match (self.webhook_service, self.webhook_url) {
            (Some(service), None) => {
                let (namespace, name) = service
                    .split_once('/')
                    .filter(|(namespace, name)| !namespace.is_empty() && !name.is_empty())
                    .with_context(|| {
                        format!("--webhook-service {service:?} is not <namespace>/<name>")
                    })?;
                WebhookEndpoint::Service {
                    namespace: namespace.into(),
                    name: name.into(),
                }
            }
            (None, Some(url)) if url.starts_with("https://") => WebhookEndpoint::Url(url),
            (None, Some(url)) => anyhow::bail!("--webhook-url {url:?} must be an https URL"),
            _ => anyhow::bail!("--webhook-address needs --webhook-service or --webhook-url"),
        };
        let secret_namespace = self
            .webhook_secret_namespace
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".into());
        Ok(Some(WebhookOptions {
            address,
            endpoint,
            configuration_name: self.webhook_configuration,
            secret_namespace,
            sidecar_image: SidecarImage {
                image: self.sidecar_image,
                pull_policy: self.sidecar_image_pull_policy,
            },
            sidecar_endpoint: self
                .sidecar_rolesanywhere_endpoint
                .or(rolesanywhere_endpoint),
            namespace,
            owner_cluster_role: self.webhook_owner_cluster_role,
        }))
    }
}

/// Leader election among controller replicas. On by default: a second replica started by
/// mistake (or during a rolling update) then waits instead of reconciling alongside the first,
/// and a single process pays only one Lease write every few seconds.
#[derive(clap::Args)]
struct LeaderElectionArgs {
    /// Reconcile only while holding the leader Lease (every replica serves HTTP either way).
    #[arg(
        long = "leader-election",
        env = "IAMRA_LEADER_ELECTION",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    enabled: bool,
    /// Namespace of the Lease; default: $POD_NAMESPACE, else --namespace, else "default".
    #[arg(
        long = "leader-election-namespace",
        env = "IAMRA_LEADER_ELECTION_NAMESPACE"
    )]
    lease_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(
        long = "leader-election-lease-name",
        env = "IAMRA_LEADER_ELECTION_LEASE_NAME",
        default_value = "iamra-controller"
    )]
    lease_name: String,
    /// How long standbys wait after the leader's last renewal before taking over.
    #[arg(long = "leader-election-lease-duration", env = "IAMRA_LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    lease_duration: Duration,
    /// How long the leader keeps reconciling without a successful renewal (then it exits).
    #[arg(long = "leader-election-renew-deadline", env = "IAMRA_LEADER_ELECTION_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    renew_deadline: Duration,
    /// How often candidates try to acquire and the leader renews.
    #[arg(long = "leader-election-retry-period", env = "IAMRA_LEADER_ELECTION_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    retry_period: Duration,
}

impl LeaderElectionArgs {
    fn config(self, watched_namespace: Option<&str>) -> Option<LeaderElectionConfig> {
        self.enabled.then(|| LeaderElectionConfig {
            // Inside a pod the Lease lives beside it; outside, beside what is watched.
            namespace: self
                .lease_namespace
                .or_else(|| {
                    std::env::var("POD_NAMESPACE")
                        .ok()
                        .filter(|n| !n.is_empty())
                })
                .or_else(|| watched_namespace.map(str::to_string))
                .unwrap_or_else(|| "default".into()),
            lease_name: self.lease_name,
            identity: default_identity(),
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
        })
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { output_dir } => print_crds(output_dir),
        #[cfg(feature = "dev-tools")]
        Command::LocalDemo { kube_binaries } => {
            // The API server's start-up answers 500 for a while; the client would log each.
            telemetry::init(cli.log_format, "warn,kube_client=off");
            let source = match kube_binaries {
                Some(dir) => demo::BinariesSource::Directory(dir),
                None => demo::BinariesSource::BuildScript(
                    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/kube-bins/build.sh"),
                ),
            };
            runtime()?.block_on(demo::run(source))?;
            Ok(())
        }
        Command::Controller(args) => {
            telemetry::init(cli.log_format, "info");
            run_controller(args)
        }
        Command::CredentialProcess(args) => {
            // stdout carries only the credentials JSON; logs (off unless RUST_LOG) go to stderr.
            telemetry::init(cli.log_format, "warn");
            // One request: a single-threaded runtime starts faster and spawns no worker threads.
            let json = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?
                .block_on(credential_process::run(&args));
            match json {
                Ok(json) => {
                    println!("{json}");
                    Ok(())
                }
                Err(error) => {
                    eprintln!("iamra credential-process: {error}");
                    std::process::exit(1);
                }
            }
        }
        #[cfg(feature = "dev-tools")]
        Command::RolesanywhereEmulator(args) => {
            telemetry::init(cli.log_format, "info");
            runtime()?.block_on(emulator::run(&args))?;
            Ok(())
        }
        Command::Sidecar(args) => {
            telemetry::init(cli.log_format, "info");
            // One thread is plenty for a handful of loopback requests and one CreateSession an
            // hour, and keeps the per-pod memory small.
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?
                .block_on(sidecar::run(args))?;
            Ok(())
        }
    }
}

/// `iamra controller`: until a shutdown signal, or exits at once when leadership is lost.
fn run_controller(args: ControllerArgs) -> anyhow::Result<()> {
    let ControllerArgs {
        namespace,
        concurrency,
        http_address,
        webhook,
        leader_election,
        platform,
        cluster_resource_namespace,
        reconcile_cluster_issuers,
        crl_drift_check_interval,
    } = args;
    let runtime = runtime()?;
    let result = runtime.block_on(async {
        let mut config = kube::Config::infer()
            .await
            .context("no usable kubeconfig or in-cluster configuration")?;
        // Which replica made a request, in the API server's audit log.
        config.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_str(&format!(
                "iamra/{} ({})",
                env!("CARGO_PKG_VERSION"),
                iamra::controller::default_identity()
            ))
            .context("the replica's identity (POD_NAME or hostname) is not a header value")?,
        ));
        let client = kube::Client::try_from(config)
            .context("no usable kubeconfig or in-cluster configuration")?;
        let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(iamra::controller::aws_timeouts())
            .load()
            .await;
        tracing::info!(
            namespace = namespace.as_deref().unwrap_or("<all>"),
            "controller starting"
        );
        let platform = platform.config();
        let webhook =
            webhook.options(namespace.clone(), platform.rolesanywhere_endpoint.clone())?;
        let cluster_resource_namespace = cluster_resource_namespace
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| iamra::controller::DEFAULT_CLUSTER_RESOURCE_NAMESPACE.to_string());
        let options = OperatorOptions {
            reconcile_cluster_issuers: reconcile_cluster_issuers.unwrap_or(namespace.is_none()),
            cluster_resource_namespace,
            webhook,
            leader_election: leader_election.config(namespace.as_deref()),
            namespace,
            concurrency,
            http_address: Some(http_address),
            crl_drift_check_interval: Some(crl_drift_check_interval),
            platform,
        };
        match iamra::operator::run(client, aws, options).await {
            Ok(()) => {
                tracing::info!("controller stopped");
                Ok(())
            }
            // Exit at once: no reconcile of this replica may outlive its leadership,
            // and tearing the runtime down would wait for in-flight KMS calls.
            // Kubernetes restarts the container, which then campaigns again.
            Err(RunError::LeaderElection(error)) => {
                tracing::error!(%error, "stopping");
                std::process::exit(1);
            }
            Err(error) => Err(error.into()),
        }
    });
    // A KMS signature runs on a blocking thread; waiting for one that hangs would keep
    // the process alive past SIGTERM.
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn print_crds(output_dir: Option<PathBuf>) -> anyhow::Result<()> {
    for crd in custom_resource_definitions() {
        let yaml = crd_yaml(&crd)?;
        match &output_dir {
            Some(dir) => {
                let path = dir.join(crd_file_name(&crd));
                std::fs::write(&path, yaml)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            None => print!("---\n{yaml}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn leader_election_is_on_unless_turned_off() {
        let enabled = |args: &[&str]| {
            let cli = super::Cli::try_parse_from([&["iamra", "controller"], args].concat())
                .expect("valid arguments");
            match cli.command {
                super::Command::Controller(args) => args.leader_election.enabled,
                _ => unreachable!("parsed the controller subcommand"),
            }
        };
        assert!(enabled(&[]));
        assert!(enabled(&["--leader-election"]));
        assert!(!enabled(&["--leader-election=false"]));
    }
}
