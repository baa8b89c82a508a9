//! The people side of the server: login, sessions and the read-only web GUI.
//!
//! Input: browser requests. Output: HTML from [`super::pages`]. Every request passes
//! [`identify`], which finds the [`Viewer`] from the session cookie or, from a trusted proxy
//! only, the user header; GUI routes then pass [`require`], which sends strangers to the login
//! page. POST forms carry a CSRF token (the session's, or for the login form a double-submit
//! cookie), and cookies are `HttpOnly; SameSite=Strict`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::extract::{ConnectInfo, Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::{self, Viewer};
use super::pages::{self, Row};
use super::{AppState, db, now, status, store};
use rear_model::report::Report;

const SESSION_COOKIE: &str = "rear_session";
const LOGIN_CSRF_COOKIE: &str = "rear_login_csrf";
/// An argon2id hash (of a random password) checked when the user name is unknown.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Vk9qzOIr4BhCZ0dBDp9zvnv2WLGDVQoFNmBqdFkVkQY";
/// Hosts per overview page.
pub const PAGE_SIZE: usize = 100;

fn internal(e: impl std::fmt::Display) -> Response {
    log::error!("{e}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html(pages::message("Error", "Internal error; see the server log.").into_string()),
    )
        .into_response()
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Middleware on every route: puts the [`Viewer`] into the request's extensions when the
/// session cookie is live or a trusted proxy names the user.
pub async fn identify(State(app): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let headers = req.headers();
    let mut viewer = None;
    if let Some(peer) = peer
        && let Some(user) = auth::proxy_user(
            &app.config,
            peer,
            header_str(headers, &app.config.user_header),
        )
    {
        viewer = Some(Viewer { user, csrf: None });
    } else if let Some(id) = auth::cookie(header_str(headers, "cookie"), SESSION_COOKIE) {
        let sha = auth::token_hash(id);
        match app.db.run(move |c| db::session(c, &sha, now())).await {
            Ok(Some((user, csrf))) => {
                viewer = Some(Viewer {
                    user,
                    csrf: Some(csrf),
                })
            }
            Ok(None) => {}
            Err(e) => return internal(e),
        }
    }
    if let Some(v) = viewer {
        req.extensions_mut().insert(v);
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    // Pages have no scripts; inline style only. No framing, no referrer leaks.
    for (k, v) in [
        (
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    resp
}

/// Middleware on GUI routes: strangers get a redirect to the login page, or on the JSON API a
/// 401 with a JSON error.
pub async fn require(req: Request, next: Next) -> Response {
    if req.extensions().get::<Viewer>().is_some() {
        return next.run(req).await;
    }
    if req.uri().path().starts_with("/api/") {
        return super::api::login_required();
    }
    let back = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    Redirect::to(&format!("/login?next={}", pages::encode(back))).into_response()
}

fn set_cookie(app: &AppState, name: &str, value: &str, max_age: u64) -> HeaderValue {
    let secure = if app.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let v = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Only a local path is a place to go after login (no `//host` or scheme).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

/// Query of the login page.
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

fn login_page(app: &AppState, code: StatusCode, next: &str, error: Option<&str>) -> Response {
    let csrf = match auth::random_hex(16) {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let mut r = (code, Html(pages::login(&csrf, next, error).into_string())).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(app, LOGIN_CSRF_COOKIE, &csrf, 3600),
    );
    r
}

/// `GET /login`.
pub async fn login_form(State(app): State<Arc<AppState>>, Query(q): Query<NextQuery>) -> Response {
    login_page(&app, StatusCode::OK, &safe_next(q.next.as_deref()), None)
}

/// The login form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

/// `POST /login`: checks the double-submit CSRF cookie, the rate limit
/// ([`super::limit`]), then the password.
pub async fn login(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let cookie = auth::cookie(header_str(&headers, "cookie"), LOGIN_CSRF_COOKIE);
    if f.csrf.is_empty() || !cookie.is_some_and(|c| auth::same(c, &f.csrf)) {
        return forbidden_csrf();
    }
    let next = safe_next(Some(&f.next));
    let addr = auth::client_addr(
        &app.config,
        peer.ip(),
        header_str(&headers, "x-forwarded-for"),
    );
    // Checked before the password, so a blocked attempt costs no argon2 work and tells nothing.
    if let Some(wait) = app.logins.blocked(&f.user, addr, Instant::now()) {
        log::warn!(
            "login for user {:?} from {addr} refused: too many failures",
            f.user
        );
        let secs = wait.as_secs().max(1);
        let message = format!(
            "Too many failed logins for this user or from this address. Try again in {secs} seconds."
        );
        let mut r = login_page(&app, StatusCode::TOO_MANY_REQUESTS, &next, Some(&message));
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return r;
    }
    let hash = app
        .config
        .users
        .iter()
        .find(|u| u.name == f.user)
        .map(|u| u.password_hash.clone());
    // An unknown user costs the same argon2 work as a known one, so the answer's timing does
    // not tell which user names exist.
    let known = hash.is_some();
    let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_string());
    let pw = f.password.clone();
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&pw, &hash))
        .await
        .unwrap_or(false)
        && known;
    if !ok {
        app.logins.failed(&f.user, addr, Instant::now());
        log::warn!("failed login for user {:?} from {addr}", f.user);
        return login_page(
            &app,
            StatusCode::UNAUTHORIZED,
            &next,
            Some("Wrong user name or password."),
        );
    }
    let (id, csrf) = match (auth::new_token(), auth::random_hex(16)) {
        (Ok(i), Ok(c)) => (i, c),
        (Err(e), _) | (_, Err(e)) => return internal(e),
    };
    let ttl = app.config.session_ttl.as_secs();
    let (sha, user) = (auth::token_hash(&id), f.user.clone());
    let t = now();
    if let Err(e) = app
        .db
        .run(move |c| db::create_session(c, &sha, &user, &csrf, t + ttl, t))
        .await
    {
        return internal(e);
    }
    app.logins.succeeded(&f.user, addr);
    log::info!("user {} logged in", f.user);
    let mut r = Redirect::to(&next).into_response();
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(&app, SESSION_COOKIE, &id, ttl),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&app, LOGIN_CSRF_COOKIE, "", 0),
    );
    r
}

fn forbidden_csrf() -> Response {
    (
        StatusCode::FORBIDDEN,
        Html(
            pages::message(
                "Forbidden",
                "The form's CSRF token is missing or wrong. Reload the page and try again.",
            )
            .into_string(),
        ),
    )
        .into_response()
}

/// A form with only a CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`.
pub async fn logout(
    State(app): State<Arc<AppState>>,
    Extension(v): Extension<Viewer>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !v.csrf.as_deref().is_some_and(|c| auth::same(c, &f.csrf)) {
        return forbidden_csrf();
    }
    if let Some(id) = auth::cookie(header_str(&headers, "cookie"), SESSION_COOKIE) {
        let sha = auth::token_hash(id);
        if let Err(e) = app.db.run(move |c| db::delete_session(c, &sha)).await {
            return internal(e);
        }
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(&app, SESSION_COOKIE, "", 0));
    r
}

/// Query of the overview: sorting, page and filters.
#[derive(Debug, Default, Deserialize)]
pub struct OverviewQuery {
    /// Column: host, domain, status, age, last, os.
    pub sort: Option<String>,
    /// `asc` or `desc`.
    pub dir: Option<String>,
    /// 1-based page.
    pub page: Option<usize>,
    /// Only this domain.
    pub domain: Option<String>,
    /// Only this tag.
    pub tag: Option<String>,
}

fn rows(app: &AppState, hosts: Vec<db::HostRow>) -> Vec<Row> {
    let t = now();
    hosts
        .into_iter()
        .map(|h| Row {
            status: status::status(&h, t, app.config.max_age),
            media_age: h.ok_created.map(|c| t.saturating_sub(c)),
            host: h,
        })
        .collect()
}

/// Sorts rows by a column; ties by host name.
pub fn sort_rows(rows: &mut [Row], column: &str, descending: bool) {
    rows.sort_by(|a, b| {
        let o = match column {
            "host" => a.host.name.cmp(&b.host.name),
            "domain" => a.host.domain.cmp(&b.host.domain),
            "status" => a.status.cmp(&b.status),
            // Never built sorts as oldest.
            "age" => a
                .media_age
                .unwrap_or(u64::MAX)
                .cmp(&b.media_age.unwrap_or(u64::MAX)),
            "last" => a.host.last_created.cmp(&b.host.last_created),
            "os" => a.host.os.cmp(&b.host.os),
            _ => std::cmp::Ordering::Equal,
        };
        let o = if descending { o.reverse() } else { o };
        o.then_with(|| a.host.name.cmp(&b.host.name))
    });
}

/// `GET /`: every host, sortable, paginated, filtered by domain or tag.
pub async fn overview(
    State(app): State<Arc<AppState>>,
    Extension(v): Extension<Viewer>,
    Query(q): Query<OverviewQuery>,
) -> Response {
    let hosts = match app.db.run(|c| db::hosts(c)).await {
        Ok(h) => h,
        Err(e) => return internal(e),
    };
    let mut all = rows(&app, hosts);
    if let Some(d) = &q.domain {
        all.retain(|r| &r.host.domain == d);
    }
    if let Some(t) = &q.tag {
        all.retain(|r| r.host.tags.contains(t));
    }
    let column = q
        .sort
        .as_deref()
        .filter(|c| ["host", "domain", "status", "age", "last", "os"].contains(c))
        .unwrap_or("host");
    let desc = q.dir.as_deref() == Some("desc");
    sort_rows(&mut all, column, desc);
    let counts = status::tally(all.iter().map(|r| r.status));
    let pages_total = all.len().div_ceil(PAGE_SIZE).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages_total);
    let shown: Vec<Row> = all
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .collect();
    let view = pages::Overview {
        rows: &shown,
        counts,
        sort: column,
        desc,
        page,
        pages: pages_total,
        domain: q.domain.as_deref(),
        tag: q.tag.as_deref(),
    };
    Html(pages::overview(&v, &view).into_string()).into_response()
}

/// `GET /reports`: the newest 20 reports, refreshing itself.
pub async fn last_reports(
    State(app): State<Arc<AppState>>,
    Extension(v): Extension<Viewer>,
) -> Response {
    match app.db.run(|c| db::last_reports(c, 20)).await {
        Ok(r) => Html(pages::last_reports(&v, &r).into_string()).into_response(),
        Err(e) => internal(e),
    }
}

/// `GET /domains`: hosts per domain and status.
pub async fn domains(
    State(app): State<Arc<AppState>>,
    Extension(v): Extension<Viewer>,
) -> Response {
    let hosts = match app.db.run(|c| db::hosts(c)).await {
        Ok(h) => h,
        Err(e) => return internal(e),
    };
    let mut groups: BTreeMap<String, Vec<db::HostRow>> = BTreeMap::new();
    for h in hosts {
        groups.entry(h.domain.clone()).or_default().push(h);
    }
    let t = now();
    let list: Vec<(String, status::Counts)> = groups
        .into_iter()
        .map(|(d, hs)| {
            let c = status::counts(&hs, t, app.config.max_age);
            (d, c)
        })
        .collect();
    Html(pages::groups(&v, "Domains", "domain", &list).into_string()).into_response()
}

/// `GET /tags`: hosts per tag and status.
pub async fn tags(State(app): State<Arc<AppState>>, Extension(v): Extension<Viewer>) -> Response {
    let hosts = match app.db.run(|c| db::hosts(c)).await {
        Ok(h) => h,
        Err(e) => return internal(e),
    };
    let mut groups: BTreeMap<String, Vec<db::HostRow>> = BTreeMap::new();
    for h in hosts {
        for t in &h.tags {
            groups.entry(t.clone()).or_default().push(h.clone());
        }
    }
    let t = now();
    let list: Vec<(String, status::Counts)> = groups
        .into_iter()
        .map(|(tag, hs)| (tag, status::counts(&hs, t, app.config.max_age)))
        .collect();
    Html(pages::groups(&v, "Tags", "tag", &list).into_string()).into_response()
}

/// Query of the search page.
#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// `GET /search?q=`: hosts by name, domain, tag, IP, MAC, disk serial or OS.
pub async fn search(
    State(app): State<Arc<AppState>>,
    Extension(v): Extension<Viewer>,
    Query(q): Query<SearchQuery>,
) -> Response {
    let text = q.q.trim().to_string();
    let found = if text.is_empty() {
        Vec::new()
    } else {
        let t = text.clone();
        match app.db.run(move |c| db::search(c, &t, 500)).await {
            Ok(h) => h,
            Err(e) => return internal(e),
        }
    };
    let r = rows(&app, found);
    Html(pages::search(&v, &text, &r).into_string()).into_response()
}

/// Query of the host page: the two reports to compare (ids), by default its last two.
#[derive(Debug, Default, Deserialize)]
pub struct HostQuery {
    /// The older report.
    pub from: Option<String>,
    /// The newer report.
    pub to: Option<String>,
}

/// `GET /host/{name}?from=ID&to=ID`: one host with history, network, layout tree, media and
/// what changed between two of its reports. Three queries whatever the history's length:
/// the host, its history, and the bodies of the (at most four) reports shown.
pub async fn host(
    State(app): State<Arc<AppState>>,
    Extension(v): Extension<Viewer>,
    Path(name): Path<String>,
    Query(q): Query<HostQuery>,
) -> Response {
    let data = app
        .db
        .run(move |c| {
            let Some(h) = db::host(c, &name)? else {
                return Ok(None);
            };
            let history = db::reports_of(c, &h.name, 50)?;
            // A side left out takes its default: from the second newest, to the newest.
            let pair = match (
                q.from.or_else(|| history.get(1).map(|r| r.id.clone())),
                q.to.or_else(|| history.first().map(|r| r.id.clone())),
            ) {
                (Some(from), Some(to)) => Some((from, to)),
                _ => None,
            };
            let mut ids: Vec<&str> = [h.last_report.as_deref(), h.ok_report.as_deref()]
                .into_iter()
                .flatten()
                .chain(pair.iter().flat_map(|(a, b)| [a.as_str(), b.as_str()]))
                // Report ids are SHA-256 hex like media names; anything else finds nothing.
                .filter(|id| store::valid_name(id))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            let bodies = db::report_bodies(c, &h.name, &ids)?;
            Ok(Some((h, history, pair, bodies)))
        })
        .await;
    let (h, history, pair, bodies) = match data {
        Ok(Some(d)) => d,
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                Html(pages::message("Not found", "No such host.").into_string()),
            )
                .into_response();
        }
        Err(e) => return internal(e),
    };
    let reports: HashMap<String, Report> = bodies
        .into_iter()
        .filter_map(|(id, body)| match Report::from_json(body.as_bytes()) {
            Ok(r) => Some((id, r)),
            Err(e) => {
                log::warn!("stored report {id} of {}: {e}", h.name);
                None
            }
        })
        .collect();
    let get = |id: &Option<String>| id.as_ref().and_then(|id| reports.get(id));
    let latest = get(&h.last_report);
    let mut media = Vec::new();
    if let Some(b) = get(&h.ok_report).and_then(|r| r.build.as_ref()) {
        for a in &b.artefacts {
            let stored = store::valid_name(&a.sha256)
                && match app.store.size(&a.sha256).await {
                    Ok(size) => size.is_some(),
                    Err(e) => {
                        // The page still shows; the medium is listed without its link.
                        log::warn!("media {} of {}: {e}", a.sha256, h.name);
                        false
                    }
                };
            media.push((a.clone(), stored));
        }
    }
    let compare = pair.map(|(from, to)| pages::Compare {
        old: reports.get(&from),
        new: reports.get(&to),
        from,
        to,
    });
    let Some(row) = rows(&app, vec![h]).pop() else {
        return internal("host row vanished");
    };
    let view = pages::HostView {
        row: &row,
        latest,
        media: &media,
        history: &history,
        compare: compare.as_ref(),
    };
    Html(pages::host(&v, &view).into_string()).into_response()
}

/// Query of a media download.
#[derive(Debug, Deserialize)]
pub struct MediaQuery {
    name: Option<String>,
}

/// `GET /media/{sha256}?name=FILE`: downloads a stored medium.
pub async fn download(
    State(app): State<Arc<AppState>>,
    Extension(_v): Extension<Viewer>,
    Path(sha): Path<String>,
    Query(q): Query<MediaQuery>,
) -> Response {
    if !store::valid_name(&sha) {
        return (StatusCode::BAD_REQUEST, "not a SHA-256\n").into_response();
    }
    let (size, body) = match app.store.open(&sha).await {
        Ok(Some(found)) => found,
        Ok(None) => return (StatusCode::NOT_FOUND, "no such medium\n").into_response(),
        Err(e @ store::Error::Remote { .. }) => {
            log::error!("download of {sha}: {e}");
            return (StatusCode::BAD_GATEWAY, format!("{e}\n")).into_response();
        }
        Err(e) => {
            log::error!("download of {sha}: {e}");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the server log\n",
            )
                .into_response();
        }
    };
    // Only safe characters in the offered file name.
    let name: String = q
        .name
        .unwrap_or_else(|| sha.clone())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&size.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// Anything else: 404, the same for everyone.
pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(pages::message("Not found", "No such page.").into_string()),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_hash_is_verifiable() {
        assert!(auth::valid_hash(DUMMY_HASH));
        assert!(!auth::verify_password("", DUMMY_HASH));
    }

    #[test]
    fn safe_next_keeps_local_paths() {
        assert_eq!(safe_next(Some("/host/a?x=1")), "/host/a?x=1");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn sort_rows_by_age_puts_never_built_last() {
        let row = |name: &str, age: Option<u64>| Row {
            host: db::HostRow {
                name: name.into(),
                ..Default::default()
            },
            status: status::Status::Ok,
            media_age: age,
        };
        let mut r = vec![row("a", None), row("b", Some(5)), row("c", Some(1))];
        sort_rows(&mut r, "age", false);
        let names: Vec<_> = r.iter().map(|r| r.host.name.as_str()).collect();
        assert_eq!(names, ["c", "b", "a"]);
        sort_rows(&mut r, "age", true);
        assert_eq!(r[0].host.name, "a");
        // The host column itself, not only as the tie-breaker, turns round.
        sort_rows(&mut r, "host", true);
        let names: Vec<_> = r.iter().map(|r| r.host.name.as_str()).collect();
        assert_eq!(names, ["c", "b", "a"]);
    }
}
