//! Facts about the host for its report to `rear-server`: name, domain, OS, kernel, boot mode,
//! hardware, network interfaces and a summary of the disks.
//!
//! Stage: inventory. Input: files read through a [`Sysroot`] (`/etc/os-release`,
//! `/etc/hostname`, `/proc/cpuinfo`, `/sys/block`, ...) and the network the inventory probed
//! ([`HostNetwork`]). Output: a [`Facts`] value, part of the [`super::Inventory`], which
//! [`crate::build::report`] turns into the [`rear_model::report::Report`].

use std::path::Path;

use rear_model::report::{BootMode, Disk, Facts, Filesystem, Hardware, Host, LayoutSummary, Os};
use rear_sys::sysroot::Sysroot;

use super::network::HostNetwork;

/// Reads the host's facts; its interfaces are those of `net`, the network probed once. Missing
/// files leave a field empty: a report is still worth sending from a host whose `/sys` lacks
/// DMI data. The tags are the sender's, not the host's: the report adds them.
pub fn gather(sys: &Sysroot, net: &HostNetwork) -> Facts {
    let name = sys.hostname();
    let domain = domain(sys);
    let os = read(sys, "/etc/os-release")
        .or_else(|| read(sys, "/usr/lib/os-release"))
        .map(|t| parse_os_release(&t))
        .unwrap_or_default();
    let mut facts = Facts {
        host: Host {
            name,
            domain,
            tags: Vec::new(),
        },
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
        if let HostNetwork::Probed(p) = net {
            facts.network = p.interfaces();
        }
        let disks = disks(sys);
        let filesystems = read(sys, "/proc/self/mounts")
            .map(|t| parse_mounts(&t))
            .unwrap_or_default();
        facts.layout = LayoutSummary::new(disks, filesystems);
    }
    facts
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
    let short = sys.hostname();
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
    rear_sys::mounts::parse_mounts(text)
        .into_iter()
        .filter(|m| m.source.starts_with("/dev/"))
        .map(|m| Filesystem {
            device: m.source,
            mountpoint: m.target.to_string_lossy().into_owned(),
            fstype: m.fstype,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let f = gather(&sys, &HostNetwork::NotRunning);
        assert_eq!(f.host.name, "db1");
        assert_eq!(f.host.domain, "corp.example");
        assert_eq!(f.os.pretty_name, "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(f.boot_mode, BootMode::Unknown);
        assert!(f.network.is_empty());
    }

    #[test]
    fn gather_on_the_host_finds_a_kernel() {
        let f = gather(&Sysroot::host(), &HostNetwork::Failed("not probed".into()));
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
}
