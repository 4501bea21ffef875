//! The `iamra` command line: one binary, one subcommand per part.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use iamra::api::{crd_file_name, crd_yaml, custom_resource_definitions};
use iamra::rolesanywhere::credential_process::{self, CredentialProcessArgs};
use iamra::rolesanywhere::emulator::command::{self as emulator, EmulatorArgs};

#[derive(Parser)]
#[command(
    name = "iamra",
    version,
    about = "AWS IAM Roles Anywhere for Kubernetes workloads"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { output_dir } => print_crds(output_dir),
        Command::CredentialProcess(args) => {
            // stdout carries only the credentials JSON; logs (off unless RUST_LOG) go to stderr.
            init_logging("warn");
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
            init_logging("info");
            runtime()?.block_on(emulator::run(&args))?;
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

fn init_logging(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
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
