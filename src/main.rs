//! The `iamra` command line: one binary, one subcommand per part.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use iamra::api::{crd_file_name, crd_yaml, custom_resource_definitions};

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { output_dir } => print_crds(output_dir),
    }
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
