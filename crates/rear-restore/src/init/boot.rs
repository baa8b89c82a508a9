//! Early boot of PID 1: API file systems, the console on fds 0-2, the kernel command line,
//! module autoload and the host name.

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::libc;
use nix::mount::{MsFlags, mount};
use nix::sys::stat::Mode;
use nix::unistd::sethostname;

use super::super::cmdline::{self, Cmdline};
use super::{Error, say};

/// One API file system.
struct MountSpec {
    source: &'static str,
    target: &'static str,
    fstype: &'static str,
    flags: MsFlags,
    data: &'static str,
}

/// The API file systems, parents before children.
fn mount_table() -> [MountSpec; 7] {
    let secure = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let tmp = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let m = |source, target, fstype, flags, data| MountSpec {
        source,
        target,
        fstype,
        flags,
        data,
    };
    [
        m("proc", "/proc", "proc", secure, ""),
        m("sysfs", "/sys", "sysfs", secure, ""),
        m(
            "devtmpfs",
            "/dev",
            "devtmpfs",
            MsFlags::MS_NOSUID,
            "mode=0755",
        ),
        m(
            "devpts",
            "/dev/pts",
            "devpts",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            "gid=5,mode=0620,ptmxmode=0666",
        ),
        m("tmpfs", "/dev/shm", "tmpfs", tmp, "mode=1777"),
        m("tmpfs", "/run", "tmpfs", tmp, "mode=0755"),
        m("tmpfs", "/tmp", "tmpfs", tmp, "mode=1777"),
    ]
}

/// Mounts the API file systems (printing each failure) and efivarfs when the firmware is UEFI.
pub(super) fn mount_all() {
    for spec in mount_table() {
        if let Err(e) = mount_one(&spec) {
            say(&format!("rear: {e}"));
        }
    }
    let efivars = "/sys/firmware/efi/efivars";
    if Path::new(efivars).is_dir() && !is_mount_point(Path::new(efivars)) {
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        if let Err(e) = mount(
            Some("efivarfs"),
            efivars,
            Some("efivarfs"),
            flags,
            None::<&str>,
        ) {
            log::debug!("mounting efivarfs: {e}");
        }
    }
    for (link, to) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(to, link);
    }
}

/// Mounts one file system unless something is mounted there already.
fn mount_one(spec: &MountSpec) -> Result<(), Error> {
    let target = Path::new(spec.target);
    fs::create_dir_all(target).map_err(|error| Error::Mkdir {
        path: target.to_owned(),
        error,
    })?;
    if is_mount_point(target) {
        log::debug!("{} is mounted already", spec.target);
        return Ok(());
    }
    let data = Some(spec.data).filter(|d| !d.is_empty());
    match mount(
        Some(spec.source),
        target,
        Some(spec.fstype),
        spec.flags,
        data,
    ) {
        Ok(()) | Err(Errno::EBUSY) => Ok(()),
        Err(error) => Err(Error::Mount {
            fstype: spec.fstype,
            target: target.to_owned(),
            error,
        }),
    }
}

/// Whether `path` is the root of a mount: its device differs from its parent's.
fn is_mount_point(path: &Path) -> bool {
    match (fs::metadata(path), fs::metadata(path.join(".."))) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        _ => false,
    }
}

/// Puts `/dev/console` on fds 0-2 when one of them is closed or `/dev/null`.
pub(super) fn ensure_console_stdio() -> Result<(), Error> {
    let usable = |fd: std::os::fd::BorrowedFd<'_>| match nix::sys::stat::fstat(fd) {
        Ok(st) => st.st_rdev != libc::makedev(1, 3),
        Err(_) => false,
    };
    let ok = [
        usable(io::stdin().as_fd()),
        usable(io::stdout().as_fd()),
        usable(io::stderr().as_fd()),
    ];
    if ok.iter().all(|&b| b) {
        return Ok(());
    }
    let path = Path::new("/dev/console");
    let fd = open(path, OFlag::O_RDWR | OFlag::O_NOCTTY, Mode::empty()).map_err(|error| {
        Error::Open {
            path: path.to_owned(),
            error,
        }
    })?;
    let dups: [fn(&OwnedFd) -> nix::Result<()>; 3] = [
        |fd| nix::unistd::dup2_stdin(fd),
        |fd| nix::unistd::dup2_stdout(fd),
        |fd| nix::unistd::dup2_stderr(fd),
    ];
    for (dup, good) in dups.iter().zip(ok) {
        if !good {
            dup(&fd).map_err(|error| Error::Open {
                path: path.to_owned(),
                error,
            })?;
        }
    }
    Ok(())
}

/// Reads and parses `/proc/cmdline`.
pub(super) fn read_cmdline() -> Result<Cmdline, Error> {
    let path = Path::new("/proc/cmdline");
    let text = fs::read_to_string(path).map_err(|error| Error::Read {
        path: path.to_owned(),
        error,
    })?;
    Ok(cmdline::parse(&text))
}

/// Loads the modules for the hardware in `/sys`, printing each failure and the count, then
/// starts the hotplug thread for devices that appear later ([`crate::hotplug`]).
pub(super) fn load_modules(release: &str) {
    let dir = Path::new("/lib/modules").join(release);
    if !dir.is_dir() {
        say(&format!("rear: no modules in {}", dir.display()));
        return;
    }
    set_kernel_modprobe();
    let (loaded, failed) = coldplug(&dir, Path::new("/sys"));
    for (module, reason) in &failed {
        say(&format!("rear: module {module}: {reason}"));
    }
    say(&format!("rear: loaded {} modules", loaded.len()));
    let said: crate::hotplug::Say = std::sync::Arc::new(|line: &str| say(line));
    if let Err(e) = crate::hotplug::start(&dir, Path::new("/sys"), &failed, said) {
        say(&format!("rear: {e}"));
    }
}

/// Points the kernel's module helper (`/proc/sys/kernel/modprobe`, default `/sbin/modprobe`)
/// at the image's modprobe, so `mount` of a file system whose module is not loaded yet works:
/// an image made on a merged-/usr host has it only as `/usr/sbin/modprobe`.
fn set_kernel_modprobe() {
    let candidates = [
        "/sbin/modprobe",
        "/usr/sbin/modprobe",
        "/usr/bin/modprobe",
        "/bin/modprobe",
    ];
    let Some(found) = candidates.iter().find(|p| Path::new(p).exists()) else {
        say("rear: no modprobe in the image: the kernel cannot load modules by itself");
        return;
    };
    let helper = Path::new("/proc/sys/kernel/modprobe");
    if let Err(e) = fs::write(helper, found) {
        say(&format!("rear: {}: {e}", helper.display()));
    }
}

/// The single call site of the module autoloader ([`rear_sys::kmod::load::coldplug`]).
fn coldplug(modules_dir: &Path, sys_dir: &Path) -> (Vec<String>, Vec<(String, String)>) {
    let report = rear_sys::kmod::load::coldplug(modules_dir, sys_dir);
    (report.loaded, report.failed)
}

/// The hostname in the text of `/etc/hostname`: the first line that is not empty or a comment.
fn hostname_from(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Sets the hostname from `path` when the image has one.
pub(super) fn set_hostname(path: &Path) -> Result<(), Error> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(Error::Read {
                path: path.to_owned(),
                error,
            });
        }
    };
    let Some(name) = hostname_from(&text) else {
        return Ok(());
    };
    sethostname(name).map_err(|error| Error::Hostname {
        name: name.to_owned(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_from_first_real_line() {
        assert_eq!(
            hostname_from("# comment\n\n  web1.example.com \n"),
            Some("web1.example.com")
        );
        assert_eq!(hostname_from("\n# only\n"), None);
    }

    #[test]
    fn mount_table_parents_first() {
        let table = mount_table();
        for (i, m) in table.iter().enumerate() {
            let parent = Path::new(m.target).parent().unwrap_or(Path::new("/"));
            if parent != Path::new("/") {
                assert!(
                    table[..i].iter().any(|p| Path::new(p.target) == parent),
                    "{}",
                    m.target
                );
            }
        }
    }

    #[test]
    fn is_mount_point_root_and_plain_dir() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(dir.path()));
        assert!(!is_mount_point(&dir.path().join("missing")));
    }
}
