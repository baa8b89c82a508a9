//! The machine side of the server: report and media ingest, the JSON API, `/metrics`,
//! `/healthz`.
//!
//! Input: HTTP requests with bearer tokens. Output: JSON answers; every refusal is a 4xx with
//! `{"error": "..."}` that says why, and stores nothing.

use std::sync::Arc;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth::{self, Viewer};
use super::store::{self, Put};
use super::{AppState, db, now, status};
use rear_model::report::Report;

/// A JSON answer.
fn answer(code: StatusCode, value: serde_json::Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// A JSON refusal.
pub fn refuse(code: StatusCode, message: impl Into<String>) -> Response {
    let mut r = answer(code, json!({ "error": message.into() }));
    if code == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

/// The answer of a JSON API route to a request without a login: 401 with a JSON error, not the
/// GUI's redirect to the login page, which a script would follow to an HTML form.
pub fn login_required() -> Response {
    answer(
        StatusCode::UNAUTHORIZED,
        json!({ "error": "not logged in: send the session cookie of a login (POST /login) or come through a trusted proxy" }),
    )
}

/// A failure of the server itself: logged, answered without details.
pub fn internal(e: impl std::fmt::Display) -> Response {
    log::error!("{e}");
    refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the server log",
    )
}

/// A failure of the object store behind the server: logged and answered with 502 and the
/// message, which names the endpoint and operation but no credentials (see
/// [`store::Error::Remote`]), so the uploader knows the server is not at fault.
pub fn bad_gateway(e: store::Error) -> Response {
    log::error!("{e}");
    refuse(StatusCode::BAD_GATEWAY, e.to_string())
}

/// `GET /healthz`: the server runs and its database answers.
pub async fn healthz(State(app): State<Arc<AppState>>) -> Response {
    match app.db.run(|c| db::ping(c)).await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            log::error!("healthz: {e}");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

fn bearer_of(headers: &HeaderMap) -> Option<String> {
    auth::bearer(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )
    .map(str::to_string)
}

/// `POST /api/v1/reports`: stores a host's report.
///
/// The bearer token is the host's own (it must match the report's host name) or the
/// enrollment token, which creates an unknown host and answers with its new token once.
pub async fn post_report(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = bearer_of(&headers) else {
        return refuse(StatusCode::UNAUTHORIZED, "missing bearer token");
    };
    let text = match std::str::from_utf8(&body) {
        Ok(t) => t.to_string(),
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("body is not UTF-8: {e}")),
    };
    let report = match Report::from_json(text.as_bytes()) {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let host = report.host.name.clone();
    if !auth::valid_host_name(&host) {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("host name {host:?} is not valid (letters, digits, '-', '_', '.')"),
        );
    }
    let token_sha = auth::token_hash(&token);
    let owner = {
        let t = token_sha.clone();
        match app.db.run(move |c| db::host_by_token(c, &t)).await {
            Ok(o) => o,
            Err(e) => return internal(e),
        }
    };
    let mut new_token = None;
    match owner {
        Some(o) if o == host => {}
        Some(o) => {
            log::warn!("report for {host} refused: token belongs to host {o}");
            return refuse(
                StatusCode::FORBIDDEN,
                format!("this token belongs to another host, not {host}"),
            );
        }
        None => {
            let enrollment = app.config.enrollment_token.as_deref();
            if !enrollment.is_some_and(|e| auth::same(e, &token)) {
                return refuse(StatusCode::UNAUTHORIZED, "unknown token");
            }
            let fresh = match auth::new_token() {
                Ok(t) => t,
                Err(e) => return internal(e),
            };
            let (h, sha) = (host.clone(), auth::token_hash(&fresh));
            let mail_key = rear_model::mail::mail_key_hex(&fresh);
            let enrolled = app
                .db
                .run(move |c| {
                    let tx = c.transaction()?;
                    let done = db::enroll(&tx, &h, &sha, now())?;
                    if done {
                        db::set_mail_key(&tx, &h, &mail_key)?;
                    }
                    tx.commit()?;
                    Ok(done)
                })
                .await;
            match enrolled {
                Ok(true) => {
                    log::info!("host {host} enrolled");
                    new_token = Some(fresh);
                }
                Ok(false) => {
                    return refuse(
                        StatusCode::FORBIDDEN,
                        format!("host {host} is already enrolled; send its own token"),
                    );
                }
                Err(e) => return internal(e),
            }
        }
    }
    let id = rear_model::manifest::sha256_hex(text.as_bytes());
    let stored = {
        let (id, host) = (id.clone(), host.clone());
        app.db
            .run(move |c| db::store_report(c, &id, &host, &report, &text, now()))
            .await
    };
    match stored {
        Ok(stored) => {
            let mut v = json!({ "id": id, "host": host, "stored": stored });
            if let Some(t) = new_token {
                v["token"] = json!(t);
            }
            let code = if stored {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            answer(code, v)
        }
        Err(e) => internal(e),
    }
}

/// `PUT /api/v1/media/{sha256}`: stores a medium of a host (its own token) by content.
pub async fn put_media(
    State(app): State<Arc<AppState>>,
    Path(sha): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !store::valid_name(&sha) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "media name must be the SHA-256 of the content: 64 lower-case hex digits",
        );
    }
    let Some(token) = bearer_of(&headers) else {
        return refuse(StatusCode::UNAUTHORIZED, "missing bearer token");
    };
    let t = auth::token_hash(&token);
    let host = match app.db.run(move |c| db::host_by_token(c, &t)).await {
        Ok(Some(h)) => h,
        Ok(None) => return refuse(StatusCode::UNAUTHORIZED, "unknown token"),
        Err(e) => return internal(e),
    };
    let put = match app.store.put(&sha, body, app.config.max_media_bytes).await {
        Ok(p) => p,
        Err(e @ store::Error::TooLarge { .. }) => {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, e.to_string());
        }
        Err(e @ (store::Error::Mismatch { .. } | store::Error::Body(_))) => {
            return refuse(StatusCode::BAD_REQUEST, e.to_string());
        }
        Err(e @ store::Error::Remote { .. }) => return bad_gateway(e),
        Err(e) => return internal(e),
    };
    let (size, code) = match put {
        Put::Stored(s) => (s, StatusCode::CREATED),
        Put::Exists(s) => (s, StatusCode::OK),
    };
    let (s, h) = (sha.clone(), host.clone());
    if let Err(e) = app
        .db
        .run(move |c| db::add_media(c, &s, size, &h, now()))
        .await
    {
        return internal(e);
    }
    log::info!("media {sha} ({size} bytes) from {host}");
    answer(code, json!({ "sha256": sha, "size": size }))
}

/// `GET /api/v1/hosts`: every host with its status (logged-in users).
pub async fn hosts(State(app): State<Arc<AppState>>, Extension(_v): Extension<Viewer>) -> Response {
    let rows = match app.db.run(|c| db::hosts(c)).await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let t = now();
    let list: Vec<_> = rows
        .iter()
        .map(|h| {
            let s = status::status(h, t, app.config.max_age);
            json!({
                "name": h.name,
                "domain": h.domain,
                "os": h.os,
                "tags": h.tags,
                "status": s.word(),
                "reason": s.reason(),
                "last_report": h.last_created,
                "media_built": h.ok_created,
            })
        })
        .collect();
    answer(StatusCode::OK, json!({ "hosts": list }))
}

/// `GET /metrics`: Prometheus text, for the metrics token or a logged-in user.
pub async fn metrics(
    State(app): State<Arc<AppState>>,
    viewer: Option<Extension<Viewer>>,
    headers: HeaderMap,
) -> Response {
    let by_token = match (&app.config.metrics_token, bearer_of(&headers)) {
        (Some(want), Some(got)) => auth::same(want, &got),
        _ => false,
    };
    if !by_token && viewer.is_none() {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "log in or send the metrics token as a bearer token",
        );
    }
    let data = app
        .db
        .run(|c| {
            let (media_files, media_bytes) = db::media_totals(c)?;
            Ok((
                db::hosts(c)?,
                status::Totals {
                    reports: db::report_count(c)?,
                    media_files,
                    media_bytes,
                },
            ))
        })
        .await;
    match data {
        Ok((hosts, totals)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            status::metrics(&hosts, now(), app.config.max_age, totals),
        )
            .into_response(),
        Err(e) => internal(e),
    }
}
