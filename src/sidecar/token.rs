//! Tokens: the container-credentials authorization token (a file shared with the application
//! container) and the IMDSv2 session tokens. Comparisons are constant-time so the token cannot
//! be guessed byte by byte from response timings.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use aws_lc_rs::{constant_time, hmac, rand};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// 256 bits of randomness, as hex (a valid HTTP header value, no padding, no newline: the AWS
/// SDKs send the file's bytes as they are and refuse a trailing newline).
const TOKEN_BYTES: usize = 32;
/// IMDSv2's ceiling for `X-aws-ec2-metadata-token-ttl-seconds`.
pub const IMDS_MAX_TTL_SECONDS: u64 = 21_600;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("reading the token file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("writing the token file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("the system random generator failed")]
    Random,
}

fn random_bytes<const N: usize>() -> Result<[u8; N], TokenError> {
    let mut bytes = [0u8; N];
    rand::fill(&mut bytes).map_err(|_| TokenError::Random)?;
    Ok(bytes)
}

/// Reads the token from `path`, or generates one and writes it there with `mode`. Surrounding
/// whitespace is ignored. The file appears whole or not at all: the token is written to a file
/// beside it, then hard-linked into place, which fails if the name exists (so of two writers the
/// first wins). An empty file (left by a crash of a version that wrote in place) holds no token
/// anyone could have used, and is replaced.
pub fn load_or_create_token(path: &Path, mode: u32) -> Result<String, TokenError> {
    for _ in 0..3 {
        if let Some(token) = read_token(path)? {
            return Ok(token);
        }
        let token = hex::encode(random_bytes::<TOKEN_BYTES>()?);
        if link_into_place(path, &token, mode)? {
            return Ok(token);
        }
    }
    read_token(path)?.ok_or_else(|| TokenError::Write {
        path: path.display().to_string(),
        source: std::io::Error::other("the token file stays empty"),
    })
}

/// The token in `path`; None when there is no file, or an empty one (then removed).
fn read_token(path: &Path) -> Result<Option<String>, TokenError> {
    let read_error = |source| TokenError::Read {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(text.trim().to_owned())),
        Ok(_) => match std::fs::remove_file(path) {
            Ok(()) => Ok(None),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(read_error(source)),
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(read_error(source)),
    }
}

/// Writes `token` beside `path` and links it there; false when `path` appeared meanwhile.
fn link_into_place(path: &Path, token: &str, mode: u32) -> Result<bool, TokenError> {
    let write_error = |source| TokenError::Write {
        path: path.display().to_string(),
        source,
    };
    let suffix = hex::encode(random_bytes::<8>()?);
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staged = path.with_file_name(format!(".{file_name}.{suffix}"));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&staged)
        .and_then(|mut file| {
            file.write_all(token.as_bytes())?;
            file.sync_all()
        });
    let linked = written.and_then(|()| std::fs::hard_link(&staged, path));
    // The staged name goes either way; the token lives on under `path` if linked.
    let _ = std::fs::remove_file(&staged);
    match linked {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(source) => Err(write_error(source)),
    }
}

/// Constant-time equality of a presented token with the expected one.
pub fn tokens_match(presented: &[u8], expected: &[u8]) -> bool {
    constant_time::verify_slices_are_equal(presented, expected).is_ok()
}

/// Stateless IMDSv2 session tokens: `expiry-seconds.HMAC(expiry)`, so memory does not grow
/// with the number of tokens handed out and a restart invalidates them all.
pub struct ImdsTokens {
    key: hmac::Key,
}

impl ImdsTokens {
    pub fn new() -> Result<Self, TokenError> {
        let secret = random_bytes::<32>()?;
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
        })
    }

    /// A token valid until `now_unix + ttl_seconds`.
    pub fn issue(&self, now_unix: i64, ttl_seconds: u64) -> String {
        let expiry = now_unix.saturating_add(i64::try_from(ttl_seconds).unwrap_or(i64::MAX));
        let tag = hmac::sign(&self.key, expiry.to_string().as_bytes());
        format!("{expiry}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// True when `token` was issued by this process and has not expired at `now_unix`.
    pub fn is_valid(&self, token: &str, now_unix: i64) -> bool {
        let Some((expiry, tag)) = token.split_once('.') else {
            return false;
        };
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        let Ok(expiry_seconds) = expiry.parse::<i64>() else {
            return false;
        };
        // `hmac::verify` compares in constant time.
        hmac::verify(&self.key, expiry.as_bytes(), &tag).is_ok() && now_unix < expiry_seconds
    }
}

/// Parses `X-aws-ec2-metadata-token-ttl-seconds`: 1..=21600 like IMDS, else `None` (400).
pub fn parse_imds_ttl(value: Option<&str>) -> Option<u64> {
    value?
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|ttl| (1..=IMDS_MAX_TTL_SECONDS).contains(ttl))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn token_compare() {
        assert!(tokens_match(b"abc", b"abc"));
        assert!(!tokens_match(b"abd", b"abc"));
        assert!(!tokens_match(b"ab", b"abc"));
        assert!(!tokens_match(b"", b"abc"));
    }

    #[test]
    fn token_file_is_generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let token = load_or_create_token(&path, 0o640).unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), token);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o007, 0, "world must not read the token: {mode:o}");
        assert_eq!(load_or_create_token(&path, 0o640).unwrap(), token);
        std::fs::write(&path, "given-token\n").unwrap();
        assert_eq!(load_or_create_token(&path, 0o640).unwrap(), "given-token");
        // A zero-byte file left by a crash is replaced, not a crash loop.
        std::fs::write(&path, "").unwrap();
        let replaced = load_or_create_token(&path, 0o640).unwrap();
        assert_eq!(replaced.len(), 64);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), replaced);
        std::fs::write(&path, "\n").unwrap();
        assert_eq!(load_or_create_token(&path, 0o640).unwrap().len(), 64);
        // Nothing staged is left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["token"]);
    }

    #[test]
    fn imds_tokens_expire_and_cannot_be_forged() {
        let tokens = ImdsTokens::new().unwrap();
        let token = tokens.issue(1_000, 60);
        assert!(tokens.is_valid(&token, 1_000));
        assert!(tokens.is_valid(&token, 1_059));
        assert!(!tokens.is_valid(&token, 1_060));
        let (_, tag) = token.split_once('.').unwrap();
        assert!(!tokens.is_valid(&format!("999999.{tag}"), 1_000));
        assert!(!tokens.is_valid("garbage", 1_000));
        assert!(!ImdsTokens::new().unwrap().is_valid(&token, 1_000));
    }

    #[test]
    fn imds_ttl_bounds() {
        assert_eq!(parse_imds_ttl(Some("21600")), Some(21_600));
        assert_eq!(parse_imds_ttl(Some("1")), Some(1));
        assert_eq!(parse_imds_ttl(Some("0")), None);
        assert_eq!(parse_imds_ttl(Some("21601")), None);
        assert_eq!(parse_imds_ttl(Some("x")), None);
        assert_eq!(parse_imds_ttl(None), None);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn an_imds_ttl_is_in_range_or_refused(text in "\\PC{0,12}|[0-9]{1,6}") {
            if let Some(ttl) = parse_imds_ttl(Some(&text)) {
                prop_assert!((1..=IMDS_MAX_TTL_SECONDS).contains(&ttl));
            }
        }
    }
}
