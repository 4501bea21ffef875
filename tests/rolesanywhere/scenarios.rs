//! The credential-process cases, run against the emulator by any `credential-process`
//! implementation: AWS's official helper and `iamra credential-process` run the same code.

use std::path::Path;
use std::sync::atomic::Ordering;

use crate::fixtures::{self, Alg};
use crate::support::{self, credential_process, start_env};

pub async fn gets_credentials(program: &Path, alg: Alg) -> serde_json::Value {
    let env = start_env(alg).await;
    let leaf = fixtures::leaf(&env.ca, alg);
    let (cert, key) = fixtures::write_leaf(env.dir.path(), "leaf", &leaf);
    credential_process(program, &env, &cert, &key, &env.endpoint())
        .await
        .credentials()
}

pub async fn tampered_request_is_refused(program: &Path) {
    let env = start_env(Alg::EcdsaP256).await;
    let leaf = fixtures::leaf(&env.ca, Alg::EcdsaP256);
    let (cert, key) = fixtures::write_leaf(env.dir.path(), "leaf", &leaf);
    let (proxy, altered) = support::tampering_proxy(env.emulator.addr).await;
    let outcome = credential_process(program, &env, &cert, &key, &format!("http://{proxy}")).await;
    assert_eq!(
        altered.load(Ordering::SeqCst),
        1,
        "the proxy altered no request"
    );
    outcome.assert_refused_with("AccessDeniedException: Invalid signature");
    // The same client and certificate, not tampered with, succeed.
    credential_process(program, &env, &cert, &key, &env.endpoint())
        .await
        .credentials();
}

pub async fn untrusted_ca_is_refused(program: &Path) {
    let env = start_env(Alg::EcdsaP256).await;
    let other_ca = fixtures::ca("iamra test CA", Alg::EcdsaP256); // same name, other key
    let leaf = fixtures::leaf(&other_ca, Alg::EcdsaP256);
    let (cert, key) = fixtures::write_leaf(env.dir.path(), "foreign", &leaf);
    credential_process(program, &env, &cert, &key, &env.endpoint())
        .await
        .assert_refused_with("AccessDeniedException: Untrusted Signing Certificate");
}

pub async fn expired_certificate_is_refused(program: &Path) {
    let env = start_env(Alg::Rsa2048).await;
    let leaf = fixtures::expired_leaf(&env.ca, Alg::Rsa2048);
    let (cert, key) = fixtures::write_leaf(env.dir.path(), "expired", &leaf);
    credential_process(program, &env, &cert, &key, &env.endpoint())
        .await
        .assert_refused_with("AccessDeniedException: Certificate expired");
}

pub async fn revoked_certificate_is_refused(program: &Path) {
    let env = start_env(Alg::EcdsaP256).await;
    let revoked = fixtures::leaf(&env.ca, Alg::EcdsaP256);
    let kept = fixtures::leaf(&env.ca, Alg::EcdsaP256);
    let (revoked_cert, revoked_key) = fixtures::write_leaf(env.dir.path(), "revoked", &revoked);
    let (kept_cert, kept_key) = fixtures::write_leaf(env.dir.path(), "kept", &kept);
    // Accepted before the CRL is imported: the refusal below is the CRL's doing.
    credential_process(program, &env, &revoked_cert, &revoked_key, &env.endpoint())
        .await
        .credentials();
    let crl = fixtures::crl_pem(&env.ca, &[&revoked.serial], 1);
    support::import_enabled_crl(&env, "test-crl", &crl).await;
    credential_process(program, &env, &revoked_cert, &revoked_key, &env.endpoint())
        .await
        .assert_refused_with("AccessDeniedException: Certificate revoked");
    credential_process(program, &env, &kept_cert, &kept_key, &env.endpoint())
        .await
        .credentials();
}

/// Leaf issued by an intermediate CA that the trust anchor does not hold: refused without
/// `--intermediates`, accepted with it (the chain travels in `X-Amz-X509-Chain`).
pub async fn intermediates_are_sent_in_the_chain_header(program: &Path) {
    let env = start_env(Alg::EcdsaP256).await;
    let intermediate = fixtures::intermediate_ca(&env.ca, "iamra intermediate", Alg::Rsa2048);
    let leaf = fixtures::leaf(&intermediate, Alg::EcdsaP256);
    let (cert, key) = fixtures::write_leaf(env.dir.path(), "leaf", &leaf);
    let bundle = env.dir.path().join("intermediates.pem");
    std::fs::write(&bundle, &intermediate.pem).unwrap();
    let run = |intermediates: Option<std::path::PathBuf>| {
        let (cert, key, env) = (&cert, &key, &env);
        async move {
            support::run_credential_process(
                program,
                &env.trust_anchor_arn,
                &env.profile_arn,
                cert,
                key,
                &env.endpoint(),
                intermediates.as_deref(),
            )
            .await
        }
    };
    run(None)
        .await
        .assert_refused_with("AccessDeniedException: Untrusted Signing Certificate");
    run(Some(bundle.clone())).await.credentials();
}
