//! A ClusterIssuer's identity policy: the subject and SANs a certificate gets, derived from the
//! requesting namespace and service account, never from what a tenant types. Pure functions,
//! table-tested.

use crate::api::{IdentityPolicy, Subject, SubjectTemplate, WorkloadCertificateSpec};

/// Trust domain of SPIFFE ids when the policy names none.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// The URI SAN when the policy names none: the service account's SPIFFE id.
pub const DEFAULT_URI_TEMPLATE: &str = "spiffe://{trustDomain}/ns/{namespace}/sa/{serviceAccount}";
/// X.509's upper bound for CN, O and OU (RFC 5280 ub-common-name and friends).
const MAX_SUBJECT_ATTRIBUTE_CHARS: usize = 64;

/// Who asks for a certificate.
#[derive(Clone, Copy, Debug)]
pub struct Requester<'a> {
    pub namespace: &'a str,
    pub service_account: &'a str,
    /// The WorkloadCertificate's name.
    pub name: &'a str,
}

/// The identity a certificate gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub subject: Subject,
    pub uris: Vec<String>,
    pub dns_names: Vec<String>,
}

fn render_template(template: &str, trust_domain: &str, who: &Requester<'_>) -> String {
    template
        .replace("{namespace}", who.namespace)
        .replace("{serviceAccount}", who.service_account)
        .replace("{name}", who.name)
        .replace("{trustDomain}", trust_domain)
}

/// The identity `policy` gives `who`, or why it cannot give one (a subject attribute too long).
pub fn render(policy: &IdentityPolicy, who: &Requester<'_>) -> Result<Identity, String> {
    let trust_domain = policy
        .trust_domain
        .as_deref()
        .unwrap_or(DEFAULT_TRUST_DOMAIN);
    let render = |template: &str| render_template(template, trust_domain, who);
    let default_subject = SubjectTemplate {
        common_name: Some("{serviceAccount}".into()),
        organization: None,
        organizational_unit: Some("{namespace}".into()),
    };
    let subject_template = policy.subject.as_ref().unwrap_or(&default_subject);
    let attribute = |name: &str, template: &Option<String>| -> Result<Option<String>, String> {
        let Some(template) = template else {
            return Ok(None);
        };
        let value = render(template);
        if value.chars().count() > MAX_SUBJECT_ATTRIBUTE_CHARS {
            return Err(format!(
                "the identity policy's subject {name} for namespace {} and service account {} is {value:?}, longer than X.509's {MAX_SUBJECT_ATTRIBUTE_CHARS} characters",
                who.namespace, who.service_account
            ));
        }
        Ok(Some(value))
    };
    let subject = Subject {
        common_name: attribute("commonName", &subject_template.common_name)?,
        organization: attribute("organization", &subject_template.organization)?,
        organizational_unit: attribute(
            "organizationalUnit",
            &subject_template.organizational_unit,
        )?,
        ..Default::default()
    };
    let uris = match &policy.uris {
        Some(templates) => templates.iter().map(|t| render(t)).collect(),
        None => vec![render(DEFAULT_URI_TEMPLATE)],
    };
    let dns_names = policy
        .dns_names
        .iter()
        .flatten()
        .map(|t| render(t))
        .collect();
    Ok(Identity {
        subject,
        uris,
        dns_names,
    })
}

/// Whether `spec` asks for nothing beyond `identity`: subject and SANs left out (filled in from
/// the policy) or exactly the policy's. The message says what differs and what is allowed.
pub fn check_request(
    spec: &WorkloadCertificateSpec,
    identity: &Identity,
    policy_owner: &str,
) -> Result<(), String> {
    if let Some(subject) = &spec.subject
        && subject != &identity.subject
    {
        return Err(format!(
            "{policy_owner}'s identity policy gives subject {}; spec.subject asks for {}: leave spec.subject out",
            describe_subject(&identity.subject),
            describe_subject(subject)
        ));
    }
    if !spec.uris.is_empty() && spec.uris != identity.uris {
        return Err(format!(
            "{policy_owner}'s identity policy gives URI SANs {:?}; spec.uris asks for {:?}: leave spec.uris out",
            identity.uris, spec.uris
        ));
    }
    if !spec.dns_names.is_empty() && spec.dns_names != identity.dns_names {
        return Err(format!(
            "{policy_owner}'s identity policy gives DNS SANs {:?}; spec.dnsNames asks for {:?}: leave spec.dnsNames out",
            identity.dns_names, spec.dns_names
        ));
    }
    Ok(())
}

fn describe_subject(subject: &Subject) -> String {
    let parts: Vec<String> = [
        ("O", &subject.organization),
        ("OU", &subject.organizational_unit),
        ("CN", &subject.common_name),
        ("C", &subject.country),
        ("L", &subject.locality),
        ("ST", &subject.province),
    ]
    .iter()
    .filter_map(|(key, value)| value.as_ref().map(|v| format!("{key}={v}")))
    .collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHO: Requester<'static> = Requester {
        namespace: "payments",
        service_account: "api",
        name: "api-cert",
    };

    fn spec() -> WorkloadCertificateSpec {
        serde_json::from_value(serde_json::json!({
            "issuerRef": {"name": "platform", "kind": "ClusterIssuer"},
            "serviceAccountName": "api",
            "secretName": "api-tls",
        }))
        .unwrap()
    }

    #[test]
    fn the_default_is_the_service_accounts_spiffe_id() {
        let identity = render(&IdentityPolicy::default(), &WHO).unwrap();
        assert_eq!(identity.uris, ["spiffe://cluster.local/ns/payments/sa/api"]);
        assert!(identity.dns_names.is_empty());
        assert_eq!(identity.subject.common_name.as_deref(), Some("api"));
        assert_eq!(
            identity.subject.organizational_unit.as_deref(),
            Some("payments")
        );
        assert_eq!(identity.subject.organization, None);
    }

    #[test]
    fn templates_fill_every_variable() {
        let policy = IdentityPolicy {
            trust_domain: Some("example.org".into()),
            uris: Some(vec![
                "spiffe://{trustDomain}/{namespace}/{serviceAccount}/{name}".into(),
            ]),
            dns_names: Some(vec!["{serviceAccount}.{namespace}.svc".into()]),
            subject: Some(SubjectTemplate {
                common_name: Some("{namespace}:{serviceAccount}".into()),
                organization: Some("Example".into()),
                organizational_unit: None,
            }),
        };
        let identity = render(&policy, &WHO).unwrap();
        assert_eq!(
            identity.uris,
            ["spiffe://example.org/payments/api/api-cert"]
        );
        assert_eq!(identity.dns_names, ["api.payments.svc"]);
        assert_eq!(
            identity.subject.common_name.as_deref(),
            Some("payments:api")
        );
        assert_eq!(identity.subject.organization.as_deref(), Some("Example"));
        assert_eq!(identity.subject.organizational_unit, None);
    }

    #[test]
    fn too_long_a_subject_is_refused() {
        let long = "a".repeat(70);
        let who = Requester {
            service_account: &long,
            ..WHO
        };
        let error = render(&IdentityPolicy::default(), &who).unwrap_err();
        assert!(error.contains("longer than X.509's 64"), "{error}");
    }

    #[test]
    fn a_request_may_only_restate_the_policy() {
        let identity = render(&IdentityPolicy::default(), &WHO).unwrap();
        type Mutation = fn(&mut WorkloadCertificateSpec);
        let cases: &[(&str, Mutation, Option<&str>)] = &[
            ("nothing asked", |_| {}, None),
            (
                "the policy restated",
                |s| {
                    s.uris = vec!["spiffe://cluster.local/ns/payments/sa/api".into()];
                    s.subject = Some(Subject {
                        common_name: Some("api".into()),
                        organizational_unit: Some("payments".into()),
                        ..Default::default()
                    });
                },
                None,
            ),
            (
                "another namespace's URI",
                |s| s.uris = vec!["spiffe://cluster.local/ns/billing/sa/api".into()],
                Some("spec.uris asks for"),
            ),
            (
                "an extra URI",
                |s| {
                    s.uris = vec![
                        "spiffe://cluster.local/ns/payments/sa/api".into(),
                        "spiffe://cluster.local/ns/billing/sa/api".into(),
                    ]
                },
                Some("spec.uris asks for"),
            ),
            (
                "another namespace in the subject",
                |s| {
                    s.subject = Some(Subject {
                        common_name: Some("api".into()),
                        organizational_unit: Some("billing".into()),
                        ..Default::default()
                    })
                },
                Some("OU=billing"),
            ),
            (
                "a DNS name",
                |s| s.dns_names = vec!["billing.example.com".into()],
                Some("spec.dnsNames asks for"),
            ),
        ];
        for (name, mutate, refusal) in cases {
            let mut request = spec();
            mutate(&mut request);
            match (
                check_request(&request, &identity, "ClusterIssuer platform"),
                refusal,
            ) {
                (Ok(()), None) => {}
                (Err(message), Some(expected)) => {
                    assert!(message.contains(expected), "{name}: {message}");
                    assert!(
                        message.contains("ClusterIssuer platform"),
                        "{name}: {message}"
                    );
                }
                (outcome, _) => panic!("{name}: {outcome:?}"),
            }
        }
    }
}
