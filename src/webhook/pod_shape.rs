//! Pods the sidecar cannot be added to as they are: refused with what to change, rather than
//! injected into a pod that is invalid, or valid but not doing what its author expects.

use k8s_openapi::api::core::v1::{Container, Pod};

use super::mutation::{
    CERTIFICATE_VOLUME, CREDENTIALS_PORT, CREDENTIALS_URL, HEALTH_PORT, SIDECAR_CONTAINER,
    TOKEN_DIR, TOKEN_VOLUME,
};
use super::target::Refusal;

/// Variables that make the AWS SDKs use other credentials before the container provider's
/// (static keys, IRSA's web identity), or point the container provider elsewhere (EKS Pod
/// Identity), with what set them.
const COMPETING_CREDENTIALS: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "static access keys"),
    ("AWS_SECRET_ACCESS_KEY", "static access keys"),
    ("AWS_WEB_IDENTITY_TOKEN_FILE", "IRSA (web identity)"),
    ("AWS_ROLE_ARN", "IRSA (web identity)"),
    (
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "ECS or EKS Pod Identity",
    ),
    ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "EKS Pod Identity"),
];

/// Refuses a pod the sidecar cannot be added to as it is.
pub fn check_pod_shape(pod: &Pod) -> Result<(), Refusal> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(());
    };
    if spec.host_network == Some(true) {
        return Err(Refusal::HostNetwork);
    }
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    let volumes = spec.volumes.iter().flatten().map(|v| v.name.as_str());
    for name in volumes {
        if name == CERTIFICATE_VOLUME || name == TOKEN_VOLUME {
            return Err(Refusal::NameTaken {
                what: "volume",
                name: name.to_string(),
            });
        }
    }
    for container in containers {
        if container.name == SIDECAR_CONTAINER {
            return Err(Refusal::NameTaken {
                what: "container",
                name: container.name.clone(),
            });
        }
        check_container(container)?;
    }
    Ok(())
}

fn check_container(container: &Container) -> Result<(), Refusal> {
    for port in container.ports.iter().flatten() {
        if port.container_port == CREDENTIALS_PORT || port.container_port == HEALTH_PORT {
            return Err(Refusal::PortTaken {
                container: container.name.clone(),
                port: port.container_port,
            });
        }
    }
    for mount in container.volume_mounts.iter().flatten() {
        if mount.mount_path.trim_end_matches('/') == TOKEN_DIR {
            return Err(Refusal::NameTaken {
                what: "mount path",
                name: format!("{} in container {}", mount.mount_path, container.name),
            });
        }
    }
    for variable in container.env.iter().flatten() {
        let Some((_, source)) = COMPETING_CREDENTIALS
            .iter()
            .find(|(name, _)| *name == variable.name)
        else {
            continue;
        };
        // The sidecar's own endpoint, set by hand or by an earlier injection, is no competitor.
        if variable.name == "AWS_CONTAINER_CREDENTIALS_FULL_URI"
            && variable.value.as_deref() == Some(CREDENTIALS_URL)
        {
            continue;
        }
        return Err(Refusal::CompetingCredentials {
            container: container.name.clone(),
            variable: variable.name.clone(),
            provider: source,
        });
    }
    Ok(())
}
