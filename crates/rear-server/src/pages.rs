//! HTML of the web GUI, written with maud, which escapes every interpolated value; nothing
//! here uses `PreEscaped` on data. Plain HTML with inline CSS, no JavaScript: the Last 20 page
//! refreshes itself with `<meta http-equiv="refresh">`.
//!
//! Input: rows prepared by [`super::gui`]. Output: [`Markup`].

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::auth::Viewer;
use super::db::{HostRow, ReportRow};
use super::status::{Counts, Status};
use super::{diff, layout_tree};
use rear_model::report::{Artefact, Filesystem, LayoutSummary, Report};
use rear_model::units::human;

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
.err{color:#a00}.muted{color:#777}nav.pages{margin:.5em 0}\
ul.tree,ul.tree ul{list-style:none;margin:0;padding-left:1.2em}ul.tree{padding-left:0}\
ul.tree ul{border-left:1px solid #ccc}ul.tree li{padding:.1em 0}\
form.login label{display:flex;width:20em;justify-content:space-between;align-items:center}\
td.before{background:#fdecec}td.after{background:#e9f7e9}form.compare{margin:.5em 0}";

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
pub use rear_model::timefmt::utc_date as fmt_time;

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
            form.login method="post" action="/login" {
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

/// Two reports of a host to compare, as asked (ids) and as found.
#[derive(Debug)]
pub struct Compare<'a> {
    /// Id of the older report.
    pub from: String,
    /// Id of the newer report.
    pub to: String,
    /// The older report, `None` when it is no report of this host.
    pub old: Option<&'a Report>,
    /// The newer report, `None` when it is no report of this host.
    pub new: Option<&'a Report>,
}

/// What the host page shows.
#[derive(Debug)]
pub struct HostView<'a> {
    /// The host and its status.
    pub row: &'a Row,
    /// Its newest report.
    pub latest: Option<&'a Report>,
    /// The artefacts of its last successful build, and whether each is stored here.
    pub media: &'a [(Artefact, bool)],
    /// Its newest reports, newest first.
    pub history: &'a [ReportRow],
    /// The two reports to compare; `None` when the host has fewer than two.
    pub compare: Option<&'a Compare<'a>>,
}

fn result_word(r: &ReportRow) -> &'static str {
    match r.build_ok {
        Some(true) => "ok",
        Some(false) => "failed",
        None => "no build",
    }
}

fn filesystems(list: &[&Filesystem]) -> Markup {
    html! {
        @for f in list {
            li { code { (f.mountpoint) } " " span.muted { (f.fstype) } }
        }
    }
}

/// The layout as a tree: disks, partitions, mounted file systems.
fn layout_tree(layout: &LayoutSummary) -> Markup {
    let t = layout_tree::tree(layout);
    html! {
        @if t.disks.is_empty() && t.other.is_empty() {
            p.muted { "No disks reported." }
        }
        ul.tree {
            @for d in &t.disks {
                li {
                    strong { (d.disk.name) } " " (human(d.disk.size_bytes))
                    @if !d.disk.model.is_empty() { ", " (d.disk.model) }
                    @if !d.disk.serial.is_empty() { ", serial " code { (d.disk.serial) } }
                    @if !d.filesystems.is_empty() || !d.partitions.is_empty() {
                        ul {
                            (filesystems(&d.filesystems))
                            @for p in &d.partitions {
                                li { (p.name) ul { (filesystems(&p.filesystems)) } }
                            }
                        }
                    }
                }
            }
            @if !t.other.is_empty() {
                li {
                    strong { "Other devices" } " " span.muted { "(device mapper, RAID, LVM)" }
                    ul {
                        @for f in &t.other {
                            li { (f.device) ul { (filesystems(&[*f])) } }
                        }
                    }
                }
            }
        }
    }
}

fn report_options(history: &[ReportRow], selected: &str) -> Markup {
    html! {
        @for r in history {
            option value=(r.id) selected[r.id == selected] {
                (fmt_time(r.created)) " – " (result_word(r))
            }
        }
    }
}

/// What changed between two reports, with a form to pick them (a GET form: no script).
fn changes(host: &str, history: &[ReportRow], c: Option<&Compare<'_>>) -> Markup {
    let action = format!("/host/{}#changes", encode(host));
    html! {
        h2 id="changes" { "Changes" }
        @match c {
            None => p.muted { "Fewer than two reports: nothing to compare." },
            Some(c) => {
                form.compare method="get" action=(action) {
                    label { "From " select name="from" { (report_options(history, &c.from)) } }
                    " " label { "to " select name="to" { (report_options(history, &c.to)) } }
                    " " button { "Compare" }
                }
                @match (c.old, c.new) {
                    (Some(old), Some(new)) => {
                        @let list = diff::diff(old, new);
                        p {
                            "From the report of " (fmt_time(old.created))
                            " to the report of " (fmt_time(new.created)) ": "
                            @match list.len() { 0 => "no changes.", 1 => "1 change.", n => { (n) " changes." } }
                        }
                        @if !list.is_empty() {
                            table.diff {
                                thead { tr { th { "Area" } th { "Item" } th { "Before" } th { "After" } } }
                                tbody {
                                    @for ch in &list {
                                        tr {
                                            td { (ch.area.word()) }
                                            // A one-item area (Kernel, OS) needs no item name.
                                            td { @if ch.item != ch.area.word() { (ch.item) } }
                                            @match &ch.before { Some(b) => td.before { (b) }, None => td.muted { "(none)" } }
                                            @match &ch.after { Some(a) => td.after { (a) }, None => td.muted { "(removed)" } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    _ => {
                        p.err {
                            "Report "
                            @if c.old.is_none() { code { (c.from) } } @else { code { (c.to) } }
                            " is not a report of this host."
                        }
                    }
                }
            }
        }
    }
}

/// One host: status, facts, media, network, layout tree, changes and history.
pub fn host(viewer: &Viewer, v: &HostView<'_>) -> Markup {
    let row = v.row;
    let h = &row.host;
    let here = format!("/host/{}", encode(&h.name));
    page(
        Some(viewer),
        &h.name,
        None,
        html! {
            table {
                tr { th { "Status" } td {
                    span class=(row.status.word()) { (row.status.word()) } " " span.muted { "(" (row.status.reason()) ")" }
                } }
                tr { th { "Domain" } td { (h.domain) } }
                tr { th { "OS" } td { (h.os) } }
                tr { th { "Kernel" } td { (h.kernel) } }
                tr { th { "Tags" } td { @for t in &h.tags { a href={ "/?tag=" (encode(t)) } { (t) } " " } } }
                tr { th { "Last report" } td { @if let Some(t) = h.last_created { (fmt_time(t)) } } }
                tr { th { "Media built" } td {
                    @if let Some(t) = h.ok_created { (fmt_time(t)) } @else { span.muted { "never" } }
                } }
                @if let Some(r) = v.latest {
                    tr { th { "Boot mode" } td { (format!("{:?}", r.boot_mode).to_uppercase()) } }
                    tr { th { "Hardware" } td {
                        (r.hardware.vendor) " " (r.hardware.product)
                        @if !r.hardware.serial.is_empty() { ", serial " (r.hardware.serial) }
                        ", " (r.hardware.cpus) " × " (r.hardware.cpu_model) ", " (human(r.hardware.memory_bytes)) " RAM"
                    } }
                    tr { th { "Tool version" } td { (r.tool_version) } }
                }
            }
            h2 { "Media" }
            @if v.media.is_empty() { p.muted { "No successful build reported." } } @else {
                table.media {
                    thead { tr { th { "File" } th { "Size" } th { "SHA-256" } } }
                    tbody {
                        @for (a, stored) in v.media {
                            tr {
                                td {
                                    @if *stored {
                                        a href={ "/media/" (a.sha256) "?name=" (encode(&a.name)) } download=(a.name) { (a.name) }
                                    } @else { (a.name) " " span.muted { "(not uploaded)" } }
                                }
                                td.num { (human(a.size)) }
                                td { code { (a.sha256) } }
                            }
                        }
                    }
                }
                p.muted { "Check a download with " code { "sha256sum -c" } " against the SHA-256 above." }
            }
            @if let Some(r) = v.latest {
                h2 { "Network" }
                @if r.network.is_empty() { p.muted { "No interfaces reported." } } @else {
                    table.network {
                        thead { tr { th { "Interface" } th { "MAC" } th { "Addresses" } } }
                        tbody {
                            @for n in &r.network {
                                tr { td { (n.name) } td { code { (n.mac) } } td { @for a in &n.addresses { code { (a) } br; } } }
                            }
                        }
                    }
                }
                h2 { "Layout" }
                (layout_tree(&r.layout))
            }
            (changes(&h.name, v.history, v.compare))
            h2 { "History" }
            table.history {
                thead { tr { th { "Made" } th { "Received" } th { "Result" } th { "Error" } th { "Changes" } } }
                tbody {
                    @for (i, r) in v.history.iter().enumerate() {
                        tr {
                            td {
                                (fmt_time(r.created))
                                @if h.ok_report.as_deref() == Some(r.id.as_str()) { " " span.muted { "(media)" } }
                            }
                            td { (fmt_time(r.received)) }
                            (result_cell(r))
                            td.err { (r.error.as_deref().unwrap_or("")) }
                            td {
                                @if let Some(older) = v.history.get(i + 1) {
                                    a href={ (here) "?from=" (older.id) "&to=" (r.id) "#changes" } { "vs. previous" }
                                }
                            }
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
        let view = HostView {
            row: &row,
            latest: None,
            media: &[],
            history: &[],
            compare: None,
        };
        let html = host(&v, &view).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("&lt;u&gt;"));
    }

    #[test]
    fn host_escapes_layout_network_and_changes() {
        let v = Viewer {
            user: "u".into(),
            csrf: None,
        };
        let row = Row {
            host: HostRow {
                name: "h".into(),
                ..Default::default()
            },
            status: Status::Ok,
            media_age: None,
        };
        let old: Report =
            Report::from_json(include_str!("../../../tests/fixtures/report-v1.json").as_bytes())
                .unwrap();
        let mut new = old.clone();
        new.kernel = "<b>6.2</b>".into();
        new.network[0].name = "<i>eth1".into();
        new.layout.filesystems[0].mountpoint = "/<img src=x>".into();
        let history = [ReportRow {
            id: "\"><x".into(),
            host: "h".into(),
            received: 0,
            created: 0,
            build_ok: None,
            error: Some("<e>".into()),
        }];
        let compare = Compare {
            from: "a".into(),
            to: "b".into(),
            old: Some(&old),
            new: Some(&new),
        };
        let view = HostView {
            row: &row,
            latest: Some(&new),
            media: &[],
            history: &history,
            compare: Some(&compare),
        };
        let html = host(&v, &view).into_string();
        for raw in ["<b>", "<i>", "<img", "<e>", "\"><x"] {
            assert!(!html.contains(raw), "{raw} unescaped in {html}");
        }
        assert!(html.contains("&lt;b&gt;6.2&lt;/b&gt;"), "{html}");
        assert!(html.contains("<td class=\"after\">&lt;b&gt;6.2"), "{html}");
        assert!(html.contains("&lt;i&gt;eth1"), "{html}");
    }

    #[test]
    fn host_layout_tree_nests_partitions() {
        let r: Report =
            Report::from_json(include_str!("../../../tests/fixtures/report-v1.json").as_bytes())
                .unwrap();
        let html = layout_tree(&r.layout).into_string();
        let disk = html.find("nvme0n1</strong>").unwrap();
        let p1 = html
            .find("<li>nvme0n1p1<ul><li><code>/boot/efi</code>")
            .unwrap();
        let p2 = html.find("<li>nvme0n1p2<ul><li><code>/</code>").unwrap();
        assert!(disk < p1 && p1 < p2, "{html}");
    }
}
