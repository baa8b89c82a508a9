//! The build's report to `rear-server`: the host's facts ([`crate::inventory::facts`]) and a
//! summary of the build ([`super::Report`]) as the shared [`rear_model::report::Report`] contract.

use std::time::SystemTime;

use crate::inventory::facts;
use rear_model::report::{Artefact, Build, Facts, Outcome, Report, Stage};
use rear_sys::sysroot::Sysroot;

/// The report's summary of the successful build `r`.
pub fn summary(r: &super::Report) -> Build {
    Build {
        result: Outcome::Ok,
        rescue_kernel: r.kernel.clone(),
        files: r.files as u64,
        libraries: r.libraries as u64,
        modules: r.modules as u64,
        firmware: r.firmware as u64,
        entries: r.entries as u64,
        bytes_raw: r.bytes_raw,
        bytes_compressed: r.bytes_compressed,
        stages: r
            .stages
            .iter()
            .map(|(name, d)| Stage {
                name: (*name).to_string(),
                millis: u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            })
            .collect(),
        artefacts: r
            .artefacts
            .iter()
            .map(|a| Artefact {
                name: a
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                size: a.size,
                sha256: a.sha256.clone(),
            })
            .collect(),
        warnings: r.warnings.clone(),
    }
}

/// The report of the successful build `build`, made now: the facts its inventory stage read,
/// with the sender's `tags`.
pub fn of_build(build: &super::Report, tags: &[String]) -> Report {
    let facts = tagged(build.facts.clone(), tags);
    Report::new(facts, Some(summary(build)), now())
}

/// The report of a failed build on the host `sys`, made now. The build may have failed
/// before its inventory, so the facts are read here.
pub fn of_failure(sys: &Sysroot, error: &str, tags: &[String]) -> Report {
    let net = crate::inventory::network::probe(sys);
    let facts = tagged(facts::gather(sys, &net), tags);
    Report::new(facts, Some(Build::failed(error)), now())
}

/// `facts` with `tags`, sorted and without duplicates.
fn tagged(mut facts: Facts, tags: &[String]) -> Facts {
    let mut tags = tags.to_vec();
    tags.sort();
    tags.dedup();
    facts.host.tags = tags;
    facts
}

/// Seconds since 1970 now (0 if the clock is before 1970).
fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_build_copies_counts_and_names() {
        let b = super::super::Report {
            kernel: "6.1.0-9-amd64".into(),
            files: 3,
            stages: vec![("resolve", std::time::Duration::from_millis(1500))],
            artefacts: vec![super::super::Artefact {
                path: "/out/initrd-6.1.0-9-amd64.img".into(),
                size: 10,
                sha256: "ab".into(),
            }],
            ..Default::default()
        };
        let r = summary(&b);
        assert_eq!(r.files, 3);
        assert_eq!(r.stages[0].millis, 1500);
        assert_eq!(r.artefacts[0].name, "initrd-6.1.0-9-amd64.img");
        assert!(r.ok());
    }

    #[test]
    fn of_build_reports_the_inventory_facts_with_the_sorted_tags() {
        let mut b = super::super::Report::default();
        b.facts.host.name = "db1".into();
        b.facts.os.pretty_name = "Debian GNU/Linux 12 (bookworm)".into();
        let r = of_build(&b, &["b".into(), "a".into(), "b".into()]);
        assert_eq!(r.host.name, "db1");
        assert_eq!(r.os.pretty_name, "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(r.host.tags, ["a", "b"]);
    }
}
