//! `--web.config.file`: Prometheus' web configuration format (exporter-toolkit), plus Hearth's
//! separate read and write credentials.
//!
//! ```yaml
//! tls_server_config:            # Prometheus: TLS is on when both files are set
//!   cert_file: server.crt       # relative paths are relative to this file's directory
//!   key_file: server.key
//! basic_auth_users:             # Prometheus: user -> bcrypt hash; grants read and write
//!   alice: $2y$10$...
//! # Hearth extensions:
//! write_basic_auth_users: { prometheus: $2y$10$... }   # only POST /api/v1/write
//! read_basic_auth_users:  { grafana: $2y$10$... }      # only the query API and /metrics
//! bearer_tokens: [ "..." ]                             # `Authorization: Bearer ...`, read and write
//! write_bearer_tokens: [ "..." ]
//! read_bearer_tokens: [ "..." ]
//! ```
//!
//! A user name may appear in only one of the three user maps. Unknown keys are refused, as
//! Prometheus refuses them, so a misspelt section never silently disables authentication.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{read_yaml, ConfigError};

/// `tls_server_config:`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// The parsed web configuration file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// TLS; absent means plain HTTP.
    pub tls_server_config: Option<TlsServerConfig>,
    /// Users allowed to read and write: name -> bcrypt hash.
    pub basic_auth_users: BTreeMap<String, String>,
    /// Users allowed to write only.
    pub write_basic_auth_users: BTreeMap<String, String>,
    /// Users allowed to read only.
    pub read_basic_auth_users: BTreeMap<String, String>,
    /// Bearer tokens allowed to read and write.
    pub bearer_tokens: Vec<String>,
    /// Bearer tokens allowed to write only.
    pub write_bearer_tokens: Vec<String>,
    /// Bearer tokens allowed to read only.
    pub read_bearer_tokens: Vec<String>,
}

impl WebConfig {
    /// Reads `path`, resolves the TLS file paths against its directory and validates it.
    ///
    /// # Errors
    /// [`ConfigError`] for an unreadable or malformed file, a user in two maps, a hash that is
    /// not bcrypt, or an empty token.
    pub fn load(path: &Path) -> Result<WebConfig, ConfigError> {
        let mut c: WebConfig = read_yaml(path)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        if let Some(tls) = &mut c.tls_server_config {
            if tls.cert_file.as_os_str().is_empty() || tls.key_file.as_os_str().is_empty() {
                return Err(ConfigError::Value {
                    key: "tls_server_config",
                    message: "both cert_file and key_file are required".into(),
                });
            }
            tls.cert_file = dir.join(&tls.cert_file);
            tls.key_file = dir.join(&tls.key_file);
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks the invariants [`WebConfig::load`] documents.
    ///
    /// # Errors
    /// [`ConfigError::Value`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let maps = [&self.basic_auth_users, &self.write_basic_auth_users, &self.read_basic_auth_users];
        for (i, m) in maps.iter().enumerate() {
            for (user, hash) in m.iter() {
                if maps[i + 1..].iter().any(|o| o.contains_key(user)) {
                    return Err(ConfigError::Value {
                        key: "basic_auth_users",
                        message: format!("user {user:?} appears in more than one users map"),
                    });
                }
                // bcrypt hashes are `$2a$`, `$2b$`, `$2x$` or `$2y$` followed by cost and salt.
                if !(hash.len() == 60 && hash.starts_with("$2")) {
                    return Err(ConfigError::Value {
                        key: "basic_auth_users",
                        message: format!("password of user {user:?} is not a bcrypt hash"),
                    });
                }
            }
        }
        let tokens = self.bearer_tokens.iter().chain(&self.write_bearer_tokens).chain(&self.read_bearer_tokens);
        for t in tokens {
            if t.is_empty() {
                return Err(ConfigError::Value { key: "bearer_tokens", message: "empty bearer token".into() });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2y$04$mK2bQv7vC8jG0yxU5W6Q1uQ0l1KxQ9yS6hQ0nE7x7Y8d2T3a4b5c6";

    #[test]
    fn parses_prometheus_format_and_resolves_paths() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web.yml");
        std::fs::write(
            &p,
            format!("tls_server_config:\n  cert_file: a.crt\n  key_file: /abs/a.key\nbasic_auth_users:\n  alice: '{HASH}'\nread_bearer_tokens: [tok]\n"),
        )
        .unwrap();
        let c = WebConfig::load(&p).unwrap();
        let tls = c.tls_server_config.unwrap();
        assert_eq!(tls.cert_file, dir.path().join("a.crt"));
        assert_eq!(tls.key_file, PathBuf::from("/abs/a.key"));
        assert_eq!(c.basic_auth_users["alice"], HASH);
        assert_eq!(c.read_bearer_tokens, vec!["tok".to_string()]);
    }

    #[test]
    fn refuses_unknown_keys_duplicates_and_plain_passwords() {
        assert!(serde_norway::from_str::<WebConfig>("basic_auth_user: {}\n").is_err());
        let dup: WebConfig =
            serde_norway::from_str(&format!("basic_auth_users: {{a: '{HASH}'}}\nread_basic_auth_users: {{a: '{HASH}'}}\n"))
                .unwrap();
        assert!(dup.validate().unwrap_err().to_string().contains("more than one"));
        let plain: WebConfig = serde_norway::from_str("basic_auth_users: {a: secret}\n").unwrap();
        assert!(plain.validate().unwrap_err().to_string().contains("bcrypt"));
    }
}
