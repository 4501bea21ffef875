//! Pod injection end to end: the real kube-apiserver calls the controller's webhook over TLS
//! (trusting it only through the caBundle the controller wrote), and RolesAnywhereBindings
//! report what they cover.

use std::collections::BTreeMap;

use anyhow::Context;
use base64::Engine;
use iamra::api::*;
use iamra::localenv::free_loopback_port;
use iamra::webhook::{
    CA_SECRET, INJECTED_BY_ANNOTATION, INJECTION_LABEL, INJECTION_LABEL_VALUE, SERVING_SECRET,
    SIDECAR_CONTAINER, TOKEN_FILE,
};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use libtest_mimic::Trial;

use crate::cluster::{TestCluster, trial, wait_for};
use crate::issuance::{
    SETTLE, apply, local_issuer, secret_text, wait_certificate_ready, wait_event,
    wait_issuer_ready, workload_certificate,
};
use crate::processes::TestProcess;

const ANCHOR: &str = "arn:aws:rolesanywhere:eu-west-1:111122223333:trust-anchor/0e4a1f5a-5c3b-4a9c-8a63-2f7d0c1b9e11";
const PROFILE: &str =
    "arn:aws:rolesanywhere:eu-west-1:111122223333:profile/6f1c2b3a-9d8e-4f7a-b6c5-d4e3f2a1b0c9";
const ROLE: &str = "arn:aws:iam::111122223333:role/payments";
const SIDECAR_IMAGE: &str = "iamra:webhook-test";

pub fn trials(cluster: &TestCluster) -> Vec<Trial> {
    vec![
        trial(
            "webhook::matching_pod_is_injected_once_others_untouched",
            cluster,
            matching_pod_is_injected_once_others_untouched,
        ),
        trial(
            "webhook::refusals_name_the_problem",
            cluster,
            refusals_name_the_problem,
        ),
        trial(
            "webhook::template_binding_owns_its_certificate",
            cluster,
            template_binding_owns_its_certificate,
        ),
        trial(
            "webhook::configuration_and_ca_bundle_are_kept_current",
            cluster,
            configuration_and_ca_bundle_are_kept_current,
        ),
    ]
}

/// A namespace opted in to injection, with a controller running the webhook on loopback.
struct Setup {
    client: kube::Client,
    namespace: String,
    configuration: String,
    _controller: TestProcess,
}

impl Setup {
    async fn start(cluster: &TestCluster, prefix: &str, opted_in: bool) -> anyhow::Result<Self> {
        let client = cluster.client().await?;
        let namespace = cluster.namespace(&client, prefix).await?;
        if opted_in {
            label_namespace(&client, &namespace).await?;
        }
        let port = free_loopback_port()?;
        let configuration = format!("iamra-{namespace}");
        let args = [
            format!("--webhook-address=127.0.0.1:{port}"),
            format!("--webhook-url=https://127.0.0.1:{port}"),
            format!("--webhook-configuration={configuration}"),
            format!("--webhook-secret-namespace={namespace}"),
            format!("--sidecar-image={SIDECAR_IMAGE}"),
            // The platform's Roles Anywhere endpoint, written into every injected sidecar.
            "--rolesanywhere-endpoint=http://127.0.0.1:4000".to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let controller = cluster.start_controller_with(&namespace, &args, &[])?;
        let setup = Self {
            client,
            namespace,
            configuration,
            _controller: controller,
        };
        // The controller writes the configuration once it serves; pods created before would
        // not be sent to it.
        let configurations: Api<MutatingWebhookConfiguration> = Api::all(setup.client.clone());
        wait_for("the MutatingWebhookConfiguration", SETTLE, || async {
            Ok(configurations.get_opt(&setup.configuration).await?)
        })
        .await
        .with_context(|| setup._controller.log_text())?;
        // Ready only once the webhook serves (before, admissions sent to it would fail).
        let address = setup
            ._controller
            .http_address
            .clone()
            .context("no HTTP address")?;
        wait_for("/readyz once the webhook serves", SETTLE, || async {
            Ok(
                crate::revocation::http_get(&format!("http://{address}/readyz"))
                    .await
                    .ok()
                    .filter(|body| body.starts_with(b"ok")),
            )
        })
        .await?;
        Ok(setup)
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// A Ready Issuer and WorkloadCertificate `name`.
    async fn certificate(&self, name: &str) -> anyhow::Result<WorkloadCertificate> {
        let issuers: Api<Issuer> = self.api();
        apply(&issuers, &local_issuer("ca", "ca-key")).await?;
        wait_issuer_ready(&issuers, "ca").await?;
        let certificates: Api<WorkloadCertificate> = self.api();
        apply(
            &certificates,
            &workload_certificate(name, "ca", WorkloadKeyAlgorithm::EcdsaP256),
        )
        .await?;
        wait_certificate_ready(&certificates, name, 1).await
    }

    /// Applies `binding` and waits until it is Ready; returns the bindings API.
    async fn ready_binding(
        &self,
        binding: &RolesAnywhereBinding,
    ) -> anyhow::Result<Api<RolesAnywhereBinding>> {
        let bindings: Api<RolesAnywhereBinding> = self.api();
        apply(&bindings, binding).await?;
        wait_binding(&bindings, &binding.name_any(), "Ready", |s| {
            ready(s).is_some_and(|(status, _, _)| status == "True")
        })
        .await?;
        Ok(bindings)
    }

    async fn create_pod(&self, pod: &Pod) -> Result<Pod, kube::Error> {
        self.api::<Pod>().create(&PostParams::default(), pod).await
    }

    /// Removes the cluster-wide configuration, so nothing outlives the test.
    async fn cleanup(self) -> anyhow::Result<()> {
        let configurations: Api<MutatingWebhookConfiguration> = Api::all(self.client.clone());
        drop(self._controller);
        configurations
            .delete(&self.configuration, &DeleteParams::default())
            .await?;
        Ok(())
    }
}

async fn label_namespace(client: &kube::Client, namespace: &str) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let patch =
        serde_json::json!({"metadata": {"labels": {INJECTION_LABEL: INJECTION_LABEL_VALUE}}});
    namespaces
        .patch(namespace, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

pub fn binding(
    name: &str,
    app: Option<&str>,
    service_account: Option<&str>,
    certificate: &str,
) -> RolesAnywhereBinding {
    RolesAnywhereBinding::new(
        name,
        RolesAnywhereBindingSpec {
            selector: app.map(|app| LabelSelector {
                match_labels: Some(BTreeMap::from([("app".into(), app.into())])),
                ..Default::default()
            }),
            service_account_name: service_account.map(String::from),
            certificate_ref: Some(CertificateReference {
                name: certificate.into(),
            }),
            certificate_template: None,
            trust_anchor_arn: ANCHOR.into(),
            profile_arn: PROFILE.into(),
            role_arn: ROLE.into(),
            region: None,
            session_duration_seconds: Some(900),
            role_session_name: None,
        },
    )
}

fn pod(name: &str, app: &str, service_account: Option<&str>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([("app".into(), app.into())])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            service_account_name: service_account.map(String::from),
            containers: vec![
                Container {
                    name: "app".into(),
                    image: Some("app:1".into()),
                    ..Default::default()
                },
                Container {
                    name: "worker".into(),
                    image: Some("worker:1".into()),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn sidecars(pod: &Pod) -> Vec<&Container> {
    pod.spec
        .iter()
        .flat_map(|spec| spec.init_containers.iter().flatten())
        .filter(|c| c.name == SIDECAR_CONTAINER)
        .collect()
}

fn env_names(container: &Container) -> Vec<String> {
    container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.clone())
        .collect()
}

/// Waits for the binding's Ready condition to have `status`; returns the binding.
async fn wait_binding(
    api: &Api<RolesAnywhereBinding>,
    name: &str,
    what: &str,
    check: impl Fn(&RolesAnywhereBindingStatus) -> bool,
) -> anyhow::Result<RolesAnywhereBinding> {
    wait_for(&format!("binding {name}: {what}"), SETTLE, || async {
        let binding = api.get(name).await?;
        Ok(binding
            .status
            .as_ref()
            .is_some_and(&check)
            .then_some(binding))
    })
    .await
}

fn ready(status: &RolesAnywhereBindingStatus) -> Option<(&str, &str, &str)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION_READY)
        .map(|c| (c.status.as_str(), c.reason.as_str(), c.message.as_str()))
}

async fn matching_pod_is_injected_once_others_untouched(
    cluster: TestCluster,
) -> anyhow::Result<()> {
    let setup = Setup::start(&cluster, "webhook-inject", true).await?;
    let certificate = setup.certificate("payments").await?;
    let bindings = setup
        .ready_binding(&binding("payments", Some("payments"), None, "payments"))
        .await?;

    // The API server sends the pod to the webhook over TLS and stores what it patched.
    let injected = setup
        .create_pod(&pod("payments-1", "payments", None))
        .await?;
    let sidecar = sidecars(&injected);
    anyhow::ensure!(sidecar.len() == 1, "no sidecar injected: {injected:?}");
    let sidecar = sidecar[0];
    anyhow::ensure!(sidecar.restart_policy.as_deref() == Some("Always"));
    anyhow::ensure!(sidecar.image.as_deref() == Some(SIDECAR_IMAGE));
    let args = sidecar.args.clone().unwrap_or_default();
    for expected in [
        format!("--role-arn={ROLE}"),
        format!("--trust-anchor-arn={ANCHOR}"),
        format!("--profile-arn={PROFILE}"),
        "--endpoint=http://127.0.0.1:4000".to_string(),
    ] {
        anyhow::ensure!(args.contains(&expected), "{expected} not in {args:?}");
    }
    // Health is served on the pod IP, as the API server stored it for the kubelet.
    let health_ip = sidecar
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "IAMRA_HEALTH_IP")
        .and_then(|e| e.value_from.as_ref())
        .and_then(|from| from.field_ref.as_ref())
        .map(|field| field.field_path.as_str());
    anyhow::ensure!(
        health_ip == Some("status.podIP"),
        "the sidecar's health IP is not the pod IP: {:?}",
        sidecar.env
    );
    let spec = injected.spec.as_ref().context("no spec")?;
    let secret_volume = spec
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.secret.as_ref())
        .context("no Secret volume")?;
    anyhow::ensure!(secret_volume.secret_name.as_ref() == Some(&certificate.spec.secret_name));
    for container in &spec.containers {
        let env: BTreeMap<_, _> = container
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or_default()))
            .collect();
        anyhow::ensure!(
            env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
                == Some(&"http://127.0.0.1:9911/credentials")
                && env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") == Some(&TOKEN_FILE),
            "container {} lacks the credentials env: {env:?}",
            container.name
        );
    }
    anyhow::ensure!(
        injected.annotations().get(INJECTED_BY_ANNOTATION) == Some(&"payments".to_string())
    );

    // A pod the binding does not select is stored as it was sent.
    let other = setup.create_pod(&pod("orders-1", "orders", None)).await?;
    anyhow::ensure!(
        sidecars(&other).is_empty()
            && other
                .spec
                .as_ref()
                .is_some_and(|s| s.init_containers.is_none())
            && other
                .spec
                .as_ref()
                .is_some_and(|s| s.containers.iter().all(|c| c.env.is_none())),
        "non-matching pod was changed: {other:?}"
    );

    // A second admission of an already injected pod adds nothing.
    let mut again = injected.clone();
    again.metadata = ObjectMeta {
        name: Some("payments-2".into()),
        labels: injected.metadata.labels.clone(),
        annotations: injected.metadata.annotations.clone(),
        ..Default::default()
    };
    let again = setup.create_pod(&again).await?;
    anyhow::ensure!(
        sidecars(&again).len() == 1,
        "sidecar injected twice: {:?}",
        again.spec
    );
    for container in &again.spec.as_ref().context("no spec")?.containers {
        let names = env_names(container);
        let count = names
            .iter()
            .filter(|n| *n == "AWS_CONTAINER_CREDENTIALS_FULL_URI")
            .count();
        anyhow::ensure!(count == 1, "env injected {count} times: {names:?}");
    }
    let volumes = again
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    anyhow::ensure!(volumes.len() == 2, "volumes duplicated: {volumes:?}");

    // The binding counts the pods it covers and their service accounts.
    let covered = wait_binding(&bindings, "payments", "2 pods", |s| {
        s.matched_pods == Some(2)
    })
    .await?;
    let status = covered.status.context("no status")?;
    anyhow::ensure!(status.certificate_name.as_deref() == Some("payments"));
    anyhow::ensure!(status.service_accounts == vec!["default".to_string()]);
    anyhow::ensure!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "InjectionEnabled" && c.status == "True"),
        "{:?}",
        status.conditions
    );
    setup.cleanup().await
}

async fn refusals_name_the_problem(cluster: TestCluster) -> anyhow::Result<()> {
    let setup = Setup::start(&cluster, "webhook-refuse", true).await?;
    setup.certificate("payments").await?;
    let bindings: Api<RolesAnywhereBinding> = setup.api();
    apply(
        &bindings,
        &binding("by-label", Some("payments"), None, "payments"),
    )
    .await?;
    apply(
        &bindings,
        &binding("by-account", None, Some("payments-sa"), "payments"),
    )
    .await?;
    apply(
        &bindings,
        &binding("dangling", Some("dangling"), None, "no-such-certificate"),
    )
    .await?;
    for name in ["by-label", "by-account"] {
        wait_binding(&bindings, name, "Ready", |s| {
            ready(s).is_some_and(|(status, _, _)| status == "True")
        })
        .await?;
    }

    // Two bindings select the pod: refused, naming both.
    let error = setup
        .create_pod(&pod("ambiguous", "payments", Some("payments-sa")))
        .await
        .err()
        .context("a pod matching two bindings was admitted")?;
    let message = error.to_string();
    anyhow::ensure!(
        message.contains("matches 2 RolesAnywhereBindings (by-account, by-label)"),
        "{message}"
    );

    // A binding whose certificate does not exist: refused, and its status says why.
    let error = setup
        .create_pod(&pod("dangling-1", "dangling", None))
        .await
        .err()
        .context("a pod of a binding without certificate was admitted")?;
    let message = error.to_string();
    anyhow::ensure!(
        message.contains("WorkloadCertificate no-such-certificate, which does not exist"),
        "{message}"
    );
    let dangling = wait_binding(&bindings, "dangling", "CertificateNotFound", |s| {
        ready(s)
            .is_some_and(|(status, reason, _)| status == "False" && reason == "CertificateNotFound")
    })
    .await?;
    let (_, _, status_message) =
        ready(dangling.status.as_ref().context("no status")?).context("no Ready condition")?;
    anyhow::ensure!(
        status_message.contains("no-such-certificate"),
        "{status_message}"
    );
    wait_event(
        &setup.client,
        &setup.namespace,
        "dangling",
        "CertificateNotFound",
    )
    .await?;

    // Pod shapes the sidecar cannot join: hostNetwork (loopback would be the node's) and IRSA
    // variables the SDKs would prefer to the sidecar.
    let mut host_network = pod("host-network", "payments", None);
    if let Some(spec) = host_network.spec.as_mut() {
        spec.host_network = Some(true);
    }
    let mut irsa = pod("irsa", "payments", None);
    if let Some(spec) = irsa.spec.as_mut() {
        spec.containers[0].env = Some(vec![k8s_openapi::api::core::v1::EnvVar {
            name: "AWS_ROLE_ARN".into(),
            value: Some("arn:aws:iam::111122223333:role/irsa".into()),
            ..Default::default()
        }]);
    }
    for (shape, says) in [
        (host_network, "pod uses hostNetwork"),
        (
            irsa,
            "container app sets AWS_ROLE_ARN (IRSA (web identity))",
        ),
    ] {
        let error = setup
            .create_pod(&shape)
            .await
            .err()
            .with_context(|| format!("a pod that {says} was admitted"))?;
        anyhow::ensure!(error.to_string().contains(says), "{error}");
    }

    // A pod that opts out is admitted untouched.
    let mut opted_out = pod("opted-out", "payments", Some("payments-sa"));
    opted_out
        .annotations_mut()
        .insert("iamra.dev/inject".into(), "false".into());
    let opted_out = setup.create_pod(&opted_out).await?;
    anyhow::ensure!(sidecars(&opted_out).is_empty());
    setup.cleanup().await?;

    // In a namespace that has not opted in, the API server never calls the webhook, and the
    // binding says so.
    let setup = Setup::start(&cluster, "webhook-not-opted-in", false).await?;
    setup.certificate("payments").await?;
    let bindings: Api<RolesAnywhereBinding> = setup.api();
    apply(
        &bindings,
        &binding("payments", Some("payments"), None, "payments"),
    )
    .await?;
    let unlabelled = wait_binding(&bindings, "payments", "InjectionEnabled False", |s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "InjectionEnabled" && c.status == "False")
    })
    .await?;
    let condition = unlabelled
        .status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .find(|c| c.type_ == "InjectionEnabled")
        .context("no InjectionEnabled")?;
    anyhow::ensure!(
        condition.message.contains(INJECTION_LABEL),
        "{}",
        condition.message
    );
    let untouched = setup
        .create_pod(&pod("payments-1", "payments", None))
        .await?;
    anyhow::ensure!(
        sidecars(&untouched).is_empty(),
        "pod injected in an unlabelled namespace"
    );
    setup.cleanup().await
}

async fn template_binding_owns_its_certificate(cluster: TestCluster) -> anyhow::Result<()> {
    let setup = Setup::start(&cluster, "webhook-template", true).await?;
    let issuers: Api<Issuer> = setup.api();
    apply(&issuers, &local_issuer("ca", "ca-key")).await?;
    wait_issuer_ready(&issuers, "ca").await?;
    let mut templated = binding("reports", Some("reports"), None, "unused");
    templated.spec.certificate_ref = None;
    templated.spec.certificate_template =
        Some(workload_certificate("reports", "ca", WorkloadKeyAlgorithm::EcdsaP256).spec);
    let bindings: Api<RolesAnywhereBinding> = setup.api();
    let created = apply(&bindings, &templated).await?;

    let certificates: Api<WorkloadCertificate> = setup.api();
    let certificate = wait_certificate_ready(&certificates, "reports", 1).await?;
    let owner = certificate
        .owner_references()
        .first()
        .context("certificate has no owner")?;
    anyhow::ensure!(
        owner.kind == "RolesAnywhereBinding"
            && owner.uid == created.uid().unwrap_or_default()
            && owner.controller == Some(true)
    );
    let ready_binding = wait_binding(&bindings, "reports", "Ready", |s| {
        ready(s).is_some_and(|(status, _, _)| status == "True")
    })
    .await?;
    anyhow::ensure!(
        ready_binding.status.and_then(|s| s.certificate_name) == Some("reports".into())
    );
    let injected = setup.create_pod(&pod("reports-1", "reports", None)).await?;
    let secret = injected
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .find_map(|v| v.secret.as_ref()?.secret_name.clone());
    anyhow::ensure!(secret.as_deref() == Some("reports-tls"), "{secret:?}");

    // A template whose name is taken by a certificate the binding does not own is a conflict.
    apply(
        &certificates,
        &workload_certificate("taken", "ca", WorkloadKeyAlgorithm::EcdsaP256),
    )
    .await?;
    let mut conflicting = templated.clone();
    conflicting.metadata.name = Some("taken".into());
    apply(&bindings, &conflicting).await?;
    wait_binding(&bindings, "taken", "CertificateConflict", |s| {
        ready(s).is_some_and(|(_, reason, _)| reason == "CertificateConflict")
    })
    .await?;
    setup.cleanup().await
}

fn ca_bundle(configuration: &MutatingWebhookConfiguration) -> Option<String> {
    let bundle = configuration
        .webhooks
        .as_ref()?
        .first()?
        .client_config
        .ca_bundle
        .as_ref()?;
    String::from_utf8(bundle.0.clone()).ok()
}

async fn configuration_and_ca_bundle_are_kept_current(cluster: TestCluster) -> anyhow::Result<()> {
    let setup = Setup::start(&cluster, "webhook-config", true).await?;
    let secrets: Api<Secret> = setup.api();
    let ca = secret_text(&secrets.get(CA_SECRET).await?, "tls.crt")?;
    let serving = secrets.get(SERVING_SECRET).await?;
    anyhow::ensure!(serving.type_.as_deref() == Some("kubernetes.io/tls"));
    anyhow::ensure!(secret_text(&serving, "ca.crt")? == ca);
    crate::openssl::verify_server_certificate(&ca, &secret_text(&serving, "tls.crt")?)?;

    let configurations: Api<MutatingWebhookConfiguration> = Api::all(setup.client.clone());
    let configuration = configurations.get(&setup.configuration).await?;
    anyhow::ensure!(ca_bundle(&configuration).as_deref() == Some(ca.as_str()));

    // Edited: the caBundle is put back.
    let tampered = base64::engine::general_purpose::STANDARD.encode("not a CA");
    let patch = serde_json::json!({"webhooks": [{"name": "pods.iamra.dev", "clientConfig": {"caBundle": tampered}}]});
    configurations
        .patch(
            &setup.configuration,
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await?;
    wait_for("the caBundle restored", SETTLE, || async {
        let configuration = configurations.get(&setup.configuration).await?;
        Ok((ca_bundle(&configuration).as_deref() == Some(ca.as_str())).then_some(()))
    })
    .await?;

    // Deleted: it comes back, and injection works through it.
    configurations
        .delete(&setup.configuration, &DeleteParams::default())
        .await?;
    wait_for("the configuration recreated", SETTLE, || async {
        Ok(configurations
            .get_opt(&setup.configuration)
            .await?
            .filter(|c| ca_bundle(c).as_deref() == Some(ca.as_str())))
    })
    .await?;
    setup.certificate("payments").await?;
    setup
        .ready_binding(&binding("payments", Some("payments"), None, "payments"))
        .await?;
    let injected = setup
        .create_pod(&pod("payments-1", "payments", None))
        .await?;
    anyhow::ensure!(sidecars(&injected).len() == 1);
    setup.cleanup().await
}
