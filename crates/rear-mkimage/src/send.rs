//! Sending reports to `rear-server`, store and forward.
//!
//! Input: a [`Report`] made after a build (ok or failed), the `[server]` section
//! ([`rear_model::config::Server`]) and the build's files. Output: the report delivered over HTTP
//! (`POST /api/v1/reports`, optionally `PUT /api/v1/media/<sha256>` for ISO images) or handed
//! to the local `sendmail` as a signed message ([`rear_model::mail`]).
//!
//! Every report is first written to the spool directory (temp file, sync, rename), then the
//! spool is sent oldest first and each delivered file is removed. When the server cannot be
//! reached the rest waits for the next run. Nothing here fails the build: problems are logged
//! as warnings that name the URL and the spool file, and returned in a [`Delivery`].

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use rear_model::config::{Server, Target};
use rear_model::report::Report;

/// The name of the file in the spool directory that keeps a token the server gave this host
/// when it enrolled it (mode 0600); it is used instead of the configured token from then on.
pub const ENROLLED_TOKEN: &str = "token";

/// What one delivery run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Reports delivered (spooled ones included).
    pub sent: usize,
    /// Spool files still waiting.
    pub waiting: Vec<PathBuf>,
    /// Spool files the server refused for good, renamed to `*.rejected`.
    pub rejected: Vec<PathBuf>,
    /// Media uploaded.
    pub media: usize,
    /// The warnings logged.
    pub warnings: Vec<String>,
}

/// How one attempt ended.
#[derive(Debug)]
enum Attempt {
    /// Delivered; the server may have sent a new token (enrollment).
    Sent(Option<String>),
    /// Not now (server unreachable, 5xx, token refused): keep it and stop.
    Later(String),
    /// Never (malformed, too large): set it aside and go on.
    Refused(String),
}

/// Spools `report`, then sends every spooled report oldest first and, when asked, uploads
/// the ISO images among `media` (paths with their SHA-256).
pub fn deliver(cfg: &Server, report: &Report, media: &[(PathBuf, String)]) -> Delivery {
    let mut d = Delivery::default();
    let warn = |d: &mut Delivery, msg: String| {
        log::warn!("{msg}");
        d.warnings.push(msg);
    };
    let body = report.to_json();
    let mut unspooled = None;
    if let Err(e) = spool_write(&cfg.spool, report.created, &body) {
        warn(
            &mut d,
            format!(
                "cannot write the report to the spool {}: {e}; sending it without a copy",
                cfg.spool.display()
            ),
        );
        unspooled = Some(body);
    }
    let mut token = enrolled_token(&cfg.spool).unwrap_or_else(|| cfg.token.clone());
    let agent = agent(cfg);
    let mut reachable = true;
    let mut queue: Vec<(Option<PathBuf>, String)> = Vec::new();
    for p in spooled(&cfg.spool) {
        match fs::read_to_string(&p) {
            Ok(text) => queue.push((Some(p), text)),
            Err(e) => warn(
                &mut d,
                format!("cannot read spool file {}: {e}", p.display()),
            ),
        }
    }
    if let Some(b) = unspooled {
        queue.push((None, b));
    }
    let mut rest = queue.into_iter();
    for (path, text) in rest.by_ref() {
        let where_ = path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "memory (not spooled)".into());
        match attempt(cfg, &agent, &token, &text) {
            Attempt::Sent(new_token) => {
                d.sent += 1;
                if let Some(p) = &path
                    && let Err(e) = fs::remove_file(p)
                {
                    warn(
                        &mut d,
                        format!("sent {}, but cannot remove it: {e}", p.display()),
                    );
                }
                if let Some(t) = new_token {
                    match save_token(&cfg.spool, &t) {
                        Ok(f) => log::info!(
                            "{} enrolled this host; its token is kept in {}",
                            cfg.target,
                            f.display()
                        ),
                        Err(e) => warn(
                            &mut d,
                            format!(
                                "{} enrolled this host, but its token cannot be saved in {}: {e}",
                                cfg.target,
                                cfg.spool.display()
                            ),
                        ),
                    }
                    token = t;
                }
            }
            Attempt::Refused(why) => {
                let kept = path.as_ref().map(|p| {
                    let r = p.with_extension("rejected");
                    match fs::rename(p, &r) {
                        Ok(()) => r,
                        Err(_) => p.clone(),
                    }
                });
                warn(
                    &mut d,
                    format!(
                        "{} refused the report: {why}; it is kept in {}",
                        cfg.target,
                        kept.as_ref()
                            .map(|p| p.display().to_string())
                            .unwrap_or(where_)
                    ),
                );
                d.rejected.extend(kept);
            }
            Attempt::Later(why) => {
                reachable = false;
                d.waiting.extend(path.clone());
                let waiting = path
                    .map(|p| format!("it waits in {} for the next run", p.display()))
                    .unwrap_or_else(|| "it is lost (the spool is not writable)".into());
                warn(
                    &mut d,
                    format!("cannot send the report to {}: {why}; {waiting}", cfg.target),
                );
                break;
            }
        }
    }
    d.waiting.extend(rest.filter_map(|(p, _)| p));
    if cfg.send_media {
        match &cfg.target {
            Target::Http(base) if reachable => {
                for (path, sha) in media.iter().filter(|(p, _)| is_iso(p)) {
                    match upload(&agent, base, &token, path, sha) {
                        Ok(()) => d.media += 1,
                        Err(e) => warn(
                            &mut d,
                            format!(
                                "cannot upload {} to {base}/api/v1/media/{sha}: {e}",
                                path.display()
                            ),
                        ),
                    }
                }
            }
            Target::Http(_) => {}
            Target::Mail(_) => warn(
                &mut d,
                format!(
                    "send_media needs an http:// or https:// url; {} gets the report only",
                    cfg.target
                ),
            ),
        }
    }
    d
}

fn is_iso(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "iso")
}

/// Writes `body` into the spool atomically; returns the file.
pub fn spool_write(dir: &Path, created: u64, body: &str) -> std::io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    // Names sort by creation time (zero-padded), then by content, so "oldest first" is a
    // sort of the names and a report spooled twice is one file.
    let sha = rear_model::manifest::sha256_hex(body.as_bytes());
    let path = dir.join(format!("{created:020}-{}.json", &sha[..16]));
    rear_sys::atomic::write(&path, body.as_bytes(), 0o600)?;
    Ok(path)
}

/// The spooled reports, oldest first.
pub fn spooled(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn enrolled_token(dir: &Path) -> Option<String> {
    let t = fs::read_to_string(dir.join(ENROLLED_TOKEN)).ok()?;
    let t = t.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn save_token(dir: &Path, token: &str) -> std::io::Result<PathBuf> {
    let path = dir.join(ENROLLED_TOKEN);
    rear_sys::atomic::write(&path, format!("{token}\n").as_bytes(), 0o600)?;
    Ok(path)
}

fn agent(cfg: &Server) -> ureq::Agent {
    use ureq::tls::{RootCerts, TlsConfig};
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(cfg.timeout))
        // The site's CA store (/etc/ssl/certs), so a server with an internal CA works.
        .tls_config(
            TlsConfig::builder()
                .root_certs(RootCerts::PlatformVerifier)
                .build(),
        )
        .user_agent(concat!("rear-mkimage/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

fn attempt(cfg: &Server, agent: &ureq::Agent, token: &str, body: &str) -> Attempt {
    match &cfg.target {
        Target::Http(base) => post(agent, base, token, body),
        Target::Mail(to) => mail(cfg, to, token, body),
    }
}

fn post(agent: &ureq::Agent, base: &str, token: &str, body: &str) -> Attempt {
    let url = format!("{base}/api/v1/reports");
    let resp = agent
        .post(&url)
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(body);
    let mut resp = match resp {
        Ok(r) => r,
        Err(e) => return Attempt::Later(e.to_string()),
    };
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    let said = json
        .as_ref()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.trim().chars().take(200).collect());
    match status {
        200..=299 => Attempt::Sent(
            json.as_ref()
                .and_then(|v| v["token"].as_str().map(str::to_string)),
        ),
        // A wrong token is fixed in the configuration; the report waits until then.
        401 | 403 | 408 | 429 => Attempt::Later(format!("{status} {said}")),
        400..=499 => Attempt::Refused(format!("{status} {said}")),
        _ => Attempt::Later(format!("{status} {said}")),
    }
}

fn mail(cfg: &Server, to: &str, token: &str, body: &str) -> Attempt {
    let report = match Report::from_json(body.as_bytes()) {
        Ok(r) => r,
        Err(e) => return Attempt::Refused(e.to_string()),
    };
    let nonce = match rear_model::mail::new_nonce() {
        Ok(n) => n,
        Err(e) => return Attempt::Later(format!("random source: {e}")),
    };
    let env = rear_model::mail::Envelope {
        to,
        from: cfg.from.as_deref(),
        token,
        sent: now(),
        nonce,
    };
    let summary = match &report.build {
        Some(b) if b.ok() => "build ok",
        Some(_) => "build FAILED",
        None => "no build",
    };
    let msg = rear_model::mail::compose(&env, &report.host.name, summary, body.as_bytes());
    // -oi: a line with a single dot does not end the message; the recipient is given on the
    // command line, so no header is trusted for routing.
    let mut cmd = Command::new(&cfg.sendmail);
    cmd.args(["-oi", "--", to]);
    match rear_sys::exec::run_with_input(&mut cmd, msg.as_bytes(), Some("an MTA such as postfix")) {
        Ok(_) => Attempt::Sent(None),
        Err(e) => Attempt::Later(e.to_string()),
    }
}

fn upload(
    agent: &ureq::Agent,
    base: &str,
    token: &str,
    path: &Path,
    sha: &str,
) -> Result<(), String> {
    let file = fs::File::open(path).map_err(|e| e.to_string())?;
    let mut resp = agent
        .put(&format!("{base}/api/v1/media/{sha}"))
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/octet-stream")
        .send(ureq::SendBody::from_owned_reader(file))
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        Err(format!("{status} {}", text.trim()))
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_write_sorts_oldest_first_and_dedups() {
        let d = tempfile::tempdir().unwrap();
        let b = spool_write(d.path(), 200, "{\"b\":1}").unwrap();
        let a = spool_write(d.path(), 100, "{\"a\":1}").unwrap();
        assert_eq!(spool_write(d.path(), 100, "{\"a\":1}").unwrap(), a);
        fs::write(d.path().join("x.rejected"), "").unwrap();
        fs::write(d.path().join(ENROLLED_TOKEN), "t\n").unwrap();
        assert_eq!(spooled(d.path()), [a.clone(), b]);
        assert_eq!(fs::read_to_string(&a).unwrap(), "{\"a\":1}");
        assert_eq!(enrolled_token(d.path()).as_deref(), Some("t"));
    }

    #[test]
    fn save_token_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let d = tempfile::tempdir().unwrap();
        let p = save_token(d.path(), "secret").unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(enrolled_token(d.path()).as_deref(), Some("secret"));
    }
}
