//! Authentication of requests: HTTP basic auth against bcrypt hashes (Prometheus' web config)
//! and bearer tokens, each granting [`Scope::Read`], [`Scope::Write`] or both.
//!
//! A scope is protected when at least one credential grants it: configuring only
//! `write_basic_auth_users` protects remote-write and leaves the query API open. `/-/healthy`
//! and `/-/ready` are never protected (probes carry no data); `/metrics` needs read.
//!
//! bcrypt is slow by design (tens of ms at cost 10), so verification runs on the blocking pool
//! and successful `(user, password)` pairs are cached, as Prometheus' exporter-toolkit does. An
//! unknown user is still checked against a fixed hash, so response time does not reveal which
//! user names exist.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::http::{header, HeaderMap};
use base64::Engine;
use parking_lot::Mutex;

use crate::web_config::WebConfig;

/// What a credential allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The query API and `/metrics`.
    Read,
    /// `POST /api/v1/write`.
    Write,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Grants {
    read: bool,
    write: bool,
}

impl Grants {
    fn allows(self, s: Scope) -> bool {
        match s {
            Scope::Read => self.read,
            Scope::Write => self.write,
        }
    }
}

const BOTH: Grants = Grants { read: true, write: true };
const READ: Grants = Grants { read: true, write: false };
const WRITE: Grants = Grants { read: false, write: true };

/// Why a request was not authenticated; rendered as 401 (or 403 for a valid credential
/// without the scope).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header, or one that is not Basic or Bearer.
    #[error("authentication required")]
    Missing,
    /// Wrong user, password or token.
    #[error("invalid credentials")]
    Invalid,
    /// Valid credentials that do not grant this scope.
    #[error("credentials do not allow this operation")]
    Forbidden,
}

/// Most cached successful basic-auth checks; the cache is cleared when full, which only costs
/// a re-verification.
const CACHE_CAPACITY: usize = 1024;

/// A bcrypt hash checked for unknown users so that they cost as much time as known ones (cost
/// 10, as `htpasswd -B` produces). Computed once, on the first unknown user.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| bcrypt::hash("hearth unknown user", 10).unwrap_or_default());

/// Checks credentials against the configured users and tokens. Shared as `Arc<Authenticator>`.
#[derive(Debug)]
pub struct Authenticator {
    users: HashMap<String, (String, Grants)>,
    tokens: Vec<(Vec<u8>, Grants)>,
    protect_read: bool,
    protect_write: bool,
    /// Successful `(user, password)` pairs; a mutex because checks come from every worker and
    /// the critical sections are a hash lookup or insert.
    cache: Mutex<HashSet<(String, String)>>,
}

impl Authenticator {
    /// Builds the checker from a validated web config.
    pub fn new(c: &WebConfig) -> Authenticator {
        let mut users = HashMap::new();
        for (m, g) in [(&c.basic_auth_users, BOTH), (&c.write_basic_auth_users, WRITE), (&c.read_basic_auth_users, READ)] {
            for (u, h) in m {
                users.insert(u.clone(), (h.clone(), g));
            }
        }
        let mut tokens = Vec::new();
        for (l, g) in [(&c.bearer_tokens, BOTH), (&c.write_bearer_tokens, WRITE), (&c.read_bearer_tokens, READ)] {
            tokens.extend(l.iter().map(|t| (t.as_bytes().to_vec(), g)));
        }
        let any = |s: Scope| users.values().any(|(_, g)| g.allows(s)) || tokens.iter().any(|(_, g)| g.allows(s));
        let (protect_read, protect_write) = (any(Scope::Read), any(Scope::Write));
        Authenticator { users, tokens, protect_read, protect_write, cache: Mutex::new(HashSet::new()) }
    }

    /// An authenticator that lets everything through.
    pub fn open() -> Authenticator {
        Authenticator::new(&WebConfig::default())
    }

    /// Whether requests of `scope` need credentials.
    pub fn protects(&self, scope: Scope) -> bool {
        match scope {
            Scope::Read => self.protect_read,
            Scope::Write => self.protect_write,
        }
    }

    /// Checks the `Authorization` header of a request for `scope`.
    ///
    /// # Errors
    /// [`AuthError`] when the scope is protected and the header does not grant it.
    pub async fn check(self: &Arc<Self>, headers: &HeaderMap, scope: Scope) -> Result<(), AuthError> {
        if !self.protects(scope) {
            return Ok(());
        }
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(AuthError::Missing)?;
        let (kind, rest) = value.split_once(' ').ok_or(AuthError::Missing)?;
        let grants = if kind.eq_ignore_ascii_case("bearer") {
            self.check_token(rest.trim().as_bytes())?
        } else if kind.eq_ignore_ascii_case("basic") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .map_err(|_| AuthError::Invalid)?;
            let text = String::from_utf8(raw).map_err(|_| AuthError::Invalid)?;
            let (user, password) = text.split_once(':').ok_or(AuthError::Invalid)?;
            self.check_basic(user.to_string(), password.to_string()).await?
        } else {
            return Err(AuthError::Missing);
        };
        if grants.allows(scope) {
            Ok(())
        } else {
            Err(AuthError::Forbidden)
        }
    }

    fn check_token(&self, presented: &[u8]) -> Result<Grants, AuthError> {
        // Compare against every token without early exit so timing does not reveal a prefix.
        let mut found = None;
        for (t, g) in &self.tokens {
            if constant_time_eq(t, presented) && found.is_none() {
                found = Some(*g);
            }
        }
        found.ok_or(AuthError::Invalid)
    }

    async fn check_basic(self: &Arc<Self>, user: String, password: String) -> Result<Grants, AuthError> {
        let entry = self.users.get(&user).cloned();
        let key = (user, password);
        if let Some((_, g)) = &entry {
            if self.cache.lock().contains(&key) {
                return Ok(*g);
            }
        }
        let hash = entry.as_ref().map(|(h, _)| h.clone());
        let password = key.1.clone();
        let ok = tokio::task::spawn_blocking(move || {
            let hash = hash.unwrap_or_else(|| DUMMY_HASH.clone());
            bcrypt::verify(password, &hash).unwrap_or(false)
        })
            .await
            .unwrap_or(false);
        match entry {
            Some((_, g)) if ok => {
                let mut c = self.cache.lock();
                if c.len() >= CACHE_CAPACITY {
                    c.clear();
                }
                c.insert(key);
                Ok(g)
            }
            _ => Err(AuthError::Invalid),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn basic(user: &str, pw: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {v}")).unwrap());
        h
    }

    fn bearer(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {t}")).unwrap());
        h
    }

    fn config() -> WebConfig {
        let hash = |p: &str| bcrypt::hash(p, 4).unwrap();
        WebConfig {
            basic_auth_users: [("admin".to_string(), hash("a"))].into(),
            write_basic_auth_users: [("prom".to_string(), hash("w"))].into(),
            read_basic_auth_users: [("graf".to_string(), hash("r"))].into(),
            read_bearer_tokens: vec!["rtok".into()],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn scopes_are_enforced() {
        let a = Arc::new(Authenticator::new(&config()));
        assert_eq!(a.check(&HeaderMap::new(), Scope::Read).await, Err(AuthError::Missing));
        assert_eq!(a.check(&basic("admin", "a"), Scope::Write).await, Ok(()));
        assert_eq!(a.check(&basic("admin", "a"), Scope::Read).await, Ok(()));
        assert_eq!(a.check(&basic("prom", "w"), Scope::Write).await, Ok(()));
        assert_eq!(a.check(&basic("prom", "w"), Scope::Read).await, Err(AuthError::Forbidden));
        assert_eq!(a.check(&basic("graf", "r"), Scope::Write).await, Err(AuthError::Forbidden));
        assert_eq!(a.check(&basic("graf", "x"), Scope::Read).await, Err(AuthError::Invalid));
        assert_eq!(a.check(&basic("nobody", "r"), Scope::Read).await, Err(AuthError::Invalid));
        assert_eq!(a.check(&bearer("rtok"), Scope::Read).await, Ok(()));
        assert_eq!(a.check(&bearer("rtok"), Scope::Write).await, Err(AuthError::Forbidden));
        assert_eq!(a.check(&bearer("rto"), Scope::Read).await, Err(AuthError::Invalid));
        // Served from the cache the second time; still right.
        assert_eq!(a.check(&basic("prom", "w"), Scope::Write).await, Ok(()));
    }

    #[tokio::test]
    async fn a_scope_without_credentials_is_open() {
        let c = WebConfig { write_bearer_tokens: vec!["w".into()], ..Default::default() };
        let a = Arc::new(Authenticator::new(&c));
        assert!(a.protects(Scope::Write));
        assert!(!a.protects(Scope::Read));
        assert_eq!(a.check(&HeaderMap::new(), Scope::Read).await, Ok(()));
        assert_eq!(a.check(&HeaderMap::new(), Scope::Write).await, Err(AuthError::Missing));
        let open = Arc::new(Authenticator::open());
        assert_eq!(open.check(&HeaderMap::new(), Scope::Write).await, Ok(()));
    }
}
