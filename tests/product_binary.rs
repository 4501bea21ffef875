//! The product binary, built as the Dockerfile builds it (`--no-default-features`), carries no
//! development tooling: no `iamra local-demo`, no Roles Anywhere emulator, no path to a script of
//! the source tree. Built in debug here (the features are what matter, and a release build would
//! take as long as the rest of the suite), in a target directory of its own so the binary the other
//! tests run is left alone.

use std::path::Path;
use std::process::Command;

use anyhow::Context;

#[test]
fn the_product_binary_has_no_development_tooling() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target_dir = root.join("target").join("product");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--locked",
            "--no-default-features",
            "--bin",
            "iamra",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(root)
        .status()
        .context("running cargo build")?;
    anyhow::ensure!(status.success(), "cargo build --no-default-features failed");
    let binary = target_dir.join("debug").join("iamra");

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
    let development = std::fs::read(env!("CARGO_BIN_EXE_iamra"))?;
    anyhow::ensure!(
        development
            .windows("tests/kube-bins/build.sh".len())
            .any(|w| w == b"tests/kube-bins/build.sh"),
        "the development binary has no local-demo script path: the check would prove nothing"
    );
    Ok(())
}
