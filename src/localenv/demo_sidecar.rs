//! The demo's pod path: no kubelet runs locally, so the demo plays its part. It writes the
//! certificate Secret where the pod's volume would be and runs the sidecar exactly as the
//! webhook injected it (paths and ports moved to the local machine), then asks it for
//! credentials the way an AWS SDK does.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::Context;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use k8s_openapi::api::core::v1::{Pod, Secret};

use crate::webhook::{SIDECAR_CONTAINER, TOKEN_FILE};

const POD_CERTIFICATE_DIR: &str = "/var/run/iamra/certificate";
const POD_TOKEN_FILE: &str = TOKEN_FILE;

/// The injected sidecar's arguments, from the pod the API server stored.
pub fn injected_sidecar_args(pod: &Pod) -> anyhow::Result<Vec<String>> {
    pod.spec
        .iter()
        .flat_map(|spec| spec.init_containers.iter().flatten())
        .find(|container| container.name == SIDECAR_CONTAINER)
        .and_then(|container| container.args.clone())
        .context("the pod has no injected iamra-credentials sidecar")
}

/// Writes the Secret's files as the kubelet mounts them.
pub fn mount_secret(secret: &Secret, directory: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(directory)?;
    for (key, value) in secret.data.iter().flatten() {
        std::fs::write(directory.join(key), &value.0)?;
    }
    Ok(())
}

/// The sidecar's arguments moved from the pod's paths and ports to local ones.
pub fn localize(
    args: &[String],
    certificate_dir: &Path,
    token_file: &Path,
    listen: &str,
    health_listen: &str,
) -> Vec<String> {
    let mut local: Vec<String> = args
        .iter()
        .filter(|arg| !arg.starts_with("--health-listen="))
        .map(|arg| {
            arg.replace(POD_TOKEN_FILE, &token_file.display().to_string())
                .replace(POD_CERTIFICATE_DIR, &certificate_dir.display().to_string())
        })
        .collect();
    local.push(format!("--listen={listen}"));
    local.push(format!("--health-listen={health_listen}"));
    // The kubelet refreshes a Secret volume within a minute; the demo does it at once, and the
    // sidecar should notice at once too.
    local.push("--file-poll-interval=1".into());
    local
}

/// Starts `iamra <args>` (the first argument is the `sidecar` subcommand).
pub fn start_sidecar(iamra: &Path, args: &[String], log: &Path) -> anyhow::Result<Child> {
    let out = std::fs::File::create(log)?;
    Command::new(iamra)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("starting the sidecar")
}

/// GET `url` with an optional Authorization header: (status, body).
pub async fn get(url: &str, authorization: Option<&str>) -> anyhow::Result<(u16, String)> {
    let client: hyper_util::client::legacy::Client<_, Empty<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let mut request = http::Request::get(url);
    if let Some(token) = authorization {
        request = request.header("Authorization", token);
    }
    let response = client.request(request.body(Empty::new())?).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_paths_and_ports_become_local_ones() {
        let args = vec![
            "sidecar".to_string(),
            "--certificate=/var/run/iamra/certificate/tls.crt".into(),
            "--token-file=/var/run/iamra/token/token".into(),
            "--health-listen=0.0.0.0:9912".into(),
            "--role-arn=arn:aws:iam::1:role/r".into(),
        ];
        let local = localize(
            &args,
            Path::new("/tmp/d/cert"),
            Path::new("/tmp/d/token"),
            "127.0.0.1:1",
            "127.0.0.1:2",
        );
        assert_eq!(
            local,
            vec![
                "sidecar",
                "--certificate=/tmp/d/cert/tls.crt",
                "--token-file=/tmp/d/token",
                "--role-arn=arn:aws:iam::1:role/r",
                "--listen=127.0.0.1:1",
                "--health-listen=127.0.0.1:2",
                "--file-poll-interval=1",
            ]
        );
    }
}
