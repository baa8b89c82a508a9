//! `rear-restore layout apply` on blank disks in QEMU: the rescue image carries a saved layout
//! (`--layout`, which also brings the tools and modules it needs), the guest recreates it, and
//! the test reads back what the real tools say (`sfdisk -J`, `blkid`, `mdadm`, `lvm lvs`,
//! `findmnt`) and compares it with the layout, renamed for the target disks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rear_model::layout::model::partition_path;
use rear_sys::layout::Layout;

use crate::boot::build_initrd;
use crate::qemu::{Vm, kernel_args};

/// A blank target disk: file name, size, how it is attached, serial.
struct Target {
    name: &'static str,
    size: u64,
    nvme: bool,
    serial: &'static str,
}

fn fixture(name: &str) -> (PathBuf, Layout) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/layout-apply")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    let layout = Layout::from_json(&text, &path.display().to_string()).unwrap();
    (path, layout)
}

/// What a test does in the guest before `layout apply`.
#[derive(Default)]
struct Scenario<'a> {
    /// Contents of /etc/rear/mappings/disks.
    mapping: Option<&'a str>,
    /// A shell command run before planning (e.g. mounting a backup disk).
    prepare: Option<&'a str>,
    /// Run `layout apply` once without a LUKS key first: it must fail at the LUKS step, and
    /// the second run must continue after the steps the first one completed.
    fail_first_without_key: bool,
}

/// Builds the image with the layout, boots it with the target disks, applies the layout and
/// returns the tools' outputs by name.
fn apply_in_vm(name: &str, targets: &[Target], sc: &Scenario) -> BTreeMap<String, String> {
    let tmp = tempfile::tempdir().unwrap();
    let (layout_path, layout) = fixture(name);
    let (kernel, initrd, release) = build_initrd(
        tmp.path(),
        &[
            "--layout",
            layout_path.to_str().unwrap(),
            "--ssh",
            "off",
            "--net",
            "none",
        ],
    );
    let mut args = kernel_args(&kernel, &initrd, "", true);
    for (i, t) in targets.iter().enumerate() {
        let file = tmp.path().join(t.name);
        std::fs::File::create(&file)
            .unwrap()
            .set_len(t.size)
            .unwrap();
        args.push("-drive".into());
        args.push(format!(
            "file={},if=none,id=d{i},format=raw",
            file.display()
        ));
        args.push("-device".into());
        args.push(if t.nvme {
            format!("nvme,drive=d{i},serial={}", t.serial)
        } else {
            format!("virtio-blk-pci,drive=d{i},serial={}", t.serial)
        });
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut vm = Vm::start(&format!("layout_{name}"), &argv);
    vm.expect(
        &format!("rear rescue ready {release}"),
        Duration::from_secs(120),
    );
    vm.expect("RESCUE", Duration::from_secs(30));
    let started = Instant::now();
    vm.send("printf 'correct horse battery staple' > /run/test.key; echo KEY-$((1+1))");
    vm.expect("KEY-2\n", Duration::from_secs(20));
    if let Some(m) = sc.mapping {
        vm.send(&format!(
            "mkdir -p /etc/rear/mappings; echo '{m}' > /etc/rear/mappings/disks; echo MAP-$((2+2))"
        ));
        vm.expect("MAP-4\n", Duration::from_secs(20));
    }
    if let Some(cmd) = sc.prepare {
        let out = run(&mut vm, 99, &format!("{cmd}; echo PREPARE-RC=$?"));
        assert!(out.contains("PREPARE-RC=0"), "{cmd}:\n{out}");
    }
    let plan = run(&mut vm, 100, "rear-restore layout plan --json");
    if sc.fail_first_without_key {
        let out = run(
            &mut vm,
            102,
            "rear-restore layout apply --yes </dev/null; echo FIRST-RC=$?",
        );
        assert!(
            out.contains("needs a passphrase: give --luks-key FILE") && out.contains("FIRST-RC=1"),
            "first apply did not stop at the LUKS step:\n{out}"
        );
    }
    vm.send(
        "rear-restore layout apply --yes --luks-key /run/test.key; echo APPLY-RC=$?-END-$((5*5))",
    );
    let out = vm.expect("-END-25\n", Duration::from_secs(400));
    let rc = out
        .rsplit("APPLY-RC=")
        .next()
        .unwrap_or("")
        .trim_end_matches("-END-25\n");
    if rc != "0" {
        let log = run(&mut vm, 101, "cat /var/log/rear/recover.log");
        panic!("layout apply failed (rc {rc}):\n{out}\nrecover.log:\n{log}");
    }
    if sc.fail_first_without_key {
        for done in [
            "done before: wipe all signatures on /dev/vda",
            "done before: GPT partition table on /dev/vda",
        ] {
            assert!(out.contains(done), "the rerun lacks {done:?}:\n{out}");
        }
    }
    eprintln!(
        "{name}: layout apply took {:.1} s in the guest",
        started.elapsed().as_secs_f64()
    );
    let mut outputs = BTreeMap::new();
    outputs.insert("plan".to_string(), plan);
    let mut commands: Vec<(String, String)> = vec![
        ("blkid".into(), "blkid -c /dev/null -o export".into()),
        (
            "findmnt".into(),
            "findmnt -n -r -o TARGET,SOURCE,FSTYPE,FSROOT -R /mnt/local".into(),
        ),
        ("backup".into(), "ls /backup".into()),
    ];
    for t in targets {
        let dev = if t.nvme {
            "nvme0n1".to_string()
        } else {
            format!("vd{}", &t.name[..1])
        };
        commands.push((format!("sfdisk {dev}"), format!("sfdisk -J /dev/{dev}")));
    }
    if !layout.md.is_empty() {
        commands.push(("mdadm".into(), "mdadm --detail --export /dev/md0".into()));
    }
    if !layout.lvm.is_empty() {
        commands.push((
            "lvs".into(),
            "lvm lvs --reportformat json --units b --nosuffix -o lv_name,vg_name,lv_size,segtype,pool_lv".into(),
        ));
        commands.push((
            "pvs".into(),
            "lvm pvs --reportformat json -o pv_name,pv_uuid,vg_name".into(),
        ));
    }
    if !layout.luks.is_empty() {
        commands.push((
            "luks".into(),
            format!("cryptsetup luksDump {}", "/dev/vda3"),
        ));
    }
    for (i, (key, cmd)) in commands.iter().enumerate() {
        vm.send(&format!(
            "echo BEGIN-{i}-$((0)); {cmd} 2>&1; echo END-{i}-$((7*7))"
        ));
        vm.expect(&format!("BEGIN-{i}-0\n"), Duration::from_secs(30));
        let text = vm.expect(&format!("END-{i}-49\n"), Duration::from_secs(60));
        let text = text.trim_end_matches(&format!("END-{i}-49\n")).to_string();
        outputs.insert(key.clone(), text);
    }
    vm.send("umount -R /mnt/local; poweroff");
    let status = vm.wait_exit(Duration::from_secs(120));
    assert!(status.success(), "QEMU exit status {status}");
    outputs
}

/// Runs `cmd` in the guest and returns its output (stdout and stderr); `i` makes the
/// marker lines unique.
fn run(vm: &mut Vm, i: usize, cmd: &str) -> String {
    vm.send(&format!(
        "echo BEGIN-{i}-$((0)); {cmd} 2>&1; echo END-{i}-$((7*7))"
    ));
    vm.expect(&format!("BEGIN-{i}-0\n"), Duration::from_secs(30));
    let text = vm.expect(&format!("END-{i}-49\n"), Duration::from_secs(60));
    text.trim_end_matches(&format!("END-{i}-49\n")).to_string()
}

/// `KEY=value` blocks of `blkid -o export`, by device.
fn blkid(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for block in text.split("\n\n") {
        let kv: BTreeMap<String, String> = block
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(dev) = kv.get("DEVNAME") {
            out.insert(dev.clone(), kv);
        }
    }
    out
}

/// Checks partitions, file systems, swap and mounts against the layout, with disk and
/// partition paths renamed by `renames` (old disk -> new disk).
fn check(name: &str, out: &BTreeMap<String, String>, renames: &[(&str, &str)]) {
    let (_, layout) = fixture(name);
    let rename = |dev: &str| -> String {
        for (old, new) in renames {
            if dev == *old {
                return new.to_string();
            }
            if let Some(num) = dev
                .strip_prefix(old)
                .and_then(|n| n.trim_start_matches('p').parse::<u32>().ok())
            {
                return partition_path(new, num);
            }
        }
        dev.to_string()
    };
    // Partition tables: exact starts, sizes (the last one may have grown), types, UUIDs.
    for d in &layout.disks {
        let new = rename(&d.device);
        let key = format!("sfdisk {}", new.trim_start_matches("/dev/"));
        let text = &out[&key];
        let json: serde_json::Value =
            serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{key}: {e}:\n{text}"));
        let pt = &json["partitiontable"];
        let table = d.table.as_ref().unwrap();
        assert_eq!(pt["label"], "gpt", "{key}");
        assert_eq!(pt["id"].as_str().unwrap(), table.id, "{key}");
        let parts = pt["partitions"].as_array().unwrap();
        assert_eq!(parts.len(), table.partitions.len(), "{key}:\n{text}");
        let last = table.partitions.iter().map(|p| p.number).max().unwrap();
        for (p, q) in table.partitions.iter().zip(parts) {
            assert_eq!(q["node"].as_str().unwrap(), rename(&p.device), "{key}");
            assert_eq!(q["start"].as_u64().unwrap(), p.start, "{key} {}", p.device);
            if p.number != last {
                assert_eq!(q["size"].as_u64().unwrap(), p.size, "{key} {}", p.device);
            } else {
                assert!(q["size"].as_u64().unwrap() >= p.size, "{key} {}", p.device);
            }
            assert_eq!(q["type"].as_str().unwrap(), p.type_, "{key} {}", p.device);
            assert_eq!(q["uuid"].as_str().unwrap(), p.uuid, "{key} {}", p.device);
            if !p.name.is_empty() {
                assert_eq!(q["name"].as_str().unwrap(), p.name, "{key} {}", p.device);
            }
        }
    }
    let ids = blkid(&out["blkid"]);
    for f in &layout.filesystems {
        let dev = rename(&f.device);
        let b = ids
            .get(&dev)
            .unwrap_or_else(|| panic!("blkid lacks {dev}:\n{}", out["blkid"]));
        assert_eq!(b["UUID"], f.uuid, "{dev}");
        assert_eq!(b["TYPE"], f.fstype.as_str(), "{dev}");
        if !f.label.is_empty() {
            assert_eq!(b["LABEL"], f.label, "{dev}");
        }
    }
    for s in &layout.swap {
        let dev = rename(&s.device);
        let b = &ids[&dev];
        assert_eq!(b["TYPE"], "swap", "{dev}");
        assert_eq!(b["UUID"], s.uuid, "{dev}");
    }
    for l in &layout.luks {
        let b = ids
            .get(&rename(&l.device))
            .unwrap_or_else(|| panic!("blkid lacks {}:\n{}", l.device, out["blkid"]));
        assert_eq!(b["TYPE"], "crypto_LUKS");
        assert_eq!(b["UUID"], l.uuid);
        let dump = &out["luks"];
        let version = l.version.to_string();
        for (key, want) in [
            ("Version:", &version),
            ("Label:", &l.label),
            ("cipher:", &l.cipher),
            ("PBKDF:", &l.pbkdf),
        ] {
            assert!(
                dump.lines().any(|line| {
                    let line = line.trim();
                    line.starts_with(key) && line.ends_with(want.as_str())
                }),
                "luksDump lacks {key} {want}:\n{dump}"
            );
        }
    }
    for m in &layout.md {
        let text = &out["mdadm"];
        assert!(text.contains(&format!("MD_LEVEL={}", m.level)), "{text}");
        assert!(text.contains(&format!("MD_UUID={}", m.uuid)), "{text}");
        assert!(
            text.contains(&format!("MD_METADATA={}", m.metadata)),
            "{text}"
        );
        for member in &m.members {
            assert!(
                text.contains(&format!("={}\n", rename(member))),
                "{member}: {text}"
            );
        }
    }
    for vg in &layout.lvm {
        let lvs: serde_json::Value = serde_json::from_str(out["lvs"].trim()).unwrap();
        let rows = lvs["report"][0]["lv"].as_array().unwrap();
        for lv in &vg.lvs {
            let row = rows
                .iter()
                .find(|r| r["lv_name"] == lv.name.as_str() && r["vg_name"] == vg.name.as_str())
                .unwrap_or_else(|| panic!("lvs lacks {}/{}: {}", vg.name, lv.name, out["lvs"]));
            assert_eq!(
                row["lv_size"].as_str().unwrap(),
                lv.size.to_string(),
                "{}",
                lv.name
            );
            let seg = match &lv.kind {
                rear_model::layout::model::LvKind::Linear => "linear",
                rear_model::layout::model::LvKind::ThinPool { .. } => "thin-pool",
                rear_model::layout::model::LvKind::Thin { .. } => "thin",
                other => panic!("{other:?}"),
            };
            assert_eq!(row["segtype"], seg, "{}", lv.name);
        }
        for pv in &vg.pvs {
            assert!(
                out["pvs"].contains(&pv.uuid),
                "PV UUID {}: {}",
                pv.uuid,
                out["pvs"]
            );
        }
    }
    // Mounts: every saved mount point is mounted below /mnt/local from the right device and
    // subvolume.
    let mounts = &out["findmnt"];
    for m in &layout.mounts {
        let target = format!("/mnt/local{}", if m.target == "/" { "" } else { &m.target });
        let line = mounts
            .lines()
            .find(|l| l.split(' ').next() == Some(target.as_str()))
            .unwrap_or_else(|| panic!("{target} not mounted:\n{mounts}"));
        let dev = rename(&m.device);
        let fields: Vec<&str> = line.split(' ').collect();
        // btrfs sources carry the subvolume: /dev/nvme0n1p2[/@].
        let source = fields[1].split('[').next().unwrap_or_default();
        // findmnt names LVs and LUKS by /dev/mapper; partitions by their node.
        assert!(
            source == dev || dev.starts_with("/dev/mapper/"),
            "{target}: {line} (want {dev})"
        );
        if !m.subvolume.is_empty() {
            assert_eq!(fields[3], format!("/{}", m.subvolume), "{line}");
        }
    }
}

const GIB: u64 = 1 << 30;

fn virtio(name: &'static str, size: u64, serial: &'static str) -> Target {
    Target {
        name,
        size,
        nvme: false,
        serial,
    }
}

#[test]
fn layout_apply_gpt_esp_ext4_swap_renamed_to_virtio() {
    if !crate::preflight() {
        return;
    }
    // A mounted disk (as the backup disk is) of the same size is never a target, so the plan
    // is not ambiguous and vdb keeps its file system.
    let out = apply_in_vm(
        "gpt-esp-ext4-swap",
        &[
            virtio("a.img", GIB, "NEW-1"),
            virtio("b.img", GIB, "BACKUP"),
        ],
        &Scenario {
            prepare: Some(
                "modprobe ext4; mkfs.ext4 -q -L BACKUP /dev/vdb && mkdir -p /backup && mount /dev/vdb /backup && touch /backup/keep",
            ),
            ..Scenario::default()
        },
    );
    check("gpt-esp-ext4-swap", &out, &[("/dev/sda", "/dev/vda")]);
    assert!(out["plan"].contains("\"by\": \"size\""), "{}", out["plan"]);
    assert!(out["backup"].contains("keep"), "{}", out["backup"]);
}

#[test]
fn layout_apply_raid1_lvm_thin_xfs_by_mapping() {
    if !crate::preflight() {
        return;
    }
    // Two equal blank disks: only a mapping can say which is which.
    let out = apply_in_vm(
        "raid1-lvm-xfs",
        &[virtio("a.img", GIB, "NEW-A"), virtio("b.img", GIB, "NEW-B")],
        &Scenario {
            mapping: Some("/dev/sda /dev/vda\nSRC-B /dev/vdb"),
            ..Scenario::default()
        },
    );
    check(
        "raid1-lvm-xfs",
        &out,
        &[("/dev/sda", "/dev/vda"), ("/dev/sdb", "/dev/vdb")],
    );
}

#[test]
fn layout_apply_luks2_lvm_ext4_with_key_file_after_a_failed_run() {
    if !crate::preflight() {
        return;
    }
    let out = apply_in_vm(
        "luks2-lvm-ext4",
        &[virtio("a.img", GIB, "NEW-1")],
        &Scenario {
            fail_first_without_key: true,
            ..Scenario::default()
        },
    );
    check("luks2-lvm-ext4", &out, &[("/dev/sda", "/dev/vda")]);
}

#[test]
fn layout_apply_btrfs_subvolumes_on_larger_nvme() {
    if !crate::preflight() {
        return;
    }
    let out = apply_in_vm(
        "btrfs-subvolumes",
        &[Target {
            name: "n.img",
            size: 2 * GIB,
            nvme: true,
            serial: "NEW-NVME",
        }],
        &Scenario::default(),
    );
    check("btrfs-subvolumes", &out, &[("/dev/vda", "/dev/nvme0n1")]);
    assert!(out["plan"].contains("/dev/nvme0n1p2"), "{}", out["plan"]);
}
