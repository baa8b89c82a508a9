//! Test helper: a fake sysroot with kernel modules, devices, loaded modules and firmware.
//!
//! Stage: tests only. Input: a [`FakeKernel`] description. Output: a directory tree with
//! `lib/modules/<kver>/modules.{dep,alias,softdep,builtin,order}` (as depmod would write them
//! for the described modules), tiny `.ko` files with a `.modinfo` section, `sys/devices/...
//! /modalias` files, `proc/modules` and `lib/firmware/...`.

use std::collections::HashSet;
use std::io;
use std::path::Path;

/// One module of the fake kernel.
#[derive(Debug, Clone, Default)]
pub struct FakeModule {
    /// File name without `.ko` (may contain `-`, as `crc32c-intel`).
    pub file: String,
    /// Directory below the kernel's module directory (`kernel/drivers/block`).
    pub dir: String,
    /// Direct dependencies (module names).
    pub deps: Vec<String>,
    /// `alias=` entries (also written to `modules.alias`).
    pub aliases: Vec<String>,
    /// `firmware=` entries.
    pub firmware: Vec<String>,
    /// `softdep pre:` names.
    pub pre: Vec<String>,
    /// `softdep post:` names.
    pub post: Vec<String>,
    /// Compression suffix after `.ko`: `""`, `".xz"` or `".zst"`.
    pub suffix: String,
}

impl FakeModule {
    /// A module at `dir/file.ko`, e.g. `FakeModule::new("kernel/fs/ext4/ext4")`.
    pub fn new(path: &str) -> Self {
        let (dir, file) = path.rsplit_once('/').unwrap_or(("kernel", path));
        FakeModule {
            file: file.to_string(),
            dir: dir.to_string(),
            ..Default::default()
        }
    }

    /// Adds a direct dependency.
    pub fn dep(mut self, name: &str) -> Self {
        self.deps.push(name.to_string());
        self
    }

    /// Adds an alias.
    pub fn alias(mut self, alias: &str) -> Self {
        self.aliases.push(alias.to_string());
        self
    }

    /// Adds a firmware name.
    pub fn firmware(mut self, name: &str) -> Self {
        self.firmware.push(name.to_string());
        self
    }

    /// Adds a `pre:` soft dependency.
    pub fn pre(mut self, name: &str) -> Self {
        self.pre.push(name.to_string());
        self
    }

    /// Adds a `post:` soft dependency.
    pub fn post(mut self, name: &str) -> Self {
        self.post.push(name.to_string());
        self
    }

    /// Stores the file compressed (`".xz"` or `".zst"`); see [`FakeKernel::write_with`].
    pub fn compressed(mut self, suffix: &str) -> Self {
        self.suffix = suffix.to_string();
        self
    }

    /// The normalised module name.
    pub fn name(&self) -> String {
        self.file.replace('-', "_")
    }

    /// Path relative to the kernel's module directory, as `modules.dep` gives it.
    pub fn rel_path(&self) -> String {
        format!("{}/{}.ko{}", self.dir, self.file, self.suffix)
    }

    /// The `.modinfo` entries of the module.
    pub fn modinfo(&self) -> Vec<(String, String)> {
        let mut v = vec![("license".to_string(), "GPL".to_string())];
        for f in &self.firmware {
            v.push(("firmware".into(), f.clone()));
        }
        for a in &self.aliases {
            v.push(("alias".into(), a.clone()));
        }
        if !self.pre.is_empty() || !self.post.is_empty() {
            v.push(("softdep".into(), softdep_text(&self.pre, &self.post)));
        }
        v.push(("depends".into(), self.deps.join(",")));
        v.push(("name".into(), self.name()));
        v.push(("vermagic".into(), "6.1.0-test SMP mod_unload".into()));
        v
    }
}

fn softdep_text(pre: &[String], post: &[String]) -> String {
    let mut s = String::new();
    if !pre.is_empty() {
        s.push_str("pre: ");
        s.push_str(&pre.join(" "));
    }
    if !post.is_empty() {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str("post: ");
        s.push_str(&post.join(" "));
    }
    s
}

/// A tiny relocatable x86-64 ELF with a `.modinfo` section of `key=value\0` entries, like a
/// kernel module (goblin reads it; it cannot be loaded).
pub fn ko(modinfo: &[(String, String)]) -> Vec<u8> {
    use object::write::Object;
    use object::{Architecture, BinaryFormat, Endianness, SectionKind};
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let mut data = Vec::new();
    for (k, v) in modinfo {
        data.extend_from_slice(k.as_bytes());
        data.push(b'=');
        data.extend_from_slice(v.as_bytes());
        data.push(0);
    }
    let id = obj.add_section(
        Vec::new(),
        b".modinfo".to_vec(),
        SectionKind::ReadOnlyString,
    );
    obj.set_section_data(id, data, 1);
    let text = obj.add_section(Vec::new(), b".text".to_vec(), SectionKind::Text);
    obj.set_section_data(text, vec![0xc3u8], 16);
    match obj.write() {
        Ok(bytes) => bytes,
        Err(e) => panic!("writing a fake .ko: {e}"),
    }
}

/// A fake kernel and host around it.
#[derive(Debug, Clone, Default)]
pub struct FakeKernel {
    /// Kernel release (`6.1.0-test`).
    pub kver: String,
    /// Loadable modules, in `modules.order` order.
    pub modules: Vec<FakeModule>,
    /// Built-in module paths (`kernel/drivers/block/loop.ko`).
    pub builtin: Vec<String>,
    /// (sysfs directory below `/sys`, modalias).
    pub devices: Vec<(String, String)>,
    /// Names for `/proc/modules`; `None` writes no such file.
    pub loaded: Option<Vec<String>>,
    /// (path below `/lib/firmware`, bytes).
    pub firmware: Vec<(String, Vec<u8>)>,
}

impl FakeKernel {
    /// An empty kernel of that release.
    pub fn new(kver: &str) -> Self {
        FakeKernel {
            kver: kver.to_string(),
            ..Default::default()
        }
    }

    /// Adds a module.
    pub fn module(mut self, m: FakeModule) -> Self {
        self.modules.push(m);
        self
    }

    /// Adds a built-in module by path (`kernel/drivers/block/loop.ko`).
    pub fn builtin(mut self, path: &str) -> Self {
        self.builtin.push(path.to_string());
        self
    }

    /// Adds a device: `dir` below `/sys` (`devices/pci0000:00/0000:00:03.0`).
    pub fn device(mut self, dir: &str, modalias: &str) -> Self {
        self.devices.push((dir.to_string(), modalias.to_string()));
        self
    }

    /// Marks modules as loaded (written to `/proc/modules`).
    pub fn loaded(mut self, names: &[&str]) -> Self {
        let v = self.loaded.get_or_insert_with(Vec::new);
        v.extend(names.iter().map(|s| s.to_string()));
        self
    }

    /// Adds a firmware file below `/lib/firmware`.
    pub fn firmware(mut self, rel: &str, bytes: &[u8]) -> Self {
        self.firmware.push((rel.to_string(), bytes.to_vec()));
        self
    }

    fn find(&self, name: &str) -> Option<&FakeModule> {
        let name = name.replace('-', "_");
        self.modules.iter().find(|m| m.name() == name)
    }

    /// All dependencies of a module, users before providers (depmod's `modules.dep` order).
    pub fn all_deps(&self, m: &FakeModule) -> Vec<String> {
        fn visit(k: &FakeKernel, name: &str, seen: &mut HashSet<String>, out: &mut Vec<String>) {
            if !seen.insert(name.to_string()) {
                return;
            }
            if let Some(m) = k.find(name) {
                for d in &m.deps {
                    visit(k, d, seen, out);
                }
                out.push(m.name());
            }
        }
        let mut seen = HashSet::from([m.name()]);
        let mut out = Vec::new();
        for d in &m.deps {
            visit(self, d, &mut seen, &mut out);
        }
        out.reverse();
        out
    }

    /// The text of `modules.dep`.
    pub fn modules_dep(&self) -> String {
        let mut s = String::new();
        for m in &self.modules {
            s.push_str(&m.rel_path());
            s.push(':');
            for d in self.all_deps(m) {
                if let Some(dm) = self.find(&d) {
                    s.push(' ');
                    s.push_str(&dm.rel_path());
                }
            }
            s.push('\n');
        }
        s
    }

    /// Writes the tree below `root`, modules uncompressed whatever their suffix says.
    pub fn write(&self, root: &Path) -> io::Result<()> {
        self.write_with(root, |_, b| b.to_vec())
    }

    /// Writes the tree below `root`; `compress(suffix, bytes)` makes the bytes of modules
    /// with a compression suffix.
    pub fn write_with(
        &self,
        root: &Path,
        compress: impl Fn(&str, &[u8]) -> Vec<u8>,
    ) -> io::Result<()> {
        let kdir = root.join("lib/modules").join(&self.kver);
        std::fs::create_dir_all(&kdir)?;
        let mut alias = String::from("# Aliases extracted from modules themselves.\n");
        let mut softdep = String::from("# Soft dependencies extracted from modules themselves.\n");
        let mut order = String::new();
        for m in &self.modules {
            let path = kdir.join(m.rel_path());
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let bytes = ko(&m.modinfo());
            let bytes = if m.suffix.is_empty() {
                bytes
            } else {
                compress(&m.suffix, &bytes)
            };
            std::fs::write(path, bytes)?;
            for a in &m.aliases {
                alias.push_str(&format!("alias {a} {}\n", m.name()));
            }
            if !m.pre.is_empty() || !m.post.is_empty() {
                softdep.push_str(&format!(
                    "softdep {} {}\n",
                    m.name(),
                    softdep_text(&m.pre, &m.post)
                ));
            }
            order.push_str(&format!("{}/{}.ko\n", m.dir, m.file));
        }
        std::fs::write(kdir.join("modules.dep"), self.modules_dep())?;
        std::fs::write(kdir.join("modules.alias"), alias)?;
        std::fs::write(kdir.join("modules.softdep"), softdep)?;
        std::fs::write(kdir.join("modules.order"), order)?;
        let builtin: String = self.builtin.iter().map(|b| format!("{b}\n")).collect();
        std::fs::write(kdir.join("modules.builtin"), builtin)?;
        for (dir, modalias) in &self.devices {
            let d = root.join("sys").join(dir);
            std::fs::create_dir_all(&d)?;
            std::fs::write(d.join("modalias"), format!("{modalias}\n"))?;
        }
        if let Some(loaded) = &self.loaded {
            std::fs::create_dir_all(root.join("proc"))?;
            let text: String = loaded
                .iter()
                .map(|n| format!("{n} 16384 0 - Live 0x0000000000000000\n"))
                .collect();
            std::fs::write(root.join("proc/modules"), text)?;
        }
        for (rel, bytes) in &self.firmware {
            let p = root.join("lib/firmware").join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(p, bytes)?;
        }
        Ok(())
    }
}

/// A small kernel used by several tests: virtio, ext4 with its dependencies and a softdep,
/// a NIC with firmware, a built-in `loop`, and devices for virtio-blk and the NIC.
pub fn sample_kernel(kver: &str) -> FakeKernel {
    FakeKernel::new(kver)
        .module(FakeModule::new("kernel/drivers/virtio/virtio"))
        .module(FakeModule::new("kernel/drivers/virtio/virtio_ring"))
        .module(
            FakeModule::new("kernel/drivers/virtio/virtio_pci")
                .dep("virtio")
                .dep("virtio_ring")
                .alias("pci:v00001AF4d*sv*sd*bc*sc*i*"),
        )
        .module(
            FakeModule::new("kernel/drivers/block/virtio_blk")
                .dep("virtio")
                .dep("virtio_ring")
                .alias("virtio:d00000002v*"),
        )
        .module(FakeModule::new("kernel/lib/crc16"))
        .module(FakeModule::new("kernel/fs/mbcache"))
        .module(FakeModule::new("kernel/fs/jbd2/jbd2"))
        .module(FakeModule::new("kernel/crypto/crc32c_generic").alias("crypto-crc32c"))
        .module(
            FakeModule::new("kernel/fs/ext4/ext4")
                .dep("crc16")
                .dep("mbcache")
                .dep("jbd2")
                .alias("fs-ext4")
                .pre("crypto-crc32c"),
        )
        .module(
            FakeModule::new("kernel/drivers/net/ethernet/realtek/r8169")
                .alias("pci:v000010ECd00008168sv*sd*bc*sc*i*")
                .firmware("rtl_nic/rtl8168d-1.fw")
                .firmware("rtl_nic/rtl8168e-3.fw"),
        )
        .module(FakeModule::new("kernel/drivers/misc/unused-thing").alias("acpi*:XYZ0001:*"))
        .builtin("kernel/drivers/block/loop.ko")
        .device(
            "devices/pci0000:00/0000:00:03.0",
            "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00",
        )
        .device(
            "devices/pci0000:00/0000:00:03.0/virtio0",
            "virtio:d00000002v00001AF4",
        )
        .device(
            "devices/pci0000:00/0000:00:04.0",
            "pci:v000010ECd00008168sv000010ECsd00000123bc02sc00i00",
        )
        .firmware("rtl_nic/rtl8168d-1.fw", b"fw1")
}
