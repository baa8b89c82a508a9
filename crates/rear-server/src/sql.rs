//! One connection type over both database backends, so each query of [`super::db`] is written
//! once.
//!
//! Input: SQL text with SQLite's `?N` placeholders and [`Param`]s. Output: affected row counts
//! or [`Row`]s of [`Value`]s. SQLite runs the text as it is; for PostgreSQL the placeholders are
//! rewritten to `$N` once per statement text, when it is prepared and cached. The schema needs
//! only three kinds of value (integer, text, NULL), so parameters and columns are converted
//! by the type the server reports (PostgreSQL's INTEGER is `int4`, BIGINT `int8`, a comparison
//! `bool`); anything else is an error naming the column, not a silent conversion.
//!
//! Text is ordered the same on both: queries say `COLLATE "C"` (byte order), which PostgreSQL
//! has built in and SQLite gets from [`Connection::sqlite`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use postgres::types::{IsNull, ToSql, Type};

use super::config::PgUrl;

/// What went wrong, with the database (its URL, never a password) and the statement.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be opened, created or connected to.
    #[error("database {db}: cannot open: {cause}")]
    Open {
        /// The database URL without password.
        db: String,
        /// What the backend said.
        cause: Cause,
    },
    /// A statement failed.
    #[error("database {db}: {what}: {cause}")]
    Query {
        /// The database URL without password.
        db: String,
        /// The start of the statement.
        what: String,
        /// What the backend said.
        cause: Cause,
    },
}

/// What a backend said, or a value the server cannot use.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    /// SQLite's error.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL's error, with the server's message, detail and hint.
    #[error("{}", pg_message(.0))]
    Postgres(#[from] postgres::Error),
    /// A column has a type or value this server does not read (a schema mismatch), or a query
    /// that must return a row returned none.
    #[error("{0}")]
    Value(String),
}

/// The useful part of a PostgreSQL error: its own `Display` says only "db error".
fn pg_message(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut m = format!("{}: {}", db.severity(), db.message());
        if let Some(d) = db.detail() {
            m.push_str(&format!(" ({d})"));
        }
        if let Some(h) = db.hint() {
            m.push_str(&format!("; hint: {h}"));
        }
        return m;
    }
    match std::error::Error::source(e) {
        Some(s) => format!("{e}: {s}"),
        None => e.to_string(),
    }
}

/// A statement parameter: the three kinds of value the schema uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param<'a> {
    /// SQL NULL.
    Null,
    /// An integer (times, sizes, 0/1 flags).
    Int(i64),
    /// Text.
    Text(&'a str),
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(v)
    }
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}

impl From<bool> for Param<'_> {
    /// Flags are INTEGER 0/1 in the schema (SQLite has no BOOLEAN).
    fn from(v: bool) -> Self {
        Param::Int(i64::from(v))
    }
}

impl<'a, T: Into<Param<'a>>> From<Option<T>> for Param<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Param::Null, Into::into)
    }
}

/// `args![a, b, c]`: a slice of [`Param`]s for the statement methods of [`Connection`].
macro_rules! args {
    ($($v:expr),* $(,)?) => {
        &[$($crate::sql::Param::from($v)),*][..]
    };
}
pub(crate) use args;

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match *self {
            Param::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Param::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(v)),
            Param::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

fn is_pg_int(ty: &Type) -> bool {
    matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8 | Type::BOOL)
}

fn is_pg_text(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
    )
}

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Param::Null => Ok(IsNull::Yes),
            // PostgreSQL tells the column's type when the statement is prepared; the value is
            // sent in exactly that width (an INTEGER column is int4, BIGINT int8).
            Param::Int(v) => match *ty {
                Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
                Type::BOOL => (v != 0).to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Param::Text(s) => s.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        is_pg_int(ty) || is_pg_text(ty)
    }

    /// Checks the variant, not only the type: text must not go to an integer parameter.
    fn to_sql_checked(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let fits = match self {
            Param::Null => Self::accepts(ty),
            Param::Int(_) => is_pg_int(ty),
            Param::Text(_) => is_pg_text(ty),
        };
        if !fits {
            return Err(format!("cannot send {self:?} as PostgreSQL type {ty}").into());
        }
        self.to_sql(ty, out)
    }
}

/// A value read from a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer (PostgreSQL's booleans read as 0/1).
    Int(i64),
    /// Text.
    Text(String),
}

/// One result row. The getters take the column's index and fail, naming it, when the value is
/// of another kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> Result<&Value, Cause> {
        self.0
            .get(i)
            .ok_or_else(|| Cause::Value(format!("no column {i}")))
    }

    /// An integer or NULL.
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, Cause> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(*v)),
            Value::Text(_) => Err(Cause::Value(format!("column {i} is text, not an integer"))),
        }
    }

    /// An integer.
    pub fn int(&self, i: usize) -> Result<i64, Cause> {
        self.opt_int(i)?
            .ok_or_else(|| Cause::Value(format!("column {i} is NULL, not an integer")))
    }

    /// A 0/1 flag or NULL.
    pub fn opt_bool(&self, i: usize) -> Result<Option<bool>, Cause> {
        Ok(self.opt_int(i)?.map(|v| v != 0))
    }

    /// Text or NULL (moved out of the row).
    pub fn opt_text(&mut self, i: usize) -> Result<Option<String>, Cause> {
        match self.0.get_mut(i) {
            None => Err(Cause::Value(format!("no column {i}"))),
            Some(Value::Null) => Ok(None),
            Some(Value::Text(t)) => Ok(Some(std::mem::take(t))),
            Some(Value::Int(_)) => Err(Cause::Value(format!("column {i} is an integer, not text"))),
        }
    }

    /// Text (moved out of the row).
    pub fn text(&mut self, i: usize) -> Result<String, Cause> {
        self.opt_text(i)?
            .ok_or_else(|| Cause::Value(format!("column {i} is NULL, not text")))
    }
}

/// A PostgreSQL client with its prepared statements, keyed by the SQLite-style text.
struct Pg {
    url: PgUrl,
    client: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
}

impl Pg {
    fn connect(url: &PgUrl) -> Result<Pg, Cause> {
        let mut config: postgres::Config = url.secret().parse()?;
        // A database that does not answer must not hang the server's start for minutes.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("rear-server");
        }
        // Without this every start logs the NOTICE "relation schema_migrations already
        // exists, skipping" of the migrations' CREATE TABLE IF NOT EXISTS.
        if config.get_options().is_none() {
            config.options("-c client_min_messages=warning");
        }
        Ok(Pg {
            url: url.clone(),
            client: config.connect(postgres::NoTls)?,
            statements: HashMap::new(),
        })
    }

    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, Cause> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let st = self.client.prepare(&dollar_placeholders(sql))?;
        self.statements.insert(sql.to_string(), st.clone());
        Ok(st)
    }

    fn params<'p>(params: &'p [Param<'_>]) -> Vec<&'p (dyn ToSql + Sync)> {
        params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
    }
}

enum Backend {
    Sqlite(rusqlite::Connection),
    // The client needs `&mut` for every call; the cell lets all statement methods take `&self`,
    // as rusqlite's do, so one query function serves both backends. Calls never nest (rows are
    // collected before they are mapped), so a borrow never finds the cell taken.
    Postgres(Box<RefCell<Pg>>),
}

/// An open database connection, SQLite or PostgreSQL.
pub struct Connection {
    /// The URL without password, for messages.
    shown: String,
    backend: Backend,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connection({:?})", self.shown)
    }
}

/// A statement's first 60 characters on one line, for messages; leading `--` comment lines
/// (a migration's header) are skipped.
fn what(sql: &str) -> String {
    let body: Vec<&str> = sql
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty() || l.starts_with("--"))
        .collect();
    let one: String = body
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    match one.char_indices().nth(60) {
        Some((at, _)) => format!("{}...", &one[..at]),
        None => one,
    }
}

/// SQLite's `?N` placeholders as PostgreSQL's `$N`; text in single quotes is left alone.
pub fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted && chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            c => out.push(c),
        }
    }
    out
}

fn pg_value(row: &postgres::Row, i: usize) -> Result<Value, Cause> {
    let ty = row.columns().get(i).map(|c| c.type_().clone());
    let v = match ty {
        Some(Type::INT2) => row
            .try_get::<_, Option<i16>>(i)?
            .map(|v| Value::Int(v.into())),
        Some(Type::INT4) => row
            .try_get::<_, Option<i32>>(i)?
            .map(|v| Value::Int(v.into())),
        Some(Type::INT8) => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
        Some(Type::BOOL) => row
            .try_get::<_, Option<bool>>(i)?
            .map(|v| Value::Int(v.into())),
        Some(t) if is_pg_text(&t) => row.try_get::<_, Option<String>>(i)?.map(Value::Text),
        Some(t) => {
            return Err(Cause::Value(format!(
                "column {i} has PostgreSQL type {t}, which this server does not read"
            )));
        }
        None => return Err(Cause::Value(format!("no column {i}"))),
    };
    Ok(v.unwrap_or(Value::Null))
}

fn sqlite_row(row: &rusqlite::Row<'_>, n: usize) -> Result<Row, Cause> {
    use rusqlite::types::ValueRef;
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        values.push(match row.get_ref(i)? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(v) => Value::Int(v),
            ValueRef::Text(t) => Value::Text(
                std::str::from_utf8(t)
                    .map_err(|e| Cause::Value(format!("column {i}: {e}")))?
                    .to_string(),
            ),
            ValueRef::Real(_) | ValueRef::Blob(_) => {
                return Err(Cause::Value(format!(
                    "column {i} is a real number or blob, which this server does not read"
                )));
            }
        });
    }
    Ok(Row(values))
}

impl Connection {
    /// Opens (creating when missing) the SQLite file at `path`; `:memory:` is a private
    /// in-memory database.
    pub fn sqlite(path: &Path) -> Result<Connection, Error> {
        let shown = format!("sqlite://{}", path.display());
        let open_err = |cause: rusqlite::Error| Error::Open {
            db: shown.clone(),
            cause: cause.into(),
        };
        let conn = if path == Path::new(":memory:") {
            rusqlite::Connection::open_in_memory()
        } else {
            rusqlite::Connection::open(path)
        }
        .map_err(open_err)?;
        // WAL lets the GUI read while a report is written; NORMAL sync is safe with WAL. The
        // page cache is 64 MiB instead of 2: the overview reads every host row, which at
        // 10,000 hosts no longer fitted and was read from the OS on every request.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
             PRAGMA cache_size = -65536;",
        )
        .map_err(open_err)?;
        // PostgreSQL's byte-order collation; SQLite's BINARY is the same order for UTF-8.
        conn.create_collation("C", |a: &str, b: &str| a.cmp(b))
            .map_err(open_err)?;
        // Every query of `db` stays prepared (there are about 30).
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Connection {
            shown,
            backend: Backend::Sqlite(conn),
        })
    }

    /// Connects to PostgreSQL (plain TCP or a Unix socket, no TLS).
    pub fn postgres(url: &PgUrl) -> Result<Connection, Error> {
        let pg = Pg::connect(url).map_err(|cause| Error::Open {
            db: url.shown().to_string(),
            cause,
        })?;
        Ok(Connection {
            shown: url.shown().to_string(),
            backend: Backend::Postgres(Box::new(RefCell::new(pg))),
        })
    }

    /// The database's URL without password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Which backend: `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Connects again when PostgreSQL closed the connection (a server restart), so one outage
    /// does not need a restart of rear-server too.
    pub fn reconnect_if_closed(&mut self) -> Result<(), Error> {
        if let Backend::Postgres(pg) = &mut self.backend {
            let pg = pg.get_mut();
            if pg.client.is_closed() {
                log::warn!("database {}: connection closed; reconnecting", self.shown);
                *pg = Pg::connect(&pg.url).map_err(|cause| Error::Open {
                    db: self.shown.clone(),
                    cause,
                })?;
            }
        }
        Ok(())
    }

    fn err(&self, sql: &str, cause: impl Into<Cause>) -> Error {
        Error::Query {
            db: self.shown.clone(),
            what: what(sql),
            cause: cause.into(),
        }
    }

    fn pg<'c>(&self, cell: &'c RefCell<Pg>, sql: &str) -> Result<std::cell::RefMut<'c, Pg>, Error> {
        cell.try_borrow_mut()
            .map_err(|_| self.err(sql, Cause::Value("connection is busy".into())))
    }

    /// Runs one statement; returns the number of rows it changed.
    pub fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, Error> {
        match &self.backend {
            Backend::Sqlite(c) => {
                let mut st = c.prepare_cached(sql).map_err(|e| self.err(sql, e))?;
                let n = st
                    .execute(rusqlite::params_from_iter(params))
                    .map_err(|e| self.err(sql, e))?;
                Ok(n as u64)
            }
            Backend::Postgres(cell) => {
                let mut pg = self.pg(cell, sql)?;
                let st = pg.statement(sql).map_err(|e| self.err(sql, e))?;
                pg.client
                    .execute(&st, &Pg::params(params))
                    .map_err(|e| self.err(sql, e))
            }
        }
    }

    /// Runs a query and maps every row with `f`.
    pub fn query<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        mut f: impl FnMut(&mut Row) -> Result<T, Cause>,
    ) -> Result<Vec<T>, Error> {
        match &self.backend {
            Backend::Sqlite(c) => {
                let mut st = c.prepare_cached(sql).map_err(|e| self.err(sql, e))?;
                let n = st.column_count();
                let mut rows = st
                    .query(rusqlite::params_from_iter(params))
                    .map_err(|e| self.err(sql, e))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next().map_err(|e| self.err(sql, e))? {
                    let mut row = sqlite_row(r, n).map_err(|e| self.err(sql, e))?;
                    out.push(f(&mut row).map_err(|e| self.err(sql, e))?);
                }
                Ok(out)
            }
            Backend::Postgres(cell) => {
                let rows = {
                    let mut pg = self.pg(cell, sql)?;
                    let st = pg.statement(sql).map_err(|e| self.err(sql, e))?;
                    pg.client
                        .query(&st, &Pg::params(params))
                        .map_err(|e| self.err(sql, e))?
                };
                rows.iter()
                    .map(|r| {
                        let values = (0..r.len())
                            .map(|i| pg_value(r, i))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|e| self.err(sql, e))?;
                        f(&mut Row(values)).map_err(|e| self.err(sql, e))
                    })
                    .collect()
            }
        }
    }

    /// The first row of a query, mapped with `f`, or `None`.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        f: impl FnMut(&mut Row) -> Result<T, Cause>,
    ) -> Result<Option<T>, Error> {
        // Every caller's query returns at most one row (a key lookup or LIMIT 1).
        Ok(self.query(sql, params, f)?.into_iter().next())
    }

    /// The first row of a query that always returns one (an aggregate), mapped with `f`.
    pub fn query_one<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        f: impl FnMut(&mut Row) -> Result<T, Cause>,
    ) -> Result<T, Error> {
        self.query_opt(sql, params, f)?
            .ok_or_else(|| self.err(sql, Cause::Value("returned no row".into())))
    }

    /// Runs statements separated by `;`, without parameters (migrations).
    pub fn batch(&self, sql: &str) -> Result<(), Error> {
        match &self.backend {
            Backend::Sqlite(c) => c.execute_batch(sql).map_err(|e| self.err(sql, e)),
            Backend::Postgres(cell) => {
                let mut pg = self.pg(cell, sql)?;
                pg.client.batch_execute(sql).map_err(|e| self.err(sql, e))
            }
        }
    }

    /// Starts a transaction; it rolls back when dropped without [`Transaction::commit`].
    pub fn transaction(&self) -> Result<Transaction<'_>, Error> {
        self.batch("BEGIN")?;
        Ok(Transaction {
            conn: self,
            done: false,
        })
    }

    /// Starts a transaction that holds the migrations lock until it ends: a second server
    /// starting at the same time waits instead of creating the same tables.
    pub fn migration_transaction(&self) -> Result<Transaction<'_>, Error> {
        let begin = match self.backend {
            // IMMEDIATE takes SQLite's write lock at once.
            Backend::Sqlite(_) => "BEGIN IMMEDIATE",
            Backend::Postgres(_) => {
                "BEGIN; LOCK TABLE schema_migrations IN SHARE ROW EXCLUSIVE MODE"
            }
        };
        self.batch(begin)?;
        Ok(Transaction {
            conn: self,
            done: false,
        })
    }
}

/// An open transaction on a [`Connection`], which it derefs to.
#[derive(Debug)]
pub struct Transaction<'c> {
    conn: &'c Connection,
    done: bool,
}

impl Transaction<'_> {
    /// Commits. When that fails the transaction is rolled back.
    pub fn commit(mut self) -> Result<(), Error> {
        self.conn.batch("COMMIT")?;
        self.done = true;
        Ok(())
    }
}

impl std::ops::Deref for Transaction<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.done
            && let Err(e) = self.conn.batch("ROLLBACK")
        {
            log::warn!("{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_placeholders_outside_quotes() {
        assert_eq!(
            dollar_placeholders("SELECT a FROM t WHERE b = ?1 AND c LIKE ?12 ESCAPE '\\'"),
            "SELECT a FROM t WHERE b = $1 AND c LIKE $12 ESCAPE '\\'"
        );
        assert_eq!(dollar_placeholders("SELECT '?1', ?2"), "SELECT '?1', $2");
        assert_eq!(dollar_placeholders("SELECT ? "), "SELECT ? ");
    }

    #[test]
    fn what_skips_comments_and_shortens() {
        assert_eq!(
            what("-- header\n\nCREATE TABLE t (\n  a INT\n)"),
            "CREATE TABLE t ( a INT )"
        );
        let long = format!("SELECT {}", "x, ".repeat(40));
        assert!(what(&long).ends_with("...") && what(&long).len() == 63);
    }

    #[test]
    fn sqlite_rows_and_transactions() {
        let c = Connection::sqlite(Path::new(":memory:")).unwrap();
        c.batch("CREATE TABLE t (k TEXT PRIMARY KEY, n BIGINT, f INTEGER)")
            .unwrap();
        {
            let tx = c.transaction().unwrap();
            tx.execute("INSERT INTO t VALUES (?1, ?2, ?3)", args!["b", 2i64, true])
                .unwrap();
            // Dropped without commit: rolled back.
        }
        let tx = c.transaction().unwrap();
        for (k, n) in [("b", Some(2i64)), ("B", None), ("a", Some(1))] {
            tx.execute("INSERT INTO t VALUES (?1, ?2, ?3)", args![k, n, false])
                .unwrap();
        }
        tx.commit().unwrap();
        let rows = c
            .query(
                "SELECT k, n, f FROM t ORDER BY k COLLATE \"C\"",
                args![],
                |r| Ok((r.text(0)?, r.opt_int(1)?, r.opt_bool(2)?)),
            )
            .unwrap();
        assert_eq!(
            rows,
            [
                ("B".to_string(), None, Some(false)),
                ("a".to_string(), Some(1), Some(false)),
                ("b".to_string(), Some(2), Some(false)),
            ]
        );
        let e = c
            .query_one("SELECT k FROM t WHERE n = ?1", args![2i64], |r| r.int(0))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "database sqlite://:memory:: SELECT k FROM t WHERE n = ?1: column 0 is text, not an integer"
        );
        let e = c.batch("SELEKT").unwrap_err().to_string();
        assert!(e.starts_with("database sqlite://:memory:: SELEKT: "), "{e}");
    }
}
