//! SigV4-X509, the request signature of IAM Roles Anywhere `CreateSession`: pure functions from
//! request parts to the canonical request, the string to sign and the `Authorization` header, and
//! back (parsing an `Authorization` header for the emulator). No I/O, no clock.
//!
//! It is SigV4 with three differences: the algorithm names the key type
//! (`AWS4-X509-ECDSA-SHA256` / `AWS4-X509-RSA-SHA256`), the credential is the signing
//! certificate's serial number in decimal, and the string to sign is signed with the certificate's
//! private key (SHA-256) instead of an HMAC chain.

use time::OffsetDateTime;
use time::macros::format_description;

/// The signing name in the credential scope.
pub const SERVICE_NAME: &str = "rolesanywhere";
/// The only path SigV4-X509 signs.
pub const SESSIONS_PATH: &str = "/sessions";
pub const HEADER_AMZ_DATE: &str = "x-amz-date";
pub const HEADER_X509: &str = "x-amz-x509";
pub const HEADER_X509_CHAIN: &str = "x-amz-x509-chain";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    EcdsaSha256,
    RsaSha256,
}

impl SigningAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            Self::EcdsaSha256 => "AWS4-X509-ECDSA-SHA256",
            Self::RsaSha256 => "AWS4-X509-RSA-SHA256",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "AWS4-X509-ECDSA-SHA256" => Some(Self::EcdsaSha256),
            "AWS4-X509-RSA-SHA256" => Some(Self::RsaSha256),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Sigv4Error {
    #[error("Authorization header is malformed: {0}")]
    MalformedAuthorization(&'static str),
    #[error("unsupported signing algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error("X-Amz-Date {0:?} is not in the form YYYYMMDDTHHMMSSZ")]
    MalformedDate(String),
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
pub fn format_amz_date(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    // The format has only numeric components of a valid date: formatting cannot fail.
    at.format(&format).unwrap_or_default()
}

pub fn parse_amz_date(value: &str) -> Result<OffsetDateTime, Sigv4Error> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(value, &format)
        .map(|t| t.assume_utc())
        .map_err(|_| Sigv4Error::MalformedDate(value.to_owned()))
}

/// `YYYYMMDD/{region}/rolesanywhere/aws4_request`, the date taken from the `X-Amz-Date` value.
pub fn credential_scope(amz_date: &str, region: &str) -> String {
    let day = amz_date.get(..8).unwrap_or(amz_date);
    format!("{day}/{region}/{SERVICE_NAME}/aws4_request")
}

/// Percent-encodes everything but the RFC 3986 unreserved characters, `%20` for a space (what Go's
/// `url.Values.Encode` followed by `+` → `%20` yields, as the official helper does).
pub fn uri_encode(value: &str) -> String {
    const SIGV4_SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(value, SIGV4_SET).to_string()
}

/// Decoded query pairs → `k=v&…`, encoded, sorted by key then value.
pub fn canonical_query_string(pairs: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The canonical header block and the `SignedHeaders` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalHeaders {
    /// `name:value` lines joined by `\n` (no trailing newline).
    pub block: String,
    /// Lower-case names joined by `;`.
    pub signed_headers: String,
}

/// Lower-cases names, trims each value and collapses its inner runs of spaces, joins repeated
/// headers with `,`, and sorts by name. (HTTP parsers already trim values, so this agrees with the
/// official helper, which trims the joined line.)
pub fn canonical_headers(headers: &[(String, String)]) -> CanonicalHeaders {
    let mut merged: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (name, value) in headers {
        merged
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(value.clone());
    }
    let block = merged
        .iter()
        .map(|(name, values)| {
            let values: Vec<String> = values.iter().map(|v| collapse_spaces(v)).collect();
            format!("{name}:{}", values.join(","))
        })
        .collect::<Vec<_>>()
        .join("\n");
    let signed_headers = merged.keys().cloned().collect::<Vec<_>>().join(";");
    CanonicalHeaders {
        block,
        signed_headers,
    }
}

fn collapse_spaces(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut previous_space = false;
    for c in value.trim_matches(' ').chars() {
        if c == ' ' && previous_space {
            continue;
        }
        previous_space = c == ' ';
        out.push(c);
    }
    out
}

/// `METHOD\nPATH\nQUERY\nHEADERS\n\nSIGNED_HEADERS\nhex(sha256(body))`.
pub fn canonical_request(
    method: &str,
    path: &str,
    canonical_query: &str,
    headers: &CanonicalHeaders,
    payload_sha256_hex: &str,
) -> String {
    format!(
        "{method}\n{path}\n{canonical_query}\n{}\n\n{}\n{payload_sha256_hex}",
        headers.block, headers.signed_headers
    )
}

/// `ALGORITHM\nX-Amz-Date\nSCOPE\nhex(sha256(canonical request))`.
pub fn string_to_sign(
    algorithm: SigningAlgorithm,
    amz_date: &str,
    scope: &str,
    canonical_request: &str,
) -> String {
    format!(
        "{}\n{amz_date}\n{scope}\n{}",
        algorithm.name(),
        crate::pki::sha256_hex(canonical_request.as_bytes())
    )
}

pub fn authorization_header(
    algorithm: SigningAlgorithm,
    serial_decimal: &str,
    scope: &str,
    signed_headers: &str,
    signature: &[u8],
) -> String {
    format!(
        "{} Credential={serial_decimal}/{scope}, SignedHeaders={signed_headers}, Signature={}",
        algorithm.name(),
        hex::encode(signature)
    )
}

/// The parts of an `Authorization` header, as the service reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub algorithm: SigningAlgorithm,
    pub serial_decimal: String,
    /// `YYYYMMDD/region/service/aws4_request`.
    pub scope: String,
    pub region: String,
    pub service: String,
    pub scope_date: String,
    /// Lower-case names, in the order given.
    pub signed_headers: Vec<String>,
    pub signature: Vec<u8>,
}

pub fn parse_authorization(header: &str) -> Result<Authorization, Sigv4Error> {
    let (algorithm, rest) = header
        .split_once(' ')
        .ok_or(Sigv4Error::MalformedAuthorization("no algorithm"))?;
    let algorithm = SigningAlgorithm::from_name(algorithm)
        .ok_or_else(|| Sigv4Error::UnsupportedAlgorithm(algorithm.to_owned()))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(Sigv4Error::MalformedAuthorization("component without '='"))?;
        match key {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed = Some(value),
            "Signature" => signature = Some(value),
            _ => return Err(Sigv4Error::MalformedAuthorization("unknown component")),
        }
    }
    let credential = credential.ok_or(Sigv4Error::MalformedAuthorization("no Credential"))?;
    let signed = signed.ok_or(Sigv4Error::MalformedAuthorization("no SignedHeaders"))?;
    let signature = signature.ok_or(Sigv4Error::MalformedAuthorization("no Signature"))?;
    let (serial_decimal, scope) =
        credential
            .split_once('/')
            .ok_or(Sigv4Error::MalformedAuthorization(
                "Credential has no scope",
            ))?;
    let scope_parts: Vec<&str> = scope.split('/').collect();
    let [scope_date, region, service, terminator] = scope_parts.as_slice() else {
        return Err(Sigv4Error::MalformedAuthorization(
            "scope is not date/region/service/aws4_request",
        ));
    };
    if *terminator != "aws4_request"
        || serial_decimal.is_empty()
        || !serial_decimal.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(Sigv4Error::MalformedAuthorization("bad Credential"));
    }
    let signature = hex::decode(signature)
        .ok()
        .ok_or(Sigv4Error::MalformedAuthorization("Signature is not hex"))?;
    Ok(Authorization {
        algorithm,
        serial_decimal: serial_decimal.to_owned(),
        scope: scope.to_owned(),
        region: (*region).to_owned(),
        service: (*service).to_owned(),
        scope_date: (*scope_date).to_owned(),
        signed_headers: signed.split(';').map(str::to_owned).collect(),
        signature,
    })
}

/// A big-endian unsigned integer (a certificate serial) in decimal, as the credential carries it.
pub fn decimal_serial(big_endian: &[u8]) -> String {
    let mut digits: Vec<u8> = vec![0]; // little-endian base-10 digits
    for byte in big_endian {
        let mut carry = u32::from(*byte);
        for digit in digits.iter_mut() {
            let value = u32::from(*digit) * 256 + carry;
            *digit = (value % 10) as u8;
            carry = value / 10;
        }
        while carry > 0 {
            digits.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    while digits.len() > 1 && digits.last() == Some(&0) {
        digits.pop();
    }
    digits.iter().rev().map(|d| char::from(b'0' + d)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const ROLE: &str = "arn:aws:iam::123456789012:role/app";
    const PROFILE: &str = "arn:aws:rolesanywhere:eu-west-1:123456789012:profile/p-1";
    const ANCHOR: &str = "arn:aws:rolesanywhere:eu-west-1:123456789012:trust-anchor/ta-1";

    #[test]
    fn amz_date_and_scope() {
        let at = datetime!(2024-03-05 07:08:09 UTC);
        assert_eq!(format_amz_date(at), "20240305T070809Z");
        assert_eq!(parse_amz_date("20240305T070809Z").unwrap(), at);
        assert!(parse_amz_date("2024-03-05T07:08:09Z").is_err());
        assert_eq!(
            credential_scope("20240305T070809Z", "eu-west-1"),
            "20240305/eu-west-1/rolesanywhere/aws4_request"
        );
    }

    #[test]
    fn query_is_encoded_like_go_url_values_with_percent20() {
        let pairs = vec![
            ("trustAnchorArn".to_owned(), ANCHOR.to_owned()),
            ("roleArn".to_owned(), ROLE.to_owned()),
            ("profileArn".to_owned(), PROFILE.to_owned()),
            ("x".to_owned(), "a b+c~".to_owned()),
        ];
        assert_eq!(
            canonical_query_string(&pairs),
            "profileArn=arn%3Aaws%3Arolesanywhere%3Aeu-west-1%3A123456789012%3Aprofile%2Fp-1\
             &roleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fapp\
             &trustAnchorArn=arn%3Aaws%3Arolesanywhere%3Aeu-west-1%3A123456789012%3Atrust-anchor%2Fta-1\
             &x=a%20b%2Bc~"
        );
    }

    #[test]
    fn headers_are_lowercased_sorted_merged_and_trimmed() {
        let headers = vec![
            ("X-Amz-Date".to_owned(), "20240305T070809Z".to_owned()),
            ("Host".to_owned(), "example.com".to_owned()),
            ("X-Multi".to_owned(), " a  b ".to_owned()),
            ("x-multi".to_owned(), "c".to_owned()),
        ];
        let canonical = canonical_headers(&headers);
        assert_eq!(
            canonical.block,
            "host:example.com\nx-amz-date:20240305T070809Z\nx-multi:a b,c"
        );
        assert_eq!(canonical.signed_headers, "host;x-amz-date;x-multi");
    }

    /// A fixed request: the expected canonical request is written out by hand from the
    /// protocol description, and its SHA-256 was computed with `sha256sum`, not by this code.
    #[test]
    fn canonical_request_string_to_sign_and_authorization_for_a_fixed_request() {
        let body = br#"{"durationSeconds":3600}"#;
        let headers = canonical_headers(&[
            ("Content-Type".into(), "application/json".into()),
            (
                "Host".into(),
                "rolesanywhere.eu-west-1.amazonaws.com".into(),
            ),
            ("X-Amz-Date".into(), "20240305T070809Z".into()),
            ("X-Amz-X509".into(), "MIIBAAAA".into()),
        ]);
        let query = canonical_query_string(&[
            ("profileArn".into(), PROFILE.into()),
            ("roleArn".into(), ROLE.into()),
            ("trustAnchorArn".into(), ANCHOR.into()),
        ]);
        let request = canonical_request(
            "POST",
            SESSIONS_PATH,
            &query,
            &headers,
            &crate::pki::sha256_hex(body),
        );
        let expected = "POST\n/sessions\n\
            profileArn=arn%3Aaws%3Arolesanywhere%3Aeu-west-1%3A123456789012%3Aprofile%2Fp-1\
            &roleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fapp\
            &trustAnchorArn=arn%3Aaws%3Arolesanywhere%3Aeu-west-1%3A123456789012%3Atrust-anchor%2Fta-1\n\
            content-type:application/json\n\
            host:rolesanywhere.eu-west-1.amazonaws.com\n\
            x-amz-date:20240305T070809Z\n\
            x-amz-x509:MIIBAAAA\n\
            \n\
            content-type;host;x-amz-date;x-amz-x509\n\
            PAYLOAD_HASH";
        assert_eq!(request, expected.replace("PAYLOAD_HASH", BODY_SHA256));
        let scope = credential_scope("20240305T070809Z", "eu-west-1");
        let to_sign = string_to_sign(
            SigningAlgorithm::EcdsaSha256,
            "20240305T070809Z",
            &scope,
            &request,
        );
        assert_eq!(
            to_sign,
            format!(
                "AWS4-X509-ECDSA-SHA256\n20240305T070809Z\n\
                 20240305/eu-west-1/rolesanywhere/aws4_request\n{CANONICAL_REQUEST_SHA256}"
            )
        );
        let auth = authorization_header(
            SigningAlgorithm::RsaSha256,
            "340282366920938463463374607431768211455",
            &scope,
            &headers.signed_headers,
            &[0xde, 0xad],
        );
        assert_eq!(
            auth,
            "AWS4-X509-RSA-SHA256 Credential=340282366920938463463374607431768211455/\
             20240305/eu-west-1/rolesanywhere/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-x509, Signature=dead"
        );
        let parsed = parse_authorization(&auth).unwrap();
        assert_eq!(parsed.algorithm, SigningAlgorithm::RsaSha256);
        assert_eq!(parsed.region, "eu-west-1");
        assert_eq!(parsed.service, "rolesanywhere");
        assert_eq!(parsed.scope_date, "20240305");
        assert_eq!(parsed.signed_headers.len(), 4);
        assert_eq!(parsed.signature, vec![0xde, 0xad]);
    }

    // printf '%s' '{"durationSeconds":3600}' | sha256sum
    const BODY_SHA256: &str = "1a15f67f6619aa540b13e9a4c37d149fb2c9bdea25d82b73a3878826694dfe27";
    // the expected canonical request above, piped through sha256sum
    const CANONICAL_REQUEST_SHA256: &str =
        "908f89d98175e5a86679336323f9940b65b2592d9f1b2cfb8321b0e70bf6beac";

    #[test]
    fn rejects_malformed_authorization() {
        for bad in [
            "",
            "AWS4-HMAC-SHA256 Credential=1/20240305/r/s/aws4_request, SignedHeaders=host, Signature=00",
            "AWS4-X509-RSA-SHA256 Credential=abc/20240305/r/s/aws4_request, SignedHeaders=host, Signature=00",
            "AWS4-X509-RSA-SHA256 Credential=1/20240305/r/s, SignedHeaders=host, Signature=00",
            "AWS4-X509-RSA-SHA256 Credential=1/20240305/r/s/aws4_request, SignedHeaders=host, Signature=0g",
            "AWS4-X509-RSA-SHA256 Credential=1/20240305/r/s/aws4_request, Signature=00",
        ] {
            assert!(parse_authorization(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn serial_in_decimal() {
        assert_eq!(decimal_serial(&[]), "0");
        assert_eq!(decimal_serial(&[0x00, 0x01, 0x00]), "256");
        assert_eq!(
            decimal_serial(&[0xff; 16]),
            "340282366920938463463374607431768211455"
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_written_authorization_header_reads_back(
            rsa in any::<bool>(),
            serial in "[1-9][0-9]{0,40}",
            date in "20[0-9]{6}",
            region in "[a-z]{2}-[a-z]{4,9}-[1-9]",
            signature in prop::collection::vec(any::<u8>(), 0..128),
        ) {
            let algorithm = if rsa { SigningAlgorithm::RsaSha256 } else { SigningAlgorithm::EcdsaSha256 };
            let scope = format!("{date}/{region}/rolesanywhere/aws4_request");
            let header = authorization_header(algorithm, &serial, &scope, "content-type;host;x-amz-date", &signature);
            let parsed = parse_authorization(&header).unwrap();
            prop_assert_eq!(parsed.algorithm, algorithm);
            prop_assert_eq!(parsed.serial_decimal, serial);
            prop_assert_eq!(parsed.region, region);
            prop_assert_eq!(parsed.scope_date, date);
            prop_assert_eq!(parsed.signed_headers, ["content-type", "host", "x-amz-date"]);
            prop_assert_eq!(parsed.signature, signature);
        }

        #[test]
        fn any_authorization_header_or_date_is_read_or_refused_without_a_panic(
            text in "(AWS4-X509-(ECDSA|RSA)-SHA256 )?\\PC{0,120}",
        ) {
            let _ = parse_authorization(&text);
            let _ = parse_amz_date(&text);
            let _ = hex::decode(&text);
        }
    }
}
