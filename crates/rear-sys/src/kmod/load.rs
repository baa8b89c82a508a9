//! Module autoload in the rescue system: what udev's coldplug would do, without udev.
//!
//! Stage: boot of the rescue system (`rear-restore` as PID 1). Input: the image's
//! `/lib/modules/<kver>` (depmod's text files, written by the build for the modules it
//! carries) and `/sys`. Output: the modules loaded, and a [`Report`] of what was loaded and
//! what failed; one failure never stops the others and nothing here panics.
//!
//! [`coldplug`] matches every `modalias` under `/sys/devices` against the module aliases and
//! loads the matches with their dependencies and soft dependencies, in the order modprobe
//! would. Loading a bus driver makes new devices appear (virtio_pci exposes the virtio
//! devices), so the walk repeats until a round loads nothing new, at most [`MAX_ROUNDS`]
//! times. [`load`] loads modules by name or alias (the image's safety list).
//!
//! Under QEMU TCG each `finit_module` costs noticeable time, so independent modules load in
//! parallel on a few threads; a module starts only when its dependencies are done, and is
//! not tried when one of them failed. Built-in modules and those in `/proc/modules` are
//! skipped; `EEXIST` from the kernel means someone else loaded it, which is fine.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::fs::File;
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard};

use nix::errno::Errno;
use nix::kmod::{ModuleInitFlags, finit_module};

use crate::kmod::{Lookup, ModuleIndex, Step, module_file, sysfs};

/// Most coldplug rounds (walk `/sys`, load what matches).
pub const MAX_ROUNDS: usize = 4;

/// Threads loading modules at the same time.
pub const THREADS: usize = 4;

/// `MODULE_INIT_COMPRESSED_FILE` (Linux 5.17): the kernel decompresses the file itself.
const MODULE_INIT_COMPRESSED_FILE: u32 = 4;

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Modules loaded by this call, in load-plan order.
    pub loaded: Vec<String>,
    /// Modules (or names) that could not be loaded, with the reason.
    pub failed: Vec<(String, String)>,
}

impl Report {
    fn extend(&mut self, other: Report) {
        self.loaded.extend(other.loaded);
        self.failed.extend(other.failed);
    }
}

/// The outcome of loading one module file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The kernel accepted it.
    Loaded,
    /// The kernel already had it (`EEXIST`).
    AlreadyLoaded,
    /// It failed, with the reason.
    Failed(String),
}

/// Loads one module file; the seam between planning and the syscall.
pub trait Loader: Sync {
    /// Loads the module at `path`.
    fn load(&self, path: &Path) -> Outcome;
}

/// The real loader: `finit_module(2)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelLoader;

impl Loader for KernelLoader {
    fn load(&self, path: &Path) -> Outcome {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => return Outcome::Failed(format!("{}: {e}", path.display())),
        };
        let compressed = path
            .extension()
            .is_some_and(|e| e == "xz" || e == "zst" || e == "gz");
        let flags = if compressed {
            ModuleInitFlags::from_bits_retain(MODULE_INIT_COMPRESSED_FILE)
        } else {
            ModuleInitFlags::empty()
        };
        match finit_module(&file, c"", flags) {
            Ok(()) => Outcome::Loaded,
            Err(Errno::EEXIST) => Outcome::AlreadyLoaded,
            Err(e) => Outcome::Failed(format!("finit_module {}: {}", path.display(), e.desc())),
        }
    }
}

/// Loads the modules for every device under `sys_dir` (`/sys`), in rounds until nothing new
/// loads. `modules_dir` is `/lib/modules/<uname -r>`.
pub fn coldplug(modules_dir: &Path, sys_dir: &Path) -> Report {
    match ModuleIndex::load_dir(modules_dir) {
        Ok(index) => coldplug_with(
            &index,
            modules_dir,
            sys_dir,
            &loaded_modules(),
            &KernelLoader,
        ),
        Err(e) => index_failure(modules_dir, e),
    }
}

/// Loads modules by name or alias, with their dependencies and soft dependencies.
pub fn load(modules_dir: &Path, names: &[&str]) -> Report {
    match ModuleIndex::load_dir(modules_dir) {
        Ok(index) => load_with(&index, modules_dir, names, &loaded_modules(), &KernelLoader),
        Err(e) => index_failure(modules_dir, e),
    }
}

fn index_failure(modules_dir: &Path, e: crate::kmod::Error) -> Report {
    Report {
        loaded: Vec::new(),
        failed: vec![(modules_dir.display().to_string(), e.to_string())],
    }
}

/// The modules in `/proc/modules` (none if it cannot be read).
pub fn loaded_modules() -> HashSet<String> {
    std::fs::read_to_string("/proc/modules")
        .map(|t| {
            t.lines()
                .filter_map(|l| l.split_whitespace().next())
                .map(crate::kmod::normalize_name)
                .collect()
        })
        .unwrap_or_default()
}

/// [`coldplug`] with the index, the loaded modules and the loader given.
pub fn coldplug_with(
    index: &ModuleIndex,
    modules_dir: &Path,
    sys_dir: &Path,
    loaded: &HashSet<String>,
    loader: &dyn Loader,
) -> Report {
    let mut done: HashSet<String> = loaded.clone();
    let mut report = Report::default();
    for round in 1..=MAX_ROUNDS {
        let plan_names = coldplug_round(index, sys_dir, &done);
        if plan_names.is_empty() {
            break;
        }
        let names: Vec<&str> = plan_names.iter().map(String::as_str).collect();
        let plan = index.load_plan(&names, &done);
        log::debug!("coldplug round {round}: {} modules", plan.len());
        done.extend(plan.iter().map(|s| s.name.to_string()));
        report.extend(run_plan(&plan, modules_dir, loader));
    }
    report
}

/// The modules the devices under `sys_dir` ask for that are not in `done`, in the order of
/// the sorted modaliases.
pub fn coldplug_round(index: &ModuleIndex, sys_dir: &Path, done: &HashSet<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for alias in sysfs::modaliases(sys_dir) {
        for m in index.match_alias(&alias) {
            if index.module(m).is_some() && !done.contains(m) && seen.insert(m.to_string()) {
                out.push(m.to_string());
            }
        }
    }
    out
}

/// [`load`] with the index, the loaded modules and the loader given.
pub fn load_with(
    index: &ModuleIndex,
    modules_dir: &Path,
    names: &[&str],
    loaded: &HashSet<String>,
    loader: &dyn Loader,
) -> Report {
    let mut report = Report::default();
    let mut roots: Vec<&str> = Vec::new();
    for name in names {
        match index.lookup(name) {
            Lookup::Modules(ms) => roots.extend(ms),
            Lookup::Builtin(_) => {}
            Lookup::NotFound => report.failed.push((
                name.to_string(),
                "not a module, alias or built-in module of this kernel".to_string(),
            )),
        }
    }
    let plan = index.load_plan(&roots, loaded);
    report.extend(run_plan(&plan, modules_dir, loader));
    report
}

struct Sched {
    ready: BinaryHeap<Reverse<usize>>,
    waiting: Vec<usize>,
    outcome: Vec<Option<Outcome>>,
    finished: usize,
}

fn lock(m: &Mutex<Sched>) -> MutexGuard<'_, Sched> {
    // A panicking loader thread must not take the others down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Loads a plan on up to [`THREADS`] threads: a step starts once every step it waits for is
/// done; a step whose dependency failed fails without being tried.
pub fn run_plan(plan: &[Step<'_>], modules_dir: &Path, loader: &dyn Loader) -> Report {
    let n = plan.len();
    let mut successors: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut waiting = vec![0usize; n];
    for (i, s) in plan.iter().enumerate() {
        for &p in s.needs.iter().chain(&s.after) {
            if p < i {
                successors[p].push(i);
                waiting[i] += 1;
            }
        }
    }
    let ready = (0..n).filter(|&i| waiting[i] == 0).map(Reverse).collect();
    let sched = Mutex::new(Sched {
        ready,
        waiting,
        outcome: vec![None; n],
        finished: 0,
    });
    let wake = Condvar::new();
    let worker = || {
        loop {
            let (i, failed_dep) = {
                let mut g = lock(&sched);
                loop {
                    if let Some(Reverse(i)) = g.ready.pop() {
                        let failed = plan[i]
                            .needs
                            .iter()
                            .find(|&&p| matches!(g.outcome[p], Some(Outcome::Failed(_))))
                            .map(|&p| plan[p].name);
                        break (i, failed);
                    }
                    if g.finished == n {
                        return;
                    }
                    g = wake.wait(g).unwrap_or_else(|e| e.into_inner());
                }
            };
            let outcome = match failed_dep {
                Some(dep) => Outcome::Failed(format!("dependency {dep} failed")),
                None => loader.load(&module_file(modules_dir, plan[i].path)),
            };
            let mut g = lock(&sched);
            g.outcome[i] = Some(outcome);
            g.finished += 1;
            for &s in &successors[i] {
                g.waiting[s] -= 1;
                if g.waiting[s] == 0 {
                    g.ready.push(Reverse(s));
                }
            }
            drop(g);
            wake.notify_all();
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..THREADS.min(n) {
            // A thread that cannot be started only costs parallelism.
            let _ = std::thread::Builder::new().spawn_scoped(scope, worker);
        }
        worker();
    });
    let sched = sched.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut report = Report::default();
    for (step, outcome) in plan.iter().zip(sched.outcome) {
        match outcome {
            Some(Outcome::Loaded) => report.loaded.push(step.name.to_string()),
            Some(Outcome::AlreadyLoaded) => {}
            Some(Outcome::Failed(why)) => report.failed.push((step.name.to_string(), why)),
            None => report
                .failed
                .push((step.name.to_string(), "never scheduled".to_string())),
        }
    }
    report
}

/// Loads kernel modules by name or alias (with their dependencies) from the running kernel's
/// module directory; failures are logged.
pub fn load_names(names: &[&str]) {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = Path::new("/lib/modules").join(release);
    let report = load(&dir, names);
    // Optional drivers fail on hardware without them (crc32c_intel without SSE4.2); a step
    // that really needs one fails with the tool's own message.
    for (m, why) in &report.failed {
        log::debug!("module {m}: {why}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rear_testutil::kmod::{FakeKernel, FakeModule, sample_kernel};
    use std::path::PathBuf;
    use std::time::Duration;

    const KVER: &str = "6.1.0-test";

    type OnLoad = Box<dyn Fn(&str) + Sync>;

    /// Records loads; fails the modules named in `fail`, says EEXIST for those in `exists`,
    /// and runs `on_load` (to make devices appear).
    #[derive(Default)]
    struct Recorder {
        log: Mutex<Vec<(String, &'static str)>>,
        fail: Vec<&'static str>,
        exists: Vec<&'static str>,
        on_load: Option<OnLoad>,
    }

    impl Loader for Recorder {
        fn load(&self, path: &Path) -> Outcome {
            let name = crate::kmod::modname_from_path(&path.to_string_lossy());
            self.log.lock().unwrap().push((name.clone(), "start"));
            std::thread::sleep(Duration::from_millis(5));
            if let Some(f) = &self.on_load {
                f(&name);
            }
            self.log.lock().unwrap().push((name.clone(), "end"));
            if self.fail.contains(&name.as_str()) {
                Outcome::Failed("boom".into())
            } else if self.exists.contains(&name.as_str()) {
                Outcome::AlreadyLoaded
            } else {
                Outcome::Loaded
            }
        }
    }

    impl Recorder {
        fn ended_before(&self, a: &str, b: &str) -> bool {
            let log = self.log.lock().unwrap();
            let end_a = log.iter().position(|(n, e)| n == a && *e == "end");
            let start_b = log.iter().position(|(n, e)| n == b && *e == "start");
            matches!((end_a, start_b), (Some(x), Some(y)) if x < y)
        }
        fn started(&self) -> Vec<String> {
            let log = self.log.lock().unwrap();
            log.iter()
                .filter(|(_, e)| *e == "start")
                .map(|(n, _)| n.clone())
                .collect()
        }
    }

    fn fake(k: &FakeKernel) -> (tempfile::TempDir, PathBuf, PathBuf, ModuleIndex) {
        let d = tempfile::tempdir().unwrap();
        k.write(d.path()).unwrap();
        let mdir = d.path().join("lib/modules").join(KVER);
        let sys = d.path().join("sys");
        let ix = ModuleIndex::load_dir(&mdir).unwrap();
        (d, mdir, sys, ix)
    }

    #[test]
    fn coldplug_round_plans_device_modules() {
        let (_d, _m, sys, ix) = fake(&sample_kernel(KVER));
        let names = coldplug_round(&ix, &sys, &HashSet::new());
        assert_eq!(names, ["r8169", "virtio_pci", "virtio_blk"]);
        let done: HashSet<String> = ["virtio_pci".to_string()].into();
        assert_eq!(coldplug_round(&ix, &sys, &done), ["r8169", "virtio_blk"]);
    }

    #[test]
    fn coldplug_loads_deps_first_in_parallel() {
        let (_d, mdir, sys, ix) = fake(&sample_kernel(KVER));
        let rec = Recorder::default();
        let loaded: HashSet<String> = ["virtio_ring".to_string()].into();
        let report = coldplug_with(&ix, &mdir, &sys, &loaded, &rec);
        let mut got = report.loaded.clone();
        got.sort();
        assert_eq!(got, ["r8169", "virtio", "virtio_blk", "virtio_pci"]);
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert!(rec.ended_before("virtio", "virtio_pci"));
        assert!(rec.ended_before("virtio", "virtio_blk"));
        assert!(
            !rec.started().contains(&"virtio_ring".to_string()),
            "already loaded"
        );
        // virtio and r8169 are independent: both start before either ends.
        let log = rec.log.lock().unwrap();
        let first_end = log.iter().position(|(_, e)| *e == "end").unwrap();
        assert!(first_end >= 2, "{log:?}");
    }

    #[test]
    fn coldplug_repeats_when_new_devices_appear() {
        let k = sample_kernel(KVER);
        let k = FakeKernel {
            devices: k
                .devices
                .into_iter()
                .filter(|(_, a)| !a.starts_with("virtio:"))
                .collect(),
            ..k
        };
        let (_d, mdir, sys, ix) = fake(&k);
        let sys2 = sys.clone();
        let rec = Recorder {
            on_load: Some(Box::new(move |name| {
                if name == "virtio_pci" {
                    let dev = sys2.join("devices/pci0000:00/0000:00:03.0/virtio0");
                    std::fs::create_dir_all(&dev).unwrap();
                    std::fs::write(dev.join("modalias"), "virtio:d00000002v00001AF4\n").unwrap();
                }
            })),
            ..Default::default()
        };
        let report = coldplug_with(&ix, &mdir, &sys, &HashSet::new(), &rec);
        assert!(
            report.loaded.contains(&"virtio_blk".to_string()),
            "{report:?}"
        );
        assert_eq!(
            rec.started().iter().filter(|n| *n == "virtio").count(),
            1,
            "each module tried once"
        );
    }

    #[test]
    fn run_plan_skips_users_of_failed_modules_and_accepts_eexist() {
        let (_d, mdir, _s, ix) = fake(&sample_kernel(KVER));
        let rec = Recorder {
            fail: vec!["virtio"],
            exists: vec!["crc16"],
            ..Default::default()
        };
        let report = load_with(
            &ix,
            &mdir,
            &["virtio_blk", "fs-ext4", "loop", "nosuch"],
            &HashSet::new(),
            &rec,
        );
        assert_eq!(
            report.failed,
            [
                (
                    "nosuch".to_string(),
                    "not a module, alias or built-in module of this kernel".to_string()
                ),
                ("virtio".to_string(), "boom".to_string()),
                (
                    "virtio_blk".to_string(),
                    "dependency virtio failed".to_string()
                ),
            ]
        );
        assert!(!rec.started().contains(&"virtio_blk".to_string()));
        assert_eq!(
            report.loaded,
            ["virtio_ring", "mbcache", "jbd2", "crc32c_generic", "ext4"]
        );
        assert!(
            rec.ended_before("crc32c_generic", "ext4"),
            "pre: softdep first"
        );
    }

    #[test]
    fn load_with_nothing_to_do_is_empty() {
        let (_d, mdir, _s, ix) = fake(&FakeKernel::new(KVER).module(FakeModule::new("kernel/a")));
        let loaded: HashSet<String> = ["a".to_string()].into();
        let report = load_with(&ix, &mdir, &["a"], &loaded, &Recorder::default());
        assert_eq!(report, Report::default());
    }

    #[test]
    fn coldplug_without_index_reports_failure() {
        let d = tempfile::tempdir().unwrap();
        let report = coldplug(d.path(), d.path());
        assert_eq!(report.failed.len(), 1);
        assert!(report.failed[0].1.contains("modules.dep"), "{report:?}");
    }
}
