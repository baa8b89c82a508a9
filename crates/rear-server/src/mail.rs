//! Mail ingest: one message in, one report stored or a [`Refusal`] that says why.
//!
//! Input: the raw message (from `rear-server ingest-mail` on stdin, for an MTA's pipe
//! transport, or from the SMTP listener, [`super::smtp`]). Output: the report stored as if
//! posted over HTTP. The message format and its HMAC are in [`rear_model::mail`]; MIME is parsed
//! with `mail-parser`. A refusal stores nothing and maps to an exit code the MTA understands
//! (sysexits.h: 65 bad message, 77 not authenticated, 75 try later) and to an SMTP reply
//! (RFC 5321 section 4.2, RFC 3463 enhanced codes).

use mail_parser::{MessageParser, MimeHeaders as _};

use super::config::Config;
use super::sql::Connection;
use super::{auth, db};
use rear_model::mail::{self, Signature};
use rear_model::report::Report;

/// The time a sender's clock may be ahead of the server's.
pub const CLOCK_SKEW: u64 = 3600;

/// Why a message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The message is larger than `max_mail_bytes`.
    #[error("message of {size} bytes is larger than max_mail_bytes ({limit})")]
    TooLarge {
        /// Its size (at least).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not a report message: no MIME structure, no `report.json`, not a valid report.
    #[error("bad message: {0}")]
    Malformed(String),
    /// The signature is missing or wrong, the host unknown, the message replayed or too old.
    #[error("not authenticated: {0}")]
    Auth(String),
    /// The database failed; the MTA should try again later.
    #[error("temporary failure: {0}")]
    Unavailable(String),
}

impl Refusal {
    /// The exit code of `ingest-mail` (sysexits.h).
    pub fn exit_code(&self) -> u8 {
        match self {
            Refusal::TooLarge { .. } | Refusal::Malformed(_) => 65, // EX_DATAERR
            Refusal::Auth(_) => 77,                                 // EX_NOPERM
            Refusal::Unavailable(_) => 75,                          // EX_TEMPFAIL
        }
    }

    /// The SMTP reply after DATA: permanent (5xx, the sending MTA bounces) except for a
    /// temporary failure (4xx, it tries again).
    pub fn smtp_reply(&self) -> String {
        // One line: the text must not carry CR or LF into the reply.
        let text: String = self
            .to_string()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(400)
            .collect();
        match self {
            Refusal::TooLarge { .. } => format!("552 5.3.4 {text}"),
            Refusal::Malformed(_) => format!("554 5.6.0 {text}"),
            Refusal::Auth(_) => format!("554 5.7.1 {text}"),
            Refusal::Unavailable(_) => format!("451 4.3.0 {text}"),
        }
    }
}

impl From<db::Error> for Refusal {
    fn from(e: db::Error) -> Refusal {
        Refusal::Unavailable(e.to_string())
    }
}

/// An accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The host.
    pub host: String,
    /// The report's id (SHA-256 of its JSON).
    pub id: String,
    /// False when the same report was stored before.
    pub stored: bool,
}

/// The parts of a report message that matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The signature header.
    pub signature: Signature,
    /// The exact bytes of `report.json`.
    pub report: Vec<u8>,
}

/// Reads the signature and the report part of `raw`.
pub fn parse(raw: &[u8]) -> Result<Parsed, Refusal> {
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| Refusal::Malformed("no mail headers".into()))?;
    let header = msg.header_raw(mail::SIGNATURE_HEADER).ok_or_else(|| {
        Refusal::Auth(format!(
            "no {} header: not a signed rear report",
            mail::SIGNATURE_HEADER
        ))
    })?;
    let signature = Signature::parse(header).map_err(|e| Refusal::Auth(e.to_string()))?;
    let mut reports = msg.attachments().filter(|p| {
        p.attachment_name() == Some(mail::REPORT_NAME)
            || p.content_type().is_some_and(|t| {
                t.ctype().eq_ignore_ascii_case("application")
                    && t.subtype().is_some_and(|s| s.eq_ignore_ascii_case("json"))
            })
    });
    let report = reports
        .next()
        .ok_or_else(|| Refusal::Malformed(format!("no {} part", mail::REPORT_NAME)))?
        .contents()
        .to_vec();
    if reports.next().is_some() {
        return Err(Refusal::Malformed(format!(
            "more than one {} part",
            mail::REPORT_NAME
        )));
    }
    Ok(Parsed { signature, report })
}

/// Checks `raw` and stores its report; `now` is seconds since 1970.
pub fn ingest(
    conn: &mut Connection,
    config: &Config,
    raw: &[u8],
    now: u64,
) -> Result<Accepted, Refusal> {
    if raw.len() > config.max_mail_bytes {
        return Err(Refusal::TooLarge {
            size: raw.len(),
            limit: config.max_mail_bytes,
        });
    }
    let Parsed { signature, report } = parse(raw)?;
    let host = signature.host.clone();
    let key = db::mail_key(conn, &host)?.ok_or_else(|| {
        Refusal::Auth(format!(
            "host {host} has no mail key (unknown, revoked, or its token is older than mail \
             ingest: give it a new one with `rear-server token add {host}`)"
        ))
    })?;
    let key = hex::decode(&key).map_err(|e| Refusal::Unavailable(format!("mail key: {e}")))?;
    if !mail::verify(&key, &signature, &report) {
        return Err(Refusal::Auth(format!(
            "the HMAC does not match host {host}'s token"
        )));
    }
    let max_age = config.mail_max_age.as_secs();
    if signature.sent > now + CLOCK_SKEW {
        return Err(Refusal::Auth(format!(
            "sent {} s in the future; check the host's clock",
            signature.sent - now
        )));
    }
    if now.saturating_sub(signature.sent) > max_age {
        return Err(Refusal::Auth(format!(
            "sent {} s ago, longer than mail_max_age ({max_age} s)",
            now - signature.sent
        )));
    }
    let text = String::from_utf8(report)
        .map_err(|e| Refusal::Malformed(format!("{} is not UTF-8: {e}", mail::REPORT_NAME)))?;
    let parsed =
        Report::from_json(text.as_bytes()).map_err(|e| Refusal::Malformed(e.to_string()))?;
    if parsed.host.name != host || !auth::valid_host_name(&host) {
        return Err(Refusal::Auth(format!(
            "the report is of host {:?} but signed by {host}",
            parsed.host.name
        )));
    }
    if db::nonce_seen(conn, &signature.nonce)? {
        return Err(Refusal::Auth(format!(
            "replayed: nonce {} was accepted before",
            signature.nonce
        )));
    }
    // The report is stored before the nonce is recorded: if recording fails, the MTA tries
    // again, and the same report is stored once (its id is the hash of its content).
    let id = rear_model::manifest::sha256_hex(text.as_bytes());
    let stored = db::store_report(conn, &id, &host, &parsed, &text, now)?;
    let fresh = db::record_nonce(
        conn,
        &signature.nonce,
        &host,
        signature.sent,
        now,
        now.saturating_sub(max_age + CLOCK_SKEW),
    )?;
    if !fresh {
        // Another delivery of the same message won the race; its report is the same one.
        return Err(Refusal::Auth(format!(
            "replayed: nonce {} was accepted before",
            signature.nonce
        )));
    }
    Ok(Accepted { host, id, stored })
}

/// Logs the outcome of one message, as the HTTP side does.
pub fn log_outcome(via: &str, r: &Result<Accepted, Refusal>) {
    match r {
        Ok(a) => log::info!(
            "report {} of {} by {via}{}",
            a.id,
            a.host,
            if a.stored { "" } else { " (stored before)" }
        ),
        Err(e @ Refusal::Unavailable(_)) => log::error!("mail by {via}: {e}"),
        Err(e) => log::warn!("mail by {via} refused: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rear_model::report::{Build, Facts};

    fn config() -> Config {
        Config::parse("max_report_bytes = 65536", std::path::Path::new("c")).unwrap()
    }

    fn message(host: &str, token: &str, sent: u64, nonce: u8) -> String {
        let mut f = Facts::default();
        f.host.name = host.into();
        let json = Report::new(f, Some(Build::default()), sent).to_json();
        let env = mail::Envelope {
            to: "r@example.org",
            from: None,
            token,
            sent,
            nonce: [nonce; 16],
        };
        mail::compose(&env, host, "build ok", json.as_bytes())
    }

    fn db_with(host: &str, token: &str) -> db::Db {
        let d = db::Db::memory().unwrap();
        d.with(|c| {
            db::set_token(c, host, &auth::token_hash(token), 1)?;
            db::set_mail_key(c, host, &mail::mail_key_hex(token))
        })
        .unwrap();
        d
    }

    #[test]
    fn ingest_accepts_once_then_refuses_the_replay() {
        let d = db_with("web01", "tok");
        let m = message("web01", "tok", 1000, 1);
        let r = d
            .with(|c| Ok(ingest(c, &config(), m.as_bytes(), 1010)))
            .unwrap();
        let a = r.unwrap();
        assert!(a.stored);
        let r = d
            .with(|c| Ok(ingest(c, &config(), m.as_bytes(), 1020)))
            .unwrap();
        let e = r.unwrap_err();
        assert!(
            matches!(e, Refusal::Auth(ref m) if m.contains("replayed")),
            "{e}"
        );
        assert_eq!(e.exit_code(), 77);
        assert!(e.smtp_reply().starts_with("554 5.7.1 "));
    }

    #[test]
    fn ingest_refuses_wrong_key_old_and_future() {
        let d = db_with("web01", "tok");
        let run = |m: String, now| {
            d.with(|c| Ok(ingest(c, &config(), m.as_bytes(), now)))
                .unwrap()
                .unwrap_err()
        };
        let e = run(message("web01", "other", 1000, 1), 1000);
        assert!(e.to_string().contains("HMAC does not match"), "{e}");
        let e = run(message("web01", "tok", 1000, 2), 1000 + 8 * 86400);
        assert!(e.to_string().contains("mail_max_age"), "{e}");
        let e = run(message("web01", "tok", 10_000, 3), 1000);
        assert!(e.to_string().contains("future"), "{e}");
        let e = run(message("db01", "tok", 1000, 4), 1000);
        assert!(e.to_string().contains("no mail key"), "{e}");
        let e = run("Subject: hi\r\n\r\nhello\r\n".into(), 1000);
        assert_eq!(e.exit_code(), 77, "{e}");
        assert_eq!(d.with(|c| db::report_count(c)).unwrap(), 0);
    }

    #[test]
    fn ingest_refuses_bad_messages_and_size() {
        let d = db_with("web01", "tok");
        let sig = message("web01", "tok", 1000, 1);
        let head = &sig[..sig.find("Content-Type: multipart").unwrap()];
        let no_part = format!("{head}Content-Type: text/plain\r\n\r\nhello\r\n");
        let e = d
            .with(|c| Ok(ingest(c, &config(), no_part.as_bytes(), 1000)))
            .unwrap()
            .unwrap_err();
        assert_eq!(e.exit_code(), 65, "{e}");
        let big = vec![b'x'; config().max_mail_bytes + 1];
        let e = d
            .with(|c| Ok(ingest(c, &config(), &big, 1000)))
            .unwrap()
            .unwrap_err();
        assert!(matches!(e, Refusal::TooLarge { .. }));
        assert!(e.smtp_reply().starts_with("552 5.3.4 "));
    }

    #[test]
    fn smtp_reply_is_one_line() {
        let r = Refusal::Malformed("a\r\nb".into()).smtp_reply();
        assert_eq!(r, "554 5.6.0 bad message: a  b");
        assert_eq!(Refusal::Unavailable("db".into()).exit_code(), 75);
    }
}
