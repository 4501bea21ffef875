//! AWS's official `aws_signing_helper credential-process` (built from its Go module) against the
//! emulator: proves the emulator verifies what the real client sends, and refuses what it must.

use crate::fixtures::Alg;
use crate::scenarios;
use crate::support::helper_binary;

#[tokio::test(flavor = "multi_thread")]
async fn official_helper_gets_credentials_with_an_ecdsa_certificate() {
    scenarios::gets_credentials(&helper_binary(), Alg::EcdsaP256).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn official_helper_gets_credentials_with_an_rsa_certificate() {
    scenarios::gets_credentials(&helper_binary(), Alg::Rsa2048).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn official_helper_tampered_request_is_refused() {
    scenarios::tampered_request_is_refused(&helper_binary()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn official_helper_untrusted_ca_is_refused() {
    scenarios::untrusted_ca_is_refused(&helper_binary()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn official_helper_expired_certificate_is_refused() {
    scenarios::expired_certificate_is_refused(&helper_binary()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn official_helper_revoked_certificate_is_refused() {
    scenarios::revoked_certificate_is_refused(&helper_binary()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn official_helper_sends_intermediates_in_x_amz_x509_chain() {
    scenarios::intermediates_are_sent_in_the_chain_header(&helper_binary()).await;
}
