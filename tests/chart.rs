//! The Helm chart (`charts/iamra`) without a cluster: `helm lint`, the values schema, what the
//! templates render and how the objects refer to each other, and the plain manifests in
//! `config/default` being what the chart renders. `tests/cluster/chart.rs` applies the rendered
//! chart to a real API server.

#[path = "support/helm.rs"]
mod helm;

use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

use helm::{chart_dir, helm, helm_output, only_of_kind, render};

const NAMESPACE: &str = "iamra-system";
const RELEASE: &str = "iamra";

/// Values that switch on everything optional, so lint and render see every template branch.
const FULL_VALUES: &[&str] = &[
    "--set",
    "issuer.create=true",
    "--set",
    "issuer.rolesAnywhere.trustAnchorArn=arn:aws:rolesanywhere:eu-west-1:111122223333:trust-anchor/0e4a1f5a-5c3b-4a9c-8a63-2f7d0c1b9e11",
    "--set",
    "aws.region=eu-west-1",
    "--set",
    "aws.endpoints.kms=http://kms.example:4566",
    "--set",
    "aws.endpoints.rolesanywhere=http://rolesanywhere.example:4566",
    "--set",
    "aws.endpoints.sts=http://sts.example:4566",
    "--set",
    "aws.endpoints.all=http://aws.example:4566",
    "--set",
    "logFormat=json",
    "--set",
    "logLevel=info\\,iamra=debug",
    "--set",
    "image.tag=1.2.3",
    "--set",
    "sidecarImage.repository=registry.example/iamra-sidecar",
    "--set",
    "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::111122223333:role/iamra",
    "--set",
    "nodeSelector.kubernetes\\.io/os=linux",
    "--set",
    "tolerations[0].key=dedicated",
    "--set",
    "tolerations[0].operator=Exists",
    "--set",
    "extraEnv[0].name=EXTRA",
    "--set",
    "extraEnv[0].value=yes",
    "--set",
    "podAnnotations.example\\.com/a=b",
    "--set",
    "imagePullSecrets[0].name=registry",
    "--set",
    "priorityClassName=system-cluster-critical",
];

fn chart_path() -> anyhow::Result<String> {
    chart_dir()
        .to_str()
        .map(str::to_owned)
        .context("the chart's path is not UTF-8")
}

fn lint(extra: &[&str]) -> anyhow::Result<()> {
    let chart = chart_path()?;
    let mut args = vec!["lint", "--strict", chart.as_str()];
    args.extend_from_slice(extra);
    let output = helm(&args)?;
    anyhow::ensure!(
        output.contains("0 chart(s) failed"),
        "helm lint did not report success:\n{output}"
    );
    Ok(())
}

#[test]
fn lint_passes_with_default_values() -> anyhow::Result<()> {
    lint(&[])
}

#[test]
fn lint_passes_with_every_option_on() -> anyhow::Result<()> {
    lint(FULL_VALUES)
}

/// The schema is in force: unknown keys and wrong values stop `helm template` (and install).
#[test]
fn schema_refuses_unknown_and_invalid_values() -> anyhow::Result<()> {
    let chart = chart_path()?;
    let cases: &[(&str, &str)] = &[
        ("replicaCont=2", "replicaCont"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("logFormat=xml", "logFormat"),
        ("replicaCount=0", "replicaCount"),
        ("issuer.keyAlgorithm=EcdsaP521", "keyAlgorithm"),
        ("issuer.duration=ten years", "duration"),
        ("aws.endpoints.kms=kms.example", "kms"),
        ("webhook.port=443", "port"),
    ];
    for (value, named) in cases {
        let output = helm_output(&["template", RELEASE, &chart, "--set", value])?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        anyhow::ensure!(
            !output.status.success(),
            "helm template accepted --set {value}"
        );
        anyhow::ensure!(
            stderr.contains(named),
            "helm template refused --set {value} without naming {named}: {stderr}"
        );
    }
    Ok(())
}

/// Every key of values.yaml is in the schema with a description (so the schema documents the
/// values), and every schema property has a default in values.yaml.
#[test]
fn schema_covers_every_value() -> anyhow::Result<()> {
    let dir = chart_dir();
    let values: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("values.yaml"))?)?;
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("values.schema.json"))?)?;
    let mut problems = Vec::new();
    compare_with_schema("", &values, &schema, &mut problems);
    anyhow::ensure!(
        problems.is_empty(),
        "values.yaml vs values.schema.json:\n{}",
        problems.join("\n")
    );
    Ok(())
}

/// Objects whose keys are all optional: documented in the schema, given only where wanted.
const OPTIONAL_KEYS: &[&str] = &[".issuer.rolesAnywhere", ".issuer.subject", ".resources"];

fn compare_with_schema(path: &str, value: &Value, schema: &Value, problems: &mut Vec<String>) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return; // A free-form object (resources, affinity, ...): Kubernetes validates it.
    };
    let Some(object) = value.as_object() else {
        problems.push(format!(
            "{path}: the schema has properties but the value is not an object"
        ));
        return;
    };
    for (key, child) in object {
        let child_path = format!("{path}.{key}");
        match properties.get(key) {
            None => problems.push(format!("{child_path}: not in the schema")),
            Some(child_schema) => {
                if child_schema
                    .get("description")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    problems.push(format!("{child_path}: no description in the schema"));
                }
                compare_with_schema(&child_path, child, child_schema, problems);
            }
        }
    }
    for key in properties.keys() {
        if !object.contains_key(key) && !OPTIONAL_KEYS.contains(&path) {
            problems.push(format!(
                "{path}.{key}: in the schema but has no default in values.yaml"
            ));
        }
    }
}

fn deployment_container(objects: &[Value]) -> anyhow::Result<&Value> {
    let deployment = only_of_kind(objects, "Deployment")?;
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .context("the Deployment has no containers")?;
    anyhow::ensure!(
        containers.len() == 1,
        "expected one container, got {}",
        containers.len()
    );
    Ok(&containers[0])
}

fn args_of(container: &Value) -> Vec<&str> {
    container["args"]
        .as_array()
        .map(|args| args.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The value of `--flag=value` in `args`.
fn flag<'a>(args: &[&'a str], name: &str) -> Option<&'a str> {
    let prefix = format!("{name}=");
    args.iter()
        .find_map(|arg| arg.strip_prefix(prefix.as_str()))
}

fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()?
        .iter()
        .find(|env| env["name"] == name)
}

#[test]
fn deployment_runs_two_hardened_replicas_with_leader_election() -> anyhow::Result<()> {
    let objects = render(RELEASE, NAMESPACE, &[])?;
    let deployment = only_of_kind(&objects, "Deployment")?;
    anyhow::ensure!(
        deployment["spec"]["replicas"] == 2,
        "replicas: {}",
        deployment["spec"]["replicas"]
    );
    let pod = &deployment["spec"]["template"]["spec"];
    anyhow::ensure!(
        pod["securityContext"]["runAsNonRoot"] == true,
        "pod runAsNonRoot: {}",
        pod["securityContext"]
    );
    anyhow::ensure!(
        pod["securityContext"]["runAsUser"] == 65532,
        "pod runAsUser: {}",
        pod["securityContext"]
    );
    anyhow::ensure!(
        pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault",
        "pod seccompProfile: {}",
        pod["securityContext"]
    );
    let container = deployment_container(&objects)?;
    let security = &container["securityContext"];
    anyhow::ensure!(
        security["allowPrivilegeEscalation"] == false
            && security["readOnlyRootFilesystem"] == true
            && security["runAsNonRoot"] == true
            && security["capabilities"]["drop"] == json!(["ALL"])
            && security["seccompProfile"]["type"] == "RuntimeDefault",
        "container securityContext: {security}"
    );
    anyhow::ensure!(
        container["image"] == "iamra:0.1.0",
        "image: {}",
        container["image"]
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        anyhow::ensure!(
            container[probe]["httpGet"] == json!({"path": path, "port": "http"}),
            "{probe}: {}",
            container[probe]
        );
    }
    let ports = container["ports"]
        .as_array()
        .context("no container ports")?;
    for (name, number) in [("webhook", 9443), ("http", 8080)] {
        anyhow::ensure!(
            ports
                .iter()
                .any(|port| port["name"] == name && port["containerPort"] == number),
            "no container port {name}={number}: {ports:?}"
        );
    }
    let args = args_of(container);
    anyhow::ensure!(args.first() == Some(&"controller"), "args: {args:?}");
    anyhow::ensure!(
        args.contains(&"--leader-election"),
        "no --leader-election: {args:?}"
    );
    anyhow::ensure!(
        flag(&args, "--leader-election-namespace") == Some(NAMESPACE),
        "args: {args:?}"
    );
    anyhow::ensure!(
        flag(&args, "--log-format") == Some("text"),
        "args: {args:?}"
    );
    anyhow::ensure!(
        flag(&args, "--http-address") == Some("0.0.0.0:8080"),
        "args: {args:?}"
    );
    anyhow::ensure!(
        flag(&args, "--webhook-address") == Some("0.0.0.0:9443"),
        "args: {args:?}"
    );
    anyhow::ensure!(
        flag(&args, "--sidecar-image") == Some("iamra:0.1.0"),
        "the sidecar image defaults to the controller's: {args:?}"
    );
    anyhow::ensure!(
        flag(&args, "--sidecar-image-pull-policy") == Some("IfNotPresent"),
        "the sidecar pull policy defaults to the controller's: {args:?}"
    );
    for (variable, field) in [
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_NAME", "metadata.name"),
    ] {
        let env = env_value(container, variable).with_context(|| format!("no {variable}"))?;
        anyhow::ensure!(
            env["valueFrom"]["fieldRef"]["fieldPath"] == field,
            "{variable}: {env}"
        );
    }
    Ok(())
}

/// The names the controller is told on its command line are the names of the objects the chart
/// creates and grants access to.
#[test]
fn flags_name_the_charts_objects() -> anyhow::Result<()> {
    // A release name without "iamra" in it, so the names are prefixed.
    let objects = render("platform", "security", &[])?;
    let args = args_of(deployment_container(&objects)?);
    let service = only_of_kind(&objects, "Service")?;
    let service_name = service["metadata"]["name"]
        .as_str()
        .context("Service without name")?;
    anyhow::ensure!(
        service_name == "platform-iamra",
        "Service name: {service_name}"
    );
    anyhow::ensure!(
        flag(&args, "--webhook-service") == Some(&format!("security/{service_name}")),
        "--webhook-service does not name the Service: {args:?}"
    );
    // The controller's ClusterRole: the one the chart binds (the tenant roles are aggregated).
    let binding = only_of_kind(&objects, "ClusterRoleBinding")?;
    let cluster_role = objects
        .iter()
        .find(|object| {
            object["kind"] == "ClusterRole"
                && object["metadata"]["name"] == binding["roleRef"]["name"]
        })
        .context("no ClusterRole of the ClusterRoleBinding")?;
    let webhook_configuration =
        flag(&args, "--webhook-configuration").context("no --webhook-configuration")?;
    anyhow::ensure!(
        rule_names(cluster_role, "mutatingwebhookconfigurations")
            == vec![webhook_configuration.to_string()],
        "the ClusterRole's webhook configuration names differ from --webhook-configuration={webhook_configuration}: {cluster_role}"
    );
    let role = only_of_kind(&objects, "Role")?;
    anyhow::ensure!(
        role["metadata"]["namespace"] == "security",
        "Role namespace: {}",
        role["metadata"]
    );
    let lease =
        flag(&args, "--leader-election-lease-name").context("no --leader-election-lease-name")?;
    anyhow::ensure!(
        rule_names(role, "leases") == vec![lease.to_string()],
        "the Role's lease names differ from --leader-election-lease-name={lease}: {role}"
    );
    let service_account = only_of_kind(&objects, "ServiceAccount")?;
    let deployment = only_of_kind(&objects, "Deployment")?;
    anyhow::ensure!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"]
            == service_account["metadata"]["name"],
        "the Deployment does not run as the chart's ServiceAccount"
    );
    for binding_kind in ["ClusterRoleBinding", "RoleBinding"] {
        let binding = only_of_kind(&objects, binding_kind)?;
        anyhow::ensure!(
            binding["subjects"]
                == json!([{
                    "kind": "ServiceAccount",
                    "name": service_account["metadata"]["name"],
                    "namespace": "security",
                }]),
            "{binding_kind} subjects: {}",
            binding["subjects"]
        );
    }
    // The Service and the PodDisruptionBudget select exactly the Deployment's pods.
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    anyhow::ensure!(
        service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"],
        "Service selector"
    );
    anyhow::ensure!(
        service["spec"]["selector"] == *pod_labels,
        "Service selector vs pod labels"
    );
    let budget = only_of_kind(&objects, "PodDisruptionBudget")?;
    anyhow::ensure!(
        budget["spec"]["minAvailable"] == 1,
        "minAvailable: {}",
        budget["spec"]
    );
    anyhow::ensure!(
        budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"],
        "PodDisruptionBudget selector"
    );
    Ok(())
}

/// resourceNames of the rules on `resource` that carry any (sorted, deduplicated).
fn rule_names(role: &Value, resource: &str) -> Vec<String> {
    let mut names: Vec<String> = role["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|rule| {
            rule["resources"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r == resource))
        })
        .flat_map(|rule| {
            rule["resourceNames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|name| name.as_str().map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn service_exposes_the_webhook_on_443_and_http_on_8080() -> anyhow::Result<()> {
    let objects = render(RELEASE, NAMESPACE, &[])?;
    let service = only_of_kind(&objects, "Service")?;
    let ports = service["spec"]["ports"]
        .as_array()
        .context("no Service ports")?;
    for (name, port) in [("webhook", 443), ("http", 8080)] {
        anyhow::ensure!(
            ports
                .iter()
                .any(|p| p["name"] == name && p["port"] == port && p["targetPort"] == name),
            "no Service port {name}: {port} -> {name}: {ports:?}"
        );
    }
    Ok(())
}

/// The controller owns the MutatingWebhookConfiguration (it writes the caBundle); a copy in the
/// chart would be fought over by Helm and the controller.
#[test]
fn chart_ships_no_webhook_configuration() -> anyhow::Result<()> {
    for values in [&[][..], FULL_VALUES] {
        let objects = render(RELEASE, NAMESPACE, values)?;
        let kinds: Vec<&Value> = objects.iter().map(|object| &object["kind"]).collect();
        anyhow::ensure!(
            !kinds
                .iter()
                .any(|kind| **kind == "MutatingWebhookConfiguration"),
            "the chart renders a MutatingWebhookConfiguration: {kinds:?}"
        );
    }
    Ok(())
}

#[test]
fn values_reach_the_deployment() -> anyhow::Result<()> {
    let objects = render(RELEASE, NAMESPACE, FULL_VALUES)?;
    let container = deployment_container(&objects)?;
    anyhow::ensure!(
        container["image"] == "iamra:1.2.3",
        "image: {}",
        container["image"]
    );
    let args = args_of(container);
    anyhow::ensure!(
        flag(&args, "--sidecar-image") == Some("registry.example/iamra-sidecar:1.2.3"),
        "sidecar image: {args:?}"
    );
    anyhow::ensure!(
        flag(&args, "--log-format") == Some("json"),
        "args: {args:?}"
    );
    for (variable, value) in [
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ENDPOINT_URL", "http://aws.example:4566"),
        ("AWS_ENDPOINT_URL_KMS", "http://kms.example:4566"),
        (
            "AWS_ENDPOINT_URL_ROLESANYWHERE",
            "http://rolesanywhere.example:4566",
        ),
        ("AWS_ENDPOINT_URL_STS", "http://sts.example:4566"),
        ("RUST_LOG", "info,iamra=debug"),
        ("EXTRA", "yes"),
    ] {
        let env = env_value(container, variable).with_context(|| format!("no {variable}"))?;
        anyhow::ensure!(env["value"] == value, "{variable}: {env}");
    }
    let pod = &only_of_kind(&objects, "Deployment")?["spec"]["template"];
    anyhow::ensure!(
        pod["spec"]["nodeSelector"] == json!({"kubernetes.io/os": "linux"}),
        "nodeSelector"
    );
    anyhow::ensure!(
        pod["spec"]["tolerations"] == json!([{"key": "dedicated", "operator": "Exists"}]),
        "tolerations: {}",
        pod["spec"]["tolerations"]
    );
    anyhow::ensure!(
        pod["spec"]["imagePullSecrets"] == json!([{"name": "registry"}]),
        "imagePullSecrets"
    );
    anyhow::ensure!(
        pod["spec"]["priorityClassName"] == "system-cluster-critical",
        "priorityClassName"
    );
    anyhow::ensure!(
        pod["metadata"]["annotations"] == json!({"example.com/a": "b"}),
        "podAnnotations"
    );
    let service_account = only_of_kind(&objects, "ServiceAccount")?;
    anyhow::ensure!(
        service_account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
            == "arn:aws:iam::111122223333:role/iamra",
        "ServiceAccount annotations: {}",
        service_account["metadata"]
    );
    // Without the overrides the AWS variables are left to the SDK's defaults.
    let defaults = render(RELEASE, NAMESPACE, &[])?;
    let container = deployment_container(&defaults)?;
    for variable in ["AWS_REGION", "AWS_ENDPOINT_URL_KMS", "RUST_LOG"] {
        anyhow::ensure!(
            env_value(container, variable).is_none(),
            "{variable} set by default"
        );
    }
    Ok(())
}

#[test]
fn issuer_is_created_only_when_asked() -> anyhow::Result<()> {
    let defaults = render(RELEASE, NAMESPACE, &[])?;
    anyhow::ensure!(
        !defaults.iter().any(|object| object["kind"] == "Issuer"),
        "an Issuer is rendered by default"
    );
    let objects = render(RELEASE, NAMESPACE, FULL_VALUES)?;
    let issuer = only_of_kind(&objects, "Issuer")?;
    anyhow::ensure!(
        issuer["apiVersion"] == "iamra.dev/v1alpha1",
        "Issuer apiVersion"
    );
    anyhow::ensure!(
        issuer["metadata"]["namespace"] == NAMESPACE,
        "Issuer namespace"
    );
    anyhow::ensure!(
        issuer["spec"]["local"]
            == json!({"secretName": "iamra-ca", "bootstrap": true, "keyAlgorithm": "EcdsaP256"}),
        "Issuer local key source: {}",
        issuer["spec"]["local"]
    );
    anyhow::ensure!(
        issuer["spec"]["crl"]["distributionPointUrl"]
            == "http://iamra.iamra-system.svc:8080/crl/iamra-system/iamra-ca.crl",
        "the CRL distribution point is not the chart's Service: {}",
        issuer["spec"]["crl"]
    );
    anyhow::ensure!(
        issuer["spec"]["rolesAnywhere"]["trustAnchorArn"]
            .as_str()
            .is_some_and(|arn| arn.starts_with("arn:aws:rolesanywhere:eu-west-1:")),
        "rolesAnywhere: {}",
        issuer["spec"]
    );
    // The chart's own Issuer may import into the trust anchor it names, and into no other.
    let grants = env_value(deployment_container(&objects)?, "IAMRA_TRUST_ANCHOR_GRANTS")
        .context("the chart's Issuer has no trust anchor grant")?;
    anyhow::ensure!(
        grants["value"]
            == format!(
                "{NAMESPACE}={}",
                issuer["spec"]["rolesAnywhere"]["trustAnchorArn"]
                    .as_str()
                    .unwrap_or_default()
            ),
        "IAMRA_TRUST_ANCHOR_GRANTS: {grants}"
    );
    anyhow::ensure!(
        env_value(
            deployment_container(&defaults)?,
            "IAMRA_TRUST_ANCHOR_GRANTS"
        )
        .is_none(),
        "a trust anchor is granted by default"
    );
    Ok(())
}

/// `config/default` is what `scripts/render-manifests.sh` renders from the chart now.
#[test]
fn plain_manifests_are_up_to_date() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rendered = tempfile::tempdir()?;
    let output = std::process::Command::new("bash")
        .arg(root.join("scripts/render-manifests.sh"))
        .arg(rendered.path())
        .env("IAMRA_HELM", helm::helm_binary()?)
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "scripts/render-manifests.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let checked_in_dir = root.join("config/default");
    let names = |dir: &Path| -> anyhow::Result<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    };
    let expected = names(rendered.path())?;
    anyhow::ensure!(
        names(&checked_in_dir)? == expected,
        "config/default holds {:?}, the script writes {expected:?}: run scripts/render-manifests.sh",
        names(&checked_in_dir)?
    );
    for name in &expected {
        let fresh = std::fs::read_to_string(rendered.path().join(name))?;
        let checked_in = std::fs::read_to_string(checked_in_dir.join(name))?;
        anyhow::ensure!(
            fresh == checked_in,
            "config/default/{name} is stale: run scripts/render-manifests.sh"
        );
    }
    // And it is a complete installation: every object the chart renders by default is in it.
    let chart_objects = render(RELEASE, NAMESPACE, &[])?;
    let plain =
        helm::parse_documents(&std::fs::read_to_string(checked_in_dir.join("iamra.yaml"))?)?;
    anyhow::ensure!(
        plain == chart_objects,
        "config/default/iamra.yaml differs from the chart's render"
    );
    Ok(())
}

/// The README's values table names every top-level value (nameOverride/fullnameOverride are the
/// usual Helm pair and left out).
#[test]
fn readme_lists_every_value() -> anyhow::Result<()> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))?;
    let install = readme
        .split("## Install\n")
        .nth(1)
        .context("README has no Install section")?;
    let values: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(chart_dir().join("values.yaml"))?)?;
    let missing: Vec<&String> = values
        .as_object()
        .context("values.yaml is not a map")?
        .keys()
        .filter(|key| !["nameOverride", "fullnameOverride"].contains(&key.as_str()))
        .filter(|key| {
            !install.contains(&format!("`{key}`")) && !install.contains(&format!("`{key}."))
        })
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "README's Install table does not list {missing:?}"
    );
    Ok(())
}

/// The Deployment's arguments parse with the real `iamra` binary (flag names and value types):
/// with no kubeconfig the controller gets past argument parsing and stops at the client.
#[test]
fn rendered_arguments_are_accepted_by_iamra_controller() -> anyhow::Result<()> {
    for values in [&[][..], FULL_VALUES] {
        let objects = render(RELEASE, NAMESPACE, values)?;
        let args = args_of(deployment_container(&objects)?);
        let empty = tempfile::tempdir()?;
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_iamra"))
            .args(&args)
            .env("KUBECONFIG", empty.path().join("no-kubeconfig"))
            .env("HOME", empty.path())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .output()?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        anyhow::ensure!(
            output.status.code() == Some(1) && stderr.contains("no usable kubeconfig"),
            "iamra {} did not get past argument parsing ({}):\n{stderr}",
            args.join(" "),
            output.status
        );
    }
    Ok(())
}
