//! Hotplug in the rescue system: load drivers for devices that appear after coldplug.
//!
//! Stage: restore (boot, then the whole life of the rescue system). Input: kernel uevents
//! from a `NETLINK_KOBJECT_UEVENT` socket bound to multicast group 1 (the kernel's own
//! messages; udev re-broadcasts on group 2, which nobody does here), the image's
//! `/lib/modules/<kver>` and `/sys`. Output: the modules loaded through [`rear_sys::kmod::load`],
//! one console line per module that failed and one per device that got a driver.
//!
//! A kernel uevent is one datagram: a header `ACTION@DEVPATH`, then `KEY=VALUE` fields, each
//! ended by NUL (`lib/kobject_uevent.c`, `add_uevent_var`):
//! `add@/devices/...\0ACTION=add\0DEVPATH=/devices/...\0SUBSYSTEM=usb\0MODALIAS=usb:v...\0SEQNUM=..\0`.
//! [`parse`] reads it; only `ACTION=add` with a `MODALIAS` asks for a driver, as udev's
//! `80-drivers.rules` (`ENV{MODALIAS}=="?*", RUN{builtin}+="kmod load $env{MODALIAS}"`).
//!
//! Why it matters: a USB stick present at boot shows up on the bus only once xhci_pci has
//! loaded and the hub has enumerated it, which is usually after coldplug's last walk of
//! `/sys`; its uevent is what loads usb_storage. The thread binds the socket first, then
//! walks `/sys` once more, so a device that appeared between coldplug and the bind is not
//! missed; when the socket overflows (`ENOBUFS`, events lost) it walks `/sys` again. Errors
//! are printed and the loop goes on: the thread never ends while PID 1 runs.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::libc;
use nix::sys::socket::{
    self, AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType, sockopt,
};

use rear_sys::kmod::ModuleIndex;
use rear_sys::kmod::load::{self as modload, KernelLoader, Loader, Report};

/// The multicast group of the kernel's uevents (`KOBJECT_UEVENT` broadcasts to group 1).
pub const UEVENT_GROUP: u32 = 1;

/// Receive buffer asked for with `SO_RCVBUFFORCE`: a burst of uevents (a USB hub with many
/// devices, a SCSI scan) must not overflow while modules load.
const RCVBUF: usize = 4 << 20;

/// Largest datagram read; the kernel's `UEVENT_BUFFER_SIZE` is 2048.
const MSG_MAX: usize = 8192;

/// Pause after a failed `recv` before the next try, so a broken socket does not spin.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Where the thread's console lines go (every console, as the network thread's).
pub type Say = Arc<dyn Fn(&str) + Send + Sync>;

/// Errors of the hotplug listener.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The uevent socket could not be opened.
    #[error("opening the kernel uevent socket (AF_NETLINK, NETLINK_KOBJECT_UEVENT): {error}")]
    Socket {
        /// The cause.
        error: io::Error,
    },
    /// The uevent socket could not join the kernel's multicast group.
    #[error("binding the kernel uevent socket to multicast group {group}: {error}")]
    Bind {
        /// The group.
        group: u32,
        /// The cause.
        error: io::Error,
    },
    /// The listener thread could not be started.
    #[error("starting the hotplug thread: {error}")]
    Thread {
        /// The cause.
        error: io::Error,
    },
    /// A datagram is not a kernel uevent.
    #[error("malformed uevent {message:?}: {reason}")]
    Malformed {
        /// The start of the message, NULs shown as `|`.
        message: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The fields of a kernel uevent that hotplug needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent<'a> {
    /// `add`, `remove`, `bind`, `change`, ...
    pub action: &'a str,
    /// The device under `/sys`, e.g. `/devices/pci0000:00/0000:00:04.0/usb1/1-1`.
    pub devpath: &'a str,
    /// `SUBSYSTEM=`, when given.
    pub subsystem: Option<&'a str>,
    /// `MODALIAS=`, when the device can have a driver.
    pub modalias: Option<&'a str>,
}

impl Uevent<'_> {
    /// The modalias to load a driver for: set only for `ACTION=add` with a `MODALIAS`.
    pub fn wants_driver(&self) -> Option<&str> {
        self.modalias
            .filter(|m| self.action == "add" && !m.is_empty())
    }
}

/// Parses one kernel uevent datagram (format in the module header). The `ACTION=` and
/// `DEVPATH=` fields win over the header; fields that are not UTF-8 are skipped.
pub fn parse(msg: &[u8]) -> Result<Uevent<'_>, Error> {
    let malformed = |reason| Error::Malformed {
        message: String::from_utf8_lossy(&msg[..msg.len().min(80)]).replace('\0', "|"),
        reason,
    };
    if msg.starts_with(b"libudev\0") {
        return Err(malformed("a udev message, not the kernel's"));
    }
    let mut fields = msg.split(|&b| b == 0);
    let header = fields
        .next()
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| malformed("header is not UTF-8"))?;
    let (mut action, mut devpath) = header
        .split_once('@')
        .ok_or_else(|| malformed("no ACTION@DEVPATH header"))?;
    let mut subsystem = None;
    let mut modalias = None;
    for field in fields.filter_map(|f| std::str::from_utf8(f).ok()) {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        match key {
            "ACTION" => action = value,
            "DEVPATH" => devpath = value,
            "SUBSYSTEM" => subsystem = Some(value),
            "MODALIAS" => modalias = Some(value),
            _ => {}
        }
    }
    if action.is_empty() || devpath.is_empty() {
        return Err(malformed("empty action or device path"));
    }
    Ok(Uevent {
        action,
        devpath,
        subsystem,
        modalias,
    })
}

/// The modules (not built-in) whose aliases match `modalias` and that are not in `done`, in
/// modprobe's order.
pub fn modules_for(index: &ModuleIndex, modalias: &str, done: &HashSet<String>) -> Vec<String> {
    index
        .match_alias(modalias)
        .into_iter()
        .filter(|m| index.module(m).is_some() && !done.contains(*m))
        .map(str::to_owned)
        .collect()
}

/// Loads drivers for uevents; remembers what it tried so a failing module is reported once.
pub struct Handler {
    index: ModuleIndex,
    modules_dir: PathBuf,
    sys_dir: PathBuf,
    tried: HashSet<String>,
}

impl Handler {
    /// A handler for the modules in `modules_dir` (`/lib/modules/<kver>`) and the devices
    /// under `sys_dir` (`/sys`).
    pub fn new(index: ModuleIndex, modules_dir: PathBuf, sys_dir: PathBuf) -> Handler {
        Handler {
            index,
            modules_dir,
            sys_dir,
            tried: HashSet::new(),
        }
    }

    /// `loaded` (from `/proc/modules`) plus everything this handler tried.
    fn done(&self, loaded: &HashSet<String>) -> HashSet<String> {
        loaded.union(&self.tried).cloned().collect()
    }

    fn remember(&mut self, report: &Report) {
        self.tried.extend(report.loaded.iter().cloned());
        self.tried
            .extend(report.failed.iter().map(|(name, _)| name.clone()));
    }

    /// Loads the driver a uevent asks for (dependencies first); nothing for other events.
    pub fn handle(
        &mut self,
        event: &Uevent<'_>,
        loaded: &HashSet<String>,
        loader: &dyn Loader,
    ) -> Report {
        let Some(modalias) = event.wants_driver() else {
            return Report::default();
        };
        let done = self.done(loaded);
        let wanted = modules_for(&self.index, modalias, &done);
        if wanted.is_empty() {
            return Report::default();
        }
        let names: Vec<&str> = wanted.iter().map(String::as_str).collect();
        let report = modload::load_with(&self.index, &self.modules_dir, &names, &done, loader);
        self.remember(&report);
        report
    }

    /// Walks `sys_dir` as coldplug does and loads what is missing.
    pub fn rescan(&mut self, loaded: &HashSet<String>, loader: &dyn Loader) -> Report {
        let done = self.done(loaded);
        let report =
            modload::coldplug_with(&self.index, &self.modules_dir, &self.sys_dir, &done, loader);
        self.remember(&report);
        report
    }
}

/// Prints one line per failed module and one for what loaded, naming `what` caused it.
fn tell(say: &Say, report: &Report, what: &str) {
    for (module, why) in &report.failed {
        say(&format!("rear: hotplug: module {module}: {why}"));
    }
    if !report.loaded.is_empty() {
        say(&format!(
            "rear: hotplug: loaded {} for {what}",
            report.loaded.join(" ")
        ));
    }
}

/// A bound `NETLINK_KOBJECT_UEVENT` socket, blocking.
#[derive(Debug)]
pub struct UeventSocket {
    fd: OwnedFd,
}

impl UeventSocket {
    /// Opens the socket and joins the kernel's group [`UEVENT_GROUP`].
    pub fn open() -> Result<UeventSocket, Error> {
        let fd = socket::socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkKObjectUEvent,
        )
        .map_err(|e| Error::Socket { error: e.into() })?;
        // Best effort: without CAP_NET_ADMIN the default buffer stays, and an overflow only
        // costs a rescan.
        let _ = socket::setsockopt(&fd, sockopt::RcvBufForce, &RCVBUF);
        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, UEVENT_GROUP)).map_err(|e| {
            Error::Bind {
                group: UEVENT_GROUP,
                error: e.into(),
            }
        })?;
        Ok(UeventSocket { fd })
    }

    /// Receives one datagram; returns its length and whether the kernel sent it (sender
    /// port 0), which is the only sender trusted.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, bool)> {
        let (n, from) = socket::recvfrom::<NetlinkAddr>(self.fd.as_raw_fd(), buf)?;
        // A datagram without a sender address is not the kernel's.
        Ok((n, from.is_some_and(|a| a.pid() == 0)))
    }
}

/// Opens the uevent socket, then starts the `hotplug` thread for the modules in
/// `modules_dir` and the devices under `sys_dir`. Call it right after coldplug, with the
/// modules coldplug reported as failed (`(module, reason)`): they are not tried again.
pub fn start(
    modules_dir: &Path,
    sys_dir: &Path,
    failed: &[(String, String)],
    say: Say,
) -> Result<(), Error> {
    let socket = UeventSocket::open()?;
    let modules_dir = modules_dir.to_owned();
    let sys_dir = sys_dir.to_owned();
    let failed: HashSet<String> = failed.iter().map(|(m, _)| m.clone()).collect();
    std::thread::Builder::new()
        .name("hotplug".into())
        .spawn(move || listen(&socket, modules_dir, sys_dir, failed, &say))
        .map(drop)
        .map_err(|error| Error::Thread { error })
}

/// The thread: rescan once, then one uevent at a time, for ever.
fn listen(
    socket: &UeventSocket,
    modules_dir: PathBuf,
    sys_dir: PathBuf,
    failed: HashSet<String>,
    say: &Say,
) {
    let index = match ModuleIndex::load_dir(&modules_dir) {
        Ok(i) => i,
        Err(e) => {
            say(&format!(
                "rear: hotplug: {e}; no drivers for devices added later"
            ));
            return;
        }
    };
    let mut handler = Handler::new(index, modules_dir, sys_dir);
    handler.tried = failed;
    let rescan = |handler: &mut Handler, why: &str| {
        let run = AssertUnwindSafe(|| handler.rescan(&modload::loaded_modules(), &KernelLoader));
        match catch_unwind(run) {
            Ok(report) => tell(say, &report, why),
            Err(_) => say("rear: hotplug: internal error while walking /sys"),
        }
    };
    rescan(&mut handler, "devices that appeared during boot");
    let mut buf = vec![0u8; MSG_MAX];
    let mut failing = false;
    loop {
        let n = match socket.recv(&mut buf) {
            Ok((n, true)) => n,
            Ok((_, false)) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                say("rear: hotplug: uevents lost (socket buffer full); walking /sys again");
                rescan(&mut handler, "devices whose uevents were lost");
                continue;
            }
            Err(e) => {
                if !failing {
                    say(&format!("rear: hotplug: reading uevents: {e}; retrying"));
                }
                failing = true;
                std::thread::sleep(RETRY_PAUSE);
                continue;
            }
        };
        failing = false;
        let event = match parse(&buf[..n]) {
            Ok(ev) => ev,
            Err(e) => {
                log::debug!("hotplug: {e}");
                continue;
            }
        };
        let Some(modalias) = event.wants_driver() else {
            continue;
        };
        let what = format!("{} ({modalias})", event.devpath);
        let run =
            AssertUnwindSafe(|| handler.handle(&event, &modload::loaded_modules(), &KernelLoader));
        match catch_unwind(run) {
            Ok(report) => tell(say, &report, &what),
            Err(_) => say(&format!("rear: hotplug: internal error handling {what}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rear_sys::kmod::load::Outcome;
    use rear_testutil::kmod::{FakeKernel, FakeModule};
    use std::sync::Mutex;

    const KVER: &str = "6.1.0-test";

    const USB_STICK: &[u8] = b"add@/devices/pci0000:00/0000:00:04.0/usb2/2-1/2-1:1.0\0\
        ACTION=add\0DEVPATH=/devices/pci0000:00/0000:00:04.0/usb2/2-1/2-1:1.0\0\
        SUBSYSTEM=usb\0DEVTYPE=usb_interface\0PRODUCT=46f4/1/0\0TYPE=0/0/0\0\
        INTERFACE=8/6/80\0MODALIAS=usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00\0SEQNUM=1234\0";

    /// Records the modules it is asked to load; fails those in `fail`.
    #[derive(Default)]
    struct Recorder {
        log: Mutex<Vec<String>>,
        fail: Vec<&'static str>,
    }

    impl Loader for Recorder {
        fn load(&self, path: &Path) -> Outcome {
            let name = rear_sys::kmod::modname_from_path(&path.to_string_lossy());
            self.log.lock().unwrap().push(name.clone());
            if self.fail.contains(&name.as_str()) {
                Outcome::Failed("boom".into())
            } else {
                Outcome::Loaded
            }
        }
    }

    fn usb_kernel() -> FakeKernel {
        FakeKernel::new(KVER)
            .module(FakeModule::new("kernel/drivers/usb/common/usb-common"))
            .module(FakeModule::new("kernel/drivers/usb/core/usbcore").dep("usb-common"))
            .module(FakeModule::new("kernel/drivers/scsi/scsi_mod"))
            .module(
                FakeModule::new("kernel/drivers/usb/storage/usb-storage")
                    .dep("usbcore")
                    .dep("scsi_mod")
                    .alias("usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*"),
            )
            .module(
                FakeModule::new("kernel/drivers/usb/storage/uas")
                    .dep("usb-storage")
                    .dep("usbcore")
                    .dep("scsi_mod")
                    .alias("usb:v*p*d*dc*dsc*dp*ic08isc06ip62in*"),
            )
            .module(
                FakeModule::new("kernel/drivers/scsi/sd_mod")
                    .dep("scsi_mod")
                    .alias("scsi:t-0x00*"),
            )
            .builtin("kernel/drivers/usb/host/xhci-hcd.ko")
    }

    fn handler(k: &FakeKernel) -> (tempfile::TempDir, Handler) {
        let d = tempfile::tempdir().unwrap();
        k.write(d.path()).unwrap();
        let mdir = d.path().join("lib/modules").join(KVER);
        let ix = ModuleIndex::load_dir(&mdir).unwrap();
        let sys = d.path().join("sys");
        (d, Handler::new(ix, mdir, sys))
    }

    #[test]
    fn parse_usb_interface_add() {
        let ev = parse(USB_STICK).unwrap();
        assert_eq!(
            ev,
            Uevent {
                action: "add",
                devpath: "/devices/pci0000:00/0000:00:04.0/usb2/2-1/2-1:1.0",
                subsystem: Some("usb"),
                modalias: Some("usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00"),
            }
        );
        assert_eq!(
            ev.wants_driver(),
            Some("usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00")
        );
    }

    #[test]
    fn parse_without_modalias_or_not_add_wants_nothing() {
        let ev = parse(b"add@/devices/virtual/block/loop0\0ACTION=add\0SUBSYSTEM=block\0").unwrap();
        assert_eq!(ev.modalias, None);
        assert_eq!(ev.wants_driver(), None);
        let ev = parse(b"remove@/devices/x\0ACTION=remove\0MODALIAS=usb:v1\0").unwrap();
        assert_eq!(ev.action, "remove");
        assert_eq!(ev.wants_driver(), None);
        let ev = parse(b"bind@/devices/x\0ACTION=bind\0MODALIAS=usb:v1\0").unwrap();
        assert_eq!(ev.wants_driver(), None);
    }

    #[test]
    fn parse_header_only_and_fields_win() {
        let ev = parse(b"add@/devices/a").unwrap();
        assert_eq!((ev.action, ev.devpath), ("add", "/devices/a"));
        let ev = parse(b"add@/devices/a\0DEVPATH=/devices/b\0\xff\xfe=x\0MODALIAS=m\0").unwrap();
        assert_eq!(ev.devpath, "/devices/b");
        assert_eq!(ev.modalias, Some("m"), "a non-UTF-8 field is skipped");
    }

    #[test]
    fn parse_rejects_udev_and_garbage() {
        for (msg, reason) in [
            (&b"libudev\0\xfe\xed\xca\xfe"[..], "udev"),
            (b"hello world\0ACTION=add\0", "header"),
            (b"\xff@x\0", "UTF-8"),
            (b"@\0ACTION=add\0", "empty"),
            (b"", "header"),
        ] {
            let e = parse(msg).unwrap_err();
            assert!(e.to_string().contains(reason), "{e}");
            assert!(matches!(e, Error::Malformed { .. }));
        }
    }

    #[test]
    fn modules_for_skips_done_and_builtin() {
        let (_d, h) = handler(&usb_kernel());
        let alias = "usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00";
        assert_eq!(
            modules_for(&h.index, alias, &HashSet::new()),
            ["usb_storage"]
        );
        let done: HashSet<String> = ["usb_storage".to_string()].into();
        assert!(modules_for(&h.index, alias, &done).is_empty());
        assert!(modules_for(&h.index, "pci:v0000DEADd*", &HashSet::new()).is_empty());
    }

    #[test]
    fn handle_loads_deps_first_and_skips_loaded() {
        let (_d, mut h) = handler(&usb_kernel());
        let rec = Recorder::default();
        let loaded: HashSet<String> = ["usb_common".to_string()].into();
        let report = h.handle(&parse(USB_STICK).unwrap(), &loaded, &rec);
        assert!(report.failed.is_empty(), "{report:?}");
        let log = rec.log.lock().unwrap().clone();
        assert!(
            !log.contains(&"usb_common".to_string()),
            "loaded already: {log:?}"
        );
        let pos = |n: &str| log.iter().position(|m| m == n).unwrap();
        assert!(pos("usbcore") < pos("usb_storage"), "{log:?}");
        assert!(pos("scsi_mod") < pos("usb_storage"), "{log:?}");
        assert_eq!(
            report.loaded.last().map(String::as_str),
            Some("usb_storage")
        );
        // The same device again (or a second stick): nothing more to do.
        let again = h.handle(&parse(USB_STICK).unwrap(), &loaded, &rec);
        assert_eq!(again, Report::default());
        assert_eq!(rec.log.lock().unwrap().len(), log.len());
    }

    #[test]
    fn handle_reports_failure_once_and_ignores_other_events() {
        let (_d, mut h) = handler(&usb_kernel());
        let rec = Recorder {
            fail: vec!["scsi_mod"],
            ..Default::default()
        };
        let report = h.handle(&parse(USB_STICK).unwrap(), &HashSet::new(), &rec);
        let failed: Vec<&str> = report.failed.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(failed, ["scsi_mod", "usb_storage"], "{report:?}");
        assert!(!rec.log.lock().unwrap().contains(&"usb_storage".to_string()));
        let again = h.handle(&parse(USB_STICK).unwrap(), &HashSet::new(), &rec);
        assert_eq!(again, Report::default(), "a failed module is reported once");
        let remove = parse(b"remove@/d\0ACTION=remove\0MODALIAS=scsi:t-0x00\0").unwrap();
        assert_eq!(h.handle(&remove, &HashSet::new(), &rec), Report::default());
    }

    #[test]
    fn rescan_loads_devices_present_in_sys() {
        let k = usb_kernel().device(
            "devices/pci0000:00/host0/target0:0:0/0:0:0:0",
            "scsi:t-0x00",
        );
        let (_d, mut h) = handler(&k);
        let rec = Recorder::default();
        let report = h.rescan(&HashSet::new(), &rec);
        assert_eq!(report.loaded, ["scsi_mod", "sd_mod"]);
        assert_eq!(h.rescan(&HashSet::new(), &rec), Report::default());
    }
}
