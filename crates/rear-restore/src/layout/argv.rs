//! The commands of each step: argv and stdin, a pure function of the step and the
//! [`Context`], so the exact commands are tested without disks.

use crate::plan::{Action, Step};
use rear_model::layout::model::{FsType, LvKind, TableKind};

use super::{Context, Error};

/// One command of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Written to stdin.
    pub input: Option<String>,
    /// The Debian package providing the program, for the error when it is missing.
    pub package: &'static str,
}

impl Cmd {
    fn new(package: &'static str, argv: &[&str]) -> Cmd {
        Cmd {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            input: None,
            package,
        }
    }

    fn arg(mut self, a: impl Into<String>) -> Cmd {
        self.argv.push(a.into());
        self
    }

    fn args<S: Into<String>>(mut self, a: impl IntoIterator<Item = S>) -> Cmd {
        self.argv.extend(a.into_iter().map(Into::into));
        self
    }

    fn input(mut self, s: String) -> Cmd {
        self.input = Some(s);
        self
    }
}

/// The sfdisk script for a table: the label, its id, the first usable sector, then each
/// partition with start, size, type, UUID, name and attributes (sfdisk(8), "Input format").
pub fn sfdisk_script(
    disk: &str,
    sector_size: u32,
    table: &rear_model::layout::model::PartitionTable,
) -> String {
    let mut s = String::new();
    s.push_str(match table.kind {
        TableKind::Gpt => "label: gpt\n",
        TableKind::Dos => "label: dos\n",
    });
    s.push_str(&format!("label-id: {}\n", table.id));
    s.push_str(&format!("device: {disk}\nunit: sectors\n"));
    if let Some(first) = table.first_lba {
        s.push_str(&format!("first-lba: {first}\n"));
    }
    s.push_str(&format!("sector-size: {sector_size}\n\n"));
    for p in &table.partitions {
        let mut fields = vec![
            format!("start={}", p.start),
            format!("size={}", p.size),
            format!("type={}", p.type_),
        ];
        if table.kind == TableKind::Gpt {
            if !p.uuid.is_empty() {
                fields.push(format!("uuid={}", p.uuid));
            }
            if !p.name.is_empty() {
                fields.push(format!("name=\"{}\"", p.name.replace('"', "")));
            }
            if !p.attrs.is_empty() {
                fields.push(format!("attrs=\"{}\"", p.attrs));
            }
        } else if p.flags.contains(&rear_model::layout::model::PartFlag::Boot) {
            fields.push("bootable".into());
        }
        s.push_str(&format!("{} : {}\n", p.device, fields.join(", ")));
    }
    s
}

/// ext features the kernel sets while mounted or that mkfs cannot be asked for.
const EXT_RUNTIME_FEATURES: &[&str] = &[
    "needs_recovery",
    "orphan_present",
    "recover",
    "journal_dev",
    "snapshot_bitmap",
];
/// ext features that mke2fs may turn on by default: switched off (`^name`) when the saved file
/// system did not have them, so the new one has the same feature set.
const EXT_DEFAULT_FEATURES: &[&str] = &[
    "metadata_csum",
    "metadata_csum_seed",
    "64bit",
    "orphan_file",
    "huge_file",
    "dir_nlink",
    "extra_isize",
    "flex_bg",
];

/// The commands of one step.
pub fn commands(step: &Step, ctx: &Context) -> Result<Vec<Cmd>, Error> {
    let lvm = |args: &[&str]| Cmd::new("lvm2", &["lvm"]).args(args.iter().copied());
    let kib = |bytes: u64| format!("{}k", bytes / 1024);
    Ok(match &step.action {
        Action::Wipe { disk } => {
            vec![Cmd::new("util-linux", &["wipefs", "--all", "--force"]).arg(disk)]
        }
        Action::Partition {
            disk,
            sector_size,
            table,
        } => vec![
            // sfdisk tells the kernel about the new partitions; devtmpfs makes their nodes.
            Cmd::new(
                "fdisk",
                &["sfdisk", "--wipe", "always", "--wipe-partitions", "always"],
            )
            .arg(disk)
            .input(sfdisk_script(disk, *sector_size, table)),
        ],
        Action::Md { array } => {
            let mut c = Cmd::new("mdadm", &["mdadm", "--create"])
                .arg(&array.device)
                .args(["--run", "--force"])
                .arg(format!("--metadata={}", array.metadata))
                .arg(format!("--level={}", array.level))
                .arg(format!("--raid-devices={}", array.raid_devices))
                .arg(format!("--uuid={}", array.uuid));
            if let Some((host, name)) = array.name.split_once(':') {
                c = c
                    .arg(format!("--homehost={host}"))
                    .arg(format!("--name={name}"));
            } else if !array.name.is_empty() {
                c = c.arg(format!("--name={}", array.name));
            }
            if let Some(chunk) = array.chunk_kib {
                c = c.arg(format!("--chunk={chunk}"));
            }
            if !array.layout.is_empty() {
                c = c.arg(format!("--layout={}", array.layout));
            }
            if !array.spares.is_empty() {
                c = c.arg(format!("--spare-devices={}", array.spares.len()));
            }
            // mdadm asks before using a device that looks used; the wipe made sure it is not.
            vec![
                c.args(array.members.iter().chain(&array.spares).cloned())
                    .input("y\n".into()),
            ]
        }
        Action::Luks { luks } => {
            let key = ctx
                .luks_key
                .as_ref()
                .ok_or_else(|| Error::NoKey {
                    device: luks.device.clone(),
                })?
                .display()
                .to_string();
            let mut c = Cmd::new(
                "cryptsetup-bin",
                &["cryptsetup", "luksFormat", "--batch-mode"],
            )
            .arg(format!("--type=luks{}", luks.version))
            .arg(format!("--cipher={}", luks.cipher))
            .arg(format!("--key-size={}", luks.key_size))
            .arg(format!("--hash={}", luks.hash))
            .arg(format!("--uuid={}", luks.uuid));
            if !luks.pbkdf.is_empty() && luks.version == 2 {
                c = c.arg(format!("--pbkdf={}", luks.pbkdf));
            }
            if let Some(s) = luks.sector_size.filter(|_| luks.version == 2) {
                c = c.arg(format!("--sector-size={s}"));
            }
            if !luks.label.is_empty() && luks.version == 2 {
                c = c.arg(format!("--label={}", luks.label));
            }
            vec![
                c.arg(format!("--key-file={key}")).arg(&luks.device),
                Cmd::new("cryptsetup-bin", &["cryptsetup", "open"])
                    .arg(format!("--key-file={key}"))
                    .arg(&luks.device)
                    .arg(&luks.name),
            ]
        }
        Action::Pv { device, uuid } => vec![
            lvm(&["pvcreate", "--yes", "-ff", "--norestorefile"])
                .arg(format!("--uuid={uuid}"))
                .arg(device),
        ],
        Action::Vg {
            name,
            extent_size,
            pvs,
        } => vec![
            lvm(&["vgcreate", "--yes"])
                .arg(format!("--physicalextentsize={}", kib(*extent_size)))
                .arg(name)
                .args(pvs.iter().cloned()),
        ],
        Action::Lv { vg, lv } => {
            // Thin pools and thin volumes are zeroed by LVM itself and refuse
            // --wipesignatures.
            let c = match &lv.kind {
                LvKind::ThinPool { .. } | LvKind::Thin { .. } => lvm(&["lvcreate", "--yes"]),
                _ => lvm(&["lvcreate", "--yes", "--wipesignatures=y"]),
            };
            let c = match &lv.kind {
                LvKind::Linear => c.arg(format!("--size={}", kib(lv.size))),
                LvKind::Striped {
                    stripes,
                    stripe_size,
                } => c
                    .arg(format!("--size={}", kib(lv.size)))
                    .arg(format!("--stripes={stripes}"))
                    .arg(format!("--stripesize={}", kib(*stripe_size))),
                LvKind::Raid { level, stripes } => {
                    let c = c
                        .arg(format!("--type={level}"))
                        .arg(format!("--size={}", kib(lv.size)));
                    if level == "raid1" {
                        c.arg(format!("--mirrors={}", stripes.saturating_sub(1)))
                    } else {
                        c.arg(format!("--stripes={stripes}"))
                    }
                }
                LvKind::ThinPool {
                    chunk_size,
                    metadata_size,
                } => c
                    .arg("--type=thin-pool")
                    .arg(format!("--size={}", kib(lv.size)))
                    .arg(format!("--chunksize={}", kib(*chunk_size)))
                    .arg(format!("--poolmetadatasize={}", kib(*metadata_size))),
                LvKind::Thin { pool } => c
                    .arg("--type=thin")
                    .arg(format!("--virtualsize={}", kib(lv.size)))
                    .arg(format!("--thinpool={pool}")),
            };
            vec![c.arg(format!("--name={}", lv.name)).arg(vg)]
        }
        Action::Mkfs { fs } => vec![mkfs(fs)],
        Action::Mkswap { swap } => {
            let mut c =
                Cmd::new("util-linux", &["mkswap", "--force"]).arg(format!("--uuid={}", swap.uuid));
            if !swap.label.is_empty() {
                c = c.arg(format!("--label={}", swap.label));
            }
            vec![c.arg(&swap.device)]
        }
        Action::Subvolumes {
            device,
            subvolumes,
            default,
        } => {
            let dir = format!("{}/btrfs-top", ctx.scratch);
            let mut v = vec![
                Cmd::new("coreutils", &["mkdir", "-p"]).arg(&dir),
                Cmd::new("mount", &["mount", "-t", "btrfs", "-o", "subvolid=5"])
                    .arg(device)
                    .arg(&dir),
            ];
            for s in subvolumes {
                v.push(
                    Cmd::new("btrfs-progs", &["btrfs", "subvolume", "create"])
                        .arg(format!("{dir}/{}", s.path)),
                );
                if s.nodatacow {
                    v.push(
                        Cmd::new("e2fsprogs", &["chattr", "+C"]).arg(format!("{dir}/{}", s.path)),
                    );
                }
            }
            if !default.is_empty() {
                v.push(
                    Cmd::new("btrfs-progs", &["btrfs", "subvolume", "set-default"])
                        .arg(format!("{dir}/{default}")),
                );
            }
            v.push(Cmd::new("mount", &["umount"]).arg(&dir));
            v
        }
        Action::Mount {
            device,
            fstype,
            target,
            options,
            subvolume,
        } => {
            let dir = format!(
                "{}{}",
                ctx.mount_root,
                if target == "/" { "" } else { target }
            );
            let mut opts: Vec<String> = options
                .split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_string)
                .collect();
            if !subvolume.is_empty() {
                opts.push(format!("subvol={subvolume}"));
            }
            let mut c = Cmd::new("mount", &["mount", "-t", fstype.as_str()]);
            if !opts.is_empty() {
                c = c.arg("-o").arg(opts.join(","));
            }
            vec![
                Cmd::new("coreutils", &["mkdir", "-p"]).arg(&dir),
                c.arg(device).arg(dir),
            ]
        }
    })
}

/// mkfs with the saved UUID, label and options.
fn mkfs(fs: &rear_model::layout::model::Filesystem) -> Cmd {
    let o = &fs.options;
    match fs.fstype {
        FsType::Ext2 | FsType::Ext3 | FsType::Ext4 => {
            let mut c = Cmd::new(
                "e2fsprogs",
                &[&format!("mkfs.{}", fs.fstype.as_str()), "-F", "-q"],
            )
            .arg("-U")
            .arg(&fs.uuid);
            if !fs.label.is_empty() {
                c = c.arg("-L").arg(&fs.label);
            }
            if let Some(b) = o.block_size {
                c = c.arg("-b").arg(b.to_string());
            }
            if let Some(i) = o.inode_size {
                c = c.arg("-I").arg(i.to_string());
            }
            if !o.features.is_empty() {
                let mut f: Vec<String> = o
                    .features
                    .iter()
                    .filter(|f| !EXT_RUNTIME_FEATURES.contains(&f.as_str()))
                    .cloned()
                    .collect();
                for d in EXT_DEFAULT_FEATURES {
                    if !o.features.iter().any(|f| f == d) {
                        f.push(format!("^{d}"));
                    }
                }
                c = c.arg("-O").arg(f.join(","));
            }
            c.arg(&fs.device)
        }
        FsType::Xfs => {
            let mut c =
                Cmd::new("xfsprogs", &["mkfs.xfs", "-f", "-m"]).arg(format!("uuid={}", fs.uuid));
            if !fs.label.is_empty() {
                c = c.arg("-L").arg(&fs.label);
            }
            if let Some(b) = o.block_size {
                c = c.arg("-b").arg(format!("size={b}"));
            }
            if let Some(s) = o.sector_size {
                c = c.arg("-s").arg(format!("size={s}"));
            }
            c.arg(&fs.device)
        }
        FsType::Btrfs => {
            let mut c = Cmd::new("btrfs-progs", &["mkfs.btrfs", "-f", "-U"]).arg(&fs.uuid);
            if !fs.label.is_empty() {
                c = c.arg("-L").arg(&fs.label);
            }
            if !o.data_profile.is_empty() {
                c = c.arg("-d").arg(&o.data_profile);
            }
            if !o.metadata_profile.is_empty() {
                c = c.arg("-m").arg(&o.metadata_profile);
            }
            c.arg(&fs.device)
        }
        FsType::Vfat => {
            let mut c = Cmd::new("dosfstools", &["mkfs.vfat", "-i"]).arg(fs.uuid.replace('-', ""));
            if !fs.label.is_empty() {
                c = c.arg("-n").arg(&fs.label);
            }
            if let Some(f) = o.fat_size {
                c = c.arg("-F").arg(f.to_string());
            }
            c.arg(&fs.device)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{default_context, step};
    use super::*;
    use rear_model::layout::model::{
        Filesystem, FsOptions, Luks, MdArray, Partition, PartitionTable, Subvolume,
    };

    fn argv(action: Action, ctx: &Context) -> Vec<String> {
        commands(&step(action), ctx)
            .unwrap()
            .iter()
            .map(|c| c.argv.join(" "))
            .collect()
    }

    #[test]
    fn sfdisk_script_gpt_and_dos() {
        let table = PartitionTable {
            kind: TableKind::Gpt,
            id: "0D5B8C1E-1F8A-4E6B-9A41-7E4C7C1B2A10".into(),
            first_lba: Some(34),
            last_lba: None,
            partitions: vec![Partition {
                device: "/dev/vda1".into(),
                number: 1,
                start: 2048,
                size: 4096,
                start_bytes: 2048 * 512,
                size_bytes: 4096 * 512,
                type_: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B".into(),
                uuid: "A0A0A0A0-0000-4000-8000-000000000001".into(),
                name: "EFI system".into(),
                attrs: "RequiredPartition".into(),
                flags: vec![],
            }],
        };
        expect_test::expect![[r#"
            label: gpt
            label-id: 0D5B8C1E-1F8A-4E6B-9A41-7E4C7C1B2A10
            device: /dev/vda
            unit: sectors
            first-lba: 34
            sector-size: 512

            /dev/vda1 : start=2048, size=4096, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=A0A0A0A0-0000-4000-8000-000000000001, name="EFI system", attrs="RequiredPartition"
        "#]]
        .assert_eq(&sfdisk_script("/dev/vda", 512, &table));
        let mut dos = table.clone();
        dos.kind = TableKind::Dos;
        dos.id = "0x1234abcd".into();
        dos.first_lba = None;
        dos.partitions[0].type_ = "83".into();
        dos.partitions[0].flags = vec![rear_model::layout::model::PartFlag::Boot];
        let s = sfdisk_script("/dev/vda", 512, &dos);
        assert!(s.contains("label: dos\nlabel-id: 0x1234abcd\n"), "{s}");
        assert!(
            s.ends_with("/dev/vda1 : start=2048, size=4096, type=83, bootable\n"),
            "{s}"
        );
    }

    #[test]
    fn commands_md_luks_lvm() {
        let ctx = Context {
            luks_key: Some("/run/key".into()),
            ..default_context(None)
        };
        let md = MdArray {
            device: "/dev/md0".into(),
            name: "db1:root".into(),
            uuid: "a:b:c:d".into(),
            level: "raid1".into(),
            metadata: "1.2".into(),
            raid_devices: 2,
            members: vec!["/dev/vda2".into(), "/dev/vdb2".into()],
            ..MdArray::default()
        };
        assert_eq!(
            argv(Action::Md { array: md }, &ctx),
            [
                "mdadm --create /dev/md0 --run --force --metadata=1.2 --level=raid1 --raid-devices=2 --uuid=a:b:c:d --homehost=db1 --name=root /dev/vda2 /dev/vdb2"
            ]
        );
        let luks = Luks {
            device: "/dev/vda3".into(),
            name: "cryptroot".into(),
            version: 2,
            cipher: "aes-xts-plain64".into(),
            key_size: 512,
            hash: "sha256".into(),
            pbkdf: "argon2id".into(),
            sector_size: Some(512),
            uuid: "c0ffee00-0000-4000-8000-000000000000".into(),
            label: "root".into(),
        };
        assert_eq!(
            argv(Action::Luks { luks: luks.clone() }, &ctx),
            [
                "cryptsetup luksFormat --batch-mode --type=luks2 --cipher=aes-xts-plain64 --key-size=512 --hash=sha256 --uuid=c0ffee00-0000-4000-8000-000000000000 --pbkdf=argon2id --sector-size=512 --label=root --key-file=/run/key /dev/vda3",
                "cryptsetup open --key-file=/run/key /dev/vda3 cryptroot",
            ]
        );
        let e = commands(&step(Action::Luks { luks }), &default_context(None)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "LUKS container /dev/vda3 needs a passphrase: give --luks-key FILE or run on a terminal"
        );
        let lv = |name: &str, size: u64, kind| rear_model::layout::model::LogicalVolume {
            name: name.into(),
            uuid: String::new(),
            size,
            kind,
        };
        let pool = LvKind::ThinPool {
            chunk_size: 64 << 10,
            metadata_size: 4 << 20,
        };
        assert_eq!(
            argv(
                Action::Lv {
                    vg: "vg0".into(),
                    lv: lv("pool", 200 << 20, pool)
                },
                &ctx
            ),
            [
                "lvm lvcreate --yes --type=thin-pool --size=204800k --chunksize=64k --poolmetadatasize=4096k --name=pool vg0"
            ]
        );
        assert_eq!(
            argv(
                Action::Lv {
                    vg: "vg0".into(),
                    lv: lv(
                        "srv",
                        1 << 30,
                        LvKind::Thin {
                            pool: "pool".into()
                        }
                    )
                },
                &ctx
            ),
            [
                "lvm lvcreate --yes --type=thin --virtualsize=1048576k --thinpool=pool --name=srv vg0"
            ]
        );
        assert_eq!(
            argv(
                Action::Vg {
                    name: "vg0".into(),
                    extent_size: 4 << 20,
                    pvs: vec!["/dev/md0".into()]
                },
                &ctx
            ),
            ["lvm vgcreate --yes --physicalextentsize=4096k vg0 /dev/md0"]
        );
    }

    #[test]
    fn commands_mkfs_keep_uuid_label_and_options() {
        let ctx = default_context(None);
        let fs = |fstype, options| Filesystem {
            device: "/dev/vda2".into(),
            fstype,
            uuid: "5a1f7a1e-3c2b-4d5e-8f90-123456789abc".into(),
            label: "root".into(),
            options,
        };
        let ext = FsOptions {
            block_size: Some(4096),
            inode_size: Some(256),
            features: vec![
                "extent".into(),
                "has_journal".into(),
                "metadata_csum".into(),
                "needs_recovery".into(),
            ],
            ..FsOptions::default()
        };
        assert_eq!(
            argv(
                Action::Mkfs {
                    fs: fs(FsType::Ext4, ext)
                },
                &ctx
            ),
            [
                "mkfs.ext4 -F -q -U 5a1f7a1e-3c2b-4d5e-8f90-123456789abc -L root -b 4096 -I 256 -O extent,has_journal,metadata_csum,^metadata_csum_seed,^64bit,^orphan_file,^huge_file,^dir_nlink,^extra_isize,^flex_bg /dev/vda2"
            ]
        );
        let xfs = FsOptions {
            block_size: Some(4096),
            sector_size: Some(512),
            ..FsOptions::default()
        };
        assert_eq!(
            argv(
                Action::Mkfs {
                    fs: fs(FsType::Xfs, xfs)
                },
                &ctx
            ),
            [
                "mkfs.xfs -f -m uuid=5a1f7a1e-3c2b-4d5e-8f90-123456789abc -L root -b size=4096 -s size=512 /dev/vda2"
            ]
        );
        let mut vfat = fs(
            FsType::Vfat,
            FsOptions {
                fat_size: Some(32),
                ..FsOptions::default()
            },
        );
        vfat.uuid = "ABCD-1234".into();
        vfat.label = "EFI".into();
        assert_eq!(
            argv(Action::Mkfs { fs: vfat }, &ctx),
            ["mkfs.vfat -i ABCD1234 -n EFI -F 32 /dev/vda2"]
        );
        assert_eq!(
            argv(
                Action::Subvolumes {
                    device: "/dev/vda2".into(),
                    subvolumes: vec![
                        Subvolume {
                            path: "@".into(),
                            nodatacow: false
                        },
                        Subvolume {
                            path: "@db".into(),
                            nodatacow: true
                        }
                    ],
                    default: "@".into()
                },
                &ctx
            ),
            [
                "mkdir -p /run/rear/btrfs-top",
                "mount -t btrfs -o subvolid=5 /dev/vda2 /run/rear/btrfs-top",
                "btrfs subvolume create /run/rear/btrfs-top/@",
                "btrfs subvolume create /run/rear/btrfs-top/@db",
                "chattr +C /run/rear/btrfs-top/@db",
                "btrfs subvolume set-default /run/rear/btrfs-top/@",
                "umount /run/rear/btrfs-top",
            ]
        );
        assert_eq!(
            argv(
                Action::Mount {
                    device: "/dev/vda2".into(),
                    fstype: FsType::Btrfs,
                    target: "/home".into(),
                    options: "relatime,compress=zstd:3".into(),
                    subvolume: "@home".into()
                },
                &ctx
            ),
            [
                "mkdir -p /mnt/local/home",
                "mount -t btrfs -o relatime,compress=zstd:3,subvol=@home /dev/vda2 /mnt/local/home"
            ]
        );
    }
}
