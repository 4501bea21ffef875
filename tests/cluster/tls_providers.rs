//! kube and the AWS SDK share one process and one rustls crypto provider (aws-lc-rs). With two
//! providers compiled in, rustls panics when the first TLS client is built; these calls would.

use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use libtest_mimic::Trial;

use crate::cluster::{TestCluster, trial};

pub fn trials(cluster: &TestCluster) -> Vec<Trial> {
    vec![trial(
        "tls_providers::kube_and_aws_sdk_handshake_in_one_process",
        cluster,
        kube_and_aws_sdk_handshake_in_one_process,
    )]
}

async fn kube_and_aws_sdk_handshake_in_one_process(cluster: TestCluster) -> anyhow::Result<()> {
    let client = cluster.client().await?;
    let namespaces: Api<Namespace> = Api::all(client);
    namespaces.get("default").await?;

    // The API server's CA is not in the SDK's trust store, so the handshake itself must fail
    // with a certificate error: proof that the SDK's rustls client was built and ran.
    let kms_config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .endpoint_url(cluster.url()?)
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "test",
        ))
        .build();
    let kms = aws_sdk_kms::Client::from_conf(kms_config);
    let error = match kms.list_keys().send().await {
        Ok(_) => anyhow::bail!("KMS call to the API server unexpectedly succeeded"),
        Err(error) => format!("{:?}", aws_sdk_kms::error::DisplayErrorContext(&error)),
    };
    anyhow::ensure!(
        error.to_lowercase().contains("certificate"),
        "expected a TLS certificate error, got {error}"
    );
    Ok(())
}
