//! The certificates the PKI layer makes, read back with x509-parser: every property IAM Roles
//! Anywhere checks, with fixed inputs and no cluster.

use ::time::{Duration, OffsetDateTime};
use rcgen::PublicKeyData;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::*;

use super::*;

fn ca(algorithm: KeyAlgorithm) -> (rcgen::KeyPair, String) {
    let key = generate_key(algorithm).unwrap();
    let subject = SubjectName {
        common_name: Some("test CA".into()),
        ..SubjectName::default()
    };
    let now = OffsetDateTime::now_utc();
    let spec = CaCertificateSpec {
        subject,
        not_before: now,
        not_after: now + Duration::days(365),
    };
    let certificate = self_signed_ca(&spec, &key).unwrap();
    (key, certificate.pem())
}

fn leaf_spec(crl: Option<&str>) -> LeafCertificateSpec {
    let now = OffsetDateTime::now_utc();
    LeafCertificateSpec {
        subject: SubjectName {
            common_name: Some("app".into()),
            organization: Some("Example".into()),
            ..Default::default()
        },
        uris: vec!["spiffe://cluster.local/ns/a/sa/b".into()],
        dns_names: vec!["app.a.svc".into()],
        ip_addresses: vec![],
        purpose: LeafPurpose::Client,
        serial_number: random_serial_number().unwrap(),
        not_before: now,
        not_after: now + Duration::hours(24),
        crl_distribution_point: crl.map(str::to_string),
    }
}

#[test]
fn leaf_has_everything_roles_anywhere_checks() {
    for (ca_algorithm, leaf_algorithm) in [
        (KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP256),
        (KeyAlgorithm::Rsa2048, KeyAlgorithm::Rsa2048),
        (KeyAlgorithm::EcdsaP384, KeyAlgorithm::EcdsaP256),
    ] {
        let (ca_key, ca_pem) = ca(ca_algorithm);
        let leaf_key = generate_key(leaf_algorithm).unwrap();
        assert!(key_matches_algorithm(&leaf_key, leaf_algorithm));
        let spec = leaf_spec(Some("http://iamra.example/crl/ns/ca.crl"));
        let pem = issue_leaf(&spec, &leaf_key, &ca_pem, &ca_key)
            .unwrap()
            .pem();

        let parsed = parse_certificate_pem(&pem).unwrap();
        let ca_parsed = parse_certificate_pem(&ca_pem).unwrap();
        assert!(
            parsed.is_signed_by(&ca_parsed.public_key_info),
            "{ca_algorithm:?}"
        );
        assert!(!parsed.is_signed_by(&parsed.public_key_info));
        assert_eq!(parsed.public_key_info, leaf_key.subject_public_key_info());
        assert_eq!(
            parsed.serial_hex,
            serial_hex(&spec.serial_number.to_bytes())
        );
        assert!(!parsed.is_ca);

        let (_, certificate) = X509Certificate::from_der(&parsed.der).unwrap();
        assert_eq!(certificate.version(), X509Version::V3);
        assert_eq!(certificate.raw_serial().len(), SERIAL_NUMBER_BYTES);
        let key_usage = certificate.key_usage().unwrap().unwrap();
        assert!(
            key_usage.critical
                && key_usage.value.digital_signature()
                && !key_usage.value.key_cert_sign()
        );
        assert!(
            certificate
                .extended_key_usage()
                .unwrap()
                .unwrap()
                .value
                .client_auth
        );
        let constraints = certificate.basic_constraints().unwrap().unwrap();
        assert!(constraints.critical && !constraints.value.ca);
        let (_, ca_certificate) = X509Certificate::from_der(&ca_parsed.der).unwrap();
        let ca_ski = ca_certificate
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            });
        let aki = certificate
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    aki.key_identifier.as_ref().map(|id| id.0.to_vec())
                }
                _ => None,
            });
        assert!(
            ca_ski.is_some() && aki == ca_ski,
            "AKI must be the CA's SKI"
        );
        let names: Vec<String> = certificate
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::URI(uri) => format!("uri:{uri}"),
                GeneralName::DNSName(dns) => format!("dns:{dns}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            names,
            ["uri:spiffe://cluster.local/ns/a/sa/b", "dns:app.a.svc"]
        );
        assert!(certificate.subject().to_string().contains("CN=app"));
        let crl_point = certificate.extensions().iter().any(|e| {
            matches!(
                e.parsed_extension(),
                ParsedExtension::CRLDistributionPoints(_)
            )
        });
        assert!(crl_point, "CRL distribution point missing");
        let signature = certificate.signature_algorithm.algorithm.to_id_string();
        // ecdsa-with-SHA256, ecdsa-with-SHA384 (P-384 CA), sha256WithRSAEncryption
        assert!(
            [
                "1.2.840.10045.4.3.2",
                "1.2.840.10045.4.3.3",
                "1.2.840.113549.1.1.11"
            ]
            .contains(&signature.as_str()),
            "{signature}"
        );
    }
}

#[test]
fn ca_is_a_critical_ca_with_cert_and_crl_signing() {
    let (_, pem) = ca(KeyAlgorithm::EcdsaP256);
    let parsed = parse_certificate_pem(&pem).unwrap();
    assert!(parsed.is_ca && parsed.can_sign_certificates);
    assert!(parsed.is_signed_by(&parsed.public_key_info));
    let (_, certificate) = X509Certificate::from_der(&parsed.der).unwrap();
    let constraints = certificate.basic_constraints().unwrap().unwrap();
    assert!(constraints.critical && constraints.value.ca);
    let usage = certificate.key_usage().unwrap().unwrap();
    assert!(usage.critical && usage.value.crl_sign() && usage.value.key_cert_sign());
}

#[test]
fn refuses_inverted_validity_and_bad_names() {
    let (ca_key, ca_pem) = ca(KeyAlgorithm::EcdsaP256);
    let key = generate_key(KeyAlgorithm::EcdsaP256).unwrap();
    let mut spec = leaf_spec(None);
    spec.not_after = spec.not_before - Duration::seconds(1);
    assert!(matches!(
        issue_leaf(&spec, &key, &ca_pem, &ca_key),
        Err(PkiError::Validity(_))
    ));
    let mut spec = leaf_spec(None);
    spec.uris = vec!["ünïcode:x".into()];
    assert!(matches!(
        issue_leaf(&spec, &key, &ca_pem, &ca_key),
        Err(PkiError::InvalidSubjectAltName(_))
    ));
}

#[test]
fn rsa_size_is_checked_for_key_reuse() {
    let key = generate_key(KeyAlgorithm::Rsa2048).unwrap();
    assert!(key_matches_algorithm(&key, KeyAlgorithm::Rsa2048));
    assert!(!key_matches_algorithm(&key, KeyAlgorithm::Rsa3072));
    assert!(!key_matches_algorithm(&key, KeyAlgorithm::EcdsaP256));
}

#[test]
fn pem_bundle_yields_every_certificate() {
    let (_, first) = ca(KeyAlgorithm::EcdsaP256);
    let (_, second) = ca(KeyAlgorithm::EcdsaP256);
    assert_eq!(pem_blocks(&format!("{first}{second}")).unwrap().len(), 2);
    assert!(matches!(
        pem_blocks("nothing here"),
        Err(PkiError::InvalidPem(_))
    ));
    assert!(parse_certificate_der(b"\x30\x03garbage").is_err());
}

#[test]
fn crl_carries_number_entries_reasons_and_the_ca_key_identifier() {
    for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048] {
        let (ca_key, ca_pem) = ca(algorithm);
        let ca_parsed = parse_certificate_pem(&ca_pem).unwrap();
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let spec = CrlSpec {
            number: 300,
            this_update: now,
            next_update: now + Duration::hours(24),
            revoked: vec![
                crate::pki::RevokedCertificate {
                    serial: parse_serial_hex("0b").unwrap(),
                    revoked_at: now,
                    reason: RevocationReason::Superseded,
                },
                crate::pki::RevokedCertificate {
                    serial: parse_serial_hex("4a00ff").unwrap(),
                    revoked_at: now,
                    reason: RevocationReason::KeyCompromise,
                },
                crate::pki::RevokedCertificate {
                    serial: parse_serial_hex("0b").unwrap(),
                    revoked_at: now,
                    reason: RevocationReason::Superseded,
                },
                crate::pki::RevokedCertificate {
                    serial: parse_serial_hex("77").unwrap(),
                    revoked_at: now,
                    reason: RevocationReason::Unspecified,
                },
            ],
            authority_key_identifier: ca_parsed.subject_key_identifier.clone().unwrap(),
        };
        let crl = build_crl(&spec, &ca_pem, &ca_key).unwrap();
        let (_, parsed) =
            x509_parser::revocation_list::CertificateRevocationList::from_der(crl.der()).unwrap();
        let (_, ca_certificate) = X509Certificate::from_der(&ca_parsed.der).unwrap();
        parsed
            .verify_signature(ca_certificate.public_key())
            .expect("CRL signature verifies with the CA key");
        assert_eq!(parsed.version(), Some(X509Version::V2));
        assert_eq!(
            parsed.crl_number().map(|n| n.to_string()),
            Some("300".into())
        );
        assert_eq!(
            parsed.next_update().map(|t| t.timestamp()),
            Some((now + Duration::hours(24)).unix_timestamp())
        );
        let entries: Vec<(String, Option<u8>)> = parsed
            .iter_revoked_certificates()
            .map(|entry| {
                (
                    entry.raw_serial_as_string(),
                    entry.reason_code().map(|(_, code)| code.0),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("0b".to_string(), Some(4)),
                ("4a:00:ff".to_string(), Some(1)),
                ("77".to_string(), None),
            ],
            "sorted, deduplicated, no reasonCode for unspecified"
        );
        let aki = parsed
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    aki.key_identifier.as_ref().map(|id| id.0.to_vec())
                }
                _ => None,
            });
        assert_eq!(aki, ca_parsed.subject_key_identifier);
    }
}

#[test]
fn serial_hex_parsing() {
    assert_eq!(parse_serial_hex("0a0b").unwrap(), [0x0a, 0x0b]);
    assert_eq!(parse_serial_hex("abc").unwrap(), [0x0a, 0xbc]);
    assert_eq!(parse_serial_hex("0000ff").unwrap(), [0xff]);
    assert_eq!(parse_serial_hex("00").unwrap(), [0x00]);
    // Non-ASCII once panicked in byte slicing and crash-looped every replica.
    for bad in [
        "",
        "xyz",
        "0g",
        &"ab".repeat(22),
        "é",
        "aé",
        "0aé1",
        "+1",
        " 1",
    ] {
        assert!(parse_serial_hex(bad).is_err(), "{bad}");
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Serials as the controller makes them: positive, no leading zero octet, up to 20 octets.
    fn serial() -> impl Strategy<Value = Vec<u8>> {
        (1u8..=0x7f, prop::collection::vec(any::<u8>(), 0..20)).prop_map(|(first, rest)| {
            let mut serial = vec![first];
            serial.extend(rest);
            serial
        })
    }

    fn reason() -> impl Strategy<Value = RevocationReason> {
        prop::sample::select(vec![
            RevocationReason::Unspecified,
            RevocationReason::KeyCompromise,
            RevocationReason::Superseded,
            RevocationReason::CessationOfOperation,
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn a_crl_lists_each_distinct_serial_once_in_the_shard_it_belongs_to(
            entries in prop::collection::vec((serial(), reason()), 0..60),
        ) {
            let (ca_key, ca_pem) = ca(KeyAlgorithm::EcdsaP256);
            let ca_parsed = parse_certificate_pem(&ca_pem).unwrap();
            let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
            let revoked: Vec<crate::pki::RevokedCertificate> = entries
                .iter()
                .map(|(serial, reason)| crate::pki::RevokedCertificate {
                    serial: serial.clone(),
                    revoked_at: now,
                    reason: *reason,
                })
                .collect();
            let mut expected: Vec<Vec<u8>> = entries.iter().map(|(s, _)| s.clone()).collect();
            expected.sort();
            expected.dedup();
            let shards = super::split_into_shards(&revoked);
            prop_assert_eq!(shards.iter().map(Vec::len).sum::<usize>(), revoked.len());
            for (index, shard) in std::iter::once(&revoked).chain(shards.iter()).enumerate() {
                let spec = CrlSpec {
                    number: 7,
                    this_update: now,
                    next_update: now + Duration::hours(1),
                    revoked: shard.clone(),
                    authority_key_identifier: ca_parsed.subject_key_identifier.clone().unwrap(),
                };
                let crl = build_crl(&spec, &ca_pem, &ca_key).unwrap();
                let (_, parsed) = x509_parser::revocation_list::CertificateRevocationList::from_der(crl.der()).unwrap();
                let listed: Vec<Vec<u8>> = parsed
                    .iter_revoked_certificates()
                    .map(|entry| entry.raw_serial().to_vec())
                    .collect();
                let wanted: Vec<Vec<u8>> = if index == 0 {
                    expected.clone()
                } else {
                    expected.iter().filter(|s| super::crl_shard_of(s) == index - 1).cloned().collect()
                };
                prop_assert_eq!(listed, wanted);
            }
        }

        #[test]
        fn a_serial_round_trips_through_its_hex(serial in serial()) {
            prop_assert_eq!(parse_serial_hex(&super::super::serial_hex(&serial)).unwrap(), serial);
        }

        #[test]
        fn any_serial_text_parses_or_is_refused_without_a_panic(text in "\\PC{0,60}") {
            if let Ok(bytes) = parse_serial_hex(&text) {
                prop_assert!(!bytes.is_empty() && bytes.len() <= MAX_SERIAL_NUMBER_BYTES + 1);
            }
        }

        #[test]
        fn pem_round_trips_and_any_text_is_parsed_or_refused(
            der in prop::collection::vec(any::<u8>(), 0..300),
            noise in "\\PC{0,200}",
        ) {
            let text = super::super::pem::encode_pem("CERTIFICATE", &der);
            let blocks = super::super::pem::parse_pem(&text).unwrap();
            prop_assert_eq!(blocks.len(), 1);
            prop_assert_eq!(&blocks[0].der, &der);
            let _ = super::super::pem::parse_pem(&noise);
            let _ = super::super::pem::parse_pem(&format!("{text}{noise}"));
        }
    }
}
