//! What changed between two reports of one host, for the host page.
//!
//! Input: two [`Report`]s (older first). Output: a list of [`Change`]s, one per item that
//! differs: OS, kernel, boot mode, hardware, each disk, file system, network interface, the
//! build result and each artefact. Items are matched by their natural key (disk and interface
//! by kernel name, file system by mount point, artefact by file name), so a renamed device
//! shows as one removed and one added item. Pure: the page renders the list, tests check it.

use std::collections::BTreeMap;

use rear_model::report::{Artefact, Build, Disk, Filesystem, Interface, Os, Outcome, Report};
use rear_model::units::human;

/// The part of a report a change is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Area {
    /// The operating system (os-release).
    Os,
    /// The running kernel.
    Kernel,
    /// UEFI or BIOS.
    BootMode,
    /// Vendor, product, serial, CPUs, memory.
    Hardware,
    /// A whole disk.
    Disk,
    /// A mounted file system.
    Filesystem,
    /// A network interface.
    Network,
    /// The build's result.
    Build,
    /// A file the build wrote.
    Artefact,
}

impl Area {
    /// The word the page shows.
    pub fn word(self) -> &'static str {
        match self {
            Area::Os => "OS",
            Area::Kernel => "Kernel",
            Area::BootMode => "Boot mode",
            Area::Hardware => "Hardware",
            Area::Disk => "Disk",
            Area::Filesystem => "File system",
            Area::Network => "Network",
            Area::Build => "Build",
            Area::Artefact => "Artefact",
        }
    }
}

/// One item that differs between two reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Where it is.
    pub area: Area,
    /// Which item (a disk name, a mount point, an interface field, ...).
    pub item: String,
    /// Its value in the older report; `None` when the item is new.
    pub before: Option<String>,
    /// Its value in the newer report; `None` when the item is gone.
    pub after: Option<String>,
}

/// The changes from `old` to `new`, grouped by [`Area`] in the order of the enum, items
/// sorted within an area.
///
/// The rescue kernel and the artefacts are compared only when both reports are about a
/// successful build: a report without one (a layout check) or a failed build wrote no media,
/// so its empty list is no removal.
pub fn diff(old: &Report, new: &Report) -> Vec<Change> {
    let mut out = Vec::new();
    let mut field = |area: Area, item: &str, before: String, after: String| {
        if before != after {
            out.push(Change {
                area,
                item: item.to_string(),
                before: Some(before),
                after: Some(after),
            });
        }
    };
    field(Area::Os, "OS", os(&old.os), os(&new.os));
    field(
        Area::Kernel,
        "Kernel",
        old.kernel.clone(),
        new.kernel.clone(),
    );
    field(Area::BootMode, "Boot mode", boot_mode(old), boot_mode(new));
    let (a, b) = (&old.hardware, &new.hardware);
    field(
        Area::Hardware,
        "System",
        format!("{} {}", a.vendor, a.product),
        format!("{} {}", b.vendor, b.product),
    );
    field(Area::Hardware, "Serial", a.serial.clone(), b.serial.clone());
    field(
        Area::Hardware,
        "CPU",
        format!("{} × {}", a.cpus, a.cpu_model),
        format!("{} × {}", b.cpus, b.cpu_model),
    );
    field(
        Area::Hardware,
        "Memory",
        human(a.memory_bytes),
        human(b.memory_bytes),
    );
    keyed(
        &mut out,
        Area::Disk,
        &old.layout.disks,
        &new.layout.disks,
        |d: &Disk| d.name.clone(),
        disk,
    );
    keyed(
        &mut out,
        Area::Filesystem,
        &old.layout.filesystems,
        &new.layout.filesystems,
        |f: &Filesystem| f.mountpoint.clone(),
        |f: &Filesystem| format!("{} ({})", f.device, f.fstype),
    );
    keyed(
        &mut out,
        Area::Network,
        &old.network,
        &new.network,
        |n: &Interface| n.name.clone(),
        interface,
    );
    let (ob, nb) = (old.build.as_ref(), new.build.as_ref());
    if build(ob) != build(nb) {
        out.push(Change {
            area: Area::Build,
            item: "Result".to_string(),
            before: Some(build(ob)),
            after: Some(build(nb)),
        });
    }
    if let (Some(ob), Some(nb)) = (ob, nb)
        && ob.ok()
        && nb.ok()
    {
        if ob.rescue_kernel != nb.rescue_kernel {
            out.push(Change {
                area: Area::Build,
                item: "Rescue kernel".to_string(),
                before: Some(ob.rescue_kernel.clone()),
                after: Some(nb.rescue_kernel.clone()),
            });
        }
        keyed(
            &mut out,
            Area::Artefact,
            &ob.artefacts,
            &nb.artefacts,
            |a: &Artefact| a.name.clone(),
            |a: &Artefact| format!("{}, SHA-256 {}", human(a.size), a.sha256),
        );
    }
    out
}

/// Adds one change per key whose description differs between `old` and `new` (absent on one
/// side counts as added or removed).
fn keyed<T>(
    out: &mut Vec<Change>,
    area: Area,
    old: &[T],
    new: &[T],
    key: impl Fn(&T) -> String,
    describe: impl Fn(&T) -> String,
) {
    let mut both: BTreeMap<String, (Option<String>, Option<String>)> = BTreeMap::new();
    for t in old {
        both.entry(key(t)).or_default().0 = Some(describe(t));
    }
    for t in new {
        both.entry(key(t)).or_default().1 = Some(describe(t));
    }
    for (item, (before, after)) in both {
        if before != after {
            out.push(Change {
                area,
                item,
                before,
                after,
            });
        }
    }
}

fn os(o: &Os) -> String {
    if o.pretty_name.is_empty() {
        format!("{} {}", o.id, o.version_id).trim().to_string()
    } else {
        o.pretty_name.clone()
    }
}

fn boot_mode(r: &Report) -> String {
    format!("{:?}", r.boot_mode).to_uppercase()
}

fn disk(d: &Disk) -> String {
    let mut s = format!("{}, {}", human(d.size_bytes), d.model);
    if !d.serial.is_empty() {
        s.push_str(&format!(", serial {}", d.serial));
    }
    s
}

fn interface(n: &Interface) -> String {
    let mac = if n.mac.is_empty() { "no MAC" } else { &n.mac };
    if n.addresses.is_empty() {
        mac.to_string()
    } else {
        format!("{mac}; {}", n.addresses.join(", "))
    }
}

fn build(b: Option<&Build>) -> String {
    match b.map(|b| &b.result) {
        None => "no build".to_string(),
        Some(Outcome::Ok) => "ok".to_string(),
        Some(Outcome::Failed { error }) => format!("failed: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rear_model::report::LayoutSummary;

    fn fixture() -> Report {
        Report::from_json(include_str!("../../../tests/fixtures/report-v1.json").as_bytes())
            .unwrap()
    }

    #[test]
    fn diff_of_a_report_with_itself_is_empty() {
        let r = fixture();
        assert_eq!(diff(&r, &r), []);
    }

    #[test]
    fn diff_names_kernel_disk_fs_network_and_artefact_changes() {
        let old = fixture();
        let mut new = old.clone();
        new.kernel = "6.1.0-10-amd64".into();
        let mut disks = old.layout.disks.clone();
        disks.push(Disk {
            name: "sdb".into(),
            size_bytes: 2_000_000_000,
            model: "Spare".into(),
            serial: "SP1".into(),
        });
        let mut fs = old.layout.filesystems.clone();
        fs.retain(|f| f.mountpoint != "/boot/efi");
        new.layout = LayoutSummary::new(disks, fs);
        new.network[0].addresses = vec!["192.0.2.11/24".into()];
        let b = new.build.as_mut().unwrap();
        b.artefacts[0].sha256 = "00".repeat(32);
        let changes = diff(&old, &new);
        let brief: Vec<_> = changes
            .iter()
            .map(|c| {
                (
                    c.area,
                    c.item.as_str(),
                    c.before.is_some(),
                    c.after.is_some(),
                )
            })
            .collect();
        assert_eq!(
            brief,
            [
                (Area::Kernel, "Kernel", true, true),
                (Area::Disk, "sdb", false, true),
                (Area::Filesystem, "/boot/efi", true, false),
                (Area::Network, "eth0", true, true),
                (Area::Artefact, "initrd-6.1.0-9-amd64.img", true, true),
            ]
        );
        assert_eq!(
            changes[3].after.as_deref(),
            Some("52:54:00:12:34:56; 192.0.2.11/24")
        );
        assert_eq!(
            changes[1].after.as_deref(),
            Some("1.9 GiB, Spare, serial SP1")
        );
    }

    #[test]
    fn diff_skips_artefacts_without_a_second_build() {
        let old = fixture();
        let mut new = old.clone();
        new.build = None;
        let changes = diff(&old, &new);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].area, Area::Build);
        assert_eq!(changes[0].after.as_deref(), Some("no build"));
    }

    #[test]
    fn diff_shows_os_upgrade_and_failure() {
        let old = fixture();
        let mut new = old.clone();
        new.os.pretty_name = "Debian GNU/Linux 13 (trixie)".into();
        new.build = Some(Build::failed("disk full"));
        let changes = diff(&old, &new);
        assert_eq!(changes[0].area, Area::Os);
        assert_eq!(
            changes[0].after.as_deref(),
            Some("Debian GNU/Linux 13 (trixie)")
        );
        // The failed build wrote no media: no artefact shows as removed.
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(
            (changes[1].area, changes[1].after.as_deref()),
            (Area::Build, Some("failed: disk full"))
        );
    }
}
