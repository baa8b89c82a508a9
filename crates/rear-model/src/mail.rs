//! Reports by mail: the message format and its HMAC, shared by the sender (`rear-mkimage`,
//! through the local `sendmail`) and the receiver (`rear-server ingest-mail` and its SMTP
//! listener, `server::mail`).
//!
//! Input: a report's JSON and the host's token. Output: an RFC 5322 / MIME message (RFC 2045,
//! RFC 2046) with two parts, a short text for people and `report.json` in base64 (so no MTA
//! re-encodes or wraps it), and one header that authenticates it:
//!
//! ```text
//! X-Rear-Signature: v=1; host=web01; t=1700000000;
//!  nonce=<32 hex>;
//!  mac=<64 hex>
//! ```
//!
//! `mac` is HMAC-SHA256 (RFC 2104) with the host's *mail key* over
//! `"rear-mail-v1\n" host "\n" t "\n" nonce "\n"` followed by the exact bytes of `report.json`.
//! The mail key is HMAC-SHA256 with the token as key over `"rear-mail-key-v1"`
//! ([`mail_key`]). The server computes it once when it makes a token and stores it, beside
//! the SHA-256 of the token it keeps for HTTP: so it never stores the token in the clear, a
//! leaked database lets nobody log in over HTTP, and the host needs only its one token.
//! `t` (seconds since 1970, set when the message is handed to the MTA) and the random `nonce`
//! let the server refuse a replayed or very late message.

use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The version tag of the signed text and of the signature header.
pub const VERSION: u32 = 1;

/// The name of the header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Rear-Signature";

/// The file name of the report part.
pub const REPORT_NAME: &str = "report.json";

/// The fields of the signature header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The host the report is from.
    pub host: String,
    /// When the message was sent, in seconds since 1970.
    pub sent: u64,
    /// A random value used once: 32 lower-case hex digits.
    pub nonce: String,
    /// The HMAC, 64 lower-case hex digits.
    pub mac: String,
}

/// Why a signature header cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A field is missing.
    #[error("{SIGNATURE_HEADER}: no {0}=")]
    Missing(&'static str),
    /// A field has a bad value.
    #[error("{SIGNATURE_HEADER}: {field}= {value:?} is not valid")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// The header is of another version.
    #[error("{SIGNATURE_HEADER}: version {0:?} is not supported (this program reads v=1)")]
    Version(String),
}

/// The mail key of `token`, as stored by the server (hex) and derived by the host.
pub fn mail_key(token: &str) -> [u8; 32] {
    mac_over(token.as_bytes(), &[b"rear-mail-key-v1"])
}

/// The mail key of `token` in hex: what the server stores.
pub fn mail_key_hex(token: &str) -> String {
    hex::encode(mail_key(token))
}

fn mac_over(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = keyed(key);
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (RFC 2104 section 2: longer ones are hashed first), so
    // this constructor cannot fail; the fallback only keeps clippy's no-expect rule.
    HmacSha256::new_from_slice(key).unwrap_or_else(|_| HmacSha256::new(&Default::default()))
}

fn signed_prefix(host: &str, sent: u64, nonce: &str) -> String {
    format!("rear-mail-v{VERSION}\n{host}\n{sent}\n{nonce}\n")
}

/// The HMAC of a report with the mail key `key`, in hex.
pub fn sign(key: &[u8], host: &str, sent: u64, nonce: &str, report: &[u8]) -> String {
    let prefix = signed_prefix(host, sent, nonce);
    hex::encode(mac_over(key, &[prefix.as_bytes(), report]))
}

/// Whether `sig` is the HMAC of `report` under `key`, compared in constant time.
pub fn verify(key: &[u8], sig: &Signature, report: &[u8]) -> bool {
    let Ok(want) = hex::decode(&sig.mac) else {
        return false;
    };
    let mut m = keyed(key);
    m.update(signed_prefix(&sig.host, sig.sent, &sig.nonce).as_bytes());
    m.update(report);
    m.verify_slice(&want).is_ok()
}

impl Signature {
    /// The header value, folded (RFC 5322 section 2.2.3) so no line passes 78 characters
    /// (for host names up to 35 characters; longer ones stay well below the hard 998).
    pub fn header_value(&self) -> String {
        format!(
            "v={VERSION}; host={}; t={};\r\n nonce={};\r\n mac={}",
            self.host, self.sent, self.nonce, self.mac
        )
    }

    /// Reads a header value (folded or not).
    pub fn parse(value: &str) -> Result<Signature, SignatureError> {
        let mut fields = std::collections::BTreeMap::new();
        for item in value.split(';') {
            let item: String = item.split_whitespace().collect();
            if let Some((k, v)) = item.split_once('=') {
                fields.insert(k.to_ascii_lowercase(), v.to_string());
            }
        }
        let get = |f: &'static str| fields.get(f).ok_or(SignatureError::Missing(f));
        let v = get("v")?;
        if v != &VERSION.to_string() {
            return Err(SignatureError::Version(v.clone()));
        }
        let invalid = |field: &'static str, value: &str| SignatureError::Invalid {
            field,
            value: value.to_string(),
        };
        let host = get("host")?.clone();
        if host.is_empty()
            || host.len() > 253
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(invalid("host", &host));
        }
        let t = get("t")?;
        let sent = t.parse().map_err(|_| invalid("t", t))?;
        let hex_of = |field: &'static str, len: usize| {
            let v = get(field)?;
            if v.len() == len && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                Ok(v.clone())
            } else {
                Err(invalid(field, v))
            }
        };
        Ok(Signature {
            host,
            sent,
            nonce: hex_of("nonce", 32)?,
            mac: hex_of("mac", 64)?,
        })
    }
}

/// What goes into a message besides the report.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    /// The `To:` address.
    pub to: &'a str,
    /// The `From:` address; `None` leaves it to the MTA (sendmail adds the user's).
    pub from: Option<&'a str>,
    /// The host's token.
    pub token: &'a str,
    /// Seconds since 1970 now.
    pub sent: u64,
    /// 16 random bytes, used once.
    pub nonce: [u8; 16],
}

/// A new random nonce.
pub fn new_nonce() -> Result<[u8; 16], getrandom::Error> {
    let mut n = [0u8; 16];
    getrandom::fill(&mut n)?;
    Ok(n)
}

/// The whole message for `report` (its JSON text) of host `host`, lines ending in CRLF.
pub fn compose(env: &Envelope<'_>, host: &str, summary: &str, report: &[u8]) -> String {
    use base64::Engine as _;
    let nonce = hex::encode(env.nonce);
    let key = mail_key(env.token);
    let sig = Signature {
        host: host.to_string(),
        sent: env.sent,
        mac: sign(&key, host, env.sent, &nonce, report),
        nonce: nonce.clone(),
    };
    // The boundary must not occur in the parts: the report part is base64 (no '='-run of
    // this form outside its end) and the summary is ours; the nonce makes it unique anyway.
    let boundary = format!("=_rear_{nonce}");
    let mut m = String::new();
    if let Some(from) = env.from {
        m.push_str(&format!("From: {from}\r\n"));
    }
    m.push_str(&format!("To: {}\r\n", env.to));
    m.push_str(&format!("Subject: rear report {host}: {summary}\r\n"));
    m.push_str(&format!(
        "Date: {}\r\n",
        crate::timefmt::rfc5322_date(env.sent)
    ));
    m.push_str(&format!("Message-ID: <{nonce}.{host}@rear>\r\n"));
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!("{SIGNATURE_HEADER}: {}\r\n", sig.header_value()));
    m.push_str(&format!(
        "Content-Type: multipart/mixed;\r\n boundary=\"{boundary}\"\r\n\r\n"
    ));
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
    );
    m.push_str(&format!(
        "Relax-and-Recover report of {host}: {summary}.\r\nThe report is attached as {REPORT_NAME}; rear-server reads it.\r\n"
    ));
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str(&format!(
        "Content-Type: application/json; name=\"{REPORT_NAME}\"\r\n\
         Content-Disposition: attachment; filename=\"{REPORT_NAME}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n"
    ));
    let b64 = base64::engine::general_purpose::STANDARD.encode(report);
    // RFC 2045 section 6.8: at most 76 characters per line.
    for chunk in b64.as_bytes().chunks(76) {
        m.push_str(&String::from_utf8_lossy(chunk));
        m.push_str("\r\n");
    }
    m.push_str(&format!("--{boundary}--\r\n"));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verifies_and_detects_changes() {
        let key = mail_key("tok");
        let mac = sign(&key, "web01", 10, &"ab".repeat(16), b"{}");
        let sig = Signature {
            host: "web01".into(),
            sent: 10,
            nonce: "ab".repeat(16),
            mac,
        };
        assert!(verify(&key, &sig, b"{}"));
        assert!(!verify(&key, &sig, b"{ }"));
        assert!(!verify(&mail_key("other"), &sig, b"{}"));
        let mut later = sig.clone();
        later.sent = 11;
        assert!(!verify(&key, &later, b"{}"));
        let mut other = sig;
        other.host = "web02".into();
        assert!(!verify(&key, &other, b"{}"));
    }

    #[test]
    fn mail_key_is_not_the_token_hash() {
        let t = "0123";
        assert_ne!(mail_key_hex(t), crate::manifest::sha256_hex(t.as_bytes()));
        assert_eq!(mail_key_hex(t).len(), 64);
    }

    #[test]
    fn signature_parse_round_trips_folded() {
        let sig = Signature {
            host: "web01.example".into(),
            sent: 1700000000,
            nonce: "0f".repeat(16),
            mac: "a1".repeat(32),
        };
        let v = sig.header_value();
        let header = format!("{SIGNATURE_HEADER}: {v}");
        assert!(header.lines().all(|l| l.len() <= 78), "{header}");
        assert_eq!(Signature::parse(&v), Ok(sig));
        assert_eq!(
            Signature::parse("v=2; host=a"),
            Err(SignatureError::Version("2".into()))
        );
        assert_eq!(
            Signature::parse("v=1; host=a; t=1; nonce=zz"),
            Err(SignatureError::Invalid {
                field: "nonce",
                value: "zz".into()
            })
        );
        assert!(matches!(
            Signature::parse("v=1; host=../x; t=1"),
            Err(SignatureError::Invalid { field: "host", .. })
        ));
        assert_eq!(
            Signature::parse("v=1"),
            Err(SignatureError::Missing("host"))
        );
    }

    #[test]
    fn compose_has_short_lines_and_the_signature() {
        let env = Envelope {
            to: "reports@example.org",
            from: None,
            token: "t",
            sent: 1700000000,
            nonce: [7; 16],
        };
        let report = "{\"x\":\"".to_string() + &"y".repeat(500) + "\"}";
        let m = compose(&env, "web01", "build ok", report.as_bytes());
        assert!(m.split("\r\n").all(|l| l.len() <= 78), "{m}");
        assert!(m.contains("X-Rear-Signature: v=1; host=web01; t=1700000000;\r\n nonce=0707"));
        assert!(m.contains("Message-ID: <07070707070707070707070707070707.web01@rear>"));
        assert!(!m.contains("From:"));
    }
}
