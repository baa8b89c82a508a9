//! `rear-mkimage`'s configuration file: `/etc/rear/config.toml` (or `--config FILE`).
//!
//! Input: TOML text. Output: a validated [`Config`]; values are parsed here, at the edge (the
//! server URL into a [`Target`], the spool and sendmail paths), so the sender never sees a
//! string where it needs a type. Errors give file, line and column. Today the file has one
//! section, `[server]` (see `docs/rear-mkimage.md`); without it nothing is sent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The default configuration file.
pub const DEFAULT_PATH: &str = "/etc/rear/config.toml";
/// Where unsent reports wait by default.
pub const DEFAULT_SPOOL: &str = "/var/lib/rear/spool";
/// The default mail submission program.
pub const DEFAULT_SENDMAIL: &str = "/usr/sbin/sendmail";

/// Errors of the configuration; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("reading {}: {error}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        error: std::io::Error,
    },
    /// Not valid TOML, an unknown setting, or a value that cannot be used.
    #[error("{}:{line}:{column}: {message}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// Where reports go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A rear-server reached over HTTP(S); the base URL without a trailing slash.
    Http(String),
    /// A mail address, reached through the local `sendmail`.
    Mail(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Http(u) => f.write_str(u),
            Target::Mail(a) => write!(f, "mailto:{a}"),
        }
    }
}

/// The `[server]` section: where and how reports are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// The server or mail address.
    pub target: Target,
    /// Tags for the server's GUI, sorted, without duplicates.
    pub tags: Vec<String>,
    /// The host's token (or, over HTTP, the server's enrollment token).
    pub token: String,
    /// Whether ISO images are uploaded too (HTTP only).
    pub send_media: bool,
    /// Where reports wait until they are sent.
    pub spool: PathBuf,
    /// The mail submission program (`mailto:` only).
    pub sendmail: PathBuf,
    /// The `From:` of mailed reports; `None` leaves it to the MTA.
    pub from: Option<String>,
    /// How long one HTTP request may take.
    pub timeout: Duration,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// `[server]`, when reports are to be sent.
    pub server: Option<Server>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    server: Option<RawServer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    url: toml::Spanned<String>,
    #[serde(default)]
    tags: Vec<String>,
    token: toml::Spanned<String>,
    #[serde(default)]
    send_media: bool,
    spool: Option<PathBuf>,
    sendmail: Option<PathBuf>,
    from: Option<String>,
    #[serde(default = "default_timeout")]
    timeout: toml::Spanned<u64>,
}

fn default_timeout() -> toml::Spanned<u64> {
    toml::Spanned::new(0..0, 60)
}

impl Config {
    /// Reads `path`. A missing file is an empty configuration unless `required` (a path the
    /// user gave with `--config`).
    pub fn load(path: &Path, required: bool) -> Result<Config, Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                Ok(Config::default())
            }
            Err(error) => Err(Error::Read {
                path: path.to_path_buf(),
                error,
            }),
        }
    }

    /// Parses `text`; `path` is for messages only.
    pub fn parse(text: &str, path: &Path) -> Result<Config, Error> {
        let at = |offset: usize, message: String| {
            let (line, column) = crate::recipe::line_column(text, offset);
            Error::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        };
        let raw: Raw = toml::from_str(text)
            .map_err(|e| at(e.span().map_or(0, |s| s.start), e.message().to_string()))?;
        let Some(s) = raw.server else {
            return Ok(Config::default());
        };
        let url = s.url.get_ref().trim();
        let target = if let Some(addr) = url.strip_prefix("mailto:") {
            if !addr.contains('@') || addr.chars().any(|c| c.is_whitespace() || c == ',') {
                return Err(at(
                    s.url.span().start,
                    format!(
                        "url: {url:?} is not one mail address such as mailto:reports@example.org"
                    ),
                ));
            }
            Target::Mail(addr.to_string())
        } else if let Some(rest) = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            && !rest.is_empty()
            && !rest.contains(char::is_whitespace)
        {
            Target::Http(url.trim_end_matches('/').to_string())
        } else {
            return Err(at(
                s.url.span().start,
                format!(
                    "url: {url:?} is not an https://, http:// or mailto: URL (such as https://rear.example.org)"
                ),
            ));
        };
        let token = s.token.get_ref().trim().to_string();
        if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(at(
                s.token.span().start,
                "token: must be the host's token from `rear-server token add` (no spaces)".into(),
            ));
        }
        if *s.timeout.get_ref() == 0 {
            return Err(at(
                s.timeout.span().start,
                "timeout: must be at least 1 second".into(),
            ));
        }
        let mut tags = s.tags;
        tags.sort();
        tags.dedup();
        Ok(Config {
            server: Some(Server {
                target,
                tags,
                token,
                send_media: s.send_media,
                spool: s.spool.unwrap_or_else(|| PathBuf::from(DEFAULT_SPOOL)),
                sendmail: s
                    .sendmail
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_SENDMAIL)),
                from: s.from,
                timeout: Duration::from_secs(*s.timeout.get_ref()),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, Error> {
        Config::parse(text, Path::new("/etc/rear/config.toml"))
    }

    #[test]
    fn parse_server_section() {
        let c = parse(
            "[server]\nurl = \"https://rear.example.org/\"\ntoken = \"abc\"\ntags = [\"web\", \"dmz\", \"web\"]\nsend_media = true\n",
        )
        .unwrap();
        let s = c.server.unwrap();
        assert_eq!(s.target, Target::Http("https://rear.example.org".into()));
        assert_eq!(s.tags, ["dmz", "web"]);
        assert!(s.send_media);
        assert_eq!(s.spool, Path::new(DEFAULT_SPOOL));
        assert_eq!(s.sendmail, Path::new(DEFAULT_SENDMAIL));
        assert_eq!(s.timeout, Duration::from_secs(60));
        let m = parse("[server]\nurl = \"mailto:reports@example.org\"\ntoken = \"t\"\n")
            .unwrap()
            .server
            .unwrap();
        assert_eq!(m.target, Target::Mail("reports@example.org".into()));
        assert_eq!(m.target.to_string(), "mailto:reports@example.org");
    }

    #[test]
    fn parse_empty_has_no_server() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn parse_errors_name_file_line_and_column() {
        let e = parse("[server]\ntoken = \"t\"\nurl = \"ftp://x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/rear/config.toml:3:7: url: "), "{e}");
        let e = parse("[server]\nurl = \"http://x\"\ntoken = \"t\"\ncolour = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/rear/config.toml:4:1: "), "{e}");
        assert!(e.contains("colour"), "{e}");
        let e = parse("[server]\nurl = \"mailto:nobody\"\ntoken = \"t\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":2:7: url: "), "{e}");
        let e = parse("[server]\nurl = \"http://x\"\ntoken = \" \"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":3:9: token: "), "{e}");
        let e = parse("[server]\nurl = \"http://x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("token"), "{e}");
    }

    #[test]
    fn load_missing_default_is_empty_but_given_is_an_error() {
        let p = Path::new("/nonexistent/rear/config.toml");
        assert_eq!(Config::load(p, false).unwrap(), Config::default());
        assert!(matches!(Config::load(p, true), Err(Error::Read { .. })));
    }
}
