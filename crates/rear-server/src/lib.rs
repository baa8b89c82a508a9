//! `rear-server`: the fleet server; it depends on `rear_model` only, and nothing depends on it.
//!
//! Input: reports and media that hosts push over HTTP ([`api`]) or send by mail ([`mail`],
//! [`smtp`]), a TOML configuration ([`config`]). Output: an SQLite or PostgreSQL database
//! ([`db`], [`sql`]), a content-addressed media folder ([`store`]), a read-only web GUI behind
//! a login ([`gui`], [`pages`]), Prometheus metrics and a Nagios check ([`status`]).
//! `docs/server.md` describes setup and the HTTP interface.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod config;
pub mod db;
pub mod diff;
pub mod gui;
pub mod layout_tree;
pub mod limit;
pub mod mail;
pub mod pages;
pub mod random;
pub mod smtp;
pub mod sql;
pub mod status;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post, put};

use config::Config;
use db::Db;
use store::MediaStore;

/// Errors of the server and its command-line tools.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] config::Error),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] db::Error),
    /// The media store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A secret could not be made.
    #[error(transparent)]
    Auth(#[from] auth::Error),
    /// The listen address could not be bound or serving failed.
    #[error("listening on {addr}: {error}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// What the kernel said.
        error: std::io::Error,
    },
    /// A host name given on the command line is not valid.
    #[error("host name {0:?} is not valid (letters, digits, '-', '_', '.')")]
    HostName(String),
    /// `token revoke` for a host the database does not know.
    #[error("host {0} is not known")]
    UnknownHost(String),
}

/// What every request handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The configuration.
    pub config: Config,
    /// The database.
    pub db: Arc<Db>,
    /// The media store.
    pub store: MediaStore,
    /// Failed logins per user and address.
    pub logins: limit::LoginLimiter,
}

/// Seconds since 1970 now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Opens the configured database (creating and migrating it).
pub fn open_db(config: &Config) -> Result<Db, Error> {
    Ok(Db::connect(&config.database)?)
}

/// The state for `config`: database open, media folder ready.
pub fn state(config: Config) -> Result<AppState, Error> {
    let db = Arc::new(open_db(&config)?);
    let store = MediaStore::new(&config.media_dir, config.media_s3.as_ref())?;
    Ok(AppState {
        config,
        db,
        store,
        logins: limit::LoginLimiter::default(),
    })
}

/// All routes. Open: `/healthz`, `/login`, the ingest endpoints and `/metrics` (which checks
/// its own token); everything else needs a logged-in viewer.
pub fn router(app: Arc<AppState>) -> Router {
    let max_report = app.config.max_report_bytes;
    let gui = Router::new()
        .route("/", get(gui::overview))
        .route("/reports", get(gui::last_reports))
        .route("/domains", get(gui::domains))
        .route("/tags", get(gui::tags))
        .route("/search", get(gui::search))
        .route("/host/{name}", get(gui::host))
        .route("/media/{sha256}", get(gui::download))
        .route("/logout", post(gui::logout))
        .route("/api/v1/hosts", get(api::hosts))
        .route_layer(from_fn(gui::require));
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/login", get(gui::login_form).post(gui::login))
        .route(
            "/api/v1/reports",
            post(api::post_report).layer(DefaultBodyLimit::max(max_report)),
        )
        .route(
            "/api/v1/media/{sha256}",
            put(api::put_media).layer(DefaultBodyLimit::disable()),
        )
        .route("/metrics", get(api::metrics))
        .merge(gui)
        .fallback(gui::not_found)
        .layer(from_fn_with_state(Arc::clone(&app), gui::identify))
        .with_state(app)
}

/// Serves until SIGINT or SIGTERM. Prints `listening on ADDR` on stdout once bound (with the
/// real port when the configuration says port 0), then with `smtp` also
/// `smtp listening on ADDR` for the SMTP receiver ([`smtp`]).
pub async fn serve(config: Config, smtp: Option<SocketAddr>) -> Result<(), Error> {
    let addr = config.listen;
    // The PostgreSQL client blocks (it runs its own small runtime), so it is opened, and at
    // the end dropped, on a blocking thread, never on an async worker.
    let app = tokio::task::spawn_blocking(move || state(config))
        .await
        .map_err(|e| Error::Db(db::Error::Task(e.to_string())))??;
    let app = Arc::new(app);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|error| Error::Listen { addr, error })?;
    let bound = listener
        .local_addr()
        .map_err(|error| Error::Listen { addr, error })?;
    let smtp_listener = match smtp {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|error| Error::Listen { addr, error })?;
            let a = l
                .local_addr()
                .map_err(|error| Error::Listen { addr, error })?;
            Some((l, a))
        }
        None => None,
    };
    println!("listening on {bound}");
    if let Some((_, a)) = &smtp_listener {
        println!("smtp listening on {a}");
    }
    {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    }
    log::info!("rear-server listening on {bound}");
    log::info!("media store: {}", app.store);
    // The SMTP receiver stops when the HTTP server has shut down (the sender is dropped).
    let (stop_smtp, stopped) = tokio::sync::oneshot::channel::<()>();
    let smtp_task = smtp_listener.map(|(l, a)| {
        log::info!("rear-server accepting mail by SMTP on {a}");
        tokio::spawn(smtp::serve(l, Arc::clone(&app), async move {
            let _ = stopped.await;
        }))
    });
    let served = axum::serve(
        listener,
        router(Arc::clone(&app)).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown())
    .await
    .map_err(|error| Error::Listen { addr: bound, error });
    // Every SMTP session has ended once its task has, so `app` is the last handle here.
    drop(stop_smtp);
    if let Some(t) = smtp_task {
        let _ = t.await;
    }
    let _ = tokio::task::spawn_blocking(move || drop(app)).await;
    served
}

/// `rear-server ingest-mail`: checks and stores the report in one message (read by the
/// caller from stdin).
pub fn ingest_mail(config: &Config, raw: &[u8]) -> Result<mail::Accepted, mail::Refusal> {
    let db = open_db(config).map_err(|e| mail::Refusal::Unavailable(e.to_string()))?;
    let result = db
        .with(|c| Ok(mail::ingest(c, config, raw, now())))
        .unwrap_or_else(|e| Err(e.into()));
    mail::log_outcome("ingest-mail", &result);
    result
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    log::info!("shutting down");
}

/// `rear-server token add HOST`: creates the host if needed, gives it a new token (the old one
/// stops working) and returns the token, which is shown only this once.
pub fn token_add(config: &Config, host: &str) -> Result<String, Error> {
    if !auth::valid_host_name(host) {
        return Err(Error::HostName(host.to_string()));
    }
    let db = open_db(config)?;
    let token = auth::new_token()?;
    let sha = auth::token_hash(&token);
    let mail_key = rear_model::mail::mail_key_hex(&token);
    db.with(|c| {
        let tx = c.transaction()?;
        db::set_token(&tx, host, &sha, now())?;
        db::set_mail_key(&tx, host, &mail_key)?;
        tx.commit()?;
        Ok(())
    })?;
    Ok(token)
}

/// `rear-server token revoke HOST`: the host's token stops working; its reports stay.
pub fn token_revoke(config: &Config, host: &str) -> Result<(), Error> {
    let db = open_db(config)?;
    let known = db.with(|c| {
        let tx = c.transaction()?;
        let known = db::revoke_token(&tx, host)?;
        db::delete_mail_key(&tx, host)?;
        tx.commit()?;
        Ok(known)
    })?;
    if known {
        Ok(())
    } else {
        Err(Error::UnknownHost(host.to_string()))
    }
}

/// `rear-server check`: the Nagios state and status line over all hosts.
pub fn check(config: &Config, max_age: Duration) -> Result<(status::Nagios, String), Error> {
    let db = open_db(config)?;
    let hosts = db.with(|c| db::hosts(c))?;
    Ok(status::check(&hosts, now(), max_age))
}
