//! The certificate attributes the service maps into session tags (`aws:PrincipalTag/...`) with a
//! profile's *default* attribute mapping, as pure functions.
//!
//! What the AWS documentation says (IAM Roles Anywhere User Guide, "Certificate attribute
//! mapping", <https://docs.aws.amazon.com/rolesanywhere/latest/userguide/attribute-mapping.html>):
//!
//! - `x509Subject` maps every supported RDN of the certificate's Subject into its own principal
//!   tag; `x509Issuer` does the same for the certificate's Issuer (the leaf's issuer name field).
//! - `x509SAN` maps the **first** value of each of these types: DNS name, Directory Name, URI.
//!   The default rules are `DNS`, `URI` and `Name/*`, and the page says `*` maps "all recognizable
//!   RDNs for x509Subject, x509Issuer and x509SAN/Name", so the first Directory Name becomes
//!   `x509SAN/Name/<attr>` tags (e.g. `x509SAN/Name/CN`), not one `x509SAN/Name` tag.
//!
//! Which RDNs are "supported" is not listed. The docs name `C`, `O`, `OU`, `ST`, `L`, `CN`
//! ("Mapping identities to your workloads",
//! <https://docs.aws.amazon.com/rolesanywhere/latest/userguide/workload-identities.html>) and
//! `UID` (API reference `MappingRule`,
//! <https://docs.aws.amazon.com/rolesanywhere/latest/APIReference/API_MappingRule.html>); the
//! emulator maps exactly those and ignores other attribute types. A principal tag holds one
//! value, so when a name repeats an attribute (two `OU`s) the emulator keeps the first one; the
//! service's choice there is not documented. Values that are not text strings (BMPString,
//! TeletexString) are skipped.

use std::collections::BTreeMap;

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::x509::X509Name;

/// Certificate field prefixes of the tag keys, as the service spells them.
pub const SUBJECT_FIELD: &str = "x509Subject";
pub const ISSUER_FIELD: &str = "x509Issuer";
pub const SAN_FIELD: &str = "x509SAN";

/// The RDN attribute types the emulator maps, by OID, with the specifier the service uses.
const SUPPORTED_RDNS: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.11", "OU"),
    ("2.5.4.10", "O"),
    ("2.5.4.6", "C"),
    ("2.5.4.8", "ST"),
    ("2.5.4.7", "L"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

const OID_COMMON_NAME: &str = "2.5.4.3";

/// One attribute of a distinguished name, in certificate order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAttribute {
    /// Dotted OID of the attribute type.
    pub oid: String,
    pub value: String,
}

impl NameAttribute {
    pub fn new(oid: &str, value: &str) -> Self {
        Self {
            oid: oid.to_owned(),
            value: value.to_owned(),
        }
    }
}

/// A Subject Alternative Name entry; the types the default mapping does not use are `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AltName {
    Dns(String),
    Uri(String),
    Directory(Vec<NameAttribute>),
    Other,
}

/// The certificate's Subject Alternative Name extension is malformed or repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed subject alternative name extension")]
pub struct MalformedSan;

/// The names of a certificate that attribute mapping reads, decoupled from ASN.1 so the mapping
/// is table-tested with plain values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateNames {
    pub subject: Vec<NameAttribute>,
    pub issuer: Vec<NameAttribute>,
    pub alt_names: Vec<AltName>,
}

impl CertificateNames {
    /// Reads subject, issuer and SANs. A SAN extension that does not parse is an error rather
    /// than "no SANs": a Deny conditioned on a SAN must not be dodged by a malformed extension.
    pub fn from_certificate(certificate: &X509Certificate<'_>) -> Result<Self, MalformedSan> {
        let alt_names = match certificate.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .map(|name| match name {
                    GeneralName::DNSName(dns) => AltName::Dns((*dns).to_owned()),
                    GeneralName::URI(uri) => AltName::Uri((*uri).to_owned()),
                    GeneralName::DirectoryName(dn) => AltName::Directory(name_attributes(dn)),
                    _ => AltName::Other,
                })
                .collect(),
            Ok(None) => Vec::new(),
            Err(_) => return Err(MalformedSan),
        };
        Ok(Self {
            subject: name_attributes(certificate.subject()),
            issuer: name_attributes(certificate.issuer()),
            alt_names,
        })
    }

    /// The first CN of the subject: what the service sets as the session's source identity.
    pub fn subject_common_name(&self) -> Option<&str> {
        self.subject
            .iter()
            .find(|a| a.oid == OID_COMMON_NAME)
            .map(|a| a.value.as_str())
    }
}

fn name_attributes(name: &X509Name<'_>) -> Vec<NameAttribute> {
    name.iter()
        .flat_map(|rdn| rdn.iter())
        .filter_map(|attribute| {
            let value = attribute.as_str().ok()?;
            Some(NameAttribute::new(
                &attribute.attr_type().to_id_string(),
                value,
            ))
        })
        .collect()
}

/// Session tags keyed without the `aws:PrincipalTag/` prefix, e.g. `x509SAN/URI`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrincipalTags(BTreeMap<String, String>);

impl PrincipalTags {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// First value wins: a tag holds one value.
    fn insert_first(&mut self, key: String, value: &str) {
        self.0.entry(key).or_insert_with(|| value.to_owned());
    }

    fn map_rdns(&mut self, prefix: &str, attributes: &[NameAttribute]) {
        for attribute in attributes {
            if let Some((_, specifier)) =
                SUPPORTED_RDNS.iter().find(|(oid, _)| *oid == attribute.oid)
            {
                self.insert_first(format!("{prefix}/{specifier}"), &attribute.value);
            }
        }
    }
}

/// The tags of a profile with the default attribute mapping (no `PutAttributeMapping`).
pub fn default_principal_tags(names: &CertificateNames) -> PrincipalTags {
    let mut tags = PrincipalTags::default();
    tags.map_rdns(SUBJECT_FIELD, &names.subject);
    tags.map_rdns(ISSUER_FIELD, &names.issuer);
    // Only the first SAN of each type is mapped; later ones of the same type are ignored even
    // when the first one is a different identity (the docs' "first value" rule).
    if let Some(dns) = names.alt_names.iter().find_map(|n| match n {
        AltName::Dns(dns) => Some(dns),
        _ => None,
    }) {
        tags.insert_first(format!("{SAN_FIELD}/DNS"), dns);
    }
    if let Some(uri) = names.alt_names.iter().find_map(|n| match n {
        AltName::Uri(uri) => Some(uri),
        _ => None,
    }) {
        tags.insert_first(format!("{SAN_FIELD}/URI"), uri);
    }
    if let Some(directory) = names.alt_names.iter().find_map(|n| match n {
        AltName::Directory(attributes) => Some(attributes),
        _ => None,
    }) {
        tags.map_rdns(&format!("{SAN_FIELD}/Name"), directory);
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    const CN: &str = "2.5.4.3";
    const OU: &str = "2.5.4.11";
    const O: &str = "2.5.4.10";
    const C: &str = "2.5.4.6";
    const ST: &str = "2.5.4.8";
    const L: &str = "2.5.4.7";
    const UID: &str = "0.9.2342.19200300.100.1.1";
    const EMAIL: &str = "1.2.840.113549.1.9.1";

    fn attrs(pairs: &[(&str, &str)]) -> Vec<NameAttribute> {
        pairs
            .iter()
            .map(|(o, v)| NameAttribute::new(o, v))
            .collect()
    }

    fn tags(pairs: &[(&str, &str)]) -> PrincipalTags {
        PrincipalTags(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn default_mapping_table() {
        let uri = |u: &str| AltName::Uri(u.to_owned());
        let dns = |d: &str| AltName::Dns(d.to_owned());
        let cases: Vec<(&str, CertificateNames, PrincipalTags)> = vec![
            (
                "every supported subject and issuer RDN",
                CertificateNames {
                    subject: attrs(&[
                        (C, "US"),
                        (ST, "WA"),
                        (L, "Seattle"),
                        (O, "Example"),
                        (OU, "team-a"),
                        (CN, "workload"),
                        (UID, "u-1"),
                    ]),
                    issuer: attrs(&[(O, "Example"), (CN, "Example CA")]),
                    alt_names: vec![],
                },
                tags(&[
                    ("x509Subject/C", "US"),
                    ("x509Subject/ST", "WA"),
                    ("x509Subject/L", "Seattle"),
                    ("x509Subject/O", "Example"),
                    ("x509Subject/OU", "team-a"),
                    ("x509Subject/CN", "workload"),
                    ("x509Subject/UID", "u-1"),
                    ("x509Issuer/O", "Example"),
                    ("x509Issuer/CN", "Example CA"),
                ]),
            ),
            (
                "unsupported RDNs are ignored, a repeated RDN keeps its first value",
                CertificateNames {
                    subject: attrs(&[(EMAIL, "a@example.com"), (OU, "first"), (OU, "second")]),
                    issuer: vec![],
                    alt_names: vec![],
                },
                tags(&[("x509Subject/OU", "first")]),
            ),
            (
                "only the first SAN of each type",
                CertificateNames {
                    subject: attrs(&[(CN, "w")]),
                    issuer: vec![],
                    alt_names: vec![
                        AltName::Other,
                        dns("first.example"),
                        uri("spiffe://cluster.local/ns/team-a/sa/x"),
                        dns("second.example"),
                        uri("spiffe://cluster.local/ns/team-b/sa/x"),
                        AltName::Directory(attrs(&[(CN, "dir-1"), (O, "dir-org")])),
                        AltName::Directory(attrs(&[(CN, "dir-2")])),
                    ],
                },
                tags(&[
                    ("x509Subject/CN", "w"),
                    ("x509SAN/DNS", "first.example"),
                    ("x509SAN/URI", "spiffe://cluster.local/ns/team-a/sa/x"),
                    ("x509SAN/Name/CN", "dir-1"),
                    ("x509SAN/Name/O", "dir-org"),
                ]),
            ),
            ("no names, no tags", CertificateNames::default(), tags(&[])),
        ];
        for (name, names, expected) in cases {
            assert_eq!(default_principal_tags(&names), expected, "{name}");
        }
    }

    #[test]
    fn names_are_read_from_a_certificate() {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Tenant CA");
        ca_params
            .distinguished_name
            .push(DnType::OrganizationName, "Platform");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();

        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "sa-x");
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "team-a");
        params.subject_alt_names = vec![
            SanType::URI("spiffe://cluster.local/ns/team-a/sa/x".try_into().unwrap()),
            SanType::DnsName("x.team-a.svc".try_into().unwrap()),
            SanType::URI("spiffe://cluster.local/ns/team-b/sa/x".try_into().unwrap()),
        ];
        let der = params.signed_by(&key, &ca).unwrap().der().to_vec();
        let (_, certificate) = x509_parser::parse_x509_certificate(&der).unwrap();

        let names = CertificateNames::from_certificate(&certificate).unwrap();
        assert_eq!(names.subject_common_name(), Some("sa-x"));
        let tags = default_principal_tags(&names);
        assert_eq!(tags.get("x509Subject/CN"), Some("sa-x"));
        assert_eq!(tags.get("x509Subject/OU"), Some("team-a"));
        assert_eq!(tags.get("x509Issuer/CN"), Some("Tenant CA"));
        assert_eq!(tags.get("x509Issuer/O"), Some("Platform"));
        assert_eq!(tags.get("x509SAN/DNS"), Some("x.team-a.svc"));
        assert_eq!(
            tags.get("x509SAN/URI"),
            Some("spiffe://cluster.local/ns/team-a/sa/x")
        );
    }
}
