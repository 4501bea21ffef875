//! CreateSession responses as the sidecar and `credential-process` read them, from whatever
//! answers at the endpoint.
#![no_main]

use iamra::rolesanywhere::errors::CreateSessionError;
use iamra::rolesanywhere::session::parse_create_session_response;
use libfuzzer_sys::fuzz_target;

const ERROR_TYPES: [Option<&str>; 5] = [
    None,
    Some("AccessDeniedException"),
    Some("ThrottlingException"),
    Some("ValidationException"),
    Some("AccessDeniedException:http://internal.amazon.com/coral/"),
];

fuzz_target!(|input: (u16, u8, &[u8])| {
    let (status, error_type, body) = input;
    let error_type = ERROR_TYPES[usize::from(error_type) % ERROR_TYPES.len()];
    match parse_create_session_response(status, error_type, body) {
        Ok(credentials) => {
            assert!(
                (200..300).contains(&status),
                "credentials from HTTP {status}"
            );
            // Logging the credentials never shows the secret parts (unless a secret happens to
            // be part of a field that is shown).
            let shown = format!("{credentials:?}");
            let public = [&credentials.access_key_id, &credentials.expiration];
            for secret in [&credentials.secret_access_key, &credentials.session_token] {
                if secret.len() >= 4 && !public.iter().any(|p| p.contains(secret.as_str())) {
                    assert!(!shown.contains(secret.as_str()), "{shown}");
                }
            }
        }
        Err(CreateSessionError::MalformedResponse {
            status: reported, ..
        }) => {
            assert_eq!(reported, status);
        }
        Err(_) => assert!(
            !(200..300).contains(&status),
            "an error shape from HTTP {status}"
        ),
    }
});
