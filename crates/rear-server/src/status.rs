//! Whether a host is protected: the stale rules, the Nagios check and the Prometheus metrics.
//!
//! Input: host rows and the time now. Output: a [`Status`] per host, one check line, or
//! metrics text. All pure, so the GUI, `/metrics` and `rear-server check` agree by
//! construction.

use std::fmt::Write as _;
use std::time::Duration;

use super::db::HostRow;

/// A host's protection status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// The last build succeeded, its media is young enough and the layout is unchanged.
    Ok,
    /// Protected once, but not up to date.
    Stale(Stale),
    /// The last build failed.
    Failed,
}

/// Why a host is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stale {
    /// No successful build was ever reported.
    NeverBuilt,
    /// The media of the last successful build is older than the maximum age.
    MediaOld,
    /// A report after the last successful build shows another disk layout.
    LayoutChanged,
}

impl Status {
    /// `ok`, `stale` or `failed`.
    pub fn word(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Stale(_) => "stale",
            Status::Failed => "failed",
        }
    }

    /// A short reason for people.
    pub fn reason(&self) -> &'static str {
        match self {
            Status::Ok => "last build ok",
            Status::Failed => "last build failed",
            Status::Stale(Stale::NeverBuilt) => "no successful build reported",
            Status::Stale(Stale::MediaOld) => "media older than the maximum age",
            Status::Stale(Stale::LayoutChanged) => "disk layout changed after the last build",
        }
    }
}

/// The status of `h` at `now` (seconds since 1970) with media allowed to be `max_age` old.
pub fn status(h: &HostRow, now: u64, max_age: Duration) -> Status {
    if h.build_ok == Some(false) {
        return Status::Failed;
    }
    let Some(built) = h.ok_created else {
        return Status::Stale(Stale::NeverBuilt);
    };
    if now.saturating_sub(built) > max_age.as_secs() {
        return Status::Stale(Stale::MediaOld);
    }
    if let Some(at_build) = &h.ok_layout
        && !at_build.is_empty()
        && !h.layout.is_empty()
        && *at_build != h.layout
    {
        return Status::Stale(Stale::LayoutChanged);
    }
    Status::Ok
}

/// Counts of hosts by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Hosts in all.
    pub hosts: usize,
    /// Status ok.
    pub ok: usize,
    /// Status stale.
    pub stale: usize,
    /// Status failed.
    pub failed: usize,
}

/// Counts the hosts by status.
pub fn counts(hosts: &[HostRow], now: u64, max_age: Duration) -> Counts {
    tally(hosts.iter().map(|h| status(h, now, max_age)))
}

/// Counts statuses already computed (the overview has them; copying every host row only to
/// recompute them was measurable at 10,000 hosts).
pub fn tally(statuses: impl IntoIterator<Item = Status>) -> Counts {
    let mut c = Counts::default();
    for s in statuses {
        c.hosts += 1;
        match s {
            Status::Ok => c.ok += 1,
            Status::Stale(_) => c.stale += 1,
            Status::Failed => c.failed += 1,
        }
    }
    c
}

/// Nagios plugin exit codes (Nagios Plugin Development Guidelines, "Plugin Return Codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nagios {
    /// 0: every host ok.
    Ok = 0,
    /// 1: some host stale.
    Warning = 1,
    /// 2: some host's last build failed.
    Critical = 2,
    /// 3: the check itself could not run.
    Unknown = 3,
}

impl Nagios {
    /// `OK`, `WARNING`, `CRITICAL` or `UNKNOWN`.
    pub fn word(self) -> &'static str {
        match self {
            Nagios::Ok => "OK",
            Nagios::Warning => "WARNING",
            Nagios::Critical => "CRITICAL",
            Nagios::Unknown => "UNKNOWN",
        }
    }
}

/// The check's state and its one status line with performance data, such as
/// `REAR WARNING - 1 of 3 hosts stale (db2) | hosts=3 ok=2 stale=1 failed=0`.
pub fn check(hosts: &[HostRow], now: u64, max_age: Duration) -> (Nagios, String) {
    let c = counts(hosts, now, max_age);
    let names = |want: &str| {
        let mut v: Vec<&str> = hosts
            .iter()
            .filter(|h| status(h, now, max_age).word() == want)
            .map(|h| h.name.as_str())
            .collect();
        if v.len() > 5 {
            v.truncate(5);
            v.push("...");
        }
        v.join(", ")
    };
    let (state, text) = if c.failed > 0 {
        (
            Nagios::Critical,
            format!(
                "{} of {} hosts failed ({}), {} stale",
                c.failed,
                c.hosts,
                names("failed"),
                c.stale
            ),
        )
    } else if c.stale > 0 {
        (
            Nagios::Warning,
            format!(
                "{} of {} hosts stale ({})",
                c.stale,
                c.hosts,
                names("stale")
            ),
        )
    } else {
        (Nagios::Ok, format!("{} hosts ok", c.hosts))
    };
    let line = format!(
        "REAR {} - {text} | hosts={} ok={} stale={} failed={}",
        state.word(),
        c.hosts,
        c.ok,
        c.stale,
        c.failed
    );
    (state, line)
}

/// Figures for `/metrics` besides the hosts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// Stored reports.
    pub reports: u64,
    /// Stored media files.
    pub media_files: u64,
    /// Their total size.
    pub media_bytes: u64,
}

/// Prometheus text exposition format 0.0.4
/// (<https://prometheus.io/docs/instrumenting/exposition_formats/>).
pub fn metrics(hosts: &[HostRow], now: u64, max_age: Duration, totals: Totals) -> String {
    let c = counts(hosts, now, max_age);
    let mut s = String::new();
    s.push_str(
        "# HELP rear_hosts Hosts known to the server, by status.\n# TYPE rear_hosts gauge\n",
    );
    for (word, n) in [("ok", c.ok), ("stale", c.stale), ("failed", c.failed)] {
        let _ = writeln!(s, "rear_hosts{{status=\"{word}\"}} {n}");
    }
    let _ = writeln!(
        s,
        "# HELP rear_reports Reports stored.\n# TYPE rear_reports gauge\nrear_reports {}",
        totals.reports
    );
    let _ = writeln!(
        s,
        "# HELP rear_media_files Media files stored.\n# TYPE rear_media_files gauge\nrear_media_files {}",
        totals.media_files
    );
    let _ = writeln!(
        s,
        "# HELP rear_media_bytes Size of the stored media.\n# TYPE rear_media_bytes gauge\nrear_media_bytes {}",
        totals.media_bytes
    );
    let _ = writeln!(
        s,
        "# HELP rear_max_age_seconds Media older than this is stale.\n# TYPE rear_max_age_seconds gauge\nrear_max_age_seconds {}",
        max_age.as_secs()
    );
    s.push_str(
        "# HELP rear_host_status Status of a host (1 for its current status).\n# TYPE rear_host_status gauge\n",
    );
    for h in hosts {
        let _ = writeln!(
            s,
            "rear_host_status{{host=\"{}\",status=\"{}\"}} 1",
            label(&h.name),
            status(h, now, max_age).word()
        );
    }
    s.push_str(
        "# HELP rear_host_media_age_seconds Age of the media of the last successful build.\n# TYPE rear_host_media_age_seconds gauge\n",
    );
    for h in hosts {
        if let Some(t) = h.ok_created {
            let _ = writeln!(
                s,
                "rear_host_media_age_seconds{{host=\"{}\"}} {}",
                label(&h.name),
                now.saturating_sub(t)
            );
        }
    }
    s
}

/// A label value escaped for the text format: `\`, `"` and newline.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86400;
    const WEEK: Duration = Duration::from_secs(7 * DAY);

    fn host(name: &str, ok_created: Option<u64>, build_ok: Option<bool>) -> HostRow {
        HostRow {
            name: name.into(),
            ok_created,
            build_ok,
            layout: "L".into(),
            ok_layout: ok_created.map(|_| "L".into()),
            ..HostRow::default()
        }
    }

    #[test]
    fn status_rules() {
        let now = 100 * DAY;
        assert_eq!(
            status(&host("a", Some(now - DAY), Some(true)), now, WEEK),
            Status::Ok
        );
        assert_eq!(
            status(&host("a", Some(now - DAY), Some(false)), now, WEEK),
            Status::Failed
        );
        assert_eq!(
            status(&host("a", Some(now - 8 * DAY), Some(true)), now, WEEK),
            Status::Stale(Stale::MediaOld)
        );
        assert_eq!(
            status(&host("a", None, None), now, WEEK),
            Status::Stale(Stale::NeverBuilt)
        );
        let mut changed = host("a", Some(now), Some(true));
        changed.layout = "M".into();
        assert_eq!(
            status(&changed, now, WEEK),
            Status::Stale(Stale::LayoutChanged)
        );
    }

    #[test]
    fn check_exit_codes() {
        let now = 100 * DAY;
        let ok = host("a", Some(now), Some(true));
        let old = host("b", Some(now - 30 * DAY), Some(true));
        let bad = host("c", Some(now), Some(false));
        let (s, line) = check(std::slice::from_ref(&ok), now, WEEK);
        assert_eq!(s, Nagios::Ok);
        assert_eq!(line, "REAR OK - 1 hosts ok | hosts=1 ok=1 stale=0 failed=0");
        let (s, line) = check(&[ok.clone(), old.clone()], now, WEEK);
        assert_eq!(s, Nagios::Warning);
        assert!(
            line.starts_with("REAR WARNING - 1 of 2 hosts stale (b) |"),
            "{line}"
        );
        let (s, _) = check(&[ok, old, bad], now, WEEK);
        assert_eq!(s, Nagios::Critical);
    }

    #[test]
    fn metrics_escapes_labels() {
        let m = metrics(
            &[host("a\"b", Some(5), Some(true))],
            10,
            WEEK,
            Totals::default(),
        );
        assert!(m.contains("rear_hosts{status=\"ok\"} 1\n"), "{m}");
        assert!(
            m.contains("rear_host_media_age_seconds{host=\"a\\\"b\"} 5\n"),
            "{m}"
        );
    }
}
