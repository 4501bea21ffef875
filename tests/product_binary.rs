//! The product binary, built as the Dockerfile builds it (`--no-default-features`), carries no
//! development tooling: no `iamra local-demo`, no Roles Anywhere emulator, no path to a script of
//! the source tree. Built in debug here (the features are what matter, and a release build would
//! take as long as the rest of the suite).
//!
//! It is built in the tests' own target directory, so it reuses their compiled dependencies
//! (a target directory of its own meant a second cold build of every dependency: 17 minutes and
//! 4 GiB of CI). That build links its binary where the other tests find theirs, so the
//! development binary is kept aside and put back before the test ends, also when it fails. Cargo
//! runs test binaries one after another, so none runs in between.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

/// Puts the development binary back in place when dropped.
struct RestoreDevelopmentBinary {
    kept: PathBuf,
    place: PathBuf,
}

impl Drop for RestoreDevelopmentBinary {
    fn drop(&mut self) {
        if let Err(error) = std::fs::rename(&self.kept, &self.place) {
            eprintln!(
                "the development binary was not put back from {}: {error}",
                self.kept.display()
            );
        }
    }
}

#[test]
fn the_product_binary_has_no_development_tooling() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let development_binary = PathBuf::from(env!("CARGO_BIN_EXE_iamra"));
    let binary = development_binary.with_file_name("iamra-product-check");
    {
        let kept = development_binary.with_file_name("iamra-development-kept");
        std::fs::copy(&development_binary, &kept)
            .with_context(|| format!("keeping the development binary as {}", kept.display()))?;
        let _restore = RestoreDevelopmentBinary {
            kept,
            place: development_binary.clone(),
        };
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--locked",
                "--no-default-features",
                "--bin",
                "iamra",
            ])
            .current_dir(root)
            .status()
            .context("running cargo build")?;
        anyhow::ensure!(status.success(), "cargo build --no-default-features failed");
        std::fs::copy(&development_binary, &binary)
            .with_context(|| format!("copying the product binary to {}", binary.display()))?;
    }

    let help = Command::new(&binary).arg("--help").output()?;
    let help = String::from_utf8_lossy(&help.stdout);
    for product in ["controller", "sidecar", "credential-process", "crds"] {
        anyhow::ensure!(help.contains(product), "no `{product}` in:\n{help}");
    }
    for tooling in ["local-demo", "rolesanywhere-emulator"] {
        anyhow::ensure!(!help.contains(tooling), "`{tooling}` listed in:\n{help}");
        let run = Command::new(&binary).arg(tooling).output()?;
        let stderr = String::from_utf8_lossy(&run.stderr);
        anyhow::ensure!(
            !run.status.success() && stderr.contains("unrecognized subcommand"),
            "`iamra {tooling}` is there: {stderr}"
        );
    }
    let bytes = std::fs::read(&binary)?;
    for text in ["tests/kube-bins/build.sh", "iamra-local-demo"] {
        anyhow::ensure!(
            !bytes.windows(text.len()).any(|w| w == text.as_bytes()),
            "the product binary contains {text:?}"
        );
    }
    // The same check sees them in the development build, so it can fail.
    // (It also shows the development binary is back in place.)
    let development = std::fs::read(&development_binary)?;
    anyhow::ensure!(
        development
            .windows("tests/kube-bins/build.sh".len())
            .any(|w| w == b"tests/kube-bins/build.sh"),
        "the development binary has no local-demo script path: the check would prove nothing"
    );
    Ok(())
}
