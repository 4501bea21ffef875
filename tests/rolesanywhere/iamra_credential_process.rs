//! `iamra credential-process` (the binary) against the emulator: the same cases as the official
//! helper, plus the traditional PEM key forms.

use crate::fixtures::{self, Alg};
use crate::scenarios;
use crate::support::{credential_process, iamra_binary, start_env};

#[tokio::test(flavor = "multi_thread")]
async fn iamra_gets_credentials_with_an_ecdsa_certificate() {
    scenarios::gets_credentials(&iamra_binary(), Alg::EcdsaP256).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn iamra_gets_credentials_with_an_rsa_certificate() {
    scenarios::gets_credentials(&iamra_binary(), Alg::Rsa2048).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn iamra_loads_sec1_and_pkcs1_keys() {
    for alg in [Alg::EcdsaP256, Alg::Rsa2048] {
        let env = start_env(alg).await;
        let leaf = fixtures::leaf(&env.ca, alg);
        let (cert, _) = fixtures::write_leaf(env.dir.path(), "leaf", &leaf);
        let key = fixtures::write_traditional_key(env.dir.path(), "leaf", &leaf);
        credential_process(&iamra_binary(), &env, &cert, &key, &env.endpoint())
            .await
            .credentials();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn iamra_tampered_request_is_refused() {
    scenarios::tampered_request_is_refused(&iamra_binary()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn iamra_untrusted_ca_is_refused() {
    scenarios::untrusted_ca_is_refused(&iamra_binary()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn iamra_expired_certificate_is_refused() {
    scenarios::expired_certificate_is_refused(&iamra_binary()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn iamra_revoked_certificate_is_refused() {
    scenarios::revoked_certificate_is_refused(&iamra_binary()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn iamra_reports_a_key_that_does_not_match_the_certificate() {
    let env = start_env(Alg::EcdsaP256).await;
    let leaf = fixtures::leaf(&env.ca, Alg::EcdsaP256);
    let other = fixtures::leaf(&env.ca, Alg::EcdsaP256);
    let (cert, _) = fixtures::write_leaf(env.dir.path(), "leaf", &leaf);
    let (_, other_key) = fixtures::write_leaf(env.dir.path(), "other", &other);
    let outcome =
        credential_process(&iamra_binary(), &env, &cert, &other_key, &env.endpoint()).await;
    outcome.assert_refused_with("the private key does not belong to the certificate");
    assert!(
        !outcome.stderr.contains("PRIVATE KEY"),
        "key material in the error: {}",
        outcome.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn iamra_sends_intermediates_in_x_amz_x509_chain() {
    scenarios::intermediates_are_sent_in_the_chain_header(&iamra_binary()).await;
}
