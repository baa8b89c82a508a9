//! PXE output: kernel, initrd and boot-loader configs for a TFTP/HTTP root (`--output pxe`).
//!
//! Input: a [`MediaInput`] and the host's MAC addresses ([`host_macs`]). Output, below the
//! PXE directory (one directory serves many hosts):
//!
//! ```text
//! <host>/vmlinuz               the kernel
//! <host>/initrd.img            the initrd
//! <host>/grub.cfg              menu for a network-booted GRUB (bootloaders/grub-net.cfg)
//! <host>.ipxe                  iPXE script, relative URLs (bootloaders/boot.ipxe)
//! pxelinux.cfg/<host>          PXELINUX menu (bootloaders/pxelinux.cfg)
//! pxelinux.cfg/01-<mac>        the same, once per MAC, the name PXELINUX looks for
//! ```
//!
//! The tree is replaced atomically, so a TFTP server refreshed by a cron job never serves a
//! half-written initrd: `<host>/` is written as a new directory beside the old one, synced,
//! and swapped in with `renameat2(RENAME_EXCHANGE)`; single files are written to a temporary
//! name, synced and renamed. Files of other hosts are never touched; `01-<mac>` files that
//! carry this host's marker line but name a MAC the host no longer has are removed.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{RenameFlags, renameat2};

use super::{EntryAction, MediaInput, TemplateError, menu_entries, render};
use crate::inventory::network::HostNetwork;
use rear_model::manifest::sha256_hex;

const PXELINUX_CFG: &str = include_str!("../../../../bootloaders/pxelinux.cfg");
const GRUB_NET_CFG: &str = include_str!("../../../../bootloaders/grub-net.cfg");
const BOOT_IPXE: &str = include_str!("../../../../bootloaders/boot.ipxe");

/// The line, followed by the host name, that marks a config file as written for that host;
/// stale `pxelinux.cfg/01-<mac>` files are recognised by it.
pub const OWNER_MARKER: &str = "# rear-mkimage pxe host=";

/// The directory of PXELINUX configs inside the PXE directory.
pub const PXELINUX_DIR: &str = "pxelinux.cfg";

/// Errors of the PXE output; each names the value or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The host name cannot be used as a file name and inside boot-loader scripts.
    #[error(
        "host name {0:?} cannot name PXE files: use letters, digits, '-', '_' and '.', not starting with '.' and not ending in .ipxe"
    )]
    BadHost(String),
    /// A MAC address is not six hex octets.
    #[error("{0:?} is not an Ethernet MAC address (six hex octets such as 52:54:00:12:34:56)")]
    BadMac(String),
    /// The kernel command line cannot be written into one of the configs.
    #[error("kernel command line {cmdline:?} cannot go into {config}: {why}")]
    BadCmdline {
        /// The command line.
        cmdline: String,
        /// Which config (`pxelinux`, `GRUB`, `iPXE`).
        config: &'static str,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A template and its values do not match.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// Writing, syncing or renaming a file failed.
    #[error("{}: {error}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the kernel said.
        error: std::io::Error,
    },
}

/// One file of the PXE tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PxeFile {
    /// Its path relative to the PXE directory (`db1/vmlinuz`).
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its hex SHA-256.
    pub sha256: String,
}

/// What [`write_pxe_tree`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PxeReport {
    /// The PXE directory.
    pub dir: PathBuf,
    /// The files written, in [`PxeFiles`] order.
    pub files: Vec<PxeFile>,
    /// Stale `pxelinux.cfg/01-<mac>` files of this host that were removed (relative paths).
    pub removed: Vec<PathBuf>,
}

/// The contents of the PXE tree of one host: relative path -> bytes, sorted by path
/// components (`db1/vmlinuz` before `db1.ipxe`).
pub type PxeFiles<'a> = BTreeMap<PathBuf, Cow<'a, [u8]>>;

/// Renders every file of the host's PXE tree (pure; [`write_pxe_tree`] writes them).
pub fn pxe_files<'a>(input: &MediaInput<'a>, macs: &[String]) -> Result<PxeFiles<'a>, Error> {
    let host = input.hostname;
    check_host(host)?;
    let mac_names = macs
        .iter()
        .map(|m| mac_file_name(m))
        .collect::<Result<BTreeSet<_>, _>>()?;
    let pxelinux = render_pxelinux(input)?.into_bytes();
    let mut files = PxeFiles::new();
    files.insert(
        PathBuf::from(format!("{host}/vmlinuz")),
        Cow::Borrowed(input.kernel),
    );
    files.insert(
        PathBuf::from(format!("{host}/initrd.img")),
        Cow::Borrowed(input.initrd),
    );
    files.insert(
        PathBuf::from(format!("{host}/grub.cfg")),
        Cow::Owned(render_grub(input)?.into_bytes()),
    );
    files.insert(
        PathBuf::from(format!("{host}.ipxe")),
        Cow::Owned(render_ipxe(input)?.into_bytes()),
    );
    for name in mac_names {
        files.insert(
            Path::new(PXELINUX_DIR).join(name),
            Cow::Owned(pxelinux.clone()),
        );
    }
    files.insert(Path::new(PXELINUX_DIR).join(host), Cow::Owned(pxelinux));
    Ok(files)
}

/// Writes the PXE tree of `input.hostname` into `pxe_dir`, replacing this host's previous
/// tree atomically and leaving other hosts' files alone.
///
/// `macs` are the host's MAC addresses (`aa:bb:cc:dd:ee:ff` or with dashes, any case); each
/// gets a `pxelinux.cfg/01-<mac>` file.
pub fn write_pxe_tree(
    input: &MediaInput<'_>,
    macs: &[String],
    pxe_dir: &Path,
) -> Result<PxeReport, Error> {
    let files = pxe_files(input, macs)?;
    let host = input.hostname;
    let cfg_dir = pxe_dir.join(PXELINUX_DIR);
    for dir in [pxe_dir, &cfg_dir] {
        if !dir.is_dir() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            set_mode(dir, 0o755)?;
        }
    }

    // 1. The host's directory: written complete beside the old one, then swapped in.
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{host}.new."))
        .tempdir_in(pxe_dir)
        .map_err(io(pxe_dir))?;
    set_mode(tmp.path(), 0o755)?;
    let host_prefix = Path::new(host);
    for (rel, bytes) in &files {
        if let Ok(name) = rel.strip_prefix(host_prefix) {
            write_synced(&tmp.path().join(name), bytes)?;
        }
    }
    sync_dir(tmp.path())?;
    let new_dir = tmp.keep();
    let old = match swap_in(pxe_dir, &new_dir, host) {
        Ok(old) => old,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&new_dir);
            return Err(e);
        }
    };
    sync_dir(pxe_dir)?;

    // 2. The single files, each by temporary file and rename.
    for (rel, bytes) in &files {
        if rel.starts_with(host_prefix) {
            continue;
        }
        replace_file(&pxe_dir.join(rel), bytes)?;
    }
    sync_dir(&cfg_dir)?;
    sync_dir(pxe_dir)?;

    // 3. What the previous tree had and this one has not.
    if let Some(old) = old {
        remove_any(&old)?;
    }
    let removed = remove_stale_mac_files(&cfg_dir, host, &files)?;
    if !removed.is_empty() {
        sync_dir(&cfg_dir)?;
    }

    Ok(PxeReport {
        dir: pxe_dir.to_path_buf(),
        files: files
            .iter()
            .map(|(path, bytes)| PxeFile {
                path: path.clone(),
                size: bytes.len() as u64,
                sha256: sha256_hex(bytes),
            })
            .collect(),
        removed,
    })
}

/// MAC addresses of the host's Ethernet cards ([`device_addresses`]: permanent MACs
/// of bond members), as `aa:bb:cc:dd:ee:ff`, sorted and without duplicates; none when the
/// network of the host was not probed.
///
/// Skipped: addresses that are not six octets and all-zero addresses.
///
/// [`device_addresses`]: crate::inventory::network::Probe::device_addresses
pub fn host_macs(net: &HostNetwork) -> Vec<String> {
    let HostNetwork::Probed(probe) = net else {
        return Vec::new();
    };
    let mut macs = BTreeSet::new();
    for (name, address) in probe.device_addresses() {
        match parse_mac(&address) {
            Some(octets) if octets != [0; 6] => {
                macs.insert(format_mac(&octets, ':'));
            }
            _ => log::debug!("{name}: address {address:?} is no Ethernet MAC; skipped"),
        }
    }
    macs.into_iter().collect()
}

/// The PXELINUX config file name of a MAC: `01-` (ARP type Ethernet) and the octets in lower
/// case, separated by dashes.
pub fn mac_file_name(mac: &str) -> Result<String, Error> {
    let octets = parse_mac(mac.trim()).ok_or_else(|| Error::BadMac(mac.to_string()))?;
    Ok(format!("01-{}", format_mac(&octets, '-')))
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut octets = [0u8; 6];
    for (o, p) in octets.iter_mut().zip(parts) {
        if p.len() != 2 {
            return None;
        }
        *o = u8::from_str_radix(p, 16).ok()?;
    }
    Some(octets)
}

fn format_mac(octets: &[u8; 6], sep: char) -> String {
    octets
        .iter()
        .map(|o| format!("{o:02x}"))
        .collect::<Vec<_>>()
        .join(&sep.to_string())
}

/// A host name is used as a file name and unquoted inside the configs.
fn check_host(host: &str) -> Result<(), Error> {
    let ok = !host.is_empty()
        && !host.starts_with('.')
        && !host.ends_with(".ipxe")
        && host != PXELINUX_DIR
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::BadHost(host.to_string()))
    }
}

/// The values shared by all three templates: `HOST`, `<ID>_TITLE` for every menu entry and
/// `<ID>_CMDLINE` for every entry that boots the kernel, the latter two passed through the
/// config language's own quoting.
fn menu_vars(
    input: &MediaInput<'_>,
    title: &dyn Fn(&str) -> String,
    cmdline: &dyn Fn(&str) -> Result<String, Error>,
) -> Result<Vec<(String, String)>, Error> {
    let mut vars = vec![("HOST".to_string(), input.hostname.to_string())];
    for e in menu_entries(input) {
        let id = e.id.to_ascii_uppercase();
        vars.push((format!("{id}_TITLE"), title(&e.title)));
        if let EntryAction::Linux { cmdline: c } = &e.action {
            vars.push((format!("{id}_CMDLINE"), cmdline(c)?));
        }
    }
    Ok(vars)
}

fn render_with(
    name: &str,
    template: &str,
    vars: &[(String, String)],
    extra: &[(&str, String)],
) -> Result<String, Error> {
    let all: Vec<(&str, &str)> = vars
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .collect();
    Ok(render(name, template, &all)?)
}

/// A command line goes on one line of every config: no control characters.
fn one_line(cmdline: &str, config: &'static str) -> Result<(), Error> {
    if cmdline.chars().any(char::is_control) {
        return Err(Error::BadCmdline {
            cmdline: cmdline.to_string(),
            config,
            why: "it contains a control character",
        });
    }
    Ok(())
}

fn render_pxelinux(input: &MediaInput<'_>) -> Result<String, Error> {
    let vars = menu_vars(input, &|t| t.replace(char::is_control, " "), &|c| {
        one_line(c, "pxelinux")?;
        Ok(c.to_string())
    })?;
    // PXELINUX counts tenths of a second; 0 would mean "wait for ever".
    let ds = (u64::from(input.boot_timeout) * 10).max(1);
    render_with(
        "pxelinux.cfg",
        PXELINUX_CFG,
        &vars,
        &[("TIMEOUT_DS", ds.to_string())],
    )
}

fn render_grub(input: &MediaInput<'_>) -> Result<String, Error> {
    let vars = menu_vars(
        input,
        &|t| t.replace(char::is_control, " ").replace('\'', "'\\''"),
        &|c| {
            one_line(c, "GRUB")?;
            Ok(split_cmdline(c)
                .into_iter()
                .map(grub_quote)
                .collect::<Vec<_>>()
                .join(" "))
        },
    )?;
    render_with(
        "grub-net.cfg",
        GRUB_NET_CFG,
        &vars,
        &[("TIMEOUT", input.boot_timeout.to_string())],
    )
}

fn render_ipxe(input: &MediaInput<'_>) -> Result<String, Error> {
    let vars = menu_vars(input, &|t| t.replace(char::is_control, " "), &|c| {
        one_line(c, "iPXE")?;
        // iPXE expands ${...} everywhere and has no quoting; it joins the words of `kernel`
        // with single spaces, which keeps `name="a b"` intact.
        if c.contains("${") || split_cmdline(c).iter().any(|w| *w == "||" || *w == "&&") {
            return Err(Error::BadCmdline {
                cmdline: c.to_string(),
                config: "iPXE",
                why: "iPXE would expand `${` and treat `||`/`&&` as operators",
            });
        }
        Ok(c.to_string())
    })?;
    // iPXE counts milliseconds; 0 would mean "wait for ever".
    let ms = (u64::from(input.boot_timeout) * 1000).max(1);
    render_with(
        "boot.ipxe",
        BOOT_IPXE,
        &vars,
        &[("TIMEOUT_MS", ms.to_string())],
    )
}

/// Splits a kernel command line into words the way the kernel does: at spaces outside
/// double quotes.
fn split_cmdline(s: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut start = None;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => {
                quoted = !quoted;
                start.get_or_insert(i);
            }
            c if c.is_whitespace() && !quoted => {
                if let Some(st) = start.take() {
                    words.push(&s[st..i]);
                }
            }
            _ => {
                start.get_or_insert(i);
            }
        }
    }
    if let Some(st) = start {
        words.push(&s[st..]);
    }
    words
}

/// A word for a GRUB script: as is when it only has plain characters, otherwise in single
/// quotes (GRUB expands `$` and splits at spaces, like a shell).
fn grub_quote(word: &str) -> String {
    if word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%~^".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |error| Error::Io {
        path: path.to_path_buf(),
        error,
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io(path))
}

/// Creates `path` (which must not exist), writes `bytes`, makes it world-readable for the
/// TFTP server, and syncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut f = File::create_new(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    set_mode(path, 0o644)?;
    f.sync_all().map_err(io(path))
}

/// Replaces one file atomically, world-readable for the TFTP server.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    rear_sys::atomic::write(path, bytes, 0o644).map_err(io(path))
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    rear_sys::atomic::sync_dir(dir).map_err(io(dir))
}

/// Puts the directory `new` in place as `<pxe_dir>/<host>`. Returns where the previous tree
/// now is, for the caller to remove once the rest is written.
fn swap_in(pxe_dir: &Path, new: &Path, host: &str) -> Result<Option<PathBuf>, Error> {
    let target = pxe_dir.join(host);
    let dirfd = File::open(pxe_dir).map_err(io(pxe_dir))?;
    let new_name = new.file_name().unwrap_or_default();
    let errno = |e: Errno| Error::Io {
        path: target.clone(),
        error: std::io::Error::from(e),
    };
    if std::fs::symlink_metadata(&target).is_err() {
        return match renameat2(
            &dirfd,
            new_name,
            &dirfd,
            host,
            RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => Ok(None),
            Err(Errno::EINVAL | Errno::ENOSYS) => {
                std::fs::rename(new, &target).map_err(io(&target))?;
                Ok(None)
            }
            Err(e) => Err(errno(e)),
        };
    }
    log::debug!(
        "renameat2({}, {}, RENAME_EXCHANGE)",
        new.display(),
        target.display()
    );
    match renameat2(&dirfd, new_name, &dirfd, host, RenameFlags::RENAME_EXCHANGE) {
        Ok(()) => Ok(Some(new.to_path_buf())),
        Err(Errno::EINVAL | Errno::ENOSYS) => {
            // The file system cannot exchange (some network file systems): move the old tree
            // aside, then the new one in. For a moment `<host>` does not exist, which a TFTP
            // client sees as "file not found", never as a half-written file.
            log::warn!(
                "{}: the file system cannot exchange directories atomically (RENAME_EXCHANGE); replacing by two renames",
                pxe_dir.display()
            );
            let old = pxe_dir.join(format!(".{host}.old.{}", std::process::id()));
            std::fs::rename(&target, &old).map_err(io(&target))?;
            std::fs::rename(new, &target).map_err(io(&target))?;
            Ok(Some(old))
        }
        Err(e) => Err(errno(e)),
    }
}

fn remove_any(path: &Path) -> Result<(), Error> {
    let meta = std::fs::symlink_metadata(path).map_err(io(path))?;
    if meta.is_dir() {
        std::fs::remove_dir_all(path).map_err(io(path))
    } else {
        std::fs::remove_file(path).map_err(io(path))
    }
}

/// Removes `01-<mac>` files that were written for `host` (they carry its marker line) and are
/// not part of the new tree: the host lost that NIC. Files of other hosts stay.
fn remove_stale_mac_files(
    cfg_dir: &Path,
    host: &str,
    files: &PxeFiles<'_>,
) -> Result<Vec<PathBuf>, Error> {
    let marker = format!("{OWNER_MARKER}{host}");
    let mut names: Vec<_> = std::fs::read_dir(cfg_dir)
        .map_err(io(cfg_dir))?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    let mut removed = Vec::new();
    for name in names {
        let rel = Path::new(PXELINUX_DIR).join(&name);
        if !name.to_string_lossy().starts_with("01-") || files.contains_key(&rel) {
            continue;
        }
        let path = cfg_dir.join(&name);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if text.lines().take(4).any(|l| l.trim_end() == marker) {
            log::info!("removing {}: {host} no longer has this MAC", path.display());
            std::fs::remove_file(&path).map_err(io(&path))?;
            removed.push(rel);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>() -> MediaInput<'a> {
        MediaInput {
            hostname: "db1",
            release: "6.1.0-test",
            kernel: b"KERNEL",
            initrd: b"INITRD",
            cmdline: "console=ttyS0,115200n8 panic=5".into(),
            boot_timeout: 5,
            epoch: 1_700_000_000,
        }
    }

    fn macs() -> Vec<String> {
        vec!["52:54:00:AB:cd:01".into(), "52-54-00-00-00-02".into()]
    }

    /// Every file below `dir`, relative, sorted (dot files too).
    fn tree(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    todo.push(p);
                } else {
                    out.push(p.strip_prefix(dir).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn pxe_files_names() {
        let files = pxe_files(&input(), &macs()).unwrap();
        let names: Vec<_> = files.keys().map(|p| p.display().to_string()).collect();
        assert_eq!(
            names,
            [
                "db1/grub.cfg",
                "db1/initrd.img",
                "db1/vmlinuz",
                "db1.ipxe",
                "pxelinux.cfg/01-52-54-00-00-00-02",
                "pxelinux.cfg/01-52-54-00-ab-cd-01",
                "pxelinux.cfg/db1",
            ]
        );
        assert_eq!(&*files[Path::new("db1/vmlinuz")], b"KERNEL");
        assert_eq!(
            files[Path::new("pxelinux.cfg/db1")],
            files[Path::new("pxelinux.cfg/01-52-54-00-ab-cd-01")]
        );
    }

    #[test]
    fn pxe_files_pxelinux_menu() {
        let files = pxe_files(&input(), &[]).unwrap();
        let cfg = String::from_utf8(files[Path::new("pxelinux.cfg/db1")].to_vec()).unwrap();
        assert!(cfg.starts_with("serial 0 115200\n"), "{cfg}");
        assert!(cfg.contains("\n# rear-mkimage pxe host=db1\n"), "{cfg}");
        assert!(cfg.contains("\ntimeout 50\n"), "{cfg}");
        assert!(cfg.contains("\ndefault recover\n"), "{cfg}");
        assert!(cfg.contains(
            "label recover\n  menu label Recover db1\n  menu default\n  kernel db1/vmlinuz\n  append initrd=db1/initrd.img console=ttyS0,115200n8 panic=5\n"
        ), "{cfg}");
        assert!(cfg.contains(
            "  menu label Automatic recover db1\n  kernel db1/vmlinuz\n  append initrd=db1/initrd.img console=ttyS0,115200n8 panic=5 rear.auto\n"
        ), "{cfg}");
        assert!(
            cfg.contains("  menu label Boot from the first hard disk\n  localboot 0\n"),
            "{cfg}"
        );
    }

    #[test]
    fn pxe_files_grub_and_ipxe() {
        let mut i = input();
        i.cmdline = "console=ttyS0 rear.note=\"a b\" x=$y".into();
        let files = pxe_files(&i, &[]).unwrap();
        let grub = String::from_utf8(files[Path::new("db1/grub.cfg")].to_vec()).unwrap();
        assert!(grub.contains("set timeout=5\n"), "{grub}");
        assert!(
            grub.contains("menuentry 'Recover db1' --id recover {"),
            "{grub}"
        );
        assert!(
            grub.contains("linux /db1/vmlinuz console=ttyS0 'rear.note=\"a b\"' 'x=$y'\n"),
            "{grub}"
        );
        assert!(grub.contains("initrd /db1/initrd.img\n"), "{grub}");
        assert!(
            grub.contains("'x=$y' rear.auto\n"),
            "auto entry lacks rear.auto: {grub}"
        );
        assert!(!grub.contains('@'), "unfilled placeholder: {grub}");

        i.cmdline = "console=ttyS0 rear.note=\"a b\"".into();
        let files = pxe_files(&i, &[]).unwrap();
        let ipxe = String::from_utf8(files[Path::new("db1.ipxe")].to_vec()).unwrap();
        assert!(ipxe.starts_with("#!ipxe\n"), "{ipxe}");
        assert!(ipxe.contains("--timeout 5000 "), "{ipxe}");
        assert!(ipxe.contains("item recover Recover db1\n"), "{ipxe}");
        assert!(ipxe.contains(
            "kernel db1/vmlinuz initrd=initrd.img console=ttyS0 rear.note=\"a b\"\ninitrd db1/initrd.img\nboot\n"
        ), "{ipxe}");
    }

    #[test]
    fn pxe_files_rejects_bad_values() {
        let mut i = input();
        i.hostname = "../etc";
        assert!(matches!(pxe_files(&i, &[]), Err(Error::BadHost(_))));
        i.hostname = "pxelinux.cfg";
        assert!(matches!(pxe_files(&i, &[]), Err(Error::BadHost(_))));
        let e = pxe_files(&input(), &["52:54:00:12:34".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"52:54:00:12:34\" is not an Ethernet MAC address (six hex octets such as 52:54:00:12:34:56)"
        );
        let mut i = input();
        i.cmdline = "a=${net0/ip}".into();
        assert!(matches!(
            pxe_files(&i, &[]),
            Err(Error::BadCmdline { config: "iPXE", .. })
        ));
        i.cmdline = "a\nb".into();
        assert!(matches!(pxe_files(&i, &[]), Err(Error::BadCmdline { .. })));
    }

    #[test]
    fn pxe_files_zero_timeout_boots_at_once() {
        let mut i = input();
        i.boot_timeout = 0;
        let files = pxe_files(&i, &[]).unwrap();
        let cfg = String::from_utf8(files[Path::new("pxelinux.cfg/db1")].to_vec()).unwrap();
        assert!(cfg.contains("\ntimeout 1\n"), "{cfg}");
        let ipxe = String::from_utf8(files[Path::new("db1.ipxe")].to_vec()).unwrap();
        assert!(ipxe.contains("--timeout 1 "), "{ipxe}");
    }

    #[test]
    fn pxe_files_deterministic() {
        let a = pxe_files(&input(), &macs()).unwrap();
        let b = pxe_files(&input(), &macs()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn mac_file_name_lowercase_dashes() {
        assert_eq!(
            mac_file_name("52:54:00:AB:CD:EF").unwrap(),
            "01-52-54-00-ab-cd-ef"
        );
        assert_eq!(
            mac_file_name("52-54-00-ab-cd-ef").unwrap(),
            "01-52-54-00-ab-cd-ef"
        );
        assert!(mac_file_name("52:54:00:ab:cd:efg").is_err());
        assert!(mac_file_name("5:54:00:ab:cd:ef:00").is_err());
    }

    #[test]
    fn write_pxe_tree_writes_files_and_modes() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pxe");
        let report = write_pxe_tree(&input(), &macs(), &dir).unwrap();
        assert_eq!(
            tree(&dir),
            [
                "db1.ipxe",
                "db1/grub.cfg",
                "db1/initrd.img",
                "db1/vmlinuz",
                "pxelinux.cfg/01-52-54-00-00-00-02",
                "pxelinux.cfg/01-52-54-00-ab-cd-01",
                "pxelinux.cfg/db1",
            ]
        );
        assert_eq!(report.files.len(), 7);
        assert_eq!(report.files[2].path, Path::new("db1/vmlinuz"));
        assert_eq!(report.files[2].sha256, sha256_hex(b"KERNEL"));
        assert_eq!(
            std::fs::read(dir.join("db1/initrd.img")).unwrap(),
            b"INITRD"
        );
        let mode = |p: &str| std::fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("db1"), 0o755);
        assert_eq!(mode("db1/vmlinuz"), 0o644);
        assert_eq!(mode("db1.ipxe"), 0o644);
        assert_eq!(mode("pxelinux.cfg/db1"), 0o644);
    }

    #[test]
    fn write_pxe_tree_keeps_other_hosts() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut other = input();
        other.hostname = "db10";
        other.kernel = b"OTHER";
        write_pxe_tree(&other, &["52:54:00:00:00:99".into()], dir).unwrap();
        std::fs::write(dir.join("pxelinux.cfg/default"), "site default\n").unwrap();
        std::fs::write(
            dir.join("pxelinux.cfg/01-aa-aa-aa-aa-aa-aa"),
            "hand-written\n",
        )
        .unwrap();
        let before = tree(dir);
        write_pxe_tree(&input(), &macs(), dir).unwrap();
        write_pxe_tree(&input(), &["52:54:00:00:00:03".into()], dir).unwrap();
        let after = tree(dir);
        for f in &before {
            assert!(after.contains(f), "{f} of another host is gone: {after:?}");
        }
        assert_eq!(std::fs::read(dir.join("db10/vmlinuz")).unwrap(), b"OTHER");
        assert_eq!(
            std::fs::read_to_string(dir.join("pxelinux.cfg/01-aa-aa-aa-aa-aa-aa")).unwrap(),
            "hand-written\n"
        );
    }

    #[test]
    fn write_pxe_tree_second_write_replaces_first() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write_pxe_tree(&input(), &macs(), dir).unwrap();
        // Something left in the old host directory by hand must go with it.
        std::fs::write(dir.join("db1/stale"), "x").unwrap();
        let mut second = input();
        second.initrd = b"INITRD2";
        second.cmdline = "console=ttyS1".into();
        let report = write_pxe_tree(&second, &["52:54:00:00:00:02".into()], dir).unwrap();
        assert_eq!(
            report.removed,
            [PathBuf::from("pxelinux.cfg/01-52-54-00-ab-cd-01")]
        );
        assert_eq!(
            tree(dir),
            [
                "db1.ipxe",
                "db1/grub.cfg",
                "db1/initrd.img",
                "db1/vmlinuz",
                "pxelinux.cfg/01-52-54-00-00-00-02",
                "pxelinux.cfg/db1",
            ]
        );
        assert_eq!(
            std::fs::read(dir.join("db1/initrd.img")).unwrap(),
            b"INITRD2"
        );
        let cfg = std::fs::read_to_string(dir.join("pxelinux.cfg/01-52-54-00-00-00-02")).unwrap();
        assert!(
            cfg.contains("append initrd=db1/initrd.img console=ttyS1\n"),
            "{cfg}"
        );
        let expected = pxe_files(&second, &["52:54:00:00:00:02".into()]).unwrap();
        for (rel, bytes) in &expected {
            assert_eq!(
                std::fs::read(dir.join(rel)).unwrap(),
                bytes.to_vec(),
                "{}",
                rel.display()
            );
        }
    }

    #[test]
    fn write_pxe_tree_bad_host_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let mut i = input();
        i.hostname = ".hidden";
        assert!(write_pxe_tree(&i, &[], tmp.path()).is_err());
        assert!(tree(tmp.path()).is_empty());
    }

    #[test]
    fn host_macs_of_the_probed_cards() {
        use crate::inventory::network::{IpLink, Probe};
        let link = |name: &str, address: &str, bus: bool| IpLink {
            ifname: name.into(),
            link_type: "ether".into(),
            address: Some(address.into()),
            mtu: None,
            master: None,
            link: None,
            parentbus: bus.then(|| "pci".to_string()),
            linkinfo: None,
            addr_info: Vec::new(),
        };
        let probe = Probe {
            links: vec![
                link("eth1", "52:54:00:AA:00:02", true),
                link("eth0", "52:54:00:aa:00:01", true),
                link("br0", "52:54:00:aa:00:01", false),
                link("veth9", "7e:11:22:33:44:55", false),
                link("usb0", "00:00:00:00:00:00", true),
                link("odd0", "52:54:00:aa", true),
            ],
            ..Probe::default()
        };
        let net = HostNetwork::Probed(probe);
        assert_eq!(host_macs(&net), ["52:54:00:aa:00:01", "52:54:00:aa:00:02"]);
    }

    #[test]
    fn host_macs_none_when_not_probed() {
        assert!(host_macs(&HostNetwork::NotRunning).is_empty());
        assert!(host_macs(&HostNetwork::Failed("ip: not found".into())).is_empty());
    }

    #[test]
    fn split_cmdline_keeps_quoted_words() {
        assert_eq!(
            split_cmdline(" a  b=\"c d\" \"e f\"g "),
            ["a", "b=\"c d\"", "\"e f\"g"]
        );
    }
}
