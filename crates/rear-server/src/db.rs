//! The server's database: SQLite (rusqlite) or PostgreSQL (postgres), one connection behind a
//! mutex, used from async code through [`Db::run`] (a blocking task).
//!
//! Input: reports, tokens, media and sessions from the web layer. Output: rows for the pages.
//! The schema lives in `migrations/*.sql`, written in SQL that SQLite and PostgreSQL both run;
//! applied migrations are recorded in `schema_migrations`. Every query below is written once,
//! with SQLite's `?N` placeholders; [`super::sql`] runs it on either backend.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::config::{Database, PgUrl};
use super::sql::{Cause, Param, Row, args};
use rear_model::report::Report;

pub use super::sql::Connection;

/// Errors of the database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Opening, connecting or a statement failed; the message names the database URL
    /// (without password) and the statement.
    #[error(transparent)]
    Sql(#[from] super::sql::Error),
    /// A migration failed.
    #[error("migration {version}: {error}")]
    Migration {
        /// The migration's number.
        version: i64,
        /// What failed.
        error: super::sql::Error,
    },
    /// The blocking task running a query panicked or was cancelled.
    #[error("database task failed: {0}")]
    Task(String),
}

/// The migrations, in order: (version, SQL).
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_mail.sql")),
];

/// The database.
#[derive(Debug)]
pub struct Db {
    conn: Mutex<Connection>,
}

/// A host and the summary of its reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostRow {
    /// Short host name.
    pub name: String,
    /// Whether it has a token.
    pub has_token: bool,
    /// When it was created (token added or enrolled).
    pub enrolled: u64,
    /// DNS domain.
    pub domain: String,
    /// OS pretty name.
    pub os: String,
    /// Running kernel.
    pub kernel: String,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// Layout digest of the latest report.
    pub layout: String,
    /// Id of the latest report.
    pub last_report: Option<String>,
    /// When the latest report was made.
    pub last_created: Option<u64>,
    /// When the latest build (ok or failed) was made.
    pub build_created: Option<u64>,
    /// Whether the latest build succeeded.
    pub build_ok: Option<bool>,
    /// Id of the report of the latest successful build (its media).
    pub ok_report: Option<String>,
    /// When the latest successful build was made: the age of the media.
    pub ok_created: Option<u64>,
    /// Layout digest at the latest successful build.
    pub ok_layout: Option<String>,
}

/// One stored report, without its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    /// SHA-256 of the body.
    pub id: String,
    /// The host.
    pub host: String,
    /// When the server received it.
    pub received: u64,
    /// When the host made it.
    pub created: u64,
    /// Build result: `None` for a report without a build.
    pub build_ok: Option<bool>,
    /// The build's error.
    pub error: Option<String>,
}

const HOST_COLUMNS: &str = "name, token_sha256 IS NOT NULL, enrolled, domain, os, kernel, tags, \
     layout, last_report, last_created, build_created, build_ok, ok_report, ok_created, ok_layout";

fn time(v: Option<i64>) -> Option<u64> {
    v.map(|v| v.max(0) as u64)
}

fn host_row(r: &mut Row) -> Result<HostRow, Cause> {
    let tags = r.text(6)?;
    Ok(HostRow {
        name: r.text(0)?,
        has_token: r.int(1)? != 0,
        enrolled: time(r.opt_int(2)?).unwrap_or(0),
        domain: r.text(3)?,
        os: r.text(4)?,
        kernel: r.text(5)?,
        tags: tags.split_whitespace().map(str::to_string).collect(),
        layout: r.text(7)?,
        last_report: r.opt_text(8)?,
        last_created: time(r.opt_int(9)?),
        build_created: time(r.opt_int(10)?),
        build_ok: r.opt_bool(11)?,
        ok_report: r.opt_text(12)?,
        ok_created: time(r.opt_int(13)?),
        ok_layout: r.opt_text(14)?,
    })
}

const REPORT_COLUMNS: &str = "id, host, received, created, build_ok, error";

fn report_row(r: &mut Row) -> Result<ReportRow, Cause> {
    Ok(ReportRow {
        id: r.text(0)?,
        host: r.text(1)?,
        received: r.int(2)?.max(0) as u64,
        created: r.int(3)?.max(0) as u64,
        build_ok: r.opt_bool(4)?,
        error: r.opt_text(5)?,
    })
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Db {
    /// Opens the configured database (creating an SQLite file when missing) and applies the
    /// migrations.
    pub fn connect(database: &Database) -> Result<Db, Error> {
        match database {
            Database::Sqlite(path) => Db::open(path),
            Database::Postgres(url) => Db::postgres(url),
        }
    }

    /// Opens (creating when missing) the SQLite file at `path` and applies the migrations.
    pub fn open(path: &Path) -> Result<Db, Error> {
        Db::with_connection(Connection::sqlite(path)?)
    }

    /// Connects to PostgreSQL at `url` and applies the migrations.
    pub fn postgres(url: &PgUrl) -> Result<Db, Error> {
        Db::with_connection(Connection::postgres(url)?)
    }

    /// An in-memory SQLite database (tests).
    pub fn memory() -> Result<Db, Error> {
        Db::open(Path::new(":memory:"))
    }

    fn with_connection(conn: Connection) -> Result<Db, Error> {
        migrate(&conn)?;
        Ok(Db {
            conn: Mutex::new(conn),
        })
    }

    /// Runs `f` on the connection in this thread (the command-line tools).
    pub fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, Error>) -> Result<T, Error> {
        // A panic while holding the lock leaves the database consistent (an open transaction
        // rolls back on drop), so a poisoned lock is still usable.
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.reconnect_if_closed()?;
        f(&mut conn)
    }

    /// Runs `f` on the connection in a blocking task, off the async workers.
    pub async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let db = Arc::clone(self);
        tokio::task::spawn_blocking(move || db.with(f))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
    }
}

/// Applies the migrations not yet recorded, each in its own transaction.
fn migrate(conn: &Connection) -> Result<(), Error> {
    conn.batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied BIGINT NOT NULL)",
    )?;
    for (version, sql) in MIGRATIONS {
        let err = |error| Error::Migration {
            version: *version,
            error,
        };
        let tx = conn.migration_transaction().map_err(err)?;
        let done = tx
            .query_opt(
                "SELECT version FROM schema_migrations WHERE version = ?1",
                args![*version],
                |r| r.int(0),
            )
            .map_err(err)?;
        if done.is_some() {
            continue;
        }
        tx.batch(sql).map_err(err)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied) VALUES (?1, ?2)",
            args![*version, i(super::now())],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(())
}

/// The database answers (`/healthz`).
pub fn ping(conn: &Connection) -> Result<(), Error> {
    conn.query_one("SELECT 1", args![], |r| r.int(0))?;
    Ok(())
}

/// The host whose token has this SHA-256.
pub fn host_by_token(conn: &Connection, token_sha256: &str) -> Result<Option<String>, Error> {
    Ok(conn.query_opt(
        "SELECT name FROM hosts WHERE token_sha256 = ?1",
        args![token_sha256],
        |r| r.text(0),
    )?)
}

/// Creates the host when missing and sets its token (replacing an old one).
pub fn set_token(conn: &Connection, host: &str, token_sha256: &str, now: u64) -> Result<(), Error> {
    conn.execute(
        "INSERT INTO hosts (name, token_sha256, enrolled) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET token_sha256 = excluded.token_sha256",
        args![host, token_sha256, i(now)],
    )?;
    Ok(())
}

/// Sets the token of `host` only if it exists without one or not at all (enrollment);
/// returns whether it did.
pub fn enroll(conn: &Connection, host: &str, token_sha256: &str, now: u64) -> Result<bool, Error> {
    let n = conn.execute(
        "INSERT INTO hosts (name, token_sha256, enrolled) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET token_sha256 = excluded.token_sha256 \
         WHERE hosts.token_sha256 IS NULL",
        args![host, token_sha256, i(now)],
    )?;
    Ok(n == 1)
}

/// Removes the token of `host`; returns whether the host exists.
pub fn revoke_token(conn: &Connection, host: &str) -> Result<bool, Error> {
    Ok(conn.execute(
        "UPDATE hosts SET token_sha256 = NULL WHERE name = ?1",
        args![host],
    )? == 1)
}

/// Stores a report of `host` (whose name the caller has checked) and updates the host's
/// summary; returns false when the same report (same `id`) was stored before.
pub fn store_report(
    conn: &mut Connection,
    id: &str,
    host: &str,
    report: &Report,
    body: &str,
    received: u64,
) -> Result<bool, Error> {
    let tx = conn.transaction()?;
    if !insert_report(&tx, id, host, report, body, received)? {
        return Ok(false);
    }
    // A report sent late (store and forward) must not hide a newer one: the summary always
    // comes from the newest report by creation time.
    let latest = tx.query_one(
        "SELECT id FROM reports WHERE host = ?1 ORDER BY created DESC, received DESC, id DESC LIMIT 1",
        args![host],
        |r| r.text(0),
    )?;
    if latest == id {
        summarise_latest(&tx, id, host, report)?;
    }
    summarise_builds(&tx, host)?;
    tx.commit()?;
    Ok(true)
}

/// Inserts the report row only; returns false when a report with this `id` exists. Callers
/// then update the host's summary ([`summarise_latest`], [`summarise_builds`]).
pub fn insert_report(
    conn: &Connection,
    id: &str,
    host: &str,
    report: &Report,
    body: &str,
    received: u64,
) -> Result<bool, Error> {
    let (build_ok, error) = match &report.build {
        None => (None, None),
        Some(b) => match &b.result {
            rear_model::report::Outcome::Ok => (Some(true), None),
            rear_model::report::Outcome::Failed { error } => (Some(false), Some(error.as_str())),
        },
    };
    let n = conn.execute(
        "INSERT INTO reports (id, host, received, created, build_ok, error, layout, body) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO NOTHING",
        args![
            id,
            host,
            i(received),
            i(report.created),
            build_ok,
            error,
            &report.layout.digest,
            body
        ],
    )?;
    Ok(n > 0)
}

/// Makes `report` (stored as `id`) the host's latest: its facts, tags and search keys.
pub fn summarise_latest(
    conn: &Connection,
    id: &str,
    host: &str,
    report: &Report,
) -> Result<(), Error> {
    let tags = report.host.tags.join(" ");
    conn.execute(
        "UPDATE hosts SET domain = ?2, os = ?3, kernel = ?4, tags = ?5, layout = ?6, \
         last_report = ?7, last_created = ?8 WHERE name = ?1",
        args![
            host,
            &report.host.domain,
            &report.os.pretty_name,
            &report.kernel,
            &tags,
            &report.layout.digest,
            id,
            i(report.created)
        ],
    )?;
    conn.execute("DELETE FROM host_tags WHERE host = ?1", args![host])?;
    conn.execute("DELETE FROM host_keys WHERE host = ?1", args![host])?;
    for t in &report.host.tags {
        conn.execute(
            "INSERT INTO host_tags (host, tag) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            args![host, t],
        )?;
    }
    for (kind, value) in search_keys(report) {
        conn.execute(
            "INSERT INTO host_keys (host, kind, value) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            args![host, kind, &value],
        )?;
    }
    Ok(())
}

/// Recomputes the host's latest build and latest successful build from its reports.
pub fn summarise_builds(conn: &Connection, host: &str) -> Result<(), Error> {
    let build = conn.query_opt(
        "SELECT created, build_ok FROM reports WHERE host = ?1 AND build_ok IS NOT NULL \
         ORDER BY created DESC, received DESC LIMIT 1",
        args![host],
        |r| Ok((r.int(0)?, r.int(1)? != 0)),
    )?;
    let ok = conn.query_opt(
        "SELECT id, created, layout FROM reports WHERE host = ?1 AND build_ok = 1 \
         ORDER BY created DESC, received DESC LIMIT 1",
        args![host],
        |r| Ok((r.text(0)?, r.int(1)?, r.text(2)?)),
    )?;
    conn.execute(
        "UPDATE hosts SET build_created = ?2, build_ok = ?3, ok_report = ?4, ok_created = ?5, \
         ok_layout = ?6 WHERE name = ?1",
        args![
            host,
            build.map(|b| b.0),
            build.map(|b| b.1),
            ok.as_ref().map(|o| &o.0),
            ok.as_ref().map(|o| o.1),
            ok.as_ref().map(|o| &o.2)
        ],
    )?;
    Ok(())
}

/// What search finds a host by besides its columns: MACs, IP addresses and serial numbers of
/// its latest report, lower case.
pub fn search_keys(r: &Report) -> Vec<(&'static str, String)> {
    let mut keys = Vec::new();
    for n in &r.network {
        if !n.mac.is_empty() {
            keys.push(("mac", n.mac.to_lowercase()));
        }
        for a in &n.addresses {
            let ip = a.split('/').next().unwrap_or(a);
            keys.push(("ip", ip.to_lowercase()));
        }
    }
    for d in &r.layout.disks {
        if !d.serial.is_empty() {
            keys.push(("serial", d.serial.to_lowercase()));
        }
    }
    if !r.hardware.serial.is_empty() {
        keys.push(("serial", r.hardware.serial.to_lowercase()));
    }
    keys.sort();
    keys.dedup();
    keys
}

/// All hosts, by name (byte order).
pub fn hosts(conn: &Connection) -> Result<Vec<HostRow>, Error> {
    let mut hosts = conn.query(
        &format!("SELECT {HOST_COLUMNS} FROM hosts"),
        args![],
        host_row,
    )?;
    // Sorted here rather than by `ORDER BY name COLLATE "C"`: for every host of a large fleet
    // SQLite would call the Rust collation back n log n times for the same byte order.
    hosts.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Ok(hosts)
}

/// One host.
pub fn host(conn: &Connection, name: &str) -> Result<Option<HostRow>, Error> {
    Ok(conn.query_opt(
        &format!("SELECT {HOST_COLUMNS} FROM hosts WHERE name = ?1"),
        args![name],
        host_row,
    )?)
}

/// Hosts matching `q` (case-insensitive): a substring of name, domain, OS or a tag, or of a
/// MAC, IP address or serial number of the latest report. At most `limit`, by name.
pub fn search(conn: &Connection, q: &str, limit: usize) -> Result<Vec<HostRow>, Error> {
    let q = q.trim().to_lowercase();
    let escaped: String = q
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    let like = format!("%{escaped}%");
    // A MAC may be typed with dashes (Windows style).
    let mac_like = format!("%{}%", escaped.replace('-', ":"));
    let cols = HOST_COLUMNS
        .split(", ")
        .map(|c| format!("h.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {cols} FROM hosts h WHERE lower(h.name) LIKE ?1 ESCAPE '\\' \
         OR lower(h.domain) LIKE ?1 ESCAPE '\\' OR lower(h.os) LIKE ?1 ESCAPE '\\' \
         OR lower(h.tags) LIKE ?1 ESCAPE '\\' \
         OR h.name IN (SELECT host FROM host_keys WHERE value LIKE ?1 ESCAPE '\\' OR value LIKE ?2 ESCAPE '\\') \
         ORDER BY h.name COLLATE \"C\" LIMIT ?3"
    );
    Ok(conn.query(&sql, args![&like, &mac_like, i(limit as u64)], host_row)?)
}

/// The newest `limit` reports of all hosts, by time received.
pub fn last_reports(conn: &Connection, limit: usize) -> Result<Vec<ReportRow>, Error> {
    Ok(conn.query(
        &format!(
            "SELECT {REPORT_COLUMNS} FROM reports ORDER BY received DESC, created DESC LIMIT ?1"
        ),
        args![i(limit as u64)],
        report_row,
    )?)
}

/// The newest `limit` reports of `host`, by creation time.
pub fn reports_of(conn: &Connection, host: &str, limit: usize) -> Result<Vec<ReportRow>, Error> {
    Ok(conn.query(
        &format!(
            "SELECT {REPORT_COLUMNS} FROM reports WHERE host = ?1 ORDER BY created DESC, received DESC LIMIT ?2"
        ),
        args![host, i(limit as u64)],
        report_row,
    )?)
}

/// The body of a report.
pub fn report_body(conn: &Connection, id: &str) -> Result<Option<String>, Error> {
    Ok(
        conn.query_opt("SELECT body FROM reports WHERE id = ?1", args![id], |r| {
            r.text(0)
        })?,
    )
}

/// The number of stored reports.
pub fn report_count(conn: &Connection) -> Result<u64, Error> {
    let n = conn.query_one("SELECT COUNT(*) FROM reports", args![], |r| r.int(0))?;
    Ok(n.max(0) as u64)
}

/// Records a stored medium.
pub fn add_media(
    conn: &Connection,
    sha256: &str,
    size: u64,
    host: &str,
    now: u64,
) -> Result<(), Error> {
    conn.execute(
        "INSERT INTO media (sha256, size, stored, host) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (sha256) DO NOTHING",
        args![sha256, i(size), i(now), host],
    )?;
    Ok(())
}

/// The size of a stored medium, `None` if it is not stored.
pub fn media_size(conn: &Connection, sha256: &str) -> Result<Option<u64>, Error> {
    Ok(conn
        .query_opt(
            "SELECT size FROM media WHERE sha256 = ?1",
            args![sha256],
            |r| r.int(0),
        )?
        .map(|s| s.max(0) as u64))
}

/// Number and total size of stored media.
pub fn media_totals(conn: &Connection) -> Result<(u64, u64), Error> {
    // PostgreSQL's SUM of a BIGINT is NUMERIC; the cast keeps it an integer on both.
    let (n, b) = conn.query_one(
        "SELECT COUNT(*), CAST(SUM(size) AS BIGINT) FROM media",
        args![],
        |r| Ok((r.int(0)?, r.opt_int(1)?)),
    )?;
    Ok((n.max(0) as u64, b.unwrap_or(0).max(0) as u64))
}

/// Starts a session; also drops expired ones.
pub fn create_session(
    conn: &Connection,
    id_sha256: &str,
    user: &str,
    csrf: &str,
    expires: u64,
    now: u64,
) -> Result<(), Error> {
    conn.execute("DELETE FROM sessions WHERE expires < ?1", args![i(now)])?;
    conn.execute(
        "INSERT INTO sessions (id_sha256, username, csrf, expires) VALUES (?1, ?2, ?3, ?4)",
        args![id_sha256, user, csrf, i(expires)],
    )?;
    Ok(())
}

/// The user and CSRF token of a live session.
pub fn session(
    conn: &Connection,
    id_sha256: &str,
    now: u64,
) -> Result<Option<(String, String)>, Error> {
    Ok(conn.query_opt(
        "SELECT username, csrf FROM sessions WHERE id_sha256 = ?1 AND expires >= ?2",
        args![id_sha256, i(now)],
        |r| Ok((r.text(0)?, r.text(1)?)),
    )?)
}

/// Ends a session.
pub fn delete_session(conn: &Connection, id_sha256: &str) -> Result<(), Error> {
    conn.execute(
        "DELETE FROM sessions WHERE id_sha256 = ?1",
        args![id_sha256],
    )?;
    Ok(())
}

/// Sets the mail key of `host` (which exists), replacing an old one.
pub fn set_mail_key(conn: &Connection, host: &str, mail_key: &str) -> Result<(), Error> {
    conn.execute(
        "INSERT INTO host_mail_keys (host, mail_key) VALUES (?1, ?2) \
         ON CONFLICT (host) DO UPDATE SET mail_key = excluded.mail_key",
        args![host, mail_key],
    )?;
    Ok(())
}

/// Removes the mail key of `host` (its token was revoked).
pub fn delete_mail_key(conn: &Connection, host: &str) -> Result<(), Error> {
    conn.execute("DELETE FROM host_mail_keys WHERE host = ?1", args![host])?;
    Ok(())
}

/// The mail key of `host`, if it has a token made since mail ingest exists.
pub fn mail_key(conn: &Connection, host: &str) -> Result<Option<String>, Error> {
    Ok(conn.query_opt(
        "SELECT k.mail_key FROM host_mail_keys k JOIN hosts h ON h.name = k.host \
         WHERE k.host = ?1 AND h.token_sha256 IS NOT NULL",
        args![host],
        |r| r.text(0),
    )?)
}

/// Whether a mailed report with this nonce was accepted before.
pub fn nonce_seen(conn: &Connection, nonce: &str) -> Result<bool, Error> {
    Ok(conn
        .query_opt(
            "SELECT 1 FROM mail_nonces WHERE nonce = ?1",
            args![nonce],
            |_| Ok(()),
        )?
        .is_some())
}

/// Records the nonce of an accepted mailed report and forgets those sent before
/// `forget_before`; returns false when the nonce was recorded already.
pub fn record_nonce(
    conn: &Connection,
    nonce: &str,
    host: &str,
    sent: u64,
    received: u64,
    forget_before: u64,
) -> Result<bool, Error> {
    conn.execute(
        "DELETE FROM mail_nonces WHERE sent < ?1",
        args![i(forget_before)],
    )?;
    Ok(conn.execute(
        "INSERT INTO mail_nonces (nonce, host, sent, received) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (nonce) DO NOTHING",
        args![nonce, host, i(sent), i(received)],
    )? == 1)
}

/// The bodies of those reports in `ids` that belong to `host`, as (id, body), in one query:
/// the host page needs up to four (latest, media build, the two compared) and must not cost a
/// query each. An id of another host's report finds nothing.
pub fn report_bodies(
    conn: &Connection,
    host: &str,
    ids: &[&str],
) -> Result<Vec<(String, String)>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // One statement text per number of ids (at most four), each prepared once.
    let marks: Vec<String> = (2..ids.len() + 2).map(|n| format!("?{n}")).collect();
    let sql = format!(
        "SELECT id, body FROM reports WHERE host = ?1 AND id IN ({})",
        marks.join(", ")
    );
    let params: Vec<Param<'_>> = std::iter::once(host)
        .chain(ids.iter().copied())
        .map(Param::from)
        .collect();
    Ok(conn.query(&sql, &params, |r| Ok((r.text(0)?, r.text(1)?)))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rear_model::report::{Build, Facts, Interface, LayoutSummary};

    fn report(name: &str, created: u64, build: Option<Build>, layout: &str) -> Report {
        let mut f = Facts::default();
        f.host.name = name.into();
        f.host.tags = vec!["web".into()];
        f.network = vec![Interface {
            name: "eth0".into(),
            mac: "52:54:00:AA:BB:CC".into(),
            addresses: vec!["192.0.2.7/24".into()],
        }];
        f.layout = LayoutSummary {
            digest: layout.into(),
            ..LayoutSummary::default()
        };
        Report::new(f, build, created)
    }

    fn store(db: &Db, r: &Report) -> bool {
        let body = r.to_json();
        let id = rear_model::manifest::sha256_hex(body.as_bytes());
        db.with(|c| store_report(c, &id, &r.host.name, r, &body, 1000))
            .unwrap()
    }

    #[test]
    fn migrate_is_idempotent() {
        let db = Db::memory().unwrap();
        db.with(|c| migrate(c)).unwrap();
        let n = db
            .with(|c| {
                Ok(
                    c.query_one("SELECT COUNT(*) FROM schema_migrations", args![], |r| {
                        r.int(0)
                    })?,
                )
            })
            .unwrap();
        assert_eq!(n, MIGRATIONS.len() as i64);
    }

    #[test]
    fn store_report_summarises_the_newest() {
        let db = Db::memory().unwrap();
        db.with(|c| set_token(c, "h1", "t", 1)).unwrap();
        let ok = report("h1", 100, Some(Build::default()), "L1");
        assert!(store(&db, &ok));
        assert!(!store(&db, &ok), "same report twice is stored once");
        let failed = report("h1", 200, Some(Build::failed("x")), "L2");
        assert!(store(&db, &failed));
        // An older report arriving late changes nothing.
        assert!(store(&db, &report("h1", 50, None, "L0")));
        let h = db.with(|c| host(c, "h1")).unwrap().unwrap();
        assert_eq!(h.build_ok, Some(false));
        assert_eq!(h.ok_created, Some(100));
        assert_eq!(h.ok_layout.as_deref(), Some("L1"));
        assert_eq!(h.layout, "L2");
        assert_eq!(h.last_created, Some(200));
        assert_eq!(h.tags, ["web"]);
        assert!(h.has_token);
        assert_eq!(db.with(|c| reports_of(c, "h1", 10)).unwrap().len(), 3);
    }

    #[test]
    fn search_finds_by_mac_ip_and_tag() {
        let db = Db::memory().unwrap();
        db.with(|c| set_token(c, "h1", "t", 1)).unwrap();
        db.with(|c| set_token(c, "h2", "u", 1)).unwrap();
        store(&db, &report("h1", 1, None, ""));
        let found = |q: &str| {
            db.with(|c| search(c, q, 10))
                .unwrap()
                .into_iter()
                .map(|h| h.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(found("52:54:00:aa:bb:cc"), ["h1"]);
        assert_eq!(found("52-54-00-AA"), ["h1"]);
        assert_eq!(found("192.0.2.7"), ["h1"]);
        assert_eq!(found("WEB"), ["h1"]);
        assert_eq!(found("h"), ["h1", "h2"]);
        assert!(found("%").is_empty());
    }

    #[test]
    fn enroll_only_without_a_token() {
        let db = Db::memory().unwrap();
        assert!(db.with(|c| enroll(c, "new", "a", 1)).unwrap());
        assert!(!db.with(|c| enroll(c, "new", "b", 1)).unwrap());
        assert_eq!(
            db.with(|c| host_by_token(c, "a")).unwrap().as_deref(),
            Some("new")
        );
        assert!(db.with(|c| revoke_token(c, "new")).unwrap());
        assert!(db.with(|c| enroll(c, "new", "b", 1)).unwrap());
    }

    #[test]
    fn mail_key_needs_a_live_token() {
        let db = Db::memory().unwrap();
        db.with(|c| set_token(c, "h1", "t", 1)).unwrap();
        db.with(|c| set_mail_key(c, "h1", "k1")).unwrap();
        db.with(|c| set_mail_key(c, "h1", "k2")).unwrap();
        assert_eq!(
            db.with(|c| mail_key(c, "h1")).unwrap().as_deref(),
            Some("k2")
        );
        db.with(|c| revoke_token(c, "h1")).unwrap();
        assert_eq!(db.with(|c| mail_key(c, "h1")).unwrap(), None);
        assert_eq!(db.with(|c| mail_key(c, "nope")).unwrap(), None);
    }

    #[test]
    fn record_nonce_once_and_forgets_old() {
        let db = Db::memory().unwrap();
        assert!(!db.with(|c| nonce_seen(c, "n1")).unwrap());
        assert!(
            db.with(|c| record_nonce(c, "n1", "h", 100, 100, 0))
                .unwrap()
        );
        assert!(db.with(|c| nonce_seen(c, "n1")).unwrap());
        assert!(
            !db.with(|c| record_nonce(c, "n1", "h", 100, 101, 0))
                .unwrap()
        );
        assert!(
            db.with(|c| record_nonce(c, "n2", "h", 300, 300, 200))
                .unwrap()
        );
        assert!(
            !db.with(|c| nonce_seen(c, "n1")).unwrap(),
            "older than the window"
        );
    }

    #[test]
    fn session_expires() {
        let db = Db::memory().unwrap();
        db.with(|c| create_session(c, "s", "alice", "c", 100, 0))
            .unwrap();
        assert_eq!(
            db.with(|c| session(c, "s", 50)).unwrap(),
            Some(("alice".into(), "c".into()))
        );
        assert_eq!(db.with(|c| session(c, "s", 101)).unwrap(), None);
    }
}
