//! `.github/workflows/kind-e2e.yaml` cannot run here (no container engine), so what it relies
//! on is checked against the repository: it parses, runs on push and pull requests, applies
//! samples that exist, and waits for the names those samples, the chart and the controller
//! really use. (.ci/run also runs actionlint on it.)

#[path = "support/helm.rs"]
mod helm;

use std::path::Path;

use anyhow::Context;
use serde_json::Value;

fn repository_file(name: &str) -> anyhow::Result<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

fn workflow() -> anyhow::Result<(String, Value)> {
    let text = repository_file(".github/workflows/kind-e2e.yaml")?;
    let parsed: Value = serde_yaml_ng::from_str(&text).context("the workflow is not YAML")?;
    Ok((text, parsed))
}

/// All `run:` scripts of the workflow, joined.
fn scripts(parsed: &Value) -> String {
    parsed["jobs"]
        .as_object()
        .into_iter()
        .flat_map(|jobs| jobs.values())
        .flat_map(|job| job["steps"].as_array().cloned().unwrap_or_default())
        .filter_map(|step| step["run"].as_str().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("\n")
}

fn sample(name: &str) -> anyhow::Result<Value> {
    Ok(serde_yaml_ng::from_str(&repository_file(&format!(
        "config/samples/{name}"
    ))?)?)
}

#[test]
fn runs_on_push_and_pull_request() -> anyhow::Result<()> {
    let (_, parsed) = workflow()?;
    let triggers = parsed["on"].as_object().context("no `on:` map")?;
    for event in ["push", "pull_request"] {
        anyhow::ensure!(triggers.contains_key(event), "not triggered by {event}");
    }
    let jobs = parsed["jobs"].as_object().context("no jobs")?;
    anyhow::ensure!(!jobs.is_empty(), "no jobs");
    for (name, job) in jobs {
        anyhow::ensure!(job["timeout-minutes"].is_u64(), "job {name} has no timeout");
    }
    Ok(())
}

#[test]
fn applies_samples_that_exist_and_the_chart() -> anyhow::Result<()> {
    let (_, parsed) = workflow()?;
    let scripts = scripts(&parsed);
    let mut applied = 0;
    for word in scripts.split_whitespace() {
        if let Some(file) = word.strip_prefix("config/samples/") {
            anyhow::ensure!(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("config/samples")
                    .join(file)
                    .is_file(),
                "the workflow applies config/samples/{file}, which does not exist"
            );
            applied += 1;
        }
    }
    anyhow::ensure!(applied >= 4, "the workflow applies only {applied} samples");
    for needed in [
        "helm install iamra charts/iamra",
        "image.pullPolicy=Never",
        "kind load docker-image",
        "docker build",
        "bash tests/helm/build.sh",
    ] {
        anyhow::ensure!(
            scripts.contains(needed),
            "the workflow does not run `{needed}`"
        );
    }
    Ok(())
}

/// The names the workflow waits for are the samples', the chart's and the controller's.
#[test]
fn waits_for_the_names_the_samples_and_the_chart_use() -> anyhow::Result<()> {
    let (_, parsed) = workflow()?;
    let scripts = scripts(&parsed);
    let issuer = sample("issuer-local.yaml")?;
    let issuer_name = issuer["metadata"]["name"].as_str().context("issuer name")?;
    let certificate = sample("workloadcertificate.yaml")?;
    let certificate_name = certificate["metadata"]["name"]
        .as_str()
        .context("certificate name")?;
    let secret_name = certificate["spec"]["secretName"]
        .as_str()
        .context("secretName")?;
    let revocation = sample("revocation.yaml")?;
    anyhow::ensure!(
        revocation["spec"]["certificateRef"]["name"] == certificate_name,
        "the revocation sample does not revoke the certificate sample"
    );
    let binding = sample("rolesanywherebinding.yaml")?;
    let app_label = binding["spec"]["selector"]["matchLabels"]["app"]
        .as_str()
        .context("the binding sample selects no app label")?;
    let crl_config_map = iamra::controller::crl_config_map_name(issuer_name);
    let crl_key = iamra::controller::CRL_PEM_KEY.replace('.', "\\.");
    for expected in [
        format!("issuer/{issuer_name} --for=condition=Ready"),
        format!("workloadcertificate/{certificate_name} --for=condition=Ready"),
        format!("get secret {secret_name}"),
        format!("--labels=app={app_label}"),
        format!("get configmap {crl_config_map}"),
        format!("{{.data.{crl_key}}}"),
        "iamra-credentials".to_string(),
        "iamra.dev/injection=enabled".to_string(),
    ] {
        anyhow::ensure!(
            scripts.contains(&expected),
            "the workflow does not use `{expected}`"
        );
    }

    // The release "iamra" names its Deployment and webhook configuration "iamra".
    let objects = helm::render("iamra", "iamra-system", &[])?;
    let deployment = helm::only_of_kind(&objects, "Deployment")?;
    let deployment_name = deployment["metadata"]["name"]
        .as_str()
        .context("Deployment name")?;
    anyhow::ensure!(
        scripts.contains(&format!("deployment/{deployment_name}")),
        "the workflow does not read the logs of deployment/{deployment_name}"
    );
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .context("no args")?;
    let webhook_configuration = args
        .iter()
        .filter_map(Value::as_str)
        .find_map(|arg| arg.strip_prefix("--webhook-configuration="))
        .context("no --webhook-configuration")?;
    anyhow::ensure!(
        scripts.contains(&format!(
            "mutatingwebhookconfiguration/{webhook_configuration}"
        )),
        "the workflow waits for another webhook configuration than {webhook_configuration}"
    );
    Ok(())
}
