//! The emulator's resources (trust anchors, profiles, CRLs) and their optional persistence in a
//! JSON state file, rewritten atomically after every change so a restart keeps what was imported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Emulated account id (the value AWS documentation uses in examples).
pub const DEFAULT_ACCOUNT_ID: &str = "123456789012";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustAnchor {
    pub id: String,
    pub arn: String,
    pub name: String,
    pub enabled: bool,
    /// The CERTIFICATE_BUNDLE source: one or more PEM CA certificates.
    pub certificate_bundle_pem: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub id: String,
    pub arn: String,
    pub name: String,
    pub enabled: bool,
    pub role_arns: Vec<String>,
    pub duration_seconds: Option<u32>,
    pub accept_role_session_name: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Crl {
    pub id: String,
    pub arn: String,
    pub name: String,
    pub enabled: bool,
    pub trust_anchor_arn: String,
    /// The CRL as imported (PEM or DER), base64 in the state file.
    #[serde(with = "base64_bytes")]
    pub crl_data: Vec<u8>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmulatorState {
    pub account_id: String,
    pub region: String,
    pub trust_anchors: BTreeMap<String, TrustAnchor>,
    pub profiles: BTreeMap<String, Profile>,
    pub crls: BTreeMap<String, Crl>,
    /// Emulator-only: the trust policy (`AssumeRolePolicyDocument`) of a role, by role ARN, as
    /// stored (validated) by `PUT /emulator/roles/trust-policy`. A role without one trusts every
    /// certificate the profile lets through. Absent in state files written before it existed.
    #[serde(default)]
    pub role_trust_policies: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("reading state file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("state file {path} is not valid: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("writing state file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("state file {path} is for region {found}, the emulator runs in {expected}")]
    RegionMismatch {
        path: String,
        found: String,
        expected: String,
    },
}

impl EmulatorState {
    pub fn new(region: &str) -> Self {
        Self {
            account_id: DEFAULT_ACCOUNT_ID.to_owned(),
            region: region.to_owned(),
            trust_anchors: BTreeMap::new(),
            profiles: BTreeMap::new(),
            crls: BTreeMap::new(),
            role_trust_policies: BTreeMap::new(),
        }
    }

    /// Loads `path` if it exists, else a fresh state.
    pub fn load_or_new(path: Option<&Path>, region: &str) -> Result<Self, StateError> {
        let Some(path) = path else {
            return Ok(Self::new(region));
        };
        let display = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::new(region)),
            Err(source) => {
                return Err(StateError::Read {
                    path: display,
                    source,
                });
            }
        };
        let state: Self = serde_json::from_str(&text).map_err(|source| StateError::Parse {
            path: display.clone(),
            source,
        })?;
        if state.region != region {
            return Err(StateError::RegionMismatch {
                path: display,
                found: state.region,
                expected: region.to_owned(),
            });
        }
        Ok(state)
    }

    /// Writes to a temporary file then renames, so a crash leaves the old or the new state.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let write_error = |source| StateError::Write {
            path: path.display().to_string(),
            source,
        };
        let json = serde_json::to_vec_pretty(self).map_err(|e| write_error(e.into()))?;
        let tmp: PathBuf = path.with_extension("tmp");
        std::fs::write(&tmp, json).map_err(write_error)?;
        std::fs::rename(&tmp, path).map_err(write_error)
    }

    pub fn arn(&self, kind: &str, id: &str) -> String {
        format!(
            "arn:aws:rolesanywhere:{}:{}:{kind}/{id}",
            self.region, self.account_id
        )
    }

    pub fn trust_anchor_by_arn(&self, arn: &str) -> Option<&TrustAnchor> {
        self.trust_anchors.values().find(|t| t.arn == arn)
    }

    pub fn profile_by_arn(&self, arn: &str) -> Option<&Profile> {
        self.profiles.values().find(|p| p.arn == arn)
    }

    pub fn crls_of(&self, trust_anchor_arn: &str) -> impl Iterator<Item = &Crl> {
        self.crls
            .values()
            .filter(move |c| c.trust_anchor_arn == trust_anchor_arn)
    }
}

/// A random id in the UUID v4 text form the service uses for resource ids.
pub fn new_resource_id() -> String {
    let mut bytes = [0u8; 16];
    // SystemRandom only fails if the OS has no entropy source, which we cannot recover from.
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        bytes = OffsetDateTime::now_utc()
            .unix_timestamp_nanos()
            .to_be_bytes();
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut state = EmulatorState::load_or_new(Some(&path), "eu-west-1").unwrap();
        assert!(state.crls.is_empty());
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let id = new_resource_id();
        state.crls.insert(
            id.clone(),
            Crl {
                id: id.clone(),
                arn: state.arn("crl", &id),
                name: "c".into(),
                enabled: true,
                trust_anchor_arn: "a".into(),
                crl_data: vec![0, 1, 255],
                created_at: now,
                updated_at: now,
            },
        );
        state.save(&path).unwrap();
        let loaded = EmulatorState::load_or_new(Some(&path), "eu-west-1").unwrap();
        assert_eq!(loaded.crls[&id].crl_data, vec![0, 1, 255]);
        assert_eq!(loaded.crls[&id].created_at, now);
        assert!(matches!(
            EmulatorState::load_or_new(Some(&path), "us-east-1"),
            Err(StateError::RegionMismatch { .. })
        ));
    }

    #[test]
    fn a_state_file_without_trust_policies_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(
            &path,
            r#"{"accountId":"123456789012","region":"eu-west-1","trustAnchors":{},"profiles":{},"crls":{}}"#,
        )
        .unwrap();
        let mut state = EmulatorState::load_or_new(Some(&path), "eu-west-1").unwrap();
        assert!(state.role_trust_policies.is_empty());
        let role = "arn:aws:iam::123456789012:role/r";
        state
            .role_trust_policies
            .insert(role.into(), serde_json::json!({"Statement": []}));
        state.save(&path).unwrap();
        let loaded = EmulatorState::load_or_new(Some(&path), "eu-west-1").unwrap();
        assert_eq!(
            loaded.role_trust_policies[role],
            serde_json::json!({"Statement": []})
        );
    }

    #[test]
    fn resource_ids_look_like_uuids() {
        let id = new_resource_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert_ne!(id, new_resource_id());
    }
}
