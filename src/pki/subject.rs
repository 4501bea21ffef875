//! Distinguished names from the API's subject fields.

use rcgen::{DistinguishedName, DnType};

use crate::api::Subject;

/// The X.509 name for a subject, attributes in the order C, ST, L, O, OU, CN.
pub fn distinguished_name(subject: &Subject) -> DistinguishedName {
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
