//! The host report: what a protected host tells `rear-server` after each build.
//!
//! Input: a finished (or failed) build ([`crate::build::Report`]) and facts about the host read
//! through a [`Sysroot`] (name, domain, OS, kernel, boot mode, hardware, network, disks).
//! Output: a versioned serde value, sent as JSON (`POST /api/v1/reports`) and stored by the
//! server. Both sides share this one type, so `rear-mkimage` and `rear-server` cannot drift.
//!
//! Versioning follows [`crate::manifest`]: [`REPORT_VERSION`] is bumped on incompatible changes,
//! and a fixture of every old version stays in `tests/fixtures/` (`report-v1.json`). Fields added
//! compatibly carry `#[serde(default)]`, and unknown fields are ignored, so an older server
//! still reads a newer host's report of the same version.
//!
//! Facts that only the running system knows (`/proc`, `/sys`) are read only when the sysroot is
//! the host (`Sysroot::is_host`); for `--root DIR` they stay empty.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::sysroot::Sysroot;

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

/// Everything about the host that goes into a report, read through a [`Sysroot`].
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

impl Facts {
    /// Reads the host's facts. Missing files leave a field empty: a report is still worth
    /// sending from a host whose `/sys` lacks DMI data.
    pub fn gather(sys: &Sysroot, tags: &[String]) -> Facts {
        let name = crate::inventory::hostname(sys);
        let domain = domain(sys);
        let mut tags = tags.to_vec();
        tags.sort();
        tags.dedup();
        let os = read(sys, "/etc/os-release")
            .or_else(|| read(sys, "/usr/lib/os-release"))
            .map(|t| parse_os_release(&t))
            .unwrap_or_default();
        let mut facts = Facts {
            host: Host { name, domain, tags },
            os,
            ..Facts::default()
        };
        if sys.is_host() {
            facts.kernel = read(sys, "/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            facts.boot_mode = if sys.exists(Path::new("/sys/firmware/efi")) {
                BootMode::Uefi
            } else {
                BootMode::Bios
            };
            facts.hardware = hardware(sys);
            facts.network = network(sys);
            let disks = disks(sys);
            let filesystems = read(sys, "/proc/self/mounts")
                .map(|t| parse_mounts(&t))
                .unwrap_or_default();
            facts.layout = LayoutSummary::new(disks, filesystems);
        }
        facts
    }
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
    /// The successful build `r`.
    pub fn from_build(r: &crate::build::Report) -> Build {
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

    /// The report of a successful build on the host `sys`, made now.
    pub fn from_build(sys: &Sysroot, build: &crate::build::Report, tags: &[String]) -> Report {
        Report::new(
            Facts::gather(sys, tags),
            Some(Build::from_build(build)),
            now(),
        )
    }

    /// The report of a failed build on the host `sys`, made now.
    pub fn from_failure(sys: &Sysroot, error: &str, tags: &[String]) -> Report {
        Report::new(Facts::gather(sys, tags), Some(Build::failed(error)), now())
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

/// Seconds since 1970 now (0 if the clock is before 1970).
fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn read(sys: &Sysroot, path: &str) -> Option<String> {
    sys.read_to_string(Path::new(path)).ok()
}

fn read_trimmed(sys: &Sysroot, path: &str) -> String {
    read(sys, path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `KEY=value` lines of os-release(5); values may be quoted with `"` or `'` and use `\`
/// escapes inside double quotes.
pub fn parse_os_release(text: &str) -> Os {
    let mut os = Os::default();
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once('=') else {
            continue;
        };
        let value = unquote(value.trim());
        match key {
            "ID" => os.id = value,
            "VERSION_ID" => os.version_id = value,
            "PRETTY_NAME" => os.pretty_name = value,
            _ => {}
        }
    }
    if os.pretty_name.is_empty() {
        os.pretty_name = format!("{} {}", os.id, os.version_id).trim().to_string();
    }
    os
}

fn unquote(v: &str) -> String {
    if v.len() >= 2 && v.starts_with('\'') && v.ends_with('\'') {
        return v[1..v.len() - 1].to_string();
    }
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        let mut out = String::new();
        let mut chars = v[1..v.len() - 1].chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else {
                out.push(c);
            }
        }
        return out;
    }
    v.to_string()
}

/// The DNS domain: from a fully qualified `/etc/hostname` (or the kernel's host name), else
/// the `/etc/hosts` line that names this host fully qualified, else `domain` or the first
/// `search` entry of `/etc/resolv.conf`; empty when none says.
pub fn domain(sys: &Sysroot) -> String {
    let short = crate::inventory::hostname(sys);
    let mut names = vec![read_trimmed(sys, "/etc/hostname")];
    if sys.is_host() {
        names.push(read_trimmed(sys, "/proc/sys/kernel/hostname"));
    }
    for n in names {
        if let Some((_, d)) = n.split_once('.')
            && !d.is_empty()
        {
            return d.to_string();
        }
    }
    if let Some(d) = read(sys, "/etc/hosts").and_then(|t| domain_from_hosts(&t, &short)) {
        return d;
    }
    read(sys, "/etc/resolv.conf")
        .and_then(|t| domain_from_resolv_conf(&t))
        .unwrap_or_default()
}

/// The domain of `short` from hosts(5) text: the part after `short.` of a name on any line
/// that also names it.
pub fn domain_from_hosts(text: &str, short: &str) -> Option<String> {
    let prefix = format!("{short}.");
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.split_whitespace().skip(1))
        .find_map(|name| name.strip_prefix(&prefix).filter(|d| !d.is_empty()))
        .map(str::to_string)
}

/// `domain` or else the first `search` entry of resolv.conf(5) text.
pub fn domain_from_resolv_conf(text: &str) -> Option<String> {
    let mut search = None;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("domain") => {
                if let Some(d) = words.next() {
                    return Some(d.trim_end_matches('.').to_string());
                }
            }
            Some("search") if search.is_none() => {
                search = words.next().map(|d| d.trim_end_matches('.').to_string());
            }
            _ => {}
        }
    }
    search
}

fn hardware(sys: &Sysroot) -> Hardware {
    let dmi = |f: &str| read_trimmed(sys, &format!("/sys/class/dmi/id/{f}"));
    let (cpu_model, cpus) = read(sys, "/proc/cpuinfo")
        .map(|t| parse_cpuinfo(&t))
        .unwrap_or_default();
    Hardware {
        vendor: dmi("sys_vendor"),
        product: dmi("product_name"),
        serial: dmi("product_serial"),
        cpu_model,
        cpus,
        memory_bytes: read(sys, "/proc/meminfo")
            .and_then(|t| parse_meminfo_total(&t))
            .unwrap_or(0),
    }
}

/// The first `model name` and the number of `processor` entries of `/proc/cpuinfo`.
pub fn parse_cpuinfo(text: &str) -> (String, u32) {
    let mut model = String::new();
    let mut count = 0;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        match k.trim() {
            "processor" => count += 1,
            "model name" if model.is_empty() => model = v.trim().to_string(),
            _ => {}
        }
    }
    (model, count)
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub fn parse_meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Whole disks under `/sys/block` that sit on a real device (no loop, ram, zram, dm or md).
fn disks(sys: &Sysroot) -> Vec<Disk> {
    let mut out = Vec::new();
    for p in sys.read_dir(Path::new("/sys/block")).unwrap_or_default() {
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !sys.exists(&p.join("device")) {
            continue;
        }
        let f = |rel: &str| read_trimmed(sys, &format!("/sys/block/{name}/{rel}"));
        let sectors: u64 = f("size").parse().unwrap_or(0);
        out.push(Disk {
            name: name.to_string(),
            size_bytes: sectors * 512,
            model: f("device/model"),
            serial: f("device/serial"),
        });
    }
    out
}

/// Block-device mounts of `/proc/self/mounts` (fstab(5) fields, `\040`-style octal escapes).
pub fn parse_mounts(text: &str) -> Vec<Filesystem> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (dev, mnt, fstype) = (w.next()?, w.next()?, w.next()?);
            dev.starts_with("/dev/").then(|| Filesystem {
                device: unescape_octal(dev),
                mountpoint: unescape_octal(mnt),
                fstype: fstype.to_string(),
            })
        })
        .collect()
}

/// Undoes the octal escapes of mount tables (`\\040` for a space; proc(5)).
pub(crate) fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Interfaces of `/sys/class/net` except `lo`, with MACs and addresses.
fn network(sys: &Sysroot) -> Vec<Interface> {
    let v4 = match (
        read(sys, "/proc/net/fib_trie"),
        read(sys, "/proc/net/route"),
    ) {
        (Some(trie), Some(route)) => ipv4_addresses(&trie, &route),
        _ => Vec::new(),
    };
    let v6 = read(sys, "/proc/net/if_inet6")
        .map(|t| parse_if_inet6(&t))
        .unwrap_or_default();
    let mut out = Vec::new();
    for p in sys
        .read_dir(Path::new("/sys/class/net"))
        .unwrap_or_default()
    {
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name == "lo" {
            continue;
        }
        let mac = read_trimmed(sys, &format!("/sys/class/net/{name}/address")).to_lowercase();
        let mut addresses: Vec<String> = v4
            .iter()
            .chain(&v6)
            .filter(|(i, _)| i == name)
            .map(|(_, a)| a.clone())
            .collect();
        addresses.sort();
        out.push(Interface {
            name: name.to_string(),
            mac: if mac == "00:00:00:00:00:00" {
                String::new()
            } else {
                mac
            },
            addresses,
        });
    }
    out
}

/// `(interface, address/prefix)` of `/proc/net/if_inet6`: 32 hex digits, index, prefix length,
/// scope, flags, name. Link-local addresses (scope 0x20) are left out.
pub fn parse_if_inet6(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let [hex, _, plen, scope, _, name] = w.as_slice() else {
                return None;
            };
            if *scope == "20" || *scope == "10" {
                return None;
            }
            let n = u128::from_str_radix(hex, 16).ok()?;
            let plen = u8::from_str_radix(plen, 16).ok()?;
            Some((name.to_string(), format!("{}/{plen}", Ipv6Addr::from(n))))
        })
        .collect()
}

/// IPv4 addresses per interface: the local addresses of `/proc/net/fib_trie` (`/32 host LOCAL`)
/// matched to the connected routes of `/proc/net/route` that contain them, longest prefix
/// first. Loopback addresses are left out.
pub fn ipv4_addresses(fib_trie: &str, route: &str) -> Vec<(String, String)> {
    let mut locals = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let t = line.trim_start_matches([' ', '|', '+', '-', '`']).trim();
        if let Ok(a) = t.parse::<Ipv4Addr>() {
            last = Some(a);
        } else if t.contains("host LOCAL")
            && let Some(a) = last
            && !a.is_loopback()
            && !locals.contains(&a)
        {
            locals.push(a);
        }
    }
    // Routes: Iface Destination Gateway Flags RefCnt Use Metric Mask ...; hex in host
    // (little-endian) byte order.
    // The kernel prints each address as a native-endian u32 holding the network-order bytes.
    let hex_ip = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.to_ne_bytes()))
    };
    let routes: Vec<(String, Ipv4Addr, Ipv4Addr)> = route
        .lines()
        .skip(1)
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let (iface, dest, gw, mask) = (w.first()?, w.get(1)?, w.get(2)?, w.get(7)?);
            if !hex_ip(gw)?.is_unspecified() {
                return None;
            }
            Some((iface.to_string(), hex_ip(dest)?, hex_ip(mask)?))
        })
        .collect();
    let mut out = Vec::new();
    for a in locals {
        let best = routes
            .iter()
            .filter(|(_, dest, mask)| u32::from(a) & u32::from(*mask) == u32::from(*dest))
            .filter(|(_, _, mask)| !mask.is_unspecified())
            .max_by_key(|(_, _, mask)| u32::from(*mask).count_ones());
        if let Some((iface, _, mask)) = best {
            out.push((
                iface.clone(),
                format!("{a}/{}", u32::from(*mask).count_ones()),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE_V1: &str = include_str!("../tests/fixtures/report-v1.json");

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
    fn from_build_copies_counts_and_names() {
        let b = crate::build::Report {
            kernel: "6.1.0-9-amd64".into(),
            files: 3,
            stages: vec![("resolve", std::time::Duration::from_millis(1500))],
            artefacts: vec![crate::build::Artefact {
                path: "/out/initrd-6.1.0-9-amd64.img".into(),
                size: 10,
                sha256: "ab".into(),
            }],
            ..Default::default()
        };
        let r = Build::from_build(&b);
        assert_eq!(r.files, 3);
        assert_eq!(r.stages[0].millis, 1500);
        assert_eq!(r.artefacts[0].name, "initrd-6.1.0-9-amd64.img");
        assert!(r.ok());
    }

    #[test]
    fn gather_reads_a_sysroot() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(d.path().join("etc/hostname"), "db1\n").unwrap();
        std::fs::write(
            d.path().join("etc/hosts"),
            "127.0.0.1 localhost\n127.0.1.1 db1.corp.example db1\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/os-release"),
            "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
        )
        .unwrap();
        let sys = Sysroot::new(d.path()).unwrap();
        let f = Facts::gather(&sys, &["b".into(), "a".into(), "b".into()]);
        assert_eq!(f.host.name, "db1");
        assert_eq!(f.host.domain, "corp.example");
        assert_eq!(f.host.tags, ["a", "b"]);
        assert_eq!(f.os.pretty_name, "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(f.boot_mode, BootMode::Unknown);
        assert!(f.network.is_empty());
    }

    #[test]
    fn gather_on_the_host_finds_a_kernel() {
        let f = Facts::gather(&Sysroot::host(), &[]);
        assert!(!f.kernel.is_empty());
        assert!(!f.host.name.is_empty());
        assert_eq!(f.layout.digest.len(), 64);
    }

    #[test]
    fn parse_os_release_unquotes() {
        let os = parse_os_release("ID='rocky'\nVERSION_ID=\"9.3\"\n# c\nNAME=x\n");
        assert_eq!(os.id, "rocky");
        assert_eq!(os.version_id, "9.3");
        assert_eq!(os.pretty_name, "rocky 9.3");
    }

    #[test]
    fn domain_from_resolv_conf_prefers_domain() {
        assert_eq!(
            domain_from_resolv_conf("search a.example b.example\ndomain c.example.\n").as_deref(),
            Some("c.example")
        );
        assert_eq!(
            domain_from_resolv_conf("nameserver 1\nsearch a.example\n").as_deref(),
            Some("a.example")
        );
        assert_eq!(domain_from_resolv_conf("nameserver 1\n"), None);
    }

    #[test]
    fn domain_from_hosts_needs_the_short_name() {
        let t = "# x\n10.0.0.1 web01.example.com web01 # c\n10.0.0.2 other.example.org\n";
        assert_eq!(
            domain_from_hosts(t, "web01").as_deref(),
            Some("example.com")
        );
        assert_eq!(domain_from_hosts(t, "web02"), None);
    }

    #[test]
    fn parse_cpuinfo_counts_processors() {
        let t =
            "processor\t: 0\nmodel name\t: AMD EPYC\n\nprocessor\t: 1\nmodel name\t: AMD EPYC\n";
        assert_eq!(parse_cpuinfo(t), ("AMD EPYC".to_string(), 2));
        assert_eq!(
            parse_meminfo_total("MemTotal:       16384 kB\n"),
            Some(16384 * 1024)
        );
    }

    #[test]
    fn parse_mounts_keeps_block_devices() {
        let t = "proc /proc proc rw 0 0\n/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 /mnt/my\\040disk xfs rw 0 0\n";
        let m = parse_mounts(t);
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].mountpoint, "/mnt/my disk");
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

    #[test]
    fn parse_if_inet6_skips_link_local() {
        let t = "20010db8000000000000000000000001 02 40 00 80 eth0\n\
                 fe80000000000000505400fffe123456 02 40 20 80 eth0\n\
                 00000000000000000000000000000001 01 80 10 80 lo\n";
        assert_eq!(
            parse_if_inet6(t),
            [("eth0".to_string(), "2001:db8::1/64".to_string())]
        );
    }

    #[test]
    fn ipv4_addresses_match_connected_routes() {
        let trie = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n\
                    \x20    +-- 192.168.122.0/24 2 0 2\n        |-- 192.168.122.15\n           /32 host LOCAL\n\
                    Local:\n     |-- 127.0.0.1\n        /32 host LOCAL\n";
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t00000000\t017AA8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                     eth0\t007AA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(
            ipv4_addresses(trie, route),
            [("eth0".to_string(), "192.168.122.15/24".to_string())]
        );
    }
}
