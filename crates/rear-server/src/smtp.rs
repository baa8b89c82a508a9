//! A small, strict SMTP receiver (RFC 5321) for mailed reports: `rear-server serve --smtp`.
//!
//! Input: SMTP sessions from the site's MTA (or a host's). Output: each message handed to
//! [`super::mail::ingest`]; the reply after DATA says what happened, so a refused report is
//! bounced by the sending MTA (5xx) and a database outage makes it try again later (4xx).
//!
//! Supported: HELO, EHLO (with SIZE and 8BITMIME), MAIL FROM (with `SIZE=`), RCPT TO, DATA,
//! RSET, NOOP, QUIT. No relaying question arises: every recipient is accepted because only
//! the report's HMAC decides. Strictness, against SMTP smuggling and resource abuse: lines end
//! in CRLF (a bare LF in DATA refuses the message), commands are at most 512 octets and text
//! lines 1000 (section 4.5.3.1), a message beyond `max_mail_bytes` is read to its end and
//! refused with 552, each read has a timeout, and a session ends after 10 errors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader,
};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::mail::{self, Refusal};
use super::{AppState, now};

/// Longest command line, CRLF included (RFC 5321 section 4.5.3.1.4).
const MAX_COMMAND: usize = 512;
/// Longest text line in DATA, CRLF included (section 4.5.3.1.6).
const MAX_TEXT_LINE: usize = 1000;
/// How long the server waits for a command or a data line (section 4.5.3.2 suggests
/// minutes; the senders are MTAs on the same network).
const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// Errors after which the session is closed.
const MAX_ERRORS: u32 = 10;
/// Recipients per message.
const MAX_RECIPIENTS: usize = 100;
/// Sessions at once.
const MAX_SESSIONS: usize = 64;

/// Accepts SMTP sessions on `listener` until `stop` completes, then ends the open sessions and
/// returns when none is left: the caller then holds the last handle on `app`, and can drop
/// the database off the async workers (the PostgreSQL client must not be dropped on one).
pub async fn serve(listener: TcpListener, app: Arc<AppState>, stop: impl Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(MAX_SESSIONS));
    let mut sessions = JoinSet::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        // Finished sessions are reaped, so the set holds only open ones.
        while sessions.try_join_next().is_some() {}
        let accepted = tokio::select! {
            () = &mut stop => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                log::warn!("smtp accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let permit = tokio::select! {
            () = &mut stop => break,
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let app = Arc::clone(&app);
        sessions.spawn(async move {
            let (r, w) = stream.into_split();
            if let Err(e) = session(r, w, peer, app).await {
                log::debug!("smtp {peer}: {e}");
            }
            drop(permit);
        });
    }
    sessions.abort_all();
    while sessions.join_next().await.is_some() {}
}

/// One line read from the client.
enum Line {
    /// A line ending in CRLF, without it.
    Crlf(Vec<u8>),
    /// A line ending in a bare LF (or the connection's last bytes), without it.
    Bare,
    /// Longer than allowed; the rest of it was read and dropped.
    TooLong,
    /// The client closed the connection.
    Eof,
}

async fn read_line<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    max: usize,
) -> std::io::Result<Line> {
    let mut buf = Vec::new();
    let n = tokio::time::timeout(
        READ_TIMEOUT,
        (&mut *r).take(max as u64).read_until(b'\n', &mut buf),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "read timeout"))??;
    if n == 0 {
        return Ok(Line::Eof);
    }
    if buf.last() != Some(&b'\n') {
        if buf.len() < max {
            return Ok(Line::Bare); // closed mid-line
        }
        // Drop the rest of the overlong line.
        loop {
            let mut rest = Vec::new();
            let n = tokio::time::timeout(
                READ_TIMEOUT,
                (&mut *r).take(65536).read_until(b'\n', &mut rest),
            )
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "read timeout"))??;
            if n == 0 || rest.last() == Some(&b'\n') {
                return Ok(Line::TooLong);
            }
        }
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
        Ok(Line::Crlf(buf))
    } else {
        Ok(Line::Bare)
    }
}

async fn reply<W: AsyncWrite + Unpin>(w: &mut W, text: &str) -> std::io::Result<()> {
    w.write_all(text.as_bytes()).await?;
    w.write_all(b"\r\n").await?;
    w.flush().await
}

/// The state of one session.
#[derive(Default)]
struct Transaction {
    from: Option<String>,
    rcpt: Vec<String>,
}

/// The address of `MAIL FROM:<a> params` or `RCPT TO:<a>`, and the parameters.
fn path_arg<'a>(rest: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let head = rest.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = rest[prefix.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    let addr = &rest[..end];
    if addr.chars().any(|c| c.is_control() || c == ' ') {
        return None;
    }
    Some((addr, rest[end + 1..].trim()))
}

/// The `SIZE=` parameter of MAIL FROM (RFC 1870).
fn size_param(params: &str) -> Result<Option<usize>, ()> {
    for p in params.split_whitespace() {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        if k.eq_ignore_ascii_case("SIZE") {
            return v.parse().map(Some).map_err(|_| ());
        } else if !k.eq_ignore_ascii_case("BODY") {
            return Err(());
        }
    }
    Ok(None)
}

/// Runs one session.
pub async fn session<R, W>(
    r: R,
    mut w: W,
    peer: SocketAddr,
    app: Arc<AppState>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut r = BufReader::new(r);
    let limit = app.config.max_mail_bytes;
    let me = "rear-server";
    reply(&mut w, &format!("220 {me} ESMTP ready")).await?;
    let mut helo = false;
    let mut tx = Transaction::default();
    let mut errors = 0u32;
    loop {
        if errors >= MAX_ERRORS {
            reply(&mut w, "421 4.7.0 too many errors, closing").await?;
            return Ok(());
        }
        let line = match read_line(&mut r, MAX_COMMAND).await {
            Ok(Line::Crlf(l)) => l,
            Ok(Line::Bare) => {
                errors += 1;
                reply(&mut w, "500 5.5.2 lines must end in CRLF").await?;
                continue;
            }
            Ok(Line::TooLong) => {
                errors += 1;
                reply(&mut w, "500 5.5.2 line too long").await?;
                continue;
            }
            Ok(Line::Eof) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                let _ = reply(&mut w, "421 4.4.2 timeout, closing").await;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let Ok(line) = String::from_utf8(line) else {
            errors += 1;
            reply(&mut w, "500 5.5.2 command is not text").await?;
            continue;
        };
        let (verb, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let verb = verb.to_ascii_uppercase();
        match verb.as_str() {
            "HELO" | "EHLO" if !rest.trim().is_empty() => {
                helo = true;
                tx = Transaction::default();
                if verb == "EHLO" {
                    reply(
                        &mut w,
                        &format!("250-{me} hello\r\n250-SIZE {limit}\r\n250 8BITMIME"),
                    )
                    .await?;
                } else {
                    reply(&mut w, &format!("250 {me} hello")).await?;
                }
            }
            "HELO" | "EHLO" => {
                errors += 1;
                reply(&mut w, "501 5.5.4 give your domain").await?;
            }
            "MAIL" => {
                if !helo {
                    errors += 1;
                    reply(&mut w, "503 5.5.1 say HELO or EHLO first").await?;
                } else if tx.from.is_some() {
                    errors += 1;
                    reply(&mut w, "503 5.5.1 nested MAIL").await?;
                } else {
                    match path_arg(rest, "FROM:").map(|(a, p)| (a, size_param(p))) {
                        Some((_, Ok(Some(size)))) if size > limit => {
                            reply(
                                &mut w,
                                &format!("552 5.3.4 message size exceeds the limit of {limit}"),
                            )
                            .await?;
                        }
                        Some((addr, Ok(_))) => {
                            tx.from = Some(addr.to_string());
                            reply(&mut w, "250 2.1.0 ok").await?;
                        }
                        Some((_, Err(()))) => {
                            errors += 1;
                            reply(&mut w, "555 5.5.4 unsupported MAIL parameter").await?;
                        }
                        None => {
                            errors += 1;
                            reply(&mut w, "501 5.5.4 syntax: MAIL FROM:<address>").await?;
                        }
                    }
                }
            }
            "RCPT" => {
                if tx.from.is_none() {
                    errors += 1;
                    reply(&mut w, "503 5.5.1 need MAIL first").await?;
                } else if tx.rcpt.len() >= MAX_RECIPIENTS {
                    reply(&mut w, "452 4.5.3 too many recipients").await?;
                } else {
                    match path_arg(rest, "TO:") {
                        Some((addr, "")) if !addr.is_empty() => {
                            tx.rcpt.push(addr.to_string());
                            reply(&mut w, "250 2.1.5 ok").await?;
                        }
                        _ => {
                            errors += 1;
                            reply(&mut w, "501 5.5.4 syntax: RCPT TO:<address>").await?;
                        }
                    }
                }
            }
            "DATA" if rest.is_empty() => {
                if tx.rcpt.is_empty() {
                    errors += 1;
                    reply(&mut w, "503 5.5.1 need RCPT first").await?;
                    continue;
                }
                reply(&mut w, "354 end data with <CRLF>.<CRLF>").await?;
                let answer = match read_data(&mut r, limit).await? {
                    Data::Closed => return Ok(()),
                    Data::Refused(text) => text,
                    Data::Message(msg) => {
                        let cfg = app.config.clone();
                        let result = app
                            .db
                            .run(move |c| Ok(mail::ingest(c, &cfg, &msg, now())))
                            .await
                            .unwrap_or_else(|e| Err(Refusal::Unavailable(e.to_string())));
                        mail::log_outcome(&format!("smtp from {peer}"), &result);
                        match result {
                            Ok(a) => format!("250 2.0.0 report {} of {} accepted", a.id, a.host),
                            Err(e) => e.smtp_reply(),
                        }
                    }
                };
                tx = Transaction::default();
                reply(&mut w, &answer).await?;
            }
            "RSET" if rest.is_empty() => {
                tx = Transaction::default();
                reply(&mut w, "250 2.0.0 ok").await?;
            }
            "NOOP" => reply(&mut w, "250 2.0.0 ok").await?,
            "QUIT" if rest.is_empty() => {
                reply(&mut w, &format!("221 2.0.0 {me} closing")).await?;
                return Ok(());
            }
            "DATA" | "RSET" | "QUIT" => {
                errors += 1;
                reply(&mut w, "501 5.5.4 no arguments allowed").await?;
            }
            "VRFY" | "EXPN" | "STARTTLS" | "AUTH" | "BDAT" | "TURN" | "ETRN" => {
                errors += 1;
                reply(&mut w, "502 5.5.1 command not implemented").await?;
            }
            _ => {
                errors += 1;
                reply(&mut w, "500 5.5.2 command unrecognized").await?;
            }
        }
    }
}

/// What DATA brought.
enum Data {
    /// The message, dot-unstuffed, lines ending in CRLF.
    Message(Vec<u8>),
    /// A reply refusing it (read to its end all the same).
    Refused(String),
    /// The client went away.
    Closed,
}

/// Reads the message up to the line with a single dot (RFC 5321 section 4.1.1.4),
/// removing the leading dot of other lines (section 4.5.2).
async fn read_data<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    limit: usize,
) -> std::io::Result<Data> {
    let mut msg = Vec::new();
    let mut problem: Option<String> = None;
    loop {
        let line = match read_line(r, MAX_TEXT_LINE).await {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Ok(Data::Closed),
            Err(e) => return Err(e),
        };
        let text = match line {
            Line::Eof => return Ok(Data::Closed),
            Line::Crlf(t) if t == b"." => break,
            Line::Crlf(t) => t,
            Line::Bare => {
                problem.get_or_insert_with(|| {
                    "554 5.6.0 bare LF in message; lines must end in CRLF".into()
                });
                continue;
            }
            Line::TooLong => {
                problem.get_or_insert_with(|| {
                    format!("554 5.6.0 line longer than {MAX_TEXT_LINE} octets")
                });
                continue;
            }
        };
        if problem.is_some() {
            continue;
        }
        let text = text.strip_prefix(b".").unwrap_or(&text);
        if msg.len() + text.len() + 2 > limit {
            problem = Some(format!(
                "552 5.3.4 message size exceeds the limit of {limit} bytes"
            ));
            msg = Vec::new();
            continue;
        }
        msg.extend_from_slice(text);
        msg.extend_from_slice(b"\r\n");
    }
    Ok(match problem {
        Some(p) => Data::Refused(p),
        None => Data::Message(msg),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_arg_parses_addresses_and_params() {
        assert_eq!(
            path_arg("FROM:<a@b> SIZE=10", "FROM:"),
            Some(("a@b", "SIZE=10"))
        );
        assert_eq!(path_arg("from: <>", "FROM:"), Some(("", "")));
        assert_eq!(path_arg("TO:a@b", "TO:"), None);
        assert_eq!(path_arg("TO:<a b>", "TO:"), None);
    }

    #[test]
    fn size_param_accepts_size_and_body() {
        assert_eq!(size_param(""), Ok(None));
        assert_eq!(size_param("SIZE=12 BODY=8BITMIME"), Ok(Some(12)));
        assert_eq!(size_param("SIZE=x"), Err(()));
        assert_eq!(size_param("SMTPUTF8"), Err(()));
    }

    #[tokio::test]
    async fn read_data_unstuffs_and_ends_at_the_dot() {
        let input: &[u8] = b"a\r\n..b\r\n.c\r\n.\r\nNOOP\r\n";
        let mut r = BufReader::new(input);
        match read_data(&mut r, 1000).await.unwrap() {
            Data::Message(m) => assert_eq!(m, b"a\r\n.b\r\nc\r\n"),
            _ => panic!("no message"),
        }
        let input: &[u8] = b"a\n.\nb\r\n.\r\n";
        let mut r = BufReader::new(input);
        match read_data(&mut r, 1000).await.unwrap() {
            Data::Refused(t) => assert!(t.starts_with("554 5.6.0 bare LF"), "{t}"),
            _ => panic!("bare LF accepted"),
        }
        let input: &[u8] = b"0123456789\r\n0123456789\r\n.\r\n";
        let mut r = BufReader::new(input);
        match read_data(&mut r, 15).await.unwrap() {
            Data::Refused(t) => assert!(t.starts_with("552 "), "{t}"),
            _ => panic!("too large accepted"),
        }
    }
}
