//! Secrets and who is asking: host tokens, password hashes, session and CSRF tokens, the
//! trusted proxy header.
//!
//! Input: request headers, the peer address and the configuration. Output: a host name or a
//! [`Viewer`]. Tokens and session ids are stored only as SHA-256; passwords only as argon2
//! hashes (RFC 9106) in PHC string format. Secrets are compared in constant time and never
//! logged.

use std::net::IpAddr;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use super::config::Config;

/// Errors of the secrets helpers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operating system's random source failed.
    #[error("random source: {0}")]
    Random(String),
    /// A password could not be hashed.
    #[error("hashing the password: {0}")]
    Hash(String),
}

/// Who is looking at the GUI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The user name.
    pub user: String,
    /// The session's CSRF token for POST forms; `None` for a proxy-authenticated user, who has
    /// no session to end.
    pub csrf: Option<String>,
}

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> Result<String, Error> {
    crate::random::hex(n).map_err(|e| Error::Random(e.to_string()))
}

/// A new host or session token: 32 random bytes as hex.
pub fn new_token() -> Result<String, Error> {
    random_hex(32)
}

/// The stored form of a token: its SHA-256 in hex.
pub fn token_hash(token: &str) -> String {
    rear_model::manifest::sha256_hex(token.as_bytes())
}

/// Compares two secrets in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of an `Authorization: Bearer TOKEN` header value.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let h = header?.trim();
    let (scheme, token) = h.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The value of cookie `name` in a `Cookie` header value.
pub fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// An argon2id hash of `password` with a random salt, in PHC format.
pub fn hash_password(password: &str) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Error::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Hash(e.to_string()))
}

/// Whether `hash` is a PHC string this server can verify against.
pub fn valid_hash(hash: &str) -> bool {
    hash.starts_with("$argon2") && PasswordHash::new(hash).is_ok()
}

/// Whether `password` matches the PHC `hash`. Slow on purpose (tens of milliseconds): call it
/// off the async workers.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// The user named by the proxy header, if the peer is a trusted proxy; otherwise the header is
/// ignored, whatever it says.
pub fn proxy_user(config: &Config, peer: IpAddr, header: Option<&str>) -> Option<String> {
    if !config.trusted_proxies.iter().any(|n| n.contains(peer)) {
        return None;
    }
    let user = header?.trim();
    (!user.is_empty() && user.len() <= 256 && !user.chars().any(char::is_control))
        .then(|| user.to_string())
}

/// The client's address: the peer's, or when the peer is a trusted proxy, the last address in
/// its `X-Forwarded-For` header (the one that proxy added; earlier ones the client may forge).
pub fn client_addr(config: &Config, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
    if !config.trusted_proxies.iter().any(|n| n.contains(peer)) {
        return peer;
    }
    forwarded_for
        .and_then(|h| h.rsplit(',').next())
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or(peer)
}

/// Whether `name` can be a host name: 1 to 253 of letters, digits, `-`, `_` and `.`, not
/// starting with `.` or `-`.
pub fn valid_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn bearer_parses_the_scheme() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn cookie_finds_by_name() {
        let h = Some("a=1; rear_session=xyz; b=2");
        assert_eq!(cookie(h, "rear_session"), Some("xyz"));
        assert_eq!(cookie(h, "session"), None);
    }

    #[test]
    fn same_compares_whole_strings() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }

    #[test]
    fn hash_password_verifies() {
        let h = hash_password("s3cret").unwrap();
        assert!(valid_hash(&h));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("s3cre", &h));
        assert!(!verify_password("s3cret", "$argon2id$garbage"));
    }

    #[test]
    fn proxy_user_only_from_trusted_peers() {
        let c = Config::parse("trusted_proxies = [\"10.0.0.0/8\"]", Path::new("c")).unwrap();
        let from = |ip: &str| proxy_user(&c, ip.parse().unwrap(), Some("alice"));
        assert_eq!(from("10.1.1.1").as_deref(), Some("alice"));
        assert_eq!(from("127.0.0.1"), None);
        assert_eq!(
            proxy_user(&c, "10.0.0.1".parse().unwrap(), Some("a\nb")),
            None
        );
    }

    #[test]
    fn client_addr_believes_only_trusted_proxies() {
        let c = Config::parse("trusted_proxies = [\"10.0.0.1\"]", Path::new("c")).unwrap();
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let xff = Some("198.51.100.9, 203.0.113.5");
        assert_eq!(client_addr(&c, ip("10.0.0.1"), xff), ip("203.0.113.5"));
        assert_eq!(client_addr(&c, ip("10.0.0.2"), xff), ip("10.0.0.2"));
        assert_eq!(client_addr(&c, ip("10.0.0.1"), None), ip("10.0.0.1"));
        assert_eq!(
            client_addr(&c, ip("10.0.0.1"), Some("junk")),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn valid_host_name_rejects_paths() {
        assert!(valid_host_name("web-01.example"));
        assert!(!valid_host_name("../etc"));
        assert!(!valid_host_name("a/b"));
        assert!(!valid_host_name(""));
        assert!(!valid_host_name("a b"));
    }
}
