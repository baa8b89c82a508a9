//! The build's report to `rear-server`: the host's facts ([`crate::inventory::facts`]) and a
//! summary of the build ([`super::Report`]) as the shared [`rear_model::report::Report`] contract.

use std::time::SystemTime;

use crate::inventory::facts;
use rear_model::report::{Artefact, Build, Outcome, Report, Stage};
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

/// The report of a successful build on the host `sys`, made now.
pub fn of_build(sys: &Sysroot, build: &super::Report, tags: &[String]) -> Report {
    Report::new(facts::gather(sys, tags), Some(summary(build)), now())
}

/// The report of a failed build on the host `sys`, made now.
pub fn of_failure(sys: &Sysroot, error: &str, tags: &[String]) -> Report {
    Report::new(facts::gather(sys, tags), Some(Build::failed(error)), now())
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
}
