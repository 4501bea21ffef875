//! Distinguished names.

use rcgen::{DistinguishedName, DnType};

/// The attributes of a subject name, each when set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubjectName {
    pub common_name: Option<String>,
    pub organization: Option<String>,
    pub organizational_unit: Option<String>,
    pub country: Option<String>,
    pub locality: Option<String>,
    pub province: Option<String>,
}

/// The X.509 name for a subject, attributes in the order C, ST, L, O, OU, CN.
pub fn distinguished_name(subject: &SubjectName) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    let attributes = [
        (DnType::CountryName, &subject.country),
        (DnType::StateOrProvinceName, &subject.province),
        (DnType::LocalityName, &subject.locality),
        (DnType::OrganizationName, &subject.organization),
        (DnType::OrganizationalUnitName, &subject.organizational_unit),
        (DnType::CommonName, &subject.common_name),
    ];
    for (attribute, value) in attributes {
        if let Some(value) = value {
            name.push(attribute, value.as_str());
        }
    }
    name
}
