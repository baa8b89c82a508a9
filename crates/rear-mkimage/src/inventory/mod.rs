//! Inventory stage: what the host is. Reads the [`Sysroot`] (and runs ip(8) on the running
//! host); output is one [`Inventory`] value: the kernel to boot, the host name, the network
//! and the facts of the report. Later stages and the report use that value and never look at
//! the host again for the same thing. (The disk layout has its own stage: capturing it needs
//! root and may fail on its own terms.)

pub mod facts;
pub mod network;

use std::path::{Path, PathBuf};

use rear_sys::sysroot::Sysroot;

/// Errors from looking at the host.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No kernel image could be found.
    #[error(
        "no kernel image found (looked for {looked}); install a kernel package \
         (Debian/Ubuntu: linux-image-amd64 or linux-image-generic, Fedora: kernel-core, \
         SUSE: kernel-default) or name one with --kernel VERSION|PATH"
    )]
    NoKernel {
        /// Where it looked.
        looked: String,
    },
    /// A kernel given with `--kernel PATH` is not a bzImage with a version string.
    #[error("{}: not a Linux kernel image with a version string (bzImage)", .0.display())]
    NotAKernel(PathBuf),
    /// Reading the host failed.
    #[error(transparent)]
    Sysroot(#[from] rear_sys::sysroot::Error),
}

/// What the host is, read once.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// The kernel the rescue image boots.
    pub kernel: Kernel,
    /// The host name (the image's and the media's name).
    pub hostname: String,
    /// The running host's network, for the rescue system and the PXE tree.
    pub network: network::HostNetwork,
    /// The facts for the report to `rear-server` (without the sender's tags).
    pub facts: rear_model::report::Facts,
}

impl Inventory {
    /// Looks at the host: the kernel `spec` names, its name, network and facts.
    pub fn take(sys: &Sysroot, spec: &KernelSpec) -> Result<Inventory, Error> {
        let kernel = find_kernel(sys, spec)?;
        let network = network::probe(sys);
        let facts = facts::gather(sys, &network);
        Ok(Inventory {
            kernel,
            hostname: sys.hostname(),
            network,
            facts,
        })
    }
}

/// Which kernel the image is for, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSpec {
    /// The running kernel when it is installed, else the newest installed one.
    Default,
    /// A release, such as `6.1.0-56-amd64`.
    Release(String),
    /// A kernel image file on the host.
    Path(PathBuf),
}

impl KernelSpec {
    /// `None` -> default; anything with a `/` is a path, anything else a release.
    pub fn parse(arg: Option<&str>) -> KernelSpec {
        match arg {
            None => KernelSpec::Default,
            Some(a) if a.contains('/') => KernelSpec::Path(PathBuf::from(a)),
            Some(a) => KernelSpec::Release(a.to_string()),
        }
    }
}

/// The kernel the rescue image boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    /// Release string, as `uname -r` prints it.
    pub release: String,
    /// Host path of the kernel image.
    pub image: PathBuf,
    /// Host path of its modules (`/lib/modules/<release>`), when the directory exists.
    pub modules_dir: Option<PathBuf>,
}

/// Finds the kernel to use.
pub fn find_kernel(sys: &Sysroot, spec: &KernelSpec) -> Result<Kernel, Error> {
    let modules_dir = |rel: &str| {
        let d = PathBuf::from(format!("/lib/modules/{rel}"));
        sys.metadata(&d)
            .map(|m| m.is_dir())
            .unwrap_or(false)
            .then_some(d)
    };
    let image_of = |rel: &str| -> Option<PathBuf> {
        [
            format!("/boot/vmlinuz-{rel}"),
            format!("/lib/modules/{rel}/vmlinuz"),
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| sys.is_file(p))
    };
    match spec {
        KernelSpec::Path(path) => {
            let bytes = sys.read(path)?;
            let release =
                bzimage_release(&bytes).ok_or_else(|| Error::NotAKernel(path.to_path_buf()))?;
            Ok(Kernel {
                modules_dir: modules_dir(&release),
                release,
                image: path.clone(),
            })
        }
        KernelSpec::Release(rel) => match image_of(rel) {
            Some(image) => Ok(Kernel {
                release: rel.clone(),
                image,
                modules_dir: modules_dir(rel),
            }),
            None => Err(Error::NoKernel {
                looked: format!("/boot/vmlinuz-{rel}, /lib/modules/{rel}/vmlinuz"),
            }),
        },
        KernelSpec::Default => {
            if sys.is_host()
                && let Ok(running) = sys.read_to_string(Path::new("/proc/sys/kernel/osrelease"))
                && let Some(image) = image_of(running.trim())
            {
                let rel = running.trim().to_string();
                return Ok(Kernel {
                    modules_dir: modules_dir(&rel),
                    release: rel,
                    image,
                });
            }
            let mut releases = installed_releases(sys);
            // Prefer kernels whose modules are installed, then the newest.
            releases.sort_by(|a, b| {
                (modules_dir(a).is_some(), version_key(a))
                    .cmp(&(modules_dir(b).is_some(), version_key(b)))
            });
            match releases.pop() {
                Some(rel) => match image_of(&rel) {
                    Some(image) => Ok(Kernel {
                        modules_dir: modules_dir(&rel),
                        release: rel,
                        image,
                    }),
                    None => Err(Error::NoKernel {
                        looked: format!("/boot/vmlinuz-{rel}"),
                    }),
                },
                None => Err(Error::NoKernel {
                    looked: "the running kernel, /boot/vmlinuz-*, /lib/modules/*/vmlinuz".into(),
                }),
            }
        }
    }
}

/// Releases with a kernel image in `/boot` or `/lib/modules/*/vmlinuz`, unsorted.
fn installed_releases(sys: &Sysroot) -> Vec<String> {
    let mut out = Vec::new();
    for p in sys.read_dir(Path::new("/boot")).unwrap_or_default() {
        if let Some(rel) = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("vmlinuz-"))
            && sys.is_file(&p)
        {
            out.push(rel.to_string());
        }
    }
    for p in sys.read_dir(Path::new("/lib/modules")).unwrap_or_default() {
        if sys.is_file(&p.join("vmlinuz"))
            && let Some(rel) = p.file_name().and_then(|n| n.to_str())
            && !out.iter().any(|r| r == rel)
        {
            out.push(rel.to_string());
        }
    }
    out
}

/// Sort key that orders `6.1.0-9` before `6.1.0-10`: numbers compare as numbers.
fn version_key(rel: &str) -> Vec<(u64, String)> {
    let mut key = Vec::new();
    let mut rest = rel;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        let (num, tail) = rest.split_at(digits);
        let text_len = tail.chars().take_while(|c| !c.is_ascii_digit()).count();
        let (text, tail) = tail.split_at(text_len);
        key.push((num.parse().unwrap_or(0), text.to_string()));
        rest = tail;
    }
    key
}

/// The release string of an x86 bzImage: the setup header (signature `HdrS` at 0x202) points,
/// at 0x20E, to a NUL-terminated version string 0x200 bytes further on; its first word is the
/// release (Documentation/arch/x86/boot.rst, "kernel_version").
pub fn bzimage_release(bytes: &[u8]) -> Option<String> {
    if bytes.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let ptr = u16::from_le_bytes([*bytes.get(0x20e)?, *bytes.get(0x20f)?]) as usize;
    if ptr == 0 {
        return None;
    }
    let text = bytes.get(ptr + 0x200..)?;
    let end = text.iter().position(|&b| b == 0)?;
    let version = std::str::from_utf8(&text[..end]).ok()?;
    version.split_whitespace().next().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_on_the_host_probes_the_network_once_for_all() {
        let inv = Inventory::take(&Sysroot::host(), &KernelSpec::Default).unwrap();
        let network::HostNetwork::Probed(probe) = &inv.network else {
            panic!("the running host's network not probed: {:?}", inv.network);
        };
        assert!(!probe.links.is_empty());
        assert_eq!(
            inv.facts.network,
            probe.interfaces(),
            "the report's interfaces"
        );
        assert_eq!(inv.hostname, inv.facts.host.name);
    }

    fn fake_bzimage(version: &str) -> Vec<u8> {
        let mut b = vec![0u8; 0x400];
        b[0x202..0x206].copy_from_slice(b"HdrS");
        let ptr: u16 = 0x100;
        b[0x20e..0x210].copy_from_slice(&ptr.to_le_bytes());
        let at = ptr as usize + 0x200;
        b[at..at + version.len()].copy_from_slice(version.as_bytes());
        b
    }

    #[test]
    fn bzimage_release_reads_the_setup_header() {
        let img = fake_bzimage("6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP");
        assert_eq!(bzimage_release(&img).as_deref(), Some("6.1.0-56-amd64"));
        assert_eq!(bzimage_release(b"not a kernel"), None);
    }

    #[test]
    fn version_key_orders_numerically() {
        let mut v = vec!["6.1.0-10-amd64", "6.1.0-9-amd64", "5.10.0-30-amd64"];
        v.sort_by_key(|r| version_key(r));
        assert_eq!(v, ["5.10.0-30-amd64", "6.1.0-9-amd64", "6.1.0-10-amd64"]);
    }

    fn root_with_kernels(rels: &[&str], modules: &[&str]) -> (tempfile::TempDir, Sysroot) {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("boot")).unwrap();
        for r in rels {
            std::fs::write(d.path().join(format!("boot/vmlinuz-{r}")), fake_bzimage(r)).unwrap();
        }
        for m in modules {
            std::fs::create_dir_all(d.path().join(format!("lib/modules/{m}"))).unwrap();
        }
        let s = Sysroot::new(d.path()).unwrap();
        (d, s)
    }

    #[test]
    fn find_kernel_default_prefers_newest_with_modules() {
        let (_d, sys) = root_with_kernels(
            &["6.1.0-9-amd64", "6.1.0-10-amd64", "6.2.0-1-amd64"],
            &["6.1.0-9-amd64", "6.1.0-10-amd64"],
        );
        let k = find_kernel(&sys, &KernelSpec::Default).unwrap();
        assert_eq!(k.release, "6.1.0-10-amd64");
        assert_eq!(k.image, Path::new("/boot/vmlinuz-6.1.0-10-amd64"));
        assert_eq!(
            k.modules_dir,
            Some(PathBuf::from("/lib/modules/6.1.0-10-amd64"))
        );
    }

    #[test]
    fn find_kernel_none_names_the_package() {
        let (_d, sys) = root_with_kernels(&[], &[]);
        let e = find_kernel(&sys, &KernelSpec::Default)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/boot/vmlinuz-*") && e.contains("linux-image-amd64"),
            "{e}"
        );
    }

    #[test]
    fn find_kernel_by_path_reads_the_release() {
        let (_d, sys) = root_with_kernels(&["6.1.0-9-amd64"], &[]);
        let k = find_kernel(
            &sys,
            &KernelSpec::parse(Some("/boot/vmlinuz-6.1.0-9-amd64")),
        )
        .unwrap();
        assert_eq!(k.release, "6.1.0-9-amd64");
        assert_eq!(k.modules_dir, None);
        let e = find_kernel(&sys, &KernelSpec::parse(Some("6.9")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/boot/vmlinuz-6.9"), "{e}");
    }
}
