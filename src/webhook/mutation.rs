//! Which binding a pod falls under, and the pod with the credential sidecar injected. Pure
//! functions of the pod and the bindings: table-tested without a cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction,
    ObjectFieldSelector, Pod, Probe, ResourceRequirements, SeccompProfile, SecretVolumeSource,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

/// Name of the injected native sidecar (an init container with `restartPolicy: Always`).
pub const SIDECAR_CONTAINER: &str = "iamra-credentials";
/// Where the sidecar serves the container credentials endpoint (loopback: the only HTTP URL
/// the AWS SDKs accept for it).
pub const CREDENTIALS_URL: &str = "http://127.0.0.1:9911/credentials";
/// The port of [`CREDENTIALS_URL`].
pub const CREDENTIALS_PORT: i32 = 9911;
pub const CERTIFICATE_VOLUME: &str = "iamra-certificate";
pub const TOKEN_VOLUME: &str = "iamra-token";
const CERTIFICATE_DIR: &str = "/var/run/iamra/certificate";
pub const TOKEN_DIR: &str = "/var/run/iamra/token";
/// The authorization token the sidecar writes and the AWS SDKs read.
pub const TOKEN_FILE: &str = "/var/run/iamra/token/token";
/// The sidecar's `--health-ip`, set from the pod IP.
const HEALTH_IP_ENV: &str = "IAMRA_HEALTH_IP";
/// Port of the sidecar's `/healthz`, `/readyz` and `/metrics`.
pub const HEALTH_PORT: i32 = 9912;
pub use crate::api::well_known::{INJECTED_BY_ANNOTATION, INJECTED_LABEL};

/// What the sidecar needs from a binding, with the certificate Secret resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectionTarget {
    pub binding: String,
    pub certificate_secret: String,
    pub trust_anchor_arn: String,
    pub profile_arn: String,
    pub role_arn: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub session_duration_seconds: Option<i32>,
    pub role_session_name: Option<String>,
}

/// The sidecar container's image.
#[derive(Clone, Debug)]
pub struct SidecarImage {
    pub image: String,
    pub pull_policy: Option<String>,
}

/// Whether the sidecar is already there (a second admission must not add another).
pub fn already_injected(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|spec| spec.init_containers.as_ref())
        .is_some_and(|containers| containers.iter().any(|c| c.name == SIDECAR_CONTAINER))
}

fn sidecar_args(target: &InjectionTarget) -> Vec<String> {
    let mut args = vec![
        "sidecar".to_string(),
        format!("--certificate={CERTIFICATE_DIR}/tls.crt"),
        format!("--private-key={CERTIFICATE_DIR}/tls.key"),
        format!("--trust-anchor-arn={}", target.trust_anchor_arn),
        format!("--profile-arn={}", target.profile_arn),
        format!("--role-arn={}", target.role_arn),
        format!("--token-file={TOKEN_FILE}"),
        // The token volume is mounted only into this pod, and the app may run as any user.
        "--token-file-mode=644".to_string(),
        // The port; the IP is the pod's (HEALTH_IP_ENV), where the kubelet's probes and a
        // scraper reach it and nothing else listens.
        format!("--health-listen=0.0.0.0:{HEALTH_PORT}"),
    ];
    if let Some(region) = &target.region {
        args.push(format!("--region={region}"));
    }
    if let Some(endpoint) = &target.endpoint {
        args.push(format!("--endpoint={endpoint}"));
    }
    if let Some(seconds) = target.session_duration_seconds {
        args.push(format!("--session-duration={seconds}"));
    }
    if let Some(name) = &target.role_session_name {
        args.push(format!("--role-session-name={name}"));
    }
    args
}

fn probe(path: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(HEALTH_PORT),
            ..Default::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    }
}

fn sidecar_security_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn sidecar_resources() -> ResourceRequirements {
    let quantity = |text: &str| Quantity(text.into());
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), quantity("10m")),
            ("memory".into(), quantity("32Mi")),
        ])),
        limits: Some(BTreeMap::from([("memory".into(), quantity("64Mi"))])),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(true),
        ..Default::default()
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// The pod with the sidecar, its volumes, and the credentials environment on every app
/// container. Unchanged when already injected.
pub fn inject(pod: &Pod, target: &InjectionTarget, image: &SidecarImage) -> Pod {
    let mut pod = pod.clone();
    if already_injected(&pod) {
        return pod;
    }
    pod.annotations_mut()
        .insert(INJECTED_BY_ANNOTATION.into(), target.binding.clone());
    pod.labels_mut()
        .insert(INJECTED_LABEL.into(), "true".into());
    let spec = pod.spec.get_or_insert_with(Default::default);
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    volumes.push(Volume {
        name: CERTIFICATE_VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(target.certificate_secret.clone()),
            default_mode: Some(0o440),
            ..Default::default()
        }),
        ..Default::default()
    });
    volumes.push(Volume {
        name: TOKEN_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    let sidecar = Container {
        name: SIDECAR_CONTAINER.into(),
        image: Some(image.image.clone()),
        image_pull_policy: image.pull_policy.clone(),
        args: Some(sidecar_args(target)),
        env: Some(vec![EnvVar {
            name: HEALTH_IP_ENV.into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "status.podIP".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        // A native sidecar: starts before the app containers and runs beside them.
        restart_policy: Some("Always".into()),
        // The app containers start once credentials are served, so the first SDK call works.
        startup_probe: Some(probe("/readyz", 1, 120)),
        liveness_probe: Some(probe("/healthz", 10, 3)),
        security_context: Some(sidecar_security_context()),
        resources: Some(sidecar_resources()),
        volume_mounts: Some(vec![
            mount(CERTIFICATE_VOLUME, CERTIFICATE_DIR),
            VolumeMount {
                read_only: Some(false),
                ..mount(TOKEN_VOLUME, TOKEN_DIR)
            },
        ]),
        ..Default::default()
    };
    spec.init_containers
        .get_or_insert_with(Vec::new)
        .insert(0, sidecar);
    for container in &mut spec.containers {
        let variables = container.env.get_or_insert_with(Vec::new);
        variables.retain(|v| {
            v.name != "AWS_CONTAINER_CREDENTIALS_FULL_URI"
                && v.name != "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
        });
        variables.push(env("AWS_CONTAINER_CREDENTIALS_FULL_URI", CREDENTIALS_URL));
        variables.push(env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", TOKEN_FILE));
        container
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .push(mount(TOKEN_VOLUME, TOKEN_DIR));
    }
    pod
}
