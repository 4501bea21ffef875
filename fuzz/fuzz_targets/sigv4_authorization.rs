//! The SigV4-X509 `Authorization` and `X-Amz-Date` headers, as the emulator reads them from
//! any client.
#![no_main]

use iamra::rolesanywhere::sigv4x509::{
    authorization_header, format_amz_date, parse_amz_date, parse_authorization,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(authorization) = parse_authorization(text) {
        // Written back as a client writes it, the header reads as the same parts.
        let rewritten = authorization_header(
            authorization.algorithm,
            &authorization.serial_decimal,
            &authorization.scope,
            &authorization.signed_headers.join(";"),
            &authorization.signature,
        );
        assert_eq!(parse_authorization(&rewritten), Ok(authorization));
    }
    if let Ok(at) = parse_amz_date(text) {
        assert_eq!(parse_amz_date(&format_amz_date(at)).ok(), Some(at));
    }
});
