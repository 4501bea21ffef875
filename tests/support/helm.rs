//! The helm binary the chart tests use, and running it. Shared by `tests/chart.rs` and
//! `tests/cluster/chart.rs` (included with `#[path]`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

/// The helm release `tests/helm/build.sh` builds (keep the two in step).
pub const HELM_VERSION: &str = "v3.19.0";

/// The chart, in the repository.
pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/iamra")
}

/// `$IAMRA_HELM`, else the binary `tests/helm/build.sh` caches. Missing is an error that says
/// how to get it: the chart tests never pass by skipping.
pub fn helm_binary() -> anyhow::Result<PathBuf> {
    cached_tool("IAMRA_HELM", &format!("helm-{HELM_VERSION}"), "helm")
}

/// `$<override_env>`, else tool `name` as a tests/*/build.sh script caches it in `dir` under
/// `$IAMRA_TEST_BINS_ROOT` (default ~/.cache/iamra-test-bins). Missing is an error that says
/// how to get it.
pub fn cached_tool(override_env: &str, dir: &str, name: &str) -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os(override_env) {
        Some(path) => PathBuf::from(path),
        None => {
            let root = match std::env::var_os("IAMRA_TEST_BINS_ROOT") {
                Some(root) => PathBuf::from(root),
                None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?)
                    .join(".cache/iamra-test-bins"),
            };
            root.join(dir).join(name)
        }
    };
    anyhow::ensure!(
        path.is_file(),
        "{name} not found at {}: run `bash tests/install-deps.sh` (builds it from its Go module) \
         or set {override_env} to a {name} binary",
        path.display()
    );
    Ok(path)
}

/// Runs helm with `args`; its stdout on success, an error carrying stderr otherwise.
pub fn helm(args: &[&str]) -> anyhow::Result<String> {
    let output = helm_output(args)?;
    anyhow::ensure!(
        output.status.success(),
        "helm {} failed ({}):\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).context("helm printed something other than UTF-8")
}

/// Runs helm with `args` and returns what it did, success or not.
pub fn helm_output(args: &[&str]) -> anyhow::Result<std::process::Output> {
    let binary = helm_binary()?;
    Command::new(&binary)
        .args(args)
        // Keep helm away from the user's helm configuration and caches.
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("iamra-tests-helm/cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("iamra-tests-helm/config"),
        )
        .env(
            "HELM_DATA_HOME",
            std::env::temp_dir().join("iamra-tests-helm/data"),
        )
        .output()
        .with_context(|| format!("running {}", binary.display()))
}

/// `helm template <release> charts/iamra --namespace <namespace>` plus `extra` arguments,
/// parsed into one JSON value per rendered object.
pub fn render(
    release: &str,
    namespace: &str,
    extra: &[&str],
) -> anyhow::Result<Vec<serde_json::Value>> {
    let chart = chart_dir();
    let chart = chart.to_str().context("the chart's path is not UTF-8")?;
    let mut args = vec!["template", release, chart, "--namespace", namespace];
    args.extend_from_slice(extra);
    let yaml = helm(&args)?;
    parse_documents(&yaml)
}

/// Every non-empty document of a multi-document YAML stream.
pub fn parse_documents(yaml: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    use serde::Deserialize;
    let mut objects = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(yaml) {
        let value = serde_json::Value::deserialize(document).context("parsing rendered YAML")?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

/// The one rendered object of `kind`, failing when there is none or more than one.
#[allow(dead_code)] // Used by some of the test binaries that include this file.
pub fn only_of_kind<'a>(
    objects: &'a [serde_json::Value],
    kind: &str,
) -> anyhow::Result<&'a serde_json::Value> {
    let mut matching = objects.iter().filter(|object| object["kind"] == kind);
    let first = matching
        .next()
        .with_context(|| format!("the chart rendered no {kind}"))?;
    anyhow::ensure!(
        matching.next().is_none(),
        "the chart rendered more than one {kind}"
    );
    Ok(first)
}
