//! HTML of the web GUI, written with maud, which escapes every interpolated value; nothing
//! here uses `PreEscaped` on data. Plain HTML with inline CSS, no JavaScript: the Last 20 page
//! refreshes itself with `<meta http-equiv="refresh">`.
//!
//! Input: rows prepared by [`super::gui`]. Output: [`Markup`].

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::auth::Viewer;
use super::db::{HostRow, ReportRow};
use super::status::{Counts, Status};
use crate::build::human;
use crate::report::{Artefact, Report};

/// One host line of a table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The host.
    pub host: HostRow,
    /// Its status now.
    pub status: Status,
    /// Age of its media in seconds, `None` if never built.
    pub media_age: Option<u64>,
}

/// What the overview shows.
#[derive(Debug)]
pub struct Overview<'a> {
    /// The hosts of this page.
    pub rows: &'a [Row],
    /// Counts over all pages.
    pub counts: Counts,
    /// The sort column.
    pub sort: &'a str,
    /// Descending?
    pub desc: bool,
    /// This page, 1-based.
    pub page: usize,
    /// Number of pages.
    pub pages: usize,
    /// Domain filter.
    pub domain: Option<&'a str>,
    /// Tag filter.
    pub tag: Option<&'a str>,
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222}\
header{background:#234;color:#fff;padding:.5em 1em;display:flex;gap:1em;align-items:center;flex-wrap:wrap}\
header a{color:#fff}header form{margin:0}main{padding:1em}\
table{border-collapse:collapse;margin:.5em 0}th,td{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f3f3f3}td.num{text-align:right}code{font-size:12px}\
.ok{color:#175f17;font-weight:600}.stale{color:#8a5a00;font-weight:600}.failed{color:#a00;font-weight:600}\
.err{color:#a00}.muted{color:#777}nav.pages{margin:.5em 0}";

/// Percent-encodes `s` for a URL query value or path segment (RFC 3986 unreserved kept).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `2025-01-01 12:00 UTC` for seconds since 1970.
pub use crate::timefmt::utc_date as fmt_time;

/// An age such as `3d 4h`, `5h 10m` or `42s`.
pub fn fmt_age(secs: u64) -> String {
    let (d, h, m) = (secs / 86400, secs % 86400 / 3600, secs % 3600 / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{secs}s")
    }
}

fn page(viewer: Option<&Viewer>, title: &str, refresh: Option<u32>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(s) = refresh {
                    meta http-equiv="refresh" content=(s);
                }
                title { (title) " – rear-server" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    strong { "rear-server" }
                    @if let Some(v) = viewer {
                        a href="/" { "Overview" }
                        a href="/reports" { "Last 20 reports" }
                        a href="/domains" { "Domains" }
                        a href="/tags" { "Tags" }
                        form method="get" action="/search" {
                            input type="search" name="q" placeholder="host, IP, MAC, serial…" aria-label="Search";
                            " " button { "Search" }
                        }
                        span { (v.user) }
                        @if let Some(csrf) = &v.csrf {
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(csrf);
                                button { "Log out" }
                            }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page with a title and one sentence, for errors.
pub fn message(title: &str, text: &str) -> Markup {
    page(None, title, None, html! { p { (text) } })
}

/// The login page.
pub fn login(csrf: &str, next: &str, error: Option<&str>) -> Markup {
    page(
        None,
        "Log in",
        None,
        html! {
            @if let Some(e) = error { p.err { (e) } }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="next" value=(next);
                p { label { "User " input type="text" name="user" autocomplete="username" required; } }
                p { label { "Password " input type="password" name="password" autocomplete="current-password" required; } }
                p { button { "Log in" } }
            }
        },
    )
}

fn status_cell(s: Status) -> Markup {
    html! { td class=(s.word()) title=(s.reason()) { (s.word()) } }
}

fn host_table(rows: &[Row], header: Markup) -> Markup {
    html! {
        table {
            thead { (header) }
            tbody {
                @for r in rows {
                    tr {
                        td { a href={ "/host/" (encode(&r.host.name)) } { (r.host.name) } }
                        td { @if !r.host.domain.is_empty() { a href={ "/?domain=" (encode(&r.host.domain)) } { (r.host.domain) } } }
                        (status_cell(r.status))
                        td { @match r.media_age { Some(a) => (fmt_age(a)), None => span.muted { "never" } } }
                        td { @match r.host.last_created { Some(t) => (fmt_time(t)), None => span.muted { "none" } } }
                        td { (r.host.os) }
                        td { @for t in &r.host.tags { a href={ "/?tag=" (encode(t)) } { (t) } " " } }
                    }
                }
            }
        }
    }
}

fn plain_header() -> Markup {
    html! { tr { th { "Host" } th { "Domain" } th { "Status" } th { "Media age" } th { "Last report" } th { "OS" } th { "Tags" } } }
}

/// The overview: every host, sortable by column, paginated.
pub fn overview(viewer: &Viewer, o: &Overview<'_>) -> Markup {
    let filters = {
        let mut s = String::new();
        if let Some(d) = o.domain {
            s.push_str(&format!("&domain={}", encode(d)));
        }
        if let Some(t) = o.tag {
            s.push_str(&format!("&tag={}", encode(t)));
        }
        s
    };
    let link = |col: &str, page: usize, desc: bool| {
        format!(
            "/?sort={col}&dir={}&page={page}{filters}",
            if desc { "desc" } else { "asc" }
        )
    };
    let th = |col: &str, label: &str| {
        let desc = col == o.sort && !o.desc;
        let mark = if col == o.sort {
            if o.desc { " ▼" } else { " ▲" }
        } else {
            ""
        };
        html! { th { a href=(link(col, 1, desc)) { (label) (mark) } } }
    };
    let header = html! {
        tr {
            (th("host", "Host")) (th("domain", "Domain")) (th("status", "Status"))
            (th("age", "Media age")) (th("last", "Last report")) (th("os", "OS")) th { "Tags" }
        }
    };
    let c = o.counts;
    let title = match (o.domain, o.tag) {
        (Some(d), _) => format!("Domain {d}"),
        (_, Some(t)) => format!("Tag {t}"),
        _ => "Overview".to_string(),
    };
    page(
        Some(viewer),
        &title,
        None,
        html! {
            p {
                (c.hosts) " hosts: " span.ok { (c.ok) " ok" } ", "
                span.stale { (c.stale) " stale" } ", " span.failed { (c.failed) " failed" }
            }
            (host_table(o.rows, header))
            nav.pages {
                @if o.page > 1 { a href=(link(o.sort, o.page - 1, o.desc)) { "← previous" } " " }
                "page " (o.page) " of " (o.pages)
                @if o.page < o.pages { " " a href=(link(o.sort, o.page + 1, o.desc)) { "next →" } }
            }
        },
    )
}

fn result_cell(r: &ReportRow) -> Markup {
    html! {
        @match r.build_ok {
            Some(true) => td.ok { "ok" },
            Some(false) => td.failed title=(r.error.as_deref().unwrap_or("")) { "failed" },
            None => td.muted { "no build" },
        }
    }
}

/// The newest reports of all hosts; refreshes every 15 s.
pub fn last_reports(viewer: &Viewer, reports: &[ReportRow]) -> Markup {
    page(
        Some(viewer),
        "Last 20 reports",
        Some(15),
        html! {
            table {
                thead { tr { th { "Received" } th { "Host" } th { "Result" } th { "Made" } th { "Error" } } }
                tbody {
                    @for r in reports {
                        tr {
                            td { (fmt_time(r.received)) }
                            td { a href={ "/host/" (encode(&r.host)) } { (r.host) } }
                            (result_cell(r))
                            td { (fmt_time(r.created)) }
                            td.err { (r.error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        },
    )
}

/// Hosts grouped by domain or tag; `key` is the overview filter (`domain` or `tag`).
pub fn groups(viewer: &Viewer, title: &str, key: &str, list: &[(String, Counts)]) -> Markup {
    page(
        Some(viewer),
        title,
        None,
        html! {
            table {
                thead { tr { th { (key) } th { "Hosts" } th { "ok" } th { "stale" } th { "failed" } } }
                tbody {
                    @for (name, c) in list {
                        tr {
                            td {
                                a href={ "/?" (key) "=" (encode(name)) } {
                                    @if name.is_empty() { span.muted { "(none)" } } @else { (name) }
                                }
                            }
                            td.num { (c.hosts) } td.num.ok { (c.ok) } td.num.stale { (c.stale) } td.num.failed { (c.failed) }
                        }
                    }
                }
            }
        },
    )
}

/// Search form and results.
pub fn search(viewer: &Viewer, q: &str, rows: &[Row]) -> Markup {
    page(
        Some(viewer),
        "Search",
        None,
        html! {
            form method="get" action="/search" {
                input type="search" name="q" value=(q) placeholder="host, domain, tag, IP, MAC, disk serial, OS" size="50";
                " " button { "Search" }
            }
            @if !q.is_empty() {
                p { (rows.len()) " hosts match " code { (q) } }
                (host_table(rows, plain_header()))
            }
        },
    )
}

/// One host: status, facts, media, network, layout and history.
pub fn host(
    viewer: &Viewer,
    row: &Row,
    latest: Option<&Report>,
    media: &[(Artefact, bool)],
    history: &[ReportRow],
) -> Markup {
    let h = &row.host;
    page(
        Some(viewer),
        &h.name,
        None,
        html! {
            table {
                tr { th { "Status" } (status_cell(row.status)) td { (row.status.reason()) } }
                tr { th { "Domain" } td colspan="2" { (h.domain) } }
                tr { th { "OS" } td colspan="2" { (h.os) } }
                tr { th { "Kernel" } td colspan="2" { (h.kernel) } }
                tr { th { "Tags" } td colspan="2" { @for t in &h.tags { a href={ "/?tag=" (encode(t)) } { (t) } " " } } }
                tr { th { "Last report" } td colspan="2" { @if let Some(t) = h.last_created { (fmt_time(t)) } } }
                tr { th { "Media built" } td colspan="2" {
                    @if let Some(t) = h.ok_created { (fmt_time(t)) } @else { span.muted { "never" } }
                } }
                @if let Some(r) = latest {
                    tr { th { "Boot mode" } td colspan="2" { (format!("{:?}", r.boot_mode).to_uppercase()) } }
                    tr { th { "Hardware" } td colspan="2" {
                        (r.hardware.vendor) " " (r.hardware.product)
                        @if !r.hardware.serial.is_empty() { ", serial " (r.hardware.serial) }
                        ", " (r.hardware.cpus) " × " (r.hardware.cpu_model) ", " (human(r.hardware.memory_bytes)) " RAM"
                    } }
                    tr { th { "Tool version" } td colspan="2" { (r.tool_version) } }
                }
            }
            h2 { "Media" }
            @if media.is_empty() { p.muted { "No successful build reported." } } @else {
                table {
                    thead { tr { th { "File" } th { "Size" } th { "SHA-256" } } }
                    tbody {
                        @for (a, stored) in media {
                            tr {
                                td {
                                    @if *stored {
                                        a href={ "/media/" (a.sha256) "?name=" (encode(&a.name)) } { (a.name) }
                                    } @else { (a.name) " " span.muted { "(not uploaded)" } }
                                }
                                td.num { (human(a.size)) }
                                td { code { (a.sha256) } }
                            }
                        }
                    }
                }
            }
            @if let Some(r) = latest {
                h2 { "Network" }
                table {
                    thead { tr { th { "Interface" } th { "MAC" } th { "Addresses" } } }
                    tbody {
                        @for n in &r.network {
                            tr { td { (n.name) } td { code { (n.mac) } } td { @for a in &n.addresses { code { (a) } br; } } }
                        }
                    }
                }
                h2 { "Layout" }
                table {
                    thead { tr { th { "Disk" } th { "Size" } th { "Model" } th { "Serial" } } }
                    tbody {
                        @for d in &r.layout.disks {
                            tr { td { (d.name) } td.num { (human(d.size_bytes)) } td { (d.model) } td { code { (d.serial) } } }
                        }
                    }
                }
                table {
                    thead { tr { th { "Mount point" } th { "Device" } th { "Type" } } }
                    tbody {
                        @for f in &r.layout.filesystems {
                            tr { td { (f.mountpoint) } td { (f.device) } td { (f.fstype) } }
                        }
                    }
                }
            }
            h2 { "History" }
            table {
                thead { tr { th { "Made" } th { "Received" } th { "Result" } th { "Error" } } }
                tbody {
                    @for r in history {
                        tr {
                            td { (fmt_time(r.created)) }
                            td { (fmt_time(r.received)) }
                            (result_cell(r))
                            td.err { (r.error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmt_time_known_dates() {
        assert_eq!(fmt_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(fmt_time(1_735_732_800), "2025-01-01 12:00 UTC");
        assert_eq!(fmt_time(951_782_400), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn fmt_age_units() {
        assert_eq!(fmt_age(42), "42s");
        assert_eq!(fmt_age(3 * 3600 + 600), "3h 10m");
        assert_eq!(fmt_age(8 * 86400 + 7200), "8d 2h");
    }

    #[test]
    fn encode_escapes_reserved() {
        assert_eq!(encode("a b&c/d"), "a%20b%26c%2Fd");
        assert_eq!(encode("web-01.x"), "web-01.x");
    }

    #[test]
    fn host_escapes_report_text() {
        let v = Viewer {
            user: "<u>".into(),
            csrf: Some("c".into()),
        };
        let row = Row {
            host: HostRow {
                name: "h".into(),
                os: "<script>alert(1)</script>".into(),
                ..Default::default()
            },
            status: Status::Ok,
            media_age: None,
        };
        let html = host(&v, &row, None, &[], &[]).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("&lt;u&gt;"));
    }
}
