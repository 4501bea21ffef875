//! "Does this WorkloadCertificate need a new certificate, and why?" as a chain of pure checks,
//! evaluated in order; the first that fires names the reason.

use crate::controller::reasons;

/// What the controller found in the certificate Secret.
#[derive(Clone, Debug, Default)]
pub struct SecretState {
    /// Serial (hex) of the parsed `tls.crt`, or None when it is missing or does not parse.
    pub certificate_serial: Option<String>,
    pub not_after: i64,
    /// `tls.key` parses and belongs to `tls.crt`.
    pub key_matches_certificate: bool,
    /// The current CA's key verifies the certificate.
    pub signed_by_current_ca: bool,
    /// The key in `tls.key` is of the algorithm the spec asks for.
    pub key_algorithm_matches: bool,
    pub annotated_serial: Option<String>,
    pub annotated_revision: Option<i64>,
    pub annotated_spec_hash: Option<String>,
}

/// The inputs of the decision.
#[derive(Clone, Debug)]
pub struct IssuanceInput {
    /// None when the Secret does not exist.
    pub secret: Option<SecretState>,
    pub status_serial: Option<String>,
    pub status_revision: i64,
    pub spec_hash: String,
    /// When the current certificate is due for renewal (Unix seconds), from its notAfter.
    pub renewal_time: Option<i64>,
    /// A Revocation with `reissue` asked for the certificate with this serial to be replaced.
    pub reissue_serial: Option<String>,
    pub now: i64,
}

/// Why a certificate is issued; the reason of the `Issuing` condition and of the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssuanceTrigger {
    Revoked,
    SecretMissing,
    SecretInvalid,
    KeyMismatch,
    SecretTampered,
    IssuerChanged,
    SpecChanged,
    Expired,
    RenewalDue,
}

impl IssuanceTrigger {
    pub fn reason(self) -> &'static str {
        match self {
            IssuanceTrigger::Revoked => reasons::REVOKED,
            IssuanceTrigger::SecretMissing => reasons::SECRET_MISSING,
            IssuanceTrigger::SecretInvalid => reasons::SECRET_INVALID,
            IssuanceTrigger::KeyMismatch => reasons::KEY_MISMATCH,
            IssuanceTrigger::SecretTampered => reasons::SECRET_TAMPERED,
            IssuanceTrigger::IssuerChanged => reasons::ISSUER_CHANGED,
            IssuanceTrigger::SpecChanged => reasons::SPEC_CHANGED,
            IssuanceTrigger::Expired => reasons::EXPIRED,
            IssuanceTrigger::RenewalDue => reasons::RENEWAL_DUE,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            IssuanceTrigger::Revoked => {
                "the certificate was revoked and is replaced with a new key"
            }
            IssuanceTrigger::SecretMissing => "the certificate Secret does not exist",
            IssuanceTrigger::SecretInvalid => {
                "the certificate Secret has no parseable tls.crt and tls.key"
            }
            IssuanceTrigger::KeyMismatch => {
                "tls.key does not belong to tls.crt, or is not of the requested algorithm"
            }
            IssuanceTrigger::SecretTampered => {
                "the certificate in the Secret is not the one this controller issued last"
            }
            IssuanceTrigger::IssuerChanged => {
                "the certificate was not signed by the Issuer's current CA"
            }
            IssuanceTrigger::SpecChanged => "the spec changed since the certificate was issued",
            IssuanceTrigger::Expired => "the certificate has expired",
            IssuanceTrigger::RenewalDue => "the renewal time was reached",
        }
    }
}

/// The decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The Secret holds the certificate the status describes, and it is good.
    UpToDate,
    /// The Secret holds a good certificate issued by this controller whose status write was lost
    /// (a restart between writing the Secret and the status): record it instead of issuing again.
    Adopt,
    Issue(IssuanceTrigger),
}

type Check = fn(&IssuanceInput, &SecretState) -> Option<IssuanceTrigger>;

const CHECKS: &[Check] = &[
    |_, s| {
        s.certificate_serial
            .is_none()
            .then_some(IssuanceTrigger::SecretInvalid)
    },
    |_, s| {
        (!s.key_matches_certificate || !s.key_algorithm_matches)
            .then_some(IssuanceTrigger::KeyMismatch)
    },
    |_, s| (s.annotated_serial != s.certificate_serial).then_some(IssuanceTrigger::SecretTampered),
    |_, s| (!s.signed_by_current_ca).then_some(IssuanceTrigger::IssuerChanged),
    |i, s| {
        (s.annotated_spec_hash.as_deref() != Some(i.spec_hash.as_str()))
            .then_some(IssuanceTrigger::SpecChanged)
    },
    |i, s| (s.not_after <= i.now).then_some(IssuanceTrigger::Expired),
    |i, _| {
        i.renewal_time
            .is_some_and(|t| t <= i.now)
            .then_some(IssuanceTrigger::RenewalDue)
    },
];

/// Runs the checks in order.
pub fn decide(input: &IssuanceInput) -> Verdict {
    let Some(secret) = &input.secret else {
        return Verdict::Issue(IssuanceTrigger::SecretMissing);
    };
    if input.reissue_serial.is_some() && input.reissue_serial == secret.certificate_serial {
        return Verdict::Issue(IssuanceTrigger::Revoked);
    }
    if let Some(trigger) = CHECKS.iter().find_map(|check| check(input, secret)) {
        return Verdict::Issue(trigger);
    }
    if secret.certificate_serial == input.status_serial {
        return Verdict::UpToDate;
    }
    // The Secret's certificate is ours (annotations written with it) but newer than the status.
    if secret
        .annotated_revision
        .is_some_and(|revision| revision > input.status_revision)
    {
        return Verdict::Adopt;
    }
    Verdict::Issue(IssuanceTrigger::SecretTampered)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn good_secret() -> SecretState {
        SecretState {
            certificate_serial: Some("0a".into()),
            not_after: NOW + 3_600,
            key_matches_certificate: true,
            signed_by_current_ca: true,
            key_algorithm_matches: true,
            annotated_serial: Some("0a".into()),
            annotated_revision: Some(1),
            annotated_spec_hash: Some("hash".into()),
        }
    }

    fn input(secret: Option<SecretState>) -> IssuanceInput {
        IssuanceInput {
            secret,
            status_serial: Some("0a".into()),
            status_revision: 1,
            spec_hash: "hash".into(),
            renewal_time: Some(NOW + 1_000),
            reissue_serial: None,
            now: NOW,
        }
    }

    #[test]
    fn table() {
        type Mutation = fn(&mut IssuanceInput);
        let cases: &[(&str, Mutation, Verdict)] = &[
            ("all good", |_| {}, Verdict::UpToDate),
            (
                "secret deleted",
                |i| i.secret = None,
                Verdict::Issue(IssuanceTrigger::SecretMissing),
            ),
            (
                "tls.crt garbage",
                |i| i.secret.as_mut().unwrap().certificate_serial = None,
                Verdict::Issue(IssuanceTrigger::SecretInvalid),
            ),
            (
                "key replaced",
                |i| i.secret.as_mut().unwrap().key_matches_certificate = false,
                Verdict::Issue(IssuanceTrigger::KeyMismatch),
            ),
            (
                "algorithm changed",
                |i| i.secret.as_mut().unwrap().key_algorithm_matches = false,
                Verdict::Issue(IssuanceTrigger::KeyMismatch),
            ),
            (
                "certificate swapped",
                |i| i.secret.as_mut().unwrap().certificate_serial = Some("0b".into()),
                Verdict::Issue(IssuanceTrigger::SecretTampered),
            ),
            (
                "other CA",
                |i| i.secret.as_mut().unwrap().signed_by_current_ca = false,
                Verdict::Issue(IssuanceTrigger::IssuerChanged),
            ),
            (
                "spec edited",
                |i| i.spec_hash = "other".into(),
                Verdict::Issue(IssuanceTrigger::SpecChanged),
            ),
            (
                "expired",
                |i| i.secret.as_mut().unwrap().not_after = NOW,
                Verdict::Issue(IssuanceTrigger::Expired),
            ),
            (
                "renewal due",
                |i| i.renewal_time = Some(NOW),
                Verdict::Issue(IssuanceTrigger::RenewalDue),
            ),
            (
                "status lost after secret write",
                |i| {
                    i.status_serial = None;
                    i.status_revision = 0;
                },
                Verdict::Adopt,
            ),
            (
                "status ahead of secret",
                |i| {
                    i.status_serial = Some("0c".into());
                    i.status_revision = 2;
                },
                Verdict::Issue(IssuanceTrigger::SecretTampered),
            ),
            (
                "first checks win",
                |i| {
                    i.secret.as_mut().unwrap().key_matches_certificate = false;
                    i.spec_hash = "other".into();
                },
                Verdict::Issue(IssuanceTrigger::KeyMismatch),
            ),
        ];
        for (name, mutate, expected) in cases {
            let mut case = input(Some(good_secret()));
            mutate(&mut case);
            assert_eq!(&decide(&case), expected, "{name}");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_000_000;

    /// Small domains, so that serials, hashes and times often coincide.
    fn serial() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop::sample::select(vec![
            "0a".to_string(),
            "0b".to_string(),
        ]))
    }

    fn secret_state() -> impl Strategy<Value = SecretState> {
        (
            serial(),
            NOW - 2..NOW + 2,
            any::<(bool, bool, bool)>(),
            serial(),
            prop::option::of(0i64..3),
            prop::option::of(prop::sample::select(vec![
                "hash".to_string(),
                "old".to_string(),
            ])),
        )
            .prop_map(
                |(serial, not_after, (key, ca, algorithm), annotated, revision, hash)| {
                    SecretState {
                        certificate_serial: serial,
                        not_after,
                        key_matches_certificate: key,
                        signed_by_current_ca: ca,
                        key_algorithm_matches: algorithm,
                        annotated_serial: annotated,
                        annotated_revision: revision,
                        annotated_spec_hash: hash,
                    }
                },
            )
    }

    fn issuance_input() -> impl Strategy<Value = IssuanceInput> {
        (
            prop::option::of(secret_state()),
            serial(),
            0i64..3,
            prop::option::of(NOW - 2..NOW + 2),
            serial(),
        )
            .prop_map(
                |(secret, status_serial, status_revision, renewal_time, reissue_serial)| {
                    IssuanceInput {
                        secret,
                        status_serial,
                        status_revision,
                        spec_hash: "hash".into(),
                        renewal_time,
                        reissue_serial,
                        now: NOW,
                    }
                },
            )
    }

    /// Everything that must hold for the Secret's certificate to be kept.
    fn keepable(input: &IssuanceInput, secret: &SecretState) -> bool {
        secret.certificate_serial.is_some()
            && secret.key_matches_certificate
            && secret.key_algorithm_matches
            && secret.signed_by_current_ca
            && secret.annotated_serial == secret.certificate_serial
            && secret.annotated_spec_hash.as_deref() == Some(input.spec_hash.as_str())
            && secret.not_after > input.now
            && input.renewal_time.is_none_or(|t| t > input.now)
            && !(input.reissue_serial.is_some()
                && input.reissue_serial == secret.certificate_serial)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn a_certificate_is_kept_only_when_everything_about_it_holds(input in issuance_input()) {
            let verdict = decide(&input);
            match (&input.secret, &verdict) {
                (None, verdict) => prop_assert_eq!(verdict, &Verdict::Issue(IssuanceTrigger::SecretMissing)),
                (Some(secret), Verdict::UpToDate) => {
                    prop_assert!(keepable(&input, secret));
                    prop_assert_eq!(&secret.certificate_serial, &input.status_serial);
                }
                (Some(secret), Verdict::Adopt) => {
                    prop_assert!(keepable(&input, secret));
                    prop_assert!(secret.annotated_revision.is_some_and(|r| r > input.status_revision));
                }
                (Some(secret), Verdict::Issue(_)) => {
                    let adoptable = secret.annotated_revision.is_some_and(|r| r > input.status_revision);
                    prop_assert!(
                        !keepable(&input, secret)
                            || (secret.certificate_serial != input.status_serial && !adoptable),
                        "a good certificate was replaced: {:?}", input
                    );
                }
            }
        }

        #[test]
        fn a_revoked_serial_is_always_replaced(mut input in issuance_input()) {
            if let Some(secret) = &input.secret {
                input.reissue_serial = secret.certificate_serial.clone();
            }
            let revoked = input.secret.as_ref().is_some_and(|s| s.certificate_serial.is_some());
            if revoked {
                prop_assert_eq!(decide(&input), Verdict::Issue(IssuanceTrigger::Revoked));
            }
        }
    }
}
