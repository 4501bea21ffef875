//! The AWS SDK for Rust, configured only through the environment an injected pod gets
//! (`AWS_CONTAINER_CREDENTIALS_FULL_URI`, `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`), loads
//! credentials from the sidecar through its default chain and signs a call moto's STS accepts.
//!
//! The SDK reads the process environment, which a test must not change under its neighbours,
//! so the SDK half runs in a child process: this test binary re-run on [`sdk_child`].

use std::sync::{Arc, Mutex};

use aws_sdk_sts::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_sts::config::{ConfigBag, Intercept, RuntimeComponents};

use crate::fixtures::{self, Alg};
use crate::harness::{REGION, install_leaf, start_env, start_moto, start_ready_sidecar};

const CHILD_ENV: &str = "IAMRA_SIDECAR_SDK_CHILD";
const CHILD_TEST: &str = "sdk::sdk_child";

#[tokio::test(flavor = "multi_thread")]
async fn aws_sdk_default_chain_uses_the_sidecar_and_moto_sts_accepts() {
    let env = start_env().await;
    let moto = start_moto(env.dir.path()).await;
    let leaf = fixtures::leaf(&env.ca, Alg::EcdsaP256);
    let (cert, key) = install_leaf(env.dir.path(), &leaf);
    let sidecar = start_ready_sidecar(&env, &cert, &key, &[]).await;

    let missing = env.dir.path().join("no-such-aws-file");
    let output = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([CHILD_TEST, "--exact", "--ignored", "--nocapture"])
        .env(CHILD_ENV, "1")
        .env(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("{}/credentials", sidecar.base),
        )
        .env(
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            &sidecar.token_file,
        )
        .env("AWS_REGION", REGION)
        .env("AWS_ENDPOINT_URL_STS", &moto.url)
        // Nothing else in the default chain may answer first.
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .env("AWS_CONFIG_FILE", &missing)
        .env("AWS_SHARED_CREDENTIALS_FILE", &missing)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    let signed_with = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SIGNED_WITH="))
        .unwrap_or_else(|| panic!("child printed no key:\n{stdout}\n{stderr}"));
    let account = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ACCOUNT="))
        .unwrap();
    assert_eq!(account, "123456789012", "moto's GetCallerIdentity answered");
    let issued: Vec<String> = env
        .sessions()
        .into_iter()
        .filter_map(|s| s.access_key_id)
        .collect();
    assert!(
        issued.iter().any(|k| k == signed_with),
        "the SDK signed with {signed_with}, the emulator issued {issued:?}"
    );
    assert!(sidecar.log().contains(signed_with));
}

/// Records the access key id in the `Authorization` header the SDK sends.
#[derive(Debug, Clone, Default)]
struct SignedWith(Arc<Mutex<Option<String>>>);

impl Intercept for SignedWith {
    fn name(&self) -> &'static str {
        "SignedWith"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_sts::error::BoxError> {
        let key = context
            .request()
            .headers()
            .get("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|rest| rest.split('/').next())
            .map(str::to_owned);
        *self.0.lock().unwrap() = key;
        Ok(())
    }
}

/// The SDK half, run only as a child of the test above.
#[tokio::test]
#[ignore = "run by aws_sdk_default_chain_uses_the_sidecar_and_moto_sts_accepts"]
async fn sdk_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let signed_with = SignedWith::default();
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&config)
            .interceptor(signed_with.clone())
            .build(),
    );
    let identity = sts.get_caller_identity().send().await.unwrap();
    println!("ACCOUNT={}", identity.account().unwrap_or_default());
    println!(
        "SIGNED_WITH={}",
        signed_with.0.lock().unwrap().clone().unwrap()
    );
}
