//! The Helm chart on a real API server: every object `helm template` renders (CRDs first) is
//! server-side applied and read back, the ServiceAccount's RBAC is checked with
//! SubjectAccessReviews (what the controller needs is allowed, the rest refused), and the plain
//! manifests in `config/default`, built with kustomize, install the same way.
//!
//! No kubelet runs here, so the controller pods are never started: these tests prove the objects
//! are valid and wired, and the kind workflow (.github/workflows/kind-e2e.yaml) runs them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::discovery::{Scope, pinned_kind};
use libtest_mimic::Trial;
use serde_json::Value;

use crate::cluster::{TestCluster, trial, wait_for};
use crate::helm::{helm, only_of_kind, parse_documents, render};

const FIELD_MANAGER: &str = "iamra-chart-tests";

pub fn trials(cluster: &TestCluster) -> Vec<Trial> {
    vec![
        trial(
            "chart::installs_and_reads_back",
            cluster,
            installs_and_reads_back,
        ),
        trial(
            "chart::service_account_has_the_access_it_needs_and_no_more",
            cluster,
            service_account_has_the_access_it_needs_and_no_more,
        ),
        trial(
            "chart::plain_manifests_install_with_kustomize",
            cluster,
            plain_manifests_install_with_kustomize,
        ),
        trial(
            "chart::controller_works_with_only_the_charts_rbac",
            cluster,
            controller_works_with_only_the_charts_rbac,
        ),
        trial(
            "chart::helm_installs_upgrades_and_uninstalls",
            cluster,
            helm_installs_upgrades_and_uninstalls,
        ),
    ]
}

/// An object rendered by the chart and where it went.
struct Applied {
    api: Api<DynamicObject>,
    name: String,
    rendered: Value,
}

impl Applied {
    fn describe(&self) -> String {
        format!(
            "{} {}/{}",
            self.rendered["kind"].as_str().unwrap_or("?"),
            self.rendered["metadata"]["namespace"]
                .as_str()
                .unwrap_or("-"),
            self.name
        )
    }
}

/// Server-side applies `objects`, CustomResourceDefinitions first (and waits for them to be
/// Established, as `helm install` does), in the order given otherwise.
async fn apply_all(client: &kube::Client, objects: &[Value]) -> anyhow::Result<Vec<Applied>> {
    let (crds, others): (Vec<&Value>, Vec<&Value>) = objects
        .iter()
        .partition(|object| object["kind"] == "CustomResourceDefinition");
    let mut applied = Vec::new();
    for object in &crds {
        applied.push(apply(client, object).await?);
    }
    let crd_api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in &applied {
        let name = crd.name.clone();
        let crd_api = crd_api.clone();
        wait_for(
            &format!("CRD {name} Established"),
            Duration::from_secs(30),
            || {
                let crd_api = crd_api.clone();
                let name = name.clone();
                async move {
                    let crd = crd_api.get(&name).await?;
                    let established = crd
                        .status
                        .and_then(|status| status.conditions)
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True");
                    Ok(established.then_some(()))
                }
            },
        )
        .await?;
    }
    for object in &others {
        applied.push(apply(client, object).await?);
    }
    Ok(applied)
}

async fn apply(client: &kube::Client, object: &Value) -> anyhow::Result<Applied> {
    let api_version = object["apiVersion"]
        .as_str()
        .context("object without apiVersion")?;
    let kind = object["kind"].as_str().context("object without kind")?;
    let name = object["metadata"]["name"]
        .as_str()
        .with_context(|| format!("{kind} without a name"))?
        .to_string();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, capabilities) = pinned_kind(client, &gvk)
        .await
        .with_context(|| format!("discovering {api_version} {kind}"))?;
    let api = match capabilities.scope {
        Scope::Namespaced => {
            let namespace = object["metadata"]["namespace"]
                .as_str()
                .with_context(|| format!("{kind} {name} is namespaced but has no namespace"))?;
            Api::namespaced_with(client.clone(), namespace, &resource)
        }
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    let dynamic: DynamicObject = serde_json::from_value(object.clone())
        .with_context(|| format!("{kind} {name} is not a Kubernetes object"))?;
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&dynamic),
    )
    .await
    .with_context(|| format!("applying {kind} {name}"))?;
    Ok(Applied {
        api,
        name,
        rendered: object.clone(),
    })
}

/// Every applied object reads back with everything that was rendered (the server may add
/// defaults, but must not drop or change a rendered field).
async fn read_back(applied: &[Applied]) -> anyhow::Result<()> {
    for object in applied {
        let stored = object
            .api
            .get(&object.name)
            .await
            .with_context(|| format!("reading back {}", object.describe()))?;
        let stored = serde_json::to_value(&stored)?;
        let mut differences = Vec::new();
        contained_in("", &object.rendered, &stored, &mut differences);
        anyhow::ensure!(
            differences.is_empty(),
            "{} reads back differently:\n{}",
            object.describe(),
            differences.join("\n")
        );
    }
    Ok(())
}

/// Records in `differences` every place where `rendered` is not contained in `stored`.
fn contained_in(path: &str, rendered: &Value, stored: &Value, differences: &mut Vec<String>) {
    match (rendered, stored) {
        (Value::Object(rendered), Value::Object(stored)) => {
            for (key, value) in rendered {
                match stored.get(key) {
                    Some(stored_value) => {
                        contained_in(&format!("{path}.{key}"), value, stored_value, differences)
                    }
                    None => differences.push(format!("{path}.{key}: missing")),
                }
            }
        }
        (Value::Array(rendered), Value::Array(stored)) if rendered.len() == stored.len() => {
            for (index, (value, stored_value)) in rendered.iter().zip(stored).enumerate() {
                contained_in(
                    &format!("{path}[{index}]"),
                    value,
                    stored_value,
                    differences,
                );
            }
        }
        _ if rendered == stored => {}
        // YAML's 900.0 and the server's 900 are one number.
        (Value::Number(rendered), Value::Number(stored))
            if rendered.as_f64() == stored.as_f64() => {}
        _ => differences.push(format!("{path}: rendered {rendered}, stored {stored}")),
    }
}

async fn installs_and_reads_back(cluster: TestCluster) -> anyhow::Result<()> {
    let client = cluster.client().await?;
    let namespace = cluster.namespace(&client, "chart-install").await?;
    // The release is named after the namespace, so its cluster-scoped objects (ClusterRole,
    // ClusterRoleBinding) do not collide with another test's.
    let objects = render(
        &namespace,
        &namespace,
        &[
            "--include-crds",
            "--set",
            "issuer.create=true",
            "--set",
            "aws.region=eu-west-1",
        ],
    )?;
    let mut kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    kinds.sort();
    kinds.dedup();
    let expected_kinds = [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "Issuer",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ];
    anyhow::ensure!(
        kinds == expected_kinds,
        "rendered kinds {kinds:?}, expected {expected_kinds:?}"
    );
    let crd_count = objects
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .count();
    let expected_crds = iamra::api::custom_resource_definitions().len();
    anyhow::ensure!(
        crd_count == expected_crds,
        "{crd_count} CRDs rendered, expected {expected_crds}"
    );

    let applied = apply_all(&client, &objects).await?;
    anyhow::ensure!(
        applied.len() == objects.len(),
        "not every object was applied"
    );
    read_back(&applied).await?;

    // A few things the API server decides, checked on what it stored.
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), &namespace);
    let deployment = deployments.get(&format!("{namespace}-iamra")).await?;
    let spec = deployment.spec.context("Deployment without spec")?;
    anyhow::ensure!(spec.replicas == Some(2), "replicas: {:?}", spec.replicas);
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), &namespace);
    let service = services.get(&format!("{namespace}-iamra")).await?;
    let cluster_ip = service.spec.and_then(|s| s.cluster_ip).unwrap_or_default();
    anyhow::ensure!(
        cluster_ip.starts_with("10.96."),
        "the Service got no cluster IP: {cluster_ip:?}"
    );
    let issuers = crate::cluster::api_for(&client, &namespace, only_of_kind(&objects, "Issuer")?)?;
    let issuer = issuers.get("iamra-ca").await?;
    anyhow::ensure!(
        issuer.data["spec"]["local"]["bootstrap"] == true,
        "the chart's Issuer: {}",
        issuer.data["spec"]
    );
    Ok(())
}

/// One question to the API server's authorizer about the chart's ServiceAccount.
struct Access {
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    subresource: Option<&'static str>,
    /// None: cluster-wide (or cluster-scoped); Some(""): the release namespace.
    namespace: Option<&'static str>,
    name: Option<&'static str>,
}

const fn access(verb: &'static str, group: &'static str, resource: &'static str) -> Access {
    Access {
        verb,
        group,
        resource,
        subresource: None,
        namespace: None,
        name: None,
    }
}

impl Access {
    const fn in_namespace(mut self, namespace: &'static str) -> Self {
        self.namespace = Some(namespace);
        self
    }
    const fn named(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }
    const fn subresource(mut self, subresource: &'static str) -> Self {
        self.subresource = Some(subresource);
        self
    }
}

/// The release namespace, in `Access::in_namespace`.
const RELEASE_NAMESPACE: &str = "";
/// A workload namespace somewhere else in the cluster.
const OTHER_NAMESPACE: &str = "payments";
/// Names the chart derives from the release (the namespace here): `<release>-iamra`.
const RELEASE_NAMED: &str = "<release>-iamra";

fn needed() -> Vec<Access> {
    vec![
        // Workload Secrets and CA keys live in any namespace.
        access("create", "", "secrets").in_namespace(OTHER_NAMESPACE),
        access("update", "", "secrets").in_namespace(OTHER_NAMESPACE),
        access("delete", "", "secrets").in_namespace(OTHER_NAMESPACE),
        access("list", "", "secrets"),
        access("watch", "", "secrets"),
        access("get", "", "secrets")
            .in_namespace(RELEASE_NAMESPACE)
            .named("iamra-webhook-ca"),
        access("create", "", "configmaps").in_namespace(OTHER_NAMESPACE),
        access("patch", "", "configmaps").in_namespace(OTHER_NAMESPACE),
        access("watch", "", "configmaps"),
        access("list", "", "pods"),
        access("watch", "", "pods"),
        access("create", "events.k8s.io", "events").in_namespace(OTHER_NAMESPACE),
        access("patch", "", "events").in_namespace(OTHER_NAMESPACE),
        access("watch", "iamra.dev", "issuers"),
        access("watch", "iamra.dev", "clusterissuers"),
        access("patch", "iamra.dev", "clusterissuers").subresource("status"),
        // The ledger: cluster-scoped, created at issuance, revoked once, deleted after expiry.
        access("create", "iamra.dev", "certificaterecords"),
        access("patch", "iamra.dev", "certificaterecords"),
        access("delete", "iamra.dev", "certificaterecords"),
        access("list", "iamra.dev", "certificaterecords"),
        access("update", "iamra.dev", "certificateauthorityrecords"),
        access("create", "iamra.dev", "certificateauthorityrecords"),
        access("create", "iamra.dev", "workloadcertificates").in_namespace(OTHER_NAMESPACE),
        access("delete", "iamra.dev", "workloadcertificates").in_namespace(OTHER_NAMESPACE),
        access("list", "iamra.dev", "revocations"),
        access("watch", "iamra.dev", "rolesanywherebindings"),
        access("patch", "iamra.dev", "issuers")
            .subresource("status")
            .in_namespace(OTHER_NAMESPACE),
        access("patch", "iamra.dev", "revocations")
            .subresource("status")
            .in_namespace(OTHER_NAMESPACE),
        access("update", "iamra.dev", "revocations")
            .subresource("finalizers")
            .in_namespace(OTHER_NAMESPACE),
        access("create", "coordination.k8s.io", "leases").in_namespace(RELEASE_NAMESPACE),
        access("get", "coordination.k8s.io", "leases")
            .in_namespace(RELEASE_NAMESPACE)
            .named(RELEASE_NAMED),
        access("update", "coordination.k8s.io", "leases")
            .in_namespace(RELEASE_NAMESPACE)
            .named(RELEASE_NAMED),
        access(
            "create",
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
        ),
        access(
            "patch",
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
        )
        .named(RELEASE_NAMED),
        access(
            "get",
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
        )
        .named(RELEASE_NAMED),
        // A watch with fieldSelector metadata.name=<name> is authorized as one on that name.
        access(
            "watch",
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
        )
        .named(RELEASE_NAMED),
        access(
            "list",
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
        )
        .named(RELEASE_NAMED),
        access("get", "", "namespaces").named(OTHER_NAMESPACE),
        access("list", "", "namespaces"),
        access("watch", "", "namespaces"),
        // Its own ClusterRole's uid, to own the webhook configuration by it.
        access("get", "rbac.authorization.k8s.io", "clusterroles").named(RELEASE_NAMED),
    ]
}

fn refused() -> Vec<Access> {
    vec![
        // Nothing that runs or changes workloads.
        access("create", "", "pods").in_namespace(OTHER_NAMESPACE),
        access("delete", "", "pods").in_namespace(OTHER_NAMESPACE),
        access("create", "", "pods")
            .subresource("exec")
            .in_namespace(OTHER_NAMESPACE),
        access("delete", "apps", "deployments").in_namespace(RELEASE_NAMESPACE),
        access("patch", "apps", "deployments").in_namespace(OTHER_NAMESPACE),
        access("create", "batch", "jobs").in_namespace(OTHER_NAMESPACE),
        access("delete", "", "configmaps").in_namespace(OTHER_NAMESPACE),
        access("create", "", "serviceaccounts")
            .subresource("token")
            .in_namespace(OTHER_NAMESPACE),
        // Leases only in the release namespace, only its own.
        access("update", "coordination.k8s.io", "leases")
            .in_namespace(OTHER_NAMESPACE)
            .named(RELEASE_NAMED),
        access("update", "coordination.k8s.io", "leases")
            .in_namespace(RELEASE_NAMESPACE)
            .named("kube-controller-manager"),
        access("delete", "coordination.k8s.io", "leases")
            .in_namespace(RELEASE_NAMESPACE)
            .named(RELEASE_NAMED),
        // The CA records of the ledger are never deleted.
        access("delete", "iamra.dev", "certificateauthorityrecords"),
        // Only its own webhook configuration, and no validating ones.
        access(
            "patch",
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
        )
        .named("another-webhook"),
        access(
            "delete",
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
        )
        .named(RELEASE_NAMED),
        access(
            "list",
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
        ),
        access(
            "patch",
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
        )
        .named(RELEASE_NAMED),
        // No way to widen its own access, nor to read other roles.
        access("get", "rbac.authorization.k8s.io", "clusterroles").named("cluster-admin"),
        access("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
        access("escalate", "rbac.authorization.k8s.io", "clusterroles"),
        access("bind", "rbac.authorization.k8s.io", "clusterroles"),
        access("impersonate", "", "users"),
        access(
            "update",
            "apiextensions.k8s.io",
            "customresourcedefinitions",
        ),
        access("get", "", "nodes"),
        access("delete", "", "namespaces").named(OTHER_NAMESPACE),
        access("patch", "", "namespaces").named(OTHER_NAMESPACE),
    ]
}

async fn allowed(
    client: &kube::Client,
    namespace: &str,
    service_account: &str,
    question: &Access,
) -> anyhow::Result<bool> {
    let resolve = |value: &str| match value {
        RELEASE_NAMESPACE => namespace.to_string(),
        RELEASE_NAMED => format!("{namespace}-iamra"),
        other => other.to_string(),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!(
                "system:serviceaccount:{namespace}:{service_account}"
            )),
            groups: Some(vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".to_string(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(question.verb.to_string()),
                group: Some(question.group.to_string()),
                resource: Some(question.resource.to_string()),
                subresource: question.subresource.map(str::to_string),
                namespace: question.namespace.map(resolve),
                name: question.name.map(resolve),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let reviews: Api<SubjectAccessReview> = Api::all(client.clone());
    let answer = reviews.create(&PostParams::default(), &review).await?;
    Ok(answer.status.is_some_and(|status| status.allowed))
}

fn describe(question: &Access) -> String {
    format!(
        "{} {}{}{} in {:?} named {:?}",
        question.verb,
        if question.group.is_empty() {
            ""
        } else {
            question.group
        },
        if question.group.is_empty() { "" } else { "/" },
        match question.subresource {
            Some(sub) => format!("{}/{sub}", question.resource),
            None => question.resource.to_string(),
        },
        question.namespace.map(|n| if n.is_empty() {
            "<release namespace>"
        } else {
            n
        }),
        question.name,
    )
}

/// The rendered ServiceAccount and the RBAC objects that grant it access.
/// The tenant ClusterRoles are aggregated into Kubernetes' own roles and bound to nobody here.
fn rbac_objects(objects: &[Value]) -> Vec<Value> {
    const KINDS: [&str; 5] = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ];
    let aggregated = |object: &Value| {
        object["metadata"]["labels"]
            .as_object()
            .is_some_and(|labels| {
                labels
                    .keys()
                    .any(|key| key.starts_with("rbac.authorization.k8s.io/aggregate-to-"))
            })
    };
    objects
        .iter()
        .filter(|object| KINDS.iter().any(|kind| object["kind"] == *kind))
        .filter(|object| !aggregated(object))
        .cloned()
        .collect()
}

fn service_account_name(objects: &[Value]) -> anyhow::Result<String> {
    Ok(only_of_kind(objects, "ServiceAccount")?["metadata"]["name"]
        .as_str()
        .context("ServiceAccount without name")?
        .to_string())
}

async fn service_account_has_the_access_it_needs_and_no_more(
    cluster: TestCluster,
) -> anyhow::Result<()> {
    let client = cluster.client().await?;
    let namespace = cluster.namespace(&client, "chart-rbac").await?;
    let objects = render(&namespace, &namespace, &[])?;
    let rbac_objects = rbac_objects(&objects);
    anyhow::ensure!(
        rbac_objects.len() == 5,
        "expected 5 RBAC objects, got {}",
        rbac_objects.len()
    );
    apply_all(&client, &rbac_objects).await?;
    let service_account = service_account_name(&objects)?;

    // The authorizer's cache follows new bindings within moments; wait for the first grant.
    let first = &needed()[0];
    wait_for(
        "the chart's RBAC to take effect",
        Duration::from_secs(30),
        || {
            let client = client.clone();
            let namespace = namespace.clone();
            let service_account = service_account.clone();
            async move {
                Ok(allowed(&client, &namespace, &service_account, first)
                    .await?
                    .then_some(()))
            }
        },
    )
    .await?;

    let mut wrong = Vec::new();
    for question in needed() {
        if !allowed(&client, &namespace, &service_account, &question).await? {
            wrong.push(format!("refused but needed: {}", describe(&question)));
        }
    }
    for question in refused() {
        if allowed(&client, &namespace, &service_account, &question).await? {
            wrong.push(format!("allowed but not needed: {}", describe(&question)));
        }
    }
    anyhow::ensure!(wrong.is_empty(), "the chart's RBAC:\n{}", wrong.join("\n"));
    Ok(())
}

fn kustomize_binary() -> anyhow::Result<PathBuf> {
    crate::helm::cached_tool("IAMRA_KUSTOMIZE", "kustomize-v5.7.1", "kustomize")
}

/// `kubectl apply -k config/default`, as kustomize builds it. Uses the fixed names of the plain
/// manifests (namespace iamra-system, ClusterRole iamra), so it is the only test that does.
async fn plain_manifests_install_with_kustomize(cluster: TestCluster) -> anyhow::Result<()> {
    let client = cluster.client().await?;
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default");
    let output = std::process::Command::new(kustomize_binary()?)
        .arg("build")
        .arg(&directory)
        .output()
        .context("running kustomize")?;
    anyhow::ensure!(
        output.status.success(),
        "kustomize build config/default failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let objects = parse_documents(&String::from_utf8(output.stdout)?)?;
    anyhow::ensure!(
        objects
            .first()
            .is_some_and(|first| first["kind"] == "Namespace"),
        "kustomize does not put the Namespace first"
    );
    // Namespace first, so the namespaced objects have somewhere to go.
    apply(&client, &objects[0]).await?;
    let applied = apply_all(&client, &objects[1..]).await?;
    read_back(&applied).await?;
    for kind in [
        "Deployment",
        "Service",
        "ClusterRole",
        "PodDisruptionBudget",
    ] {
        anyhow::ensure!(
            applied.iter().any(|object| object.rendered["kind"] == kind),
            "config/default installs no {kind}"
        );
    }
    // The same objects as the chart renders for its defaults.
    let chart = render("iamra", "iamra-system", &["--include-crds"])?;
    anyhow::ensure!(
        chart.len() + 1 == objects.len(),
        "config/default has {} objects, the chart renders {} (+ the Namespace)",
        objects.len(),
        chart.len()
    );
    Ok(())
}

/// A kubeconfig like the admin's (same server and CA) whose every user is `token`.
fn kubeconfig_with_token(admin: &Path, token: &str, directory: &Path) -> anyhow::Result<PathBuf> {
    let text =
        std::fs::read_to_string(admin).with_context(|| format!("reading {}", admin.display()))?;
    let mut config: Value = serde_yaml_ng::from_str(&text)?;
    let users = config["users"]
        .as_array_mut()
        .context("the admin kubeconfig has no users")?;
    for user in users {
        user["user"] = serde_json::json!({ "token": token });
    }
    let path = directory.join("service-account.kubeconfig");
    std::fs::write(&path, serde_yaml_ng::to_string(&config)?)?;
    Ok(path)
}

/// The controller, authenticated as the chart's ServiceAccount with nothing but the chart's
/// RBAC, does its whole job: takes the chart's Lease, writes its webhook configuration (with
/// caBundle) and its Secrets in the release namespace, bootstraps a CA,
/// issues a certificate into a Secret, publishes the CRL with a Revocation in it, reports a
/// binding and injects the sidecar into a pod; its log has no "forbidden" in it. This proves the
/// RBAC is enough, where the SubjectAccessReview test proves it is not more.
async fn controller_works_with_only_the_charts_rbac(cluster: TestCluster) -> anyhow::Result<()> {
    use iamra::api::{
        CertificateReference, Issuer, Revocation, RolesAnywhereBinding, RolesAnywhereBindingSpec,
        WorkloadCertificate, WorkloadKeyAlgorithm,
    };
    use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, ServiceAccount};
    use kube::api::DeleteParams;

    use crate::issuance::{
        SETTLE, apply as apply_typed, local_issuer, wait_certificate_ready, wait_issuer_ready,
        workload_certificate,
    };

    let admin = cluster.client().await?;
    let release = cluster.namespace(&admin, "chart-identity").await?;
    let workloads = cluster.namespace(&admin, "chart-workloads").await?;
    let objects = render(&release, &release, &[])?;
    let rbac_objects = rbac_objects(&objects);
    apply_all(&admin, &rbac_objects).await?;
    let service_account = service_account_name(&objects)?;
    let container =
        &only_of_kind(&objects, "Deployment")?["spec"]["template"]["spec"]["containers"][0];
    let rendered_args: Vec<&str> = container["args"]
        .as_array()
        .context("no args")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let configuration = rendered_args
        .iter()
        .find_map(|arg| arg.strip_prefix("--webhook-configuration="))
        .context("no --webhook-configuration")?
        .to_string();

    // A token of the ServiceAccount, as the kubelet would mount it.
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &release);
    let token_request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = accounts
        .create_token_request(&service_account, &PostParams::default(), &token_request)
        .await
        .context("requesting a ServiceAccount token")?
        .status
        .context("the token request has no status")?
        .token;
    let directory = tempfile::tempdir()?;
    let kubeconfig = kubeconfig_with_token(cluster.admin_kubeconfig(), &token, directory.path())?;

    // The authorizer's cache follows new bindings within moments.
    let first = access("create", "", "secrets").in_namespace(OTHER_NAMESPACE);
    wait_for(
        "the chart's RBAC to take effect",
        Duration::from_secs(30),
        || {
            let admin = admin.clone();
            let release = release.clone();
            let service_account = service_account.clone();
            let first = &first;
            async move {
                Ok(allowed(&admin, &release, &service_account, first)
                    .await?
                    .then_some(()))
            }
        },
    )
    .await?;

    // The chart's arguments, but the webhook on loopback (no Service routing here) and the
    // controller watching only the test's namespace; the chart's downward-API environment.
    let port = iamra::localenv::free_loopback_port()?;
    let mut args: Vec<String> = rendered_args
        .iter()
        .filter(|arg| {
            arg.starts_with("--leader-election")
                || arg.starts_with("--webhook-configuration=")
                || arg.starts_with("--webhook-owner-cluster-role=")
                || arg.starts_with("--sidecar-image")
                || arg.starts_with("--log-format=")
        })
        .map(|arg| arg.to_string())
        .collect();
    anyhow::ensure!(
        args.len() == 8,
        "the chart's arguments changed: {rendered_args:?}"
    );
    args.push(format!("--webhook-address=127.0.0.1:{port}"));
    args.push(format!("--webhook-url=https://127.0.0.1:{port}"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let pod_name = format!("{release}-iamra-0");
    let controller = cluster.start_controller_as(
        &kubeconfig,
        &workloads,
        &args,
        &[("POD_NAMESPACE", &release), ("POD_NAME", &pod_name)],
    )?;
    let outcome = async {
        let configurations: Api<MutatingWebhookConfiguration> = Api::all(admin.clone());
        wait_for("the webhook configuration with a caBundle", SETTLE, || async {
            let found = configurations.get_opt(&configuration).await?;
            Ok(found.filter(|c| {
                c.webhooks.iter().flatten().all(|w| {
                    w.client_config.ca_bundle.as_ref().is_some_and(|b| !b.0.is_empty())
                })
            }))
        })
        .await?;
        // Owned by the chart's ClusterRole, so uninstalling removes it (the garbage collector
        // does; none runs on this API server, so the reference is what can be checked).
        let owner_role = rendered_args
            .iter()
            .find_map(|arg| arg.strip_prefix("--webhook-owner-cluster-role="))
            .context("no --webhook-owner-cluster-role")?;
        let role_uid = Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(admin.clone())
            .get(owner_role)
            .await?
            .metadata
            .uid;
        let owners = configurations
            .get(&configuration)
            .await?
            .metadata
            .owner_references
            .unwrap_or_default();
        anyhow::ensure!(
            owners.len() == 1
                && owners[0].kind == "ClusterRole"
                && owners[0].name == owner_role
                && Some(&owners[0].uid) == role_uid.as_ref(),
            "the webhook configuration is not owned by the chart's ClusterRole: {owners:?}"
        );
        let secrets: Api<Secret> = Api::namespaced(admin.clone(), &release);
        for name in [iamra::webhook::CA_SECRET, iamra::webhook::SERVING_SECRET] {
            secrets
                .get(name)
                .await
                .with_context(|| format!("the webhook Secret {name} in the release namespace"))?;
        }

        // Leadership, on the chart's Lease in the release namespace.
        let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
            Api::namespaced(admin.clone(), &release);
        let lease_name = format!("{release}-iamra");
        wait_for("the controller to hold the chart's Lease", SETTLE, || async {
            let lease = leases.get_opt(&lease_name).await?;
            let holder = lease
                .and_then(|lease| lease.spec)
                .and_then(|spec| spec.holder_identity);
            Ok((holder.as_deref() == Some(pod_name.as_str())).then_some(()))
        })
        .await?;

        let issuers: Api<Issuer> = Api::namespaced(admin.clone(), &workloads);
        apply_typed(&issuers, &local_issuer("ca", "ca-key")).await?;
        wait_issuer_ready(&issuers, "ca").await?;
        let certificates: Api<WorkloadCertificate> = Api::namespaced(admin.clone(), &workloads);
        apply_typed(
            &certificates,
            &workload_certificate("payments", "ca", WorkloadKeyAlgorithm::EcdsaP256),
        )
        .await?;
        let certificate = wait_certificate_ready(&certificates, "payments", 1).await?;
        let secret_name = certificate.spec.secret_name.clone();
        Api::<Secret>::namespaced(admin.clone(), &workloads)
            .get(&secret_name)
            .await
            .with_context(|| format!("the certificate Secret {secret_name}"))?;

        let revocations: Api<Revocation> = Api::namespaced(admin.clone(), &workloads);
        let revocation: Revocation = serde_json::from_value(serde_json::json!({
            "apiVersion": "iamra.dev/v1alpha1",
            "kind": "Revocation",
            "metadata": {"name": "payments"},
            "spec": {"issuerRef": {"name": "ca"}, "certificateRef": {"name": "payments"}, "reason": "keyCompromise"},
        }))?;
        apply_typed(&revocations, &revocation).await?;
        let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), &workloads);
        let crl_name = iamra::controller::crl_config_map_name("ca");
        wait_for("the CRL ConfigMap carrying the Revocation", SETTLE, || async {
            let revocation = revocations.get("payments").await?;
            let carried = revocation
                .status
                .as_ref()
                .and_then(|status| status.crl_number)
                .is_some();
            let published = config_maps.get_opt(&crl_name).await?.is_some();
            Ok((carried && published).then_some(()))
        })
        .await?;

        let namespaces: Api<Namespace> = Api::all(admin.clone());
        let label = serde_json::json!({"metadata": {"labels": {
            iamra::webhook::INJECTION_LABEL: iamra::webhook::INJECTION_LABEL_VALUE,
        }}});
        namespaces
            .patch(&workloads, &PatchParams::default(), &Patch::Merge(&label))
            .await?;
        let bindings: Api<RolesAnywhereBinding> = Api::namespaced(admin.clone(), &workloads);
        let binding = RolesAnywhereBinding::new(
            "payments",
            RolesAnywhereBindingSpec {
                selector: Some(serde_json::from_value(
                    serde_json::json!({"matchLabels": {"app": "payments"}}),
                )?),
                service_account_name: None,
                certificate_ref: Some(CertificateReference {
                    name: "payments".into(),
                }),
                certificate_template: None,
                trust_anchor_arn: "arn:aws:rolesanywhere:eu-west-1:111122223333:trust-anchor/0e4a1f5a-5c3b-4a9c-8a63-2f7d0c1b9e11".into(),
                profile_arn: "arn:aws:rolesanywhere:eu-west-1:111122223333:profile/6f1c2b3a-9d8e-4f7a-b6c5-d4e3f2a1b0c9".into(),
                role_arn: "arn:aws:iam::111122223333:role/payments".into(),
                region: None,
                session_duration_seconds: Some(900),
                role_session_name: None,
            },
        );
        apply_typed(&bindings, &binding).await?;
        let pods: Api<Pod> = Api::namespaced(admin.clone(), &workloads);
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "payments", "labels": {"app": "payments"}},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]},
        }))?;
        // The binding's certificate is re-issued after the Revocation (none asked here, but the
        // webhook also needs the binding in its cache): retry until the admission injects.
        let injected = wait_for("the pod created with the sidecar injected", SETTLE, || async {
            let _ = pods.delete("payments", &DeleteParams::default()).await;
            let created = match pods.create(&PostParams::default(), &pod).await {
                Ok(created) => created,
                Err(kube::Error::Api(status)) if status.code == 409 => return Ok(None),
                Err(error) => return Err(error.into()),
            };
            let names: Vec<String> = created
                .spec
                .iter()
                .flat_map(|spec| spec.init_containers.iter().flatten())
                .map(|container| container.name.clone())
                .collect();
            Ok(names
                .iter()
                .any(|name| name == iamra::webhook::SIDECAR_CONTAINER)
                .then_some(names))
        })
        .await?;
        anyhow::ensure!(!injected.is_empty(), "no init containers");
        anyhow::Ok(())
    }
    .await;

    let log = controller.log_text();
    drop(controller);
    // Nothing cluster-wide outlives the test.
    let configurations: Api<MutatingWebhookConfiguration> = Api::all(admin.clone());
    let _ = configurations
        .delete(&configuration, &DeleteParams::default())
        .await;
    outcome.with_context(|| format!("controller log:\n{log}"))?;
    let refusals: Vec<&str> = log
        .lines()
        .filter(|line| line.to_ascii_lowercase().contains("forbidden"))
        .collect();
    anyhow::ensure!(
        refusals.is_empty(),
        "the controller was refused under the chart's RBAC:\n{}",
        refusals.join("\n")
    );
    Ok(())
}

/// `helm install`, `helm upgrade` and `helm uninstall` themselves, against the API server (not
/// `--wait`: no kubelet runs the pods). Install creates the release's objects, upgrade changes
/// them, uninstall removes them and keeps the CRDs, as Helm does for a chart's crds/.
async fn helm_installs_upgrades_and_uninstalls(cluster: TestCluster) -> anyhow::Result<()> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::rbac::v1::ClusterRole;

    let client = cluster.client().await?;
    let namespace = cluster.namespace(&client, "chart-helm").await?;
    let kubeconfig = cluster
        .admin_kubeconfig()
        .to_str()
        .context("the kubeconfig path is not UTF-8")?
        .to_string();
    let chart = crate::helm::chart_dir();
    let chart = chart
        .to_str()
        .context("the chart path is not UTF-8")?
        .to_string();
    // Named after the namespace, so the ClusterRole does not collide with another test's.
    let release = namespace.clone();
    let name = format!("{release}-iamra");
    let common = ["--kubeconfig", &kubeconfig, "--namespace", &namespace];

    let mut install = vec!["install", &release, &chart, "--set", "issuer.create=true"];
    install.extend_from_slice(&common);
    let output = helm(&install)?;
    anyhow::ensure!(
        output.contains("STATUS: deployed"),
        "helm install: {output}"
    );
    anyhow::ensure!(
        output.contains("owned by the\nchart's ClusterRole, so `helm uninstall` removes it too"),
        "the install notes do not say what happens to the webhook configuration: {output}"
    );

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let deployment = deployments.get(&name).await?;
    anyhow::ensure!(
        deployment.spec.as_ref().and_then(|s| s.replicas) == Some(2),
        "installed replicas: {:?}",
        deployment.spec.and_then(|s| s.replicas)
    );
    let cluster_roles: Api<ClusterRole> = Api::all(client.clone());
    cluster_roles.get(&name).await?;
    let issuers =
        crate::cluster::api_for(&client, &namespace, &serde_json::json!({"kind": "Issuer"}))?;
    issuers
        .get("iamra-ca")
        .await
        .context("the chart's Issuer")?;

    let mut upgrade = vec![
        "upgrade",
        &release,
        &chart,
        "--reuse-values",
        "--set",
        "replicaCount=3",
    ];
    upgrade.extend_from_slice(&common);
    let output = helm(&upgrade)?;
    anyhow::ensure!(output.contains("REVISION: 2"), "helm upgrade: {output}");
    let replicas = deployments.get(&name).await?.spec.and_then(|s| s.replicas);
    anyhow::ensure!(replicas == Some(3), "upgraded replicas: {replicas:?}");

    let mut uninstall = vec!["uninstall", &release];
    uninstall.extend_from_slice(&common);
    helm(&uninstall)?;
    anyhow::ensure!(
        deployments.get_opt(&name).await?.is_none(),
        "the Deployment outlived helm uninstall"
    );
    anyhow::ensure!(
        cluster_roles.get_opt(&name).await?.is_none(),
        "the ClusterRole outlived helm uninstall"
    );
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.get("issuers.iamra.dev")
        .await
        .context("helm uninstall removed the CRDs")?;
    Ok(())
}
