//! The host report: what a protected host tells `rear-server` after each build.
//!
//! Input: a finished (or failed) build and facts about the host (name, domain, OS, kernel, boot
//! mode, hardware, network, disks), put together by `rear-mkimage` (`build::report`,
//! `inventory::facts`). Output: a versioned serde value, sent as JSON (`POST /api/v1/reports`)
//! and stored by the server. Both sides share this one type, so `rear-mkimage` and
//! `rear-server` cannot drift.
//!
//! Versioning follows [`crate::manifest`]: [`REPORT_VERSION`] is bumped on incompatible changes,
//! and a fixture of every old version stays in `tests/fixtures/` (`report-v1.json`). Fields added
//! compatibly carry `#[serde(default)]`, and unknown fields are ignored, so an older server
//! still reads a newer host's report of the same version.
//!
//! Facts that only the running system knows (`/proc`, `/sys`) are read only when the sysroot is
//! the host (`Sysroot::is_host`); for `--root DIR` they stay empty.

use serde::{Deserialize, Serialize};

/// Version of the report format this code writes and reads.
pub const REPORT_VERSION: u32 = 1;

/// Errors from reading a report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text is not JSON, or not a report of the expected shape.
    #[error("report is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// The report has no `version` field.
    #[error("report has no \"version\" field")]
    NoVersion,
    /// The report is of a version this code does not read.
    #[error("report version {found} is not supported (this program reads version {supported})")]
    UnsupportedVersion {
        /// The version in the report.
        found: u64,
        /// The version this program reads.
        supported: u32,
    },
}

/// One report of one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`REPORT_VERSION`].
    pub version: u32,
    /// When the report was made, in seconds since 1970 (UTC).
    pub created: u64,
    /// Version of the tool that made it.
    pub tool_version: String,
    /// Which host this is.
    pub host: Host,
    /// Its operating system (`/etc/os-release`).
    #[serde(default)]
    pub os: Os,
    /// The running kernel release (`uname -r`); empty for a `--root` sysroot.
    #[serde(default)]
    pub kernel: String,
    /// How the host boots.
    #[serde(default)]
    pub boot_mode: BootMode,
    /// A hardware summary.
    #[serde(default)]
    pub hardware: Hardware,
    /// Network interfaces, sorted by name.
    #[serde(default)]
    pub network: Vec<Interface>,
    /// The storage layout, summarised.
    #[serde(default)]
    pub layout: LayoutSummary,
    /// The build this report is about; `None` for a report without a build (such as a layout
    /// check), which still tells the server whether the layout changed.
    #[serde(default)]
    pub build: Option<Build>,
}

/// Host name, domain and the administrator's tags.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Host {
    /// The short host name (first label).
    pub name: String,
    /// The DNS domain, empty when unknown.
    #[serde(default)]
    pub domain: String,
    /// Tags from the `[server]` configuration, sorted, without duplicates.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// The operating system, from `os-release` (os-release(5)).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Os {
    /// `ID`, such as `debian`.
    pub id: String,
    /// `VERSION_ID`, such as `12`.
    pub version_id: String,
    /// `PRETTY_NAME`, such as `Debian GNU/Linux 12 (bookworm)`.
    pub pretty_name: String,
}

/// How the host boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootMode {
    /// UEFI firmware (`/sys/firmware/efi` exists).
    Uefi,
    /// Legacy BIOS.
    Bios,
    /// Not known (a `--root` sysroot).
    #[default]
    Unknown,
}

/// A hardware summary (`/sys/class/dmi/id`, `/proc/cpuinfo`, `/proc/meminfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Hardware {
    /// System vendor (`sys_vendor`).
    pub vendor: String,
    /// Product name (`product_name`).
    pub product: String,
    /// System serial number (`product_serial`, readable by root only).
    pub serial: String,
    /// CPU model name.
    pub cpu_model: String,
    /// Number of logical CPUs.
    pub cpus: u32,
    /// Main memory in bytes.
    pub memory_bytes: u64,
}

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Interface {
    /// Kernel name, such as `eth0`.
    pub name: String,
    /// MAC address, lower case with colons; empty when the interface has none.
    #[serde(default)]
    pub mac: String,
    /// Addresses with prefix length (`192.0.2.10/24`, `2001:db8::1/64`), sorted.
    #[serde(default)]
    pub addresses: Vec<String>,
}

/// The storage layout in brief: enough to recognise the host and notice a change.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LayoutSummary {
    /// Whole disks, sorted by name.
    pub disks: Vec<Disk>,
    /// Mounted block-device file systems, sorted by mount point.
    pub filesystems: Vec<Filesystem>,
    /// SHA-256 of the disks and file systems above; the server marks a host stale when this
    /// changes after its last successful build.
    pub digest: String,
}

/// A whole disk.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Disk {
    /// Kernel name, such as `sda` or `nvme0n1`.
    pub name: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Model, as the device reports it.
    pub model: String,
    /// Serial number, empty when the device does not report one.
    pub serial: String,
}

/// A mounted file system on a block device.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Filesystem {
    /// The device, such as `/dev/sda1`.
    pub device: String,
    /// Where it is mounted.
    pub mountpoint: String,
    /// File-system type, such as `ext4`.
    pub fstype: String,
}

/// The build a report is about.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Build {
    /// Whether it succeeded.
    pub result: Outcome,
    /// The kernel release of the rescue system.
    #[serde(default)]
    pub rescue_kernel: String,
    /// Files asked for by recipes.
    #[serde(default)]
    pub files: u64,
    /// Libraries pulled in.
    #[serde(default)]
    pub libraries: u64,
    /// Kernel modules.
    #[serde(default)]
    pub modules: u64,
    /// Firmware files.
    #[serde(default)]
    pub firmware: u64,
    /// Entries in the archive.
    #[serde(default)]
    pub entries: u64,
    /// Uncompressed archive size.
    #[serde(default)]
    pub bytes_raw: u64,
    /// Compressed archive size.
    #[serde(default)]
    pub bytes_compressed: u64,
    /// Wall time per stage, in order.
    #[serde(default)]
    pub stages: Vec<Stage>,
    /// The files written.
    #[serde(default)]
    pub artefacts: Vec<Artefact>,
    /// Warnings of the build.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// Whether a build succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Outcome {
    /// It did.
    #[default]
    Ok,
    /// It did not.
    Failed {
        /// The error, as the build printed it.
        error: String,
    },
}

/// Time spent in one build stage.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stage {
    /// Stage name, such as `resolve`.
    pub name: String,
    /// Wall time in milliseconds.
    pub millis: u64,
}

/// One output file of a build.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Artefact {
    /// File name (no directory), such as `initrd-6.1.0-9-amd64.img`.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex SHA-256 of its content.
    pub sha256: String,
}

/// Everything about the host that goes into a report (`inventory::facts::gather` reads it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    /// Name, domain and tags.
    pub host: Host,
    /// Operating system.
    pub os: Os,
    /// Running kernel release.
    pub kernel: String,
    /// Boot mode.
    pub boot_mode: BootMode,
    /// Hardware summary.
    pub hardware: Hardware,
    /// Network interfaces.
    pub network: Vec<Interface>,
    /// Layout summary.
    pub layout: LayoutSummary,
}

impl LayoutSummary {
    /// A summary of these disks and file systems, sorted, with its digest.
    pub fn new(mut disks: Vec<Disk>, mut filesystems: Vec<Filesystem>) -> LayoutSummary {
        disks.sort_by(|a, b| a.name.cmp(&b.name));
        filesystems.sort_by(|a, b| (&a.mountpoint, &a.device).cmp(&(&b.mountpoint, &b.device)));
        let mut canon = String::new();
        for d in &disks {
            canon.push_str(&format!(
                "disk\t{}\t{}\t{}\t{}\n",
                d.name, d.size_bytes, d.model, d.serial
            ));
        }
        for f in &filesystems {
            canon.push_str(&format!(
                "fs\t{}\t{}\t{}\n",
                f.device, f.mountpoint, f.fstype
            ));
        }
        let digest = crate::manifest::sha256_hex(canon.as_bytes());
        LayoutSummary {
            disks,
            filesystems,
            digest,
        }
    }
}

impl Build {
    /// A failed build, with its error as printed (`{e:#}`).
    pub fn failed(error: &str) -> Build {
        Build {
            result: Outcome::Failed {
                error: error.to_string(),
            },
            ..Build::default()
        }
    }

    /// Whether the build succeeded.
    pub fn ok(&self) -> bool {
        self.result == Outcome::Ok
    }
}

impl Report {
    /// A report of `facts` about `build`, made at `created` (seconds since 1970).
    pub fn new(facts: Facts, build: Option<Build>, created: u64) -> Report {
        Report {
            version: REPORT_VERSION,
            created,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            host: facts.host,
            os: facts.os,
            kernel: facts.kernel,
            boot_mode: facts.boot_mode,
            hardware: facts.hardware,
            network: facts.network,
            layout: facts.layout,
            build,
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a report; checks its version before its shape, so an unknown version gets a clear
    /// error instead of a complaint about a missing field.
    pub fn from_json(bytes: &[u8]) -> Result<Report, Error> {
        #[derive(Deserialize)]
        struct Probe {
            version: Option<serde_json::Value>,
        }
        let probe: Probe = serde_json::from_slice(bytes)?;
        match probe.version {
            None => Err(Error::NoVersion),
            Some(v) if v.as_u64() == Some(u64::from(REPORT_VERSION)) => {
                Ok(serde_json::from_slice(bytes)?)
            }
            Some(v) => Err(Error::UnsupportedVersion {
                found: v.as_u64().unwrap_or(0),
                supported: REPORT_VERSION,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE_V1: &str = include_str!("../../../tests/fixtures/report-v1.json");

    #[test]
    fn from_json_reads_the_v1_fixture() {
        let r = Report::from_json(FIXTURE_V1.as_bytes()).unwrap();
        assert_eq!(r.version, 1);
        assert_eq!(r.host.name, "web01");
        assert_eq!(r.host.domain, "example.com");
        assert_eq!(r.host.tags, ["dmz", "web"]);
        assert_eq!(r.os.id, "debian");
        assert_eq!(r.boot_mode, BootMode::Uefi);
        assert_eq!(r.network[0].mac, "52:54:00:12:34:56");
        assert_eq!(r.layout.disks[0].serial, "S4EWNX0R123456");
        let b = r.build.as_ref().unwrap();
        assert!(b.ok());
        assert_eq!(b.artefacts.len(), 2);
        assert_eq!(b.stages[2].name, "resolve");
    }

    #[test]
    fn to_json_round_trips() {
        let r = Report::from_json(FIXTURE_V1.as_bytes()).unwrap();
        let again = Report::from_json(r.to_json().as_bytes()).unwrap();
        assert_eq!(r, again);
        let failed = Report::new(Facts::default(), Some(Build::failed("boom: /x")), 5);
        let text = failed.to_json();
        assert!(text.contains("\"status\": \"failed\""), "{text}");
        assert_eq!(Report::from_json(text.as_bytes()).unwrap(), failed);
    }

    #[test]
    fn from_json_rejects_other_versions() {
        let e = Report::from_json(br#"{"version": 2, "host": {}}"#).unwrap_err();
        assert!(
            matches!(
                e,
                Error::UnsupportedVersion {
                    found: 2,
                    supported: 1
                }
            ),
            "{e}"
        );
        assert!(matches!(
            Report::from_json(br#"{"created": 1}"#),
            Err(Error::NoVersion)
        ));
        assert!(matches!(
            Report::from_json(b"{not json"),
            Err(Error::Json(_))
        ));
        assert!(matches!(
            Report::from_json(b"\"\xff\xfe\""),
            Err(Error::Json(_))
        ));
    }

    #[test]
    fn from_json_accepts_a_minimal_report() {
        let r = Report::from_json(
            br#"{"version":1,"created":7,"tool_version":"0","host":{"name":"h"},"new":1}"#,
        )
        .unwrap();
        assert_eq!(r.host.name, "h");
        assert_eq!(r.build, None);
    }

    #[test]
    fn layout_summary_new_digest_changes_with_the_layout() {
        let disk = |size| Disk {
            name: "sda".into(),
            size_bytes: size,
            ..Disk::default()
        };
        let a = LayoutSummary::new(vec![disk(1)], vec![]);
        assert_eq!(a, LayoutSummary::new(vec![disk(1)], vec![]));
        assert_ne!(a.digest, LayoutSummary::new(vec![disk(2)], vec![]).digest);
    }
}
