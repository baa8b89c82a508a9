//! The server's configuration: `/etc/rear-server/config.toml`, read once at start.
//!
//! Input: TOML text. Output: a validated [`Config`] whose values are parsed at this edge
//! (socket address, database URL, durations, proxy networks), so the rest of the server never
//! sees a string where it needs a type. `docs/server.md` shows a complete file.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::store::s3::{S3Config, S3Url};

/// Errors of the configuration; each names the file and, where it can, the setting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("{}: {error}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        error: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped settings.
    #[error("{}: {error}", .path.display())]
    Toml {
        /// The file.
        path: PathBuf,
        /// What the parser said (with line and column).
        error: Box<toml::de::Error>,
    },
    /// A setting has a value that cannot be used.
    #[error("{}: {key}: {message}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The setting.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Where the database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file (`sqlite:///var/lib/rear-server/rear.db` or a plain path).
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://user:password@host:port/dbname`).
    Postgres(PgUrl),
}

impl std::fmt::Display for Database {
    /// The URL as messages and logs show it: never with a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            Database::Postgres(u) => f.write_str(u.shown()),
        }
    }
}

/// A `postgres://` URL, checked at parse time. It keeps the password for connecting but shows
/// only the URL without it (in `Display`, `Debug` and every error), so a password in the
/// configuration never reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl {
    url: String,
    shown: String,
}

impl PgUrl {
    /// Parses and checks a `postgres://` or `postgresql://` URL.
    pub fn parse(url: &str) -> Result<PgUrl, String> {
        let shown = redact(url);
        url.parse::<postgres::Config>()
            .map_err(|e| format!("{shown:?} is not a PostgreSQL URL: {e}"))?;
        Ok(PgUrl {
            url: url.to_string(),
            shown,
        })
    }

    /// The URL with its password, for connecting only.
    pub fn secret(&self) -> &str {
        &self.url
    }

    /// The URL without a password.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgUrl({:?})", self.shown)
    }
}

/// `url` without the password of its user part (`user:pw@` becomes `user@`) and without a
/// `password=` query parameter; both are the forms libpq's URLs allow.
fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{user}@{hosts}")
        }
        None => authority.to_string(),
    };
    let path = match path.split_once('?') {
        Some((p, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|kv| !kv.to_ascii_lowercase().starts_with("password="))
                .collect();
            if kept.is_empty() {
                p.to_string()
            } else {
                format!("{p}?{}", kept.join("&"))
            }
        }
        None => path.to_string(),
    };
    format!("{scheme}://{authority}{path}")
}

/// A network of trusted reverse proxies, such as `127.0.0.1/32` or `::1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR` or `ADDR/PREFIX`.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse().ok().filter(|&p| p <= max)?,
            None => max,
        };
        Some(Cidr { addr, prefix })
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A built-in user of the web GUI.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Argon2 hash in PHC format (`$argon2id$v=19$...`), as `rear-server hash-password` prints.
    pub password_hash: String,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the HTTP server listens.
    pub listen: SocketAddr,
    /// The database.
    pub database: Database,
    /// The content-addressed media store, or with [`Config::media_s3`] the spool of uploads.
    pub media_dir: PathBuf,
    /// The S3-compatible bucket media are kept in instead of `media_dir` (`media_url`).
    pub media_s3: Option<S3Config>,
    /// Media older than this marks a host stale.
    pub max_age: Duration,
    /// A token with which an unknown host may report first and so be created.
    pub enrollment_token: Option<String>,
    /// A bearer token for `/metrics` (a logged-in user may read it too).
    pub metrics_token: Option<String>,
    /// The largest report body accepted, in bytes.
    pub max_report_bytes: usize,
    /// The largest media upload accepted, in bytes.
    pub max_media_bytes: u64,
    /// How long a login lasts.
    pub session_ttl: Duration,
    /// Whether the session cookie gets `Secure` (set it when a TLS proxy is in front).
    pub secure_cookies: bool,
    /// Proxies whose user header is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// The header a trusted proxy sets to the authenticated user name.
    pub user_header: String,
    /// Built-in users.
    pub users: Vec<User>,
    /// Mailed reports sent longer ago than this are refused (and their nonces forgotten).
    pub mail_max_age: Duration,
    /// The largest mail message accepted (SMTP and `ingest-mail`), in bytes.
    pub max_mail_bytes: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Option<String>,
    database: Option<String>,
    media_dir: Option<PathBuf>,
    media_url: Option<String>,
    s3_access_key: Option<String>,
    s3_secret_key: Option<String>,
    max_age: Option<String>,
    enrollment_token: Option<String>,
    metrics_token: Option<String>,
    max_report_bytes: Option<usize>,
    max_media_bytes: Option<u64>,
    session_ttl: Option<String>,
    #[serde(default)]
    secure_cookies: bool,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    user_header: Option<String>,
    #[serde(default)]
    users: Vec<User>,
    mail_max_age: Option<String>,
    max_mail_bytes: Option<usize>,
}

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8480";
/// Default database.
pub const DEFAULT_DATABASE: &str = "sqlite:///var/lib/rear-server/rear.db";
/// Default media store.
pub const DEFAULT_MEDIA_DIR: &str = "/var/lib/rear-server/media";

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|error| Error::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Config::parse(&text, path)
    }

    /// Parses `text`; `path` is only for messages. S3 credentials not in the file come from
    /// the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
    pub fn parse(text: &str, path: &Path) -> Result<Config, Error> {
        Config::parse_with_env(text, path, |k| std::env::var(k).ok())
    }

    /// [`Config::parse`] with the environment given as `env`.
    pub fn parse_with_env(
        text: &str,
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, Error> {
        let raw: Raw = toml::from_str(text).map_err(|error| Error::Toml {
            path: path.to_path_buf(),
            error: Box::new(error),
        })?;
        let invalid = |key: &str, message: String| Error::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            message,
        };
        let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen_text.parse().map_err(|_| {
            invalid(
                "listen",
                format!("{listen_text:?} is not an address:port such as 127.0.0.1:8480"),
            )
        })?;
        let db_text = raw.database.as_deref().unwrap_or(DEFAULT_DATABASE);
        let database = parse_database(db_text).map_err(|m| invalid("database", m))?;
        let duration = |key: &str, v: Option<&str>, default: u64| match v {
            None => Ok(Duration::from_secs(default)),
            Some(s) => parse_duration(s).ok_or_else(|| {
                invalid(
                    key,
                    format!("{s:?} is not a duration such as 7d, 12h, 30m or 90s"),
                )
            }),
        };
        let max_age = duration("max_age", raw.max_age.as_deref(), 7 * 86400)?;
        let session_ttl = duration("session_ttl", raw.session_ttl.as_deref(), 12 * 3600)?;
        let mail_max_age = duration("mail_max_age", raw.mail_max_age.as_deref(), 7 * 86400)?;
        let max_report_bytes = raw.max_report_bytes.unwrap_or(1 << 20);
        let trusted_proxies = raw
            .trusted_proxies
            .iter()
            .map(|s| {
                Cidr::parse(s).ok_or_else(|| {
                    invalid(
                        "trusted_proxies",
                        format!("{s:?} is not an address or network such as 10.0.0.0/8"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (key, t) in [
            ("enrollment_token", &raw.enrollment_token),
            ("metrics_token", &raw.metrics_token),
        ] {
            if let Some(t) = t
                && t.len() < 16
            {
                return Err(invalid(key, "must be at least 16 characters".into()));
            }
        }
        for u in &raw.users {
            if u.name.is_empty() || !u.password_hash.starts_with("$argon2") {
                return Err(invalid(
                    "users",
                    format!(
                        "user {:?}: password_hash must be an argon2 hash from `rear-server hash-password`",
                        u.name
                    ),
                ));
            }
        }
        let media_s3 = match &raw.media_url {
            None => None,
            Some(u) => {
                let url = S3Url::parse(u).map_err(|m| invalid("media_url", m))?;
                let credentials = s3_credentials(raw.s3_access_key, raw.s3_secret_key, &env)
                    .map_err(|(key, m)| invalid(key, m))?;
                Some(S3Config { url, credentials })
            }
        };
        Ok(Config {
            listen,
            media_s3,
            database,
            media_dir: raw
                .media_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_MEDIA_DIR)),
            max_age,
            enrollment_token: raw.enrollment_token,
            metrics_token: raw.metrics_token,
            max_report_bytes,
            max_media_bytes: raw.max_media_bytes.unwrap_or(16 << 30),
            session_ttl,
            secure_cookies: raw.secure_cookies,
            trusted_proxies,
            user_header: raw
                .user_header
                .unwrap_or_else(|| "X-Remote-User".to_string()),
            users: raw.users,
            mail_max_age,
            // base64 turns 57 bytes into a line of 76 characters and CRLF; 64 KiB more for the
            // headers (MTAs add Received: lines) and the text part.
            max_mail_bytes: raw
                .max_mail_bytes
                .unwrap_or(max_report_bytes.div_ceil(57) * 78 + (64 << 10)),
        })
    }
}

/// The S3 credentials: both from the configuration, or else both from the environment; on
/// error the setting to blame and why (never a value).
fn s3_credentials(
    access: Option<String>,
    secret: Option<String>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<rusty_s3::Credentials, (&'static str, String)> {
    let (access, secret, token) = match (access, secret) {
        (Some(a), Some(s)) => (a, s, None),
        (Some(_), None) => return Err(("s3_secret_key", "missing: s3_access_key is set".into())),
        (None, Some(_)) => return Err(("s3_access_key", "missing: s3_secret_key is set".into())),
        (None, None) => match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(a), Some(s)) => (a, s, env("AWS_SESSION_TOKEN")),
            _ => {
                return Err((
                    "media_url",
                    "no S3 credentials: set s3_access_key and s3_secret_key, or \
                     AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"
                        .into(),
                ));
            }
        },
    };
    if access.is_empty() || secret.is_empty() {
        return Err(("s3_access_key", "S3 credentials must not be empty".into()));
    }
    Ok(match token {
        Some(t) => rusty_s3::Credentials::new_with_token(access, secret, t),
        None => rusty_s3::Credentials::new(access, secret),
    })
}

/// `postgres://...` (or `postgresql://`), `sqlite:///abs/path`, `sqlite:relative/path` or a
/// plain path.
pub fn parse_database(s: &str) -> Result<Database, String> {
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        return PgUrl::parse(s).map(Database::Postgres);
    }
    let path = s
        .strip_prefix("sqlite://")
        .or_else(|| s.strip_prefix("sqlite:"))
        .unwrap_or(s);
    if path.is_empty() || path.contains("://") {
        return Err(format!(
            "{s:?} is not a database URL such as {DEFAULT_DATABASE}"
        ));
    }
    Ok(Database::Sqlite(PathBuf::from(path)))
}

/// A duration such as `7d`, `2w`, `12h`, `30m`, `90s` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => return None,
    };
    n.checked_mul(mult).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_duration_units() {
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604800)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2w"), Some(Duration::from_secs(1209600)));
        assert_eq!(parse_duration("3x"), None);
        assert_eq!(parse_duration("d"), None);
    }

    #[test]
    fn parse_database_forms() {
        assert_eq!(
            parse_database("sqlite:///var/x.db"),
            Ok(Database::Sqlite("/var/x.db".into()))
        );
        assert_eq!(
            parse_database("rel.db"),
            Ok(Database::Sqlite("rel.db".into()))
        );
        let pg = parse_database("postgres://rear:s3cret@127.0.0.1:5433/rear").unwrap();
        assert_eq!(pg.to_string(), "postgres://rear@127.0.0.1:5433/rear");
        assert!(!format!("{pg:?}").contains("s3cret"));
        match &pg {
            Database::Postgres(u) => assert!(u.secret().contains("s3cret")),
            other => panic!("{other:?}"),
        }
        let e = parse_database("postgres://u:pw@h:notaport/db").unwrap_err();
        assert!(e.contains("postgres://u@h:notaport/db"), "{e}");
        assert!(!e.contains("pw"), "{e}");
        assert!(parse_database("mysql://x").is_err());
    }

    #[test]
    fn redact_drops_passwords() {
        assert_eq!(redact("postgres://u:p@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://u@h:5432/db"), "postgres://u@h:5432/db");
        assert_eq!(
            redact("postgresql://h/db?user=u&password=p&sslmode=disable"),
            "postgresql://h/db?user=u&sslmode=disable"
        );
        assert_eq!(redact("postgres://u:p:q@h"), "postgres://u@h");
        assert_eq!(redact("postgres://h?password=p"), "postgres://h");
    }

    #[test]
    fn cidr_contains() {
        let n = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert_eq!(Cidr::parse("1.2.3.4/33"), None);
    }

    #[test]
    fn parse_media_url_and_credentials() {
        let url = "media_url = \"s3://b/p?endpoint=http://127.0.0.1:9000\"\n";
        let no_env = |_: &str| None;
        let p = Path::new("c.toml");
        let c = Config::parse_with_env(
            &format!("{url}s3_access_key = \"AKIAX\"\ns3_secret_key = \"sek\"\n"),
            p,
            no_env,
        )
        .unwrap();
        let s3 = c.media_s3.as_ref().unwrap();
        assert_eq!(s3.credentials.key(), "AKIAX");
        assert_eq!(s3.url.prefix, "p/");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("AKIAX") && !shown.contains("sek\""),
            "{shown}"
        );
        let env = |k: &str| {
            (k == "AWS_ACCESS_KEY_ID" || k == "AWS_SECRET_ACCESS_KEY").then(|| format!("env-{k}"))
        };
        let c = Config::parse_with_env(url, p, env).unwrap();
        assert_eq!(
            c.media_s3.unwrap().credentials.secret(),
            "env-AWS_SECRET_ACCESS_KEY"
        );
        let e = Config::parse_with_env(url, p, no_env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("media_url: no S3 credentials"), "{e}");
        let e = Config::parse_with_env(&format!("{url}s3_access_key = \"AKIAX\"\n"), p, no_env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("s3_secret_key: missing"), "{e}");
        assert!(Config::parse_with_env("media_url = \"b\"", p, no_env).is_err());
        assert!(Config::parse("", p).unwrap().media_s3.is_none());
    }

    #[test]
    fn parse_defaults_and_errors() {
        let c = Config::parse("", Path::new("c.toml")).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.max_age, Duration::from_secs(7 * 86400));
        let e = Config::parse("max_age = \"soon\"", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.toml: max_age: "), "{e}");
        let e = Config::parse("colour = 1", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour"), "{e}");
        let e = Config::parse(
            "[[users]]\nname = \"a\"\npassword_hash = \"plain\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("argon2"), "{e}");
    }
}
