//! `credential_process = iamra credential-process …` in an AWS config file, read by the AWS SDK's
//! own profile credentials provider: what the README's `~/.aws/config` example promises.

use aws_config::profile::ProfileFileCredentialsProvider;
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_sdk_rolesanywhere::config::ProvideCredentials;

use crate::fixtures::{self, Alg};
use crate::support::{REGION, ROLE_ARN, iamra_binary, start_env};

#[tokio::test(flavor = "multi_thread")]
async fn aws_sdk_profile_runs_iamra_credential_process() {
    let env = start_env(Alg::EcdsaP256).await;
    let leaf = fixtures::leaf(&env.ca, Alg::EcdsaP256);
    let (cert, key) = fixtures::write_leaf(env.dir.path(), "leaf", &leaf);
    let config = env.dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[profile workload]\nregion = {REGION}\ncredential_process = {} credential-process \
             --certificate {} --private-key {} --trust-anchor-arn {} --profile-arn {} \
             --role-arn {ROLE_ARN} --endpoint {}\n",
            iamra_binary().display(),
            cert.display(),
            key.display(),
            env.trust_anchor_arn,
            env.profile_arn,
            env.endpoint()
        ),
    )
    .unwrap();
    let provider = ProfileFileCredentialsProvider::builder()
        .profile_files(
            EnvConfigFiles::builder()
                .with_file(EnvConfigFileKind::Config, &config)
                .build(),
        )
        .profile_name("workload")
        .build();
    let credentials = provider.provide_credentials().await.unwrap();
    assert!(credentials.access_key_id().starts_with("ASIA"));
    assert_eq!(credentials.secret_access_key().len(), 40);
    assert!(credentials.session_token().is_some());
    let expiry = credentials
        .expiry()
        .expect("credential_process sets Expiration");
    let remaining = expiry
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs();
    assert!((3300..=3600).contains(&remaining), "{remaining}s");
}
