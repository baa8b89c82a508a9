//! Regenerates the captured layout fixtures in `tests/fixtures/layout/<name>/` (ignored:
//! run on purpose, see tests/fixtures/layout/README.md).
//!
//! Each test boots the rescue initrd of this machine with blank disks, runs
//! `tests/fixtures/layout/create.sh <name>` in the guest (built into the image by a recipe
//! written here), which builds the layout, captures the tool outputs and prints them as a
//! base64 tar.gz between marker lines; the test unpacks that into the fixture directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::boot::build_initrd;
use crate::qemu::{Vm, kernel_args};

/// Disk size: small, so mkfs and mdadm are quick under TCG.
const DISK_SIZE: u64 = 1 << 30;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/layout")
}

/// The recipe that adds the script, the storage tools and the kernel modules.
fn recipe(dir: &Path) -> PathBuf {
    let script = fixture_dir().join("create.sh");
    let text = format!(
        r#"description = "layout fixtures: storage tools, modules and create.sh"
programs = ["awk", "base64", "gzip", "tar", "sfdisk", "mkswap", "swapon", "mdadm", "lvm",
  "cryptsetup", "mkfs.xfs", "xfs_info", "xfs_db", "xfs_spaceman", "mkfs.btrfs", "btrfs",
  "mkfs.vfat", "mkfs.ext4", "dumpe2fs", "chattr", "lsattr", "findmnt", "lsblk", "blkid",
  "modprobe", "sort", "uname"]
files = ["{}"]
modules = ["ext4", "md_mod", "raid1", "dm_mod", "dm_crypt", "dm_thin_pool", "xfs", "btrfs", "vfat",
  "nvme", "virtio_blk",
  {{ name = "xts", optional = true }}, {{ name = "aes_generic", optional = true }},
  {{ name = "aesni_intel", optional = true }}, {{ name = "algif_skcipher", optional = true }},
  {{ name = "af_alg", optional = true }}, {{ name = "sha256_generic", optional = true }},
  {{ name = "crc32c_generic", optional = true }}, {{ name = "nls_cp437", optional = true }},
  {{ name = "nls_ascii", optional = true }}, {{ name = "nls_utf8", optional = true }}, {{ name = "nls_iso8859_1", optional = true }}]
"#,
        script.display()
    );
    let path = dir.join("layout-fixtures.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn blank_disk(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(format!("{name}.img"));
    std::fs::File::create(&p)
        .unwrap()
        .set_len(DISK_SIZE)
        .unwrap();
    p
}

/// Boots the guest with `disks` (QEMU argument pairs), runs create.sh `name` and unpacks
/// the outputs into the fixture directory.
fn generate(name: &str, disks: &[(&str, &str)]) {
    if !crate::preflight() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let recipe = recipe(tmp.path());
    let out = tmp.path().join("out");
    let (kernel, initrd, release) = build_initrd(
        &out,
        &[
            "--net",
            "none",
            "--ssh",
            "off",
            "--recipe",
            recipe.to_str().unwrap(),
        ],
    );
    let mut args = kernel_args(&kernel, &initrd, "rear.net=none", true);
    args.extend(["-cpu".into(), "max".into()]);
    for (i, (kind, serial)) in disks.iter().enumerate() {
        let img = blank_disk(tmp.path(), &format!("d{i}"));
        args.push("-drive".into());
        args.push(format!("file={},if=none,id=d{i},format=raw", img.display()));
        args.push("-device".into());
        args.push(match *kind {
            "nvme" => format!("nvme,serial={serial},drive=d{i}"),
            _ => format!("virtio-blk-pci,drive=d{i},serial={serial}"),
        });
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut vm = Vm::start(&format!("layout_fixture_{name}"), &argv);
    vm.expect(
        &format!("rear rescue ready {release}"),
        Duration::from_secs(180),
    );
    vm.expect("RESCUE", Duration::from_secs(30));
    let script = fixture_dir().join("create.sh");
    // On failure the marker is printed too (split so the echoed command line does not
    // hold it), followed by FAILED.
    vm.send(&format!(
        "bash {} {name} || echo '=== FIXTURE'' BEGIN {name} === FAILED'",
        script.display()
    ));
    let begin = format!("=== FIXTURE BEGIN {name} ===");
    let end = format!("=== FIXTURE END {name} ===");
    // The echo of the command line holds neither marker with the name in it.
    let before = vm.expect(&begin, Duration::from_secs(900));
    let rest = vm.expect("\n", Duration::from_secs(10));
    assert!(
        !rest.contains("FAILED"),
        "create.sh {name} failed:\n{before}"
    );
    let blob = vm.expect(&end, Duration::from_secs(120));
    let b64: String = blob
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("==="))
        .collect::<Vec<_>>()
        .join("\n");
    vm.send("poweroff");
    vm.wait_exit(Duration::from_secs(60));

    let dir = fixture_dir().join(name);
    // Keep layout.json (the golden file), replace the raw outputs.
    if dir.exists() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().unwrap() != "layout.json" {
                std::fs::remove_file(&p).unwrap();
            }
        }
    }
    std::fs::create_dir_all(&dir).unwrap();
    let tgz = tmp.path().join("out.tgz");
    let mut child = Command::new("base64")
        .args(["-d", "-i"])
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&tgz).unwrap())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b64.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "base64 -d failed");
    let st = Command::new("tar")
        .arg("xzf")
        .arg(&tgz)
        .arg("-C")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success(), "tar failed");
    eprintln!("wrote {}", dir.display());
}

#[test]
#[ignore = "regenerates fixtures; see tests/fixtures/layout/README.md"]
fn layout_fixture_gpt_esp_ext4() {
    generate("gpt-esp-ext4", &[("virtio", "GPTDISK0001")]);
}

#[test]
#[ignore = "regenerates fixtures; see tests/fixtures/layout/README.md"]
fn layout_fixture_mbr() {
    generate("mbr", &[("virtio", "MBRDISK0001")]);
}

#[test]
#[ignore = "regenerates fixtures; see tests/fixtures/layout/README.md"]
fn layout_fixture_raid1_lvm_xfs() {
    generate(
        "raid1-lvm-xfs",
        &[("virtio", "RAIDDISK0001"), ("virtio", "RAIDDISK0002")],
    );
}

#[test]
#[ignore = "regenerates fixtures; see tests/fixtures/layout/README.md"]
fn layout_fixture_luks2_lvm_ext4() {
    generate("luks2-lvm-ext4", &[("virtio", "LUKSDISK0001")]);
}

#[test]
#[ignore = "regenerates fixtures; see tests/fixtures/layout/README.md"]
fn layout_fixture_btrfs_subvolumes() {
    generate("btrfs-subvolumes", &[("virtio", "BTRFSDISK0001")]);
}

#[test]
#[ignore = "regenerates fixtures; see tests/fixtures/layout/README.md"]
fn layout_fixture_nvme() {
    generate("nvme", &[("nvme", "NVME0001")]);
}
