//! The `iamra` command line: one binary, one subcommand per part.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use iamra::api::{crd_file_name, crd_yaml, custom_resource_definitions};
use iamra::controller::ControllerOptions;
use iamra::localenv::demo;
use iamra::rolesanywhere::credential_process::{self, CredentialProcessArgs};
use iamra::rolesanywhere::emulator::command::{self as emulator, EmulatorArgs};
use iamra::sidecar::{self, SidecarArgs};
use iamra::telemetry::{self, LogFormat};

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

#[derive(Subcommand)]
enum Command {
    /// Run the operator against the current kubeconfig (or in-cluster configuration).
    Controller {
        /// Watch only this namespace instead of the whole cluster.
        #[arg(long, env = "IAMRA_NAMESPACE")]
        namespace: Option<String>,
        /// Reconciles of one kind running at once.
        #[arg(long, default_value_t = 16)]
        concurrency: u16,
        /// Address of the HTTP server: CRL distribution points (/crl/<namespace>/<issuer>.crl)
        /// and health (/healthz, /readyz).
        #[arg(long, default_value = "0.0.0.0:8080", env = "IAMRA_HTTP_ADDRESS")]
        http_address: std::net::SocketAddr,
    },
    /// Run the whole story locally: control plane, Roles Anywhere emulator, controller, a
    /// certificate traded for credentials, then a Revocation refused within seconds.
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
    RolesanywhereEmulator(EmulatorArgs),
    /// Serve temporary AWS credentials on loopback (container-credentials endpoint and IMDSv2),
    /// refreshed before expiry from the mounted certificate, following its rotation.
    Sidecar(SidecarArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { output_dir } => print_crds(output_dir),
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
        Command::Controller {
            namespace,
            concurrency,
            http_address,
        } => {
            telemetry::init(cli.log_format, "info");
            runtime()?.block_on(async {
                let client = kube::Client::try_default()
                    .await
                    .context("no usable kubeconfig or in-cluster configuration")?;
                let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                tracing::info!(
                    namespace = namespace.as_deref().unwrap_or("<all>"),
                    "controller starting"
                );
                let options = ControllerOptions {
                    namespace,
                    concurrency,
                    http_address: Some(http_address),
                };
                iamra::controller::run(client, aws, options)
                    .await
                    .context("the controller's HTTP server could not start")?;
                tracing::info!("controller stopped");
                Ok(())
            })
        }
        Command::CredentialProcess(args) => {
            // stdout carries only the credentials JSON; logs (off unless RUST_LOG) go to stderr.
            telemetry::init(cli.log_format, "warn");
            let json = runtime()?.block_on(credential_process::run(&args));
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
