//! The control plane through the real `aws-sdk-rolesanywhere` (restJson1 over `endpoint_url`):
//! trust anchors, profiles, the CRL operations, their limits, and the SDK's typed errors.

use aws_sdk_rolesanywhere::operation::get_crl::GetCrlError;
use aws_sdk_rolesanywhere::operation::import_crl::ImportCrlError;
use aws_sdk_rolesanywhere::primitives::Blob;
use aws_sdk_rolesanywhere::types::{Source, SourceData, TrustAnchorType};

use crate::fixtures::{self, Alg};
use crate::support::{ROLE_ARN, credential_process, iamra_binary, sdk, start_env};

#[tokio::test(flavor = "multi_thread")]
async fn trust_anchor_and_profile_created_through_the_sdk_issue_sessions() {
    let env = start_env(Alg::EcdsaP256).await;
    let client = sdk(&env.endpoint());
    let ca = fixtures::ca("sdk CA", Alg::Rsa2048);
    let anchor = client
        .create_trust_anchor()
        .name("sdk anchor")
        .enabled(true)
        .source(
            Source::builder()
                .source_type(TrustAnchorType::CertificateBundle)
                .source_data(SourceData::X509CertificateData(ca.pem.clone()))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let anchor = anchor.trust_anchor().unwrap();
    assert_eq!(anchor.enabled(), Some(true));
    assert!(
        anchor
            .trust_anchor_arn()
            .unwrap()
            .contains(":trust-anchor/")
    );
    let profile = client
        .create_profile()
        .name("sdk-profile")
        .role_arns(ROLE_ARN)
        .enabled(true)
        .send()
        .await
        .unwrap();
    let profile = profile.profile().unwrap();
    assert_eq!(profile.role_arns(), [ROLE_ARN.to_owned()]);

    let listed = client.list_trust_anchors().send().await.unwrap();
    assert_eq!(listed.trust_anchors().len(), 2);
    let fetched = client
        .get_trust_anchor()
        .trust_anchor_id(anchor.trust_anchor_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.trust_anchor().unwrap().name(), Some("sdk anchor"));

    let mut session_env = env;
    session_env.trust_anchor_arn = anchor.trust_anchor_arn().unwrap().to_owned();
    session_env.profile_arn = profile.profile_arn().unwrap().to_owned();
    let leaf = fixtures::leaf(&ca, Alg::Rsa2048);
    let (cert, key) = fixtures::write_leaf(session_env.dir.path(), "leaf", &leaf);
    credential_process(
        &iamra_binary(),
        &session_env,
        &cert,
        &key,
        &session_env.endpoint(),
    )
    .await
    .credentials();
}

#[tokio::test(flavor = "multi_thread")]
async fn crl_operations_and_limits_through_the_sdk() {
    let env = start_env(Alg::EcdsaP256).await;
    let client = sdk(&env.endpoint());
    let revoked = fixtures::leaf(&env.ca, Alg::EcdsaP256);
    let (cert, key) = fixtures::write_leaf(env.dir.path(), "revoked", &revoked);
    let empty_crl = fixtures::crl_pem(&env.ca, &[], 1);
    let revoking_crl = fixtures::crl_pem(&env.ca, &[&revoked.serial], 2);

    // ImportCrl (disabled), GetCrl, ListCrls.
    let imported = client
        .import_crl()
        .name("crl-one")
        .crl_data(Blob::new(empty_crl.as_bytes()))
        .trust_anchor_arn(&env.trust_anchor_arn)
        .enabled(false)
        .send()
        .await
        .unwrap();
    let crl = imported.crl().unwrap();
    let crl_id = crl.crl_id().unwrap().to_owned();
    assert_eq!(crl.enabled(), Some(false));
    assert_eq!(crl.trust_anchor_arn(), Some(env.trust_anchor_arn.as_str()));
    assert!(crl.created_at().is_some());
    let got = client.get_crl().crl_id(&crl_id).send().await.unwrap();
    assert_eq!(
        got.crl().unwrap().crl_data().unwrap().as_ref(),
        empty_crl.as_bytes()
    );
    let listed = client.list_crls().send().await.unwrap();
    assert_eq!(listed.crls().len(), 1);

    // UpdateCrl to a CRL listing the certificate: still accepted while the CRL is disabled.
    client
        .update_crl()
        .crl_id(&crl_id)
        .crl_data(Blob::new(revoking_crl.as_bytes()))
        .send()
        .await
        .unwrap();
    credential_process(&iamra_binary(), &env, &cert, &key, &env.endpoint())
        .await
        .credentials();
    // EnableCrl: refused. DisableCrl: accepted again.
    client.enable_crl().crl_id(&crl_id).send().await.unwrap();
    credential_process(&iamra_binary(), &env, &cert, &key, &env.endpoint())
        .await
        .assert_refused_with("Certificate revoked");
    let disabled = client.disable_crl().crl_id(&crl_id).send().await.unwrap();
    assert_eq!(disabled.crl().unwrap().enabled(), Some(false));
    credential_process(&iamra_binary(), &env, &cert, &key, &env.endpoint())
        .await
        .credentials();

    // More than 300,000 bytes: ValidationException, typed by the SDK.
    let oversized = format!("{revoking_crl}{}", " ".repeat(300_001 - revoking_crl.len()));
    let error = client
        .import_crl()
        .name("too-big")
        .crl_data(Blob::new(oversized.as_bytes()))
        .trust_anchor_arn(&env.trust_anchor_arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(error, ImportCrlError::ValidationException(_)),
        "{error:?}"
    );

    // Not a CRL: ValidationException.
    let error = client
        .import_crl()
        .name("garbage")
        .crl_data(Blob::new(
            &b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"[..],
        ))
        .trust_anchor_arn(&env.trust_anchor_arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(error, ImportCrlError::ValidationException(_)),
        "{error:?}"
    );

    // A second CRL is fine, a third for the same trust anchor is over the quota of 2.
    client
        .import_crl()
        .name("crl-two")
        .crl_data(Blob::new(empty_crl.as_bytes()))
        .trust_anchor_arn(&env.trust_anchor_arn)
        .send()
        .await
        .unwrap();
    let error = client
        .import_crl()
        .name("crl-three")
        .crl_data(Blob::new(empty_crl.as_bytes()))
        .trust_anchor_arn(&env.trust_anchor_arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(error, ImportCrlError::ValidationException(_)),
        "{error:?}"
    );

    // Unknown trust anchor on import: ValidationException (ImportCrl's model has no
    // ResourceNotFoundException); unknown CRL id on get: ResourceNotFoundException.
    let error = client
        .import_crl()
        .name("orphan")
        .crl_data(Blob::new(empty_crl.as_bytes()))
        .trust_anchor_arn("arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/missing")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    match &error {
        ImportCrlError::ValidationException(e) => {
            assert!(
                e.message().unwrap_or_default().contains("not found"),
                "{e:?}"
            )
        }
        other => panic!("{other:?}"),
    }

    // DeleteCrl, then GetCrl is ResourceNotFoundException.
    client.delete_crl().crl_id(&crl_id).send().await.unwrap();
    let error = client
        .get_crl()
        .crl_id(&crl_id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(error, GetCrlError::ResourceNotFoundException(_)),
        "{error:?}"
    );
    assert_eq!(client.list_crls().send().await.unwrap().crls().len(), 1);
}
