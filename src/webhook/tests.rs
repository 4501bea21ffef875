//! The webhook's pure parts: selection, injection, refusals, serving certificates and the
//! configuration body.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use kube::api::ObjectMeta;
use time::OffsetDateTime;

use super::*;
use crate::api::{
    CertificateReference, IssuerReference, RolesAnywhereBinding, RolesAnywhereBindingSpec,
    WorkloadCertificate, WorkloadCertificateSpec,
};
use crate::pki::parse_certificate_pem;

const ANCHOR: &str = "arn:aws:rolesanywhere:eu-west-1:111122223333:trust-anchor/0e4a1f5a-5c3b-4a9c-8a63-2f7d0c1b9e11";
const PROFILE: &str =
    "arn:aws:rolesanywhere:eu-west-1:111122223333:profile/6f1c2b3a-9d8e-4f7a-b6c5-d4e3f2a1b0c9";
const ROLE: &str = "arn:aws:iam::111122223333:role/payments";

fn binding(name: &str, app: Option<&str>, account: Option<&str>) -> RolesAnywhereBinding {
    RolesAnywhereBinding::new(
        name,
        RolesAnywhereBindingSpec {
            selector: app.map(|app| LabelSelector {
                match_labels: Some(BTreeMap::from([("app".to_string(), app.to_string())])),
                ..Default::default()
            }),
            service_account_name: account.map(String::from),
            certificate_ref: Some(CertificateReference {
                name: format!("{name}-cert"),
            }),
            certificate_template: None,
            trust_anchor_arn: ANCHOR.into(),
            profile_arn: PROFILE.into(),
            role_arn: ROLE.into(),
            region: Some("eu-west-1".into()),
            session_duration_seconds: Some(900),
            role_session_name: None,
        },
    )
}

fn pod(app: &str, account: Option<&str>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{app}-")),
            labels: Some(BTreeMap::from([("app".to_string(), app.to_string())])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            service_account_name: account.map(String::from),
            containers: vec![
                Container {
                    name: "app".into(),
                    image: Some("app:1".into()),
                    env: Some(vec![EnvVar {
                        name: "AWS_CONTAINER_CREDENTIALS_FULL_URI".into(),
                        value: Some("http://169.254.170.2/stale".into()),
                        ..Default::default()
                    }]),
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

fn certificate(name: &str, secret: &str) -> WorkloadCertificate {
    WorkloadCertificate::new(
        name,
        WorkloadCertificateSpec {
            issuer_ref: IssuerReference::issuer("issuer"),
            service_account_name: None,
            subject: Default::default(),
            uris: vec!["spiffe://example/payments".into()],
            dns_names: Vec::new(),
            key_algorithm: None,
            duration: None,
            renew_before: None,
            secret_name: secret.into(),
            private_key_rotation_policy: None,
            secret_template: None,
        },
    )
}

fn image() -> SidecarImage {
    SidecarImage {
        image: "iamra:test".into(),
        pull_policy: Some("Never".into()),
    }
}

#[test]
fn selection_by_labels_by_service_account_and_both() {
    let by_labels = binding("b", Some("payments"), None);
    assert!(by_labels.selects(&pod("payments", None)));
    assert!(!by_labels.selects(&pod("orders", None)));

    let by_account = binding("b", None, Some("payments-sa"));
    assert!(by_account.selects(&pod("anything", Some("payments-sa"))));
    assert!(!by_account.selects(&pod("anything", None)), "default SA");

    let both = binding("b", Some("payments"), Some("payments-sa"));
    assert!(both.selects(&pod("payments", Some("payments-sa"))));
    assert!(!both.selects(&pod("payments", Some("other"))));
    assert!(!both.selects(&pod("orders", Some("payments-sa"))));
}

#[test]
fn one_binding_is_chosen_none_is_fine_two_is_a_refusal_naming_both() {
    let payments = binding("payments", Some("payments"), None);
    let also = binding("also-payments", None, Some("payments-sa"));
    let orders = binding("orders", Some("orders"), None);
    let all = [&payments, &also, &orders];

    let chosen = choose_binding(&all, &pod("payments", None)).unwrap();
    assert_eq!(chosen.map(|b| b.name_any()), Some("payments".to_string()));
    assert!(
        choose_binding(&all, &pod("billing", None))
            .unwrap()
            .is_none()
    );

    let refusal = choose_binding(&all, &pod("payments", Some("payments-sa"))).unwrap_err();
    let message = refusal.to_string();
    assert!(
        message.contains("2 RolesAnywhereBindings") && message.contains("also-payments, payments"),
        "{message}"
    );

    let mut opted_out = pod("payments", None);
    opted_out
        .annotations_mut()
        .insert(INJECT_ANNOTATION.into(), "false".into());
    assert!(choose_binding(&all, &opted_out).unwrap().is_none());
}

#[test]
fn referenced_certificate_must_exist_template_secret_is_known_in_advance() {
    let referencing = binding("payments", Some("payments"), None);
    let refusal = injection_target(&referencing, None, "team-a", "default").unwrap_err();
    assert_eq!(
        refusal.to_string(),
        "RolesAnywhereBinding payments refers to WorkloadCertificate payments-cert, which does not exist in namespace team-a"
    );
    let existing = certificate("payments-cert", "payments-tls");
    let target = injection_target(&referencing, Some(&existing), "team-a", "default").unwrap();
    assert_eq!(target.certificate_secret, "payments-tls");
    assert_eq!(target.role_arn, ROLE);

    let mut templated = binding("payments", Some("payments"), None);
    templated.spec.certificate_ref = None;
    templated.spec.certificate_template = Some(certificate("x", "from-template").spec);
    let target = injection_target(&templated, None, "team-a", "default").unwrap();
    assert_eq!(target.certificate_secret, "from-template");
}

#[test]
fn a_certificate_for_a_service_account_is_mounted_only_into_its_pods() {
    let binding = binding("payments", Some("payments"), None);
    let mut for_api = certificate("payments-cert", "payments-tls");
    for_api.spec.service_account_name = Some("api".into());
    let target = injection_target(&binding, Some(&for_api), "team-a", "api").unwrap();
    assert_eq!(target.certificate_secret, "payments-tls");
    let refusal = injection_target(&binding, Some(&for_api), "team-a", "default").unwrap_err();
    assert_eq!(
        refusal.to_string(),
        "WorkloadCertificate payments-cert is for service account api and this pod runs as default: set the pod's spec.serviceAccountName to api, or bind a certificate issued for default"
    );
    // A template's service account applies before its WorkloadCertificate exists.
    let mut templated = binding.clone();
    templated.spec.certificate_ref = None;
    templated.spec.certificate_template = Some(for_api.spec.clone());
    assert!(injection_target(&templated, None, "team-a", "intruder").is_err());
    assert_eq!(pod_service_account(&pod("payments", Some("api"))), "api");
    assert_eq!(pod_service_account(&pod("payments", None)), "default");
}

/// The target as the admission makes it: the platform's endpoint, never the binding's.
fn target() -> InjectionTarget {
    let target = injection_target(
        &binding("payments", Some("payments"), None),
        Some(&certificate("payments-cert", "payments-tls")),
        "team-a",
        "default",
    )
    .unwrap();
    assert_eq!(target.endpoint, None, "a binding chose the endpoint");
    InjectionTarget {
        endpoint: Some("http://127.0.0.1:4000".into()),
        ..target
    }
}

fn env_of(container: &Container) -> BTreeMap<String, String> {
    container
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect()
}

#[test]
fn injection_adds_a_native_sidecar_volumes_and_env_on_every_app_container() {
    let injected = inject(&pod("payments", None), &target(), &image());
    let spec = injected.spec.as_ref().unwrap();
    let init = spec.init_containers.as_ref().unwrap();
    assert_eq!(init.len(), 1);
    let sidecar = &init[0];
    assert_eq!(sidecar.name, SIDECAR_CONTAINER);
    assert_eq!(sidecar.restart_policy.as_deref(), Some("Always"));
    assert_eq!(sidecar.image.as_deref(), Some("iamra:test"));
    let args = sidecar.args.as_ref().unwrap();
    for expected in [
        "sidecar".to_string(),
        format!("--trust-anchor-arn={ANCHOR}"),
        format!("--profile-arn={PROFILE}"),
        format!("--role-arn={ROLE}"),
        format!("--token-file={TOKEN_FILE}"),
        "--region=eu-west-1".into(),
        "--endpoint=http://127.0.0.1:4000".into(),
        "--session-duration=900".into(),
    ] {
        assert!(args.contains(&expected), "{expected} missing from {args:?}");
    }
    let security = sidecar.security_context.as_ref().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert!(sidecar.startup_probe.is_some());

    let volumes = spec.volumes.as_ref().unwrap();
    let certificate_volume = volumes
        .iter()
        .find_map(|v| v.secret.as_ref())
        .expect("secret volume");
    assert_eq!(
        certificate_volume.secret_name.as_deref(),
        Some("payments-tls")
    );
    let certificate_mount = sidecar
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == "/var/run/iamra/certificate")
        .unwrap();
    assert_eq!(certificate_mount.read_only, Some(true));

    for container in &spec.containers {
        let env = env_of(container);
        assert_eq!(env["AWS_CONTAINER_CREDENTIALS_FULL_URI"], CREDENTIALS_URL);
        assert_eq!(env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"], TOKEN_FILE);
        // The stale value the app carried is replaced, not duplicated.
        let names: Vec<_> = container.env.iter().flatten().map(|e| &e.name).collect();
        assert_eq!(
            names
                .iter()
                .filter(|n| n.as_str() == "AWS_CONTAINER_CREDENTIALS_FULL_URI")
                .count(),
            1
        );
        assert!(
            container
                .volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == "/var/run/iamra/token" && m.read_only == Some(true))
        );
    }
    assert_eq!(
        injected.annotations().get(INJECTED_BY_ANNOTATION),
        Some(&"payments".to_string())
    );
}

#[test]
fn injecting_twice_changes_nothing() {
    let once = inject(&pod("payments", None), &target(), &image());
    assert!(already_injected(&once));
    assert!(!already_injected(&pod("payments", None)));
    let twice = inject(&once, &target(), &image());
    assert_eq!(once, twice);
}

#[test]
fn serving_certificate_is_a_server_certificate_for_the_service_names() {
    let now = OffsetDateTime::now_utc();
    let (ca_pem, ca_key_pem) = new_webhook_ca(now).unwrap();
    let names = ServingNames::for_service("iamra-system", "iamra-webhook");
    let serving = new_serving_certificate(&ca_pem, &ca_key_pem, &names, now).unwrap();
    let leaf = parse_certificate_pem(&serving.certificate_pem).unwrap();
    let ca = parse_certificate_pem(&ca_pem).unwrap();
    assert!(leaf.is_signed_by(&ca.public_key_info));
    assert!(!leaf.is_ca);
    assert!(
        leaf.dns_names
            .contains(&"iamra-webhook.iamra-system.svc".to_string())
    );
    assert!(still_good(&serving, &ca_pem, &names, now));

    // Renewal is due ten days before expiry; other names or another CA need a new one.
    assert!(!still_good(
        &serving,
        &ca_pem,
        &names,
        now + std::time::Duration::from_secs(21 * 24 * 3600)
    ));
    let other_names = ServingNames::for_service("iamra-system", "renamed");
    assert!(!still_good(&serving, &ca_pem, &other_names, now));
    let (other_ca, _) = new_webhook_ca(now).unwrap();
    assert!(!still_good(&serving, &other_ca, &names, now));

    let by_ip = ServingNames::for_host("127.0.0.1");
    let serving = new_serving_certificate(&ca_pem, &ca_key_pem, &by_ip, now).unwrap();
    let leaf = parse_certificate_pem(&serving.certificate_pem).unwrap();
    assert_eq!(
        leaf.ip_addresses,
        vec![std::net::IpAddr::from([127, 0, 0, 1])]
    );
}

#[test]
fn configuration_points_at_the_endpoint_with_the_ca_and_opt_in_selector() {
    let endpoint = WebhookEndpoint::Service {
        namespace: "iamra-system".into(),
        name: "iamra".into(),
    };
    let body = webhook_configuration("iamra", &endpoint, "PEM", None, None);
    let webhook = &body["webhooks"][0];
    assert_eq!(webhook["name"], WEBHOOK_NAME);
    assert_eq!(webhook["failurePolicy"], "Fail");
    assert_eq!(webhook["clientConfig"]["service"]["path"], MUTATE_PODS_PATH);
    assert_eq!(webhook["clientConfig"]["caBundle"], "UEVN");
    assert_eq!(
        webhook["namespaceSelector"]["matchLabels"][INJECTION_LABEL],
        INJECTION_LABEL_VALUE
    );
    assert_eq!(
        webhook["namespaceSelector"]["matchExpressions"],
        serde_json::json!([{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["iamra-system"]}]),
        "the controller's own namespace is not excluded"
    );
    assert!(body["metadata"]["ownerReferences"].is_null());

    let url = WebhookEndpoint::Url("https://127.0.0.1:9443/".into());
    let owner = k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: "rbac.authorization.k8s.io/v1".into(),
        kind: "ClusterRole".into(),
        name: "iamra".into(),
        uid: "0f1e".into(),
        ..Default::default()
    };
    let body = webhook_configuration("iamra", &url, "PEM", Some("team-a"), Some(&owner));
    assert_eq!(
        body["metadata"]["ownerReferences"][0]["kind"],
        "ClusterRole"
    );
    assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "0f1e");
    let webhook = &body["webhooks"][0];
    assert_eq!(
        webhook["clientConfig"]["url"],
        "https://127.0.0.1:9443/mutate-pods"
    );
    assert_eq!(
        webhook["namespaceSelector"]["matchExpressions"][0]["values"][0],
        "team-a"
    );
    assert!(webhook["namespaceSelector"]["matchExpressions"][1].is_null());
}

#[test]
fn pods_the_sidecar_cannot_join_are_refused_saying_what_to_change() {
    use super::pod_shape::check_pod_shape;
    use k8s_openapi::api::core::v1::{ContainerPort, Volume, VolumeMount};

    let plain = || {
        let mut pod = pod("payments", None);
        if let Some(spec) = pod.spec.as_mut() {
            spec.containers[0].env = None;
        }
        pod
    };
    assert!(check_pod_shape(&plain()).is_ok());
    // Our own endpoint set by hand is no competitor.
    let mut ours = plain();
    if let Some(spec) = ours.spec.as_mut() {
        spec.containers[0].env = Some(vec![EnvVar {
            name: "AWS_CONTAINER_CREDENTIALS_FULL_URI".into(),
            value: Some(super::CREDENTIALS_URL.into()),
            ..Default::default()
        }]);
    }
    assert!(check_pod_shape(&ours).is_ok());

    type Shape = fn(&mut PodSpec);
    let cases: [(&str, Shape, &str); 8] = [
        (
            "hostNetwork",
            |s| s.host_network = Some(true),
            "without hostNetwork",
        ),
        (
            "volume name",
            |s| {
                s.volumes = Some(vec![Volume {
                    name: "iamra-token".into(),
                    ..Default::default()
                }])
            },
            "a volume named iamra-token",
        ),
        (
            "container name",
            |s| s.containers[1].name = "iamra-credentials".into(),
            "a container named iamra-credentials",
        ),
        (
            "port",
            |s| {
                s.containers[1].ports = Some(vec![ContainerPort {
                    container_port: 9912,
                    ..Default::default()
                }])
            },
            "container worker declares port 9912",
        ),
        (
            "mount path",
            |s| {
                s.containers[1].volume_mounts = Some(vec![VolumeMount {
                    name: "data".into(),
                    mount_path: "/var/run/iamra/token/".into(),
                    ..Default::default()
                }])
            },
            "mount path named /var/run/iamra/token/ in container worker",
        ),
        (
            "IRSA",
            |s| {
                s.containers[1].env = Some(vec![EnvVar {
                    name: "AWS_WEB_IDENTITY_TOKEN_FILE".into(),
                    value: Some("/var/run/secrets/eks.amazonaws.com/serviceaccount/token".into()),
                    ..Default::default()
                }])
            },
            "container worker sets AWS_WEB_IDENTITY_TOKEN_FILE (IRSA (web identity))",
        ),
        (
            "Pod Identity",
            |s| {
                s.containers[0].env = Some(vec![EnvVar {
                    name: "AWS_CONTAINER_CREDENTIALS_FULL_URI".into(),
                    value: Some("http://169.254.170.23/v1/credentials".into()),
                    ..Default::default()
                }])
            },
            "container app sets AWS_CONTAINER_CREDENTIALS_FULL_URI (EKS Pod Identity)",
        ),
        (
            "static keys in an init container",
            |s| {
                s.init_containers = Some(vec![Container {
                    name: "setup".into(),
                    env: Some(vec![EnvVar {
                        name: "AWS_ACCESS_KEY_ID".into(),
                        value: Some("AKIA…".into()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }])
            },
            "container setup sets AWS_ACCESS_KEY_ID (static access keys)",
        ),
    ];
    for (case, shape, says) in cases {
        let mut pod = plain();
        if let Some(spec) = pod.spec.as_mut() {
            shape(spec);
        }
        let refusal = check_pod_shape(&pod).expect_err(case).to_string();
        assert!(refusal.contains(says), "{case}: {refusal}");
    }
}
