//! The commands and files each test suite needs, from `.ci/tools` (the table that
//! `.ci/ensure-packages` also verifies after installing), checked once when a suite starts so
//! that a missing tool fails at once, naming its Debian package, instead of in the middle of a
//! four-minute image build.

use std::path::Path;
use std::sync::OnceLock;

/// The table: `command-or-path package suites` per line, `#` comments.
pub const TABLE: &str = include_str!("../../../.ci/tools");

/// One line of [`TABLE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tool {
    /// A command name (looked up in `PATH`, `/usr/sbin` and `/sbin`) or an absolute path,
    /// which may be a glob (`/boot/vmlinuz-*`).
    pub what: &'static str,
    /// The Debian package that provides it (`kernel`: a kernel package).
    pub package: &'static str,
    /// The suites that need it, comma-separated (`unit,it,vm`).
    pub suites: &'static str,
}

/// Every line of [`TABLE`].
pub fn table() -> Vec<Tool> {
    TABLE
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut f = l.split_whitespace();
            let (what, package, suites) = (f.next(), f.next(), f.next());
            match (what, package, suites, f.next()) {
                (Some(what), Some(package), Some(suites), None) => Tool {
                    what,
                    package,
                    suites,
                },
                _ => panic!(".ci/tools: want `command package suites`, got {l:?}"),
            }
        })
        .collect()
}

/// Whether `what` is here: an absolute path (glob) that matches a file, or a command found
/// in `PATH`, `/usr/sbin` or `/sbin`.
pub fn present(what: &str) -> bool {
    if what.starts_with('/') {
        return glob::glob(what).is_ok_and(|mut m| m.any(|p| p.is_ok()));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([Path::new("/usr/sbin").into(), Path::new("/sbin").into()])
        .any(|dir| dir.join(what).is_file())
}

/// "`what` (Debian package `package`)" for each entry of `names` that is missing; panics on a
/// name that [`TABLE`] does not list, so that the table stays complete.
pub fn missing(names: &[&str]) -> Vec<String> {
    let table = table();
    names
        .iter()
        .map(|name| {
            table
                .iter()
                .find(|t| t.what == *name)
                .unwrap_or_else(|| panic!("{name} is not in .ci/tools: add it with its package"))
        })
        .filter(|t| !present(t.what))
        .map(|t| format!("{} (Debian package {})", t.what, t.package))
        .collect()
}

/// Whether every tool that [`TABLE`] lists for `suite` is here, checked once per process
/// (a test binary is one suite). A missing one panics under `CI` (a test that cannot run must
/// fail there) naming every missing tool and its package; elsewhere it prints that reason and
/// returns `false`, and the test returns without running.
pub fn preflight(suite: &'static str) -> bool {
    static CHECKED: OnceLock<(&str, Vec<String>)> = OnceLock::new();
    let (checked, missing) = CHECKED.get_or_init(|| {
        let names: Vec<&str> = table()
            .into_iter()
            .filter(|t| t.suites.split(',').any(|s| s == suite))
            .map(|t| t.what)
            .collect();
        (suite, missing(&names))
    });
    assert_eq!(*checked, suite, "one suite per test binary");
    verdict(missing, &format!("the {suite} tests"))
}

/// Like [`preflight`] for the tools `names` of one test.
pub fn need(names: &[&str]) -> bool {
    verdict(&missing(names), "this test")
}

fn verdict(missing: &[String], who: &str) -> bool {
    if missing.is_empty() {
        return true;
    }
    let reason = format!(
        "{who} need {}: `make deps-test` installs them",
        missing.join(", ")
    );
    assert!(std::env::var_os("CI").is_none(), "{reason}");
    eprintln!("skipping: {reason}");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_every_line_parses_with_known_suites() {
        let table = table();
        assert!(table.len() > 40);
        for t in &table {
            for s in t.suites.split(',') {
                assert!(
                    ["build", "unit", "it", "server", "vm"].contains(&s),
                    "{t:?}"
                );
            }
        }
        assert!(table.contains(&Tool {
            what: "qemu-img",
            package: "qemu-utils",
            suites: "vm"
        }));
    }

    #[test]
    fn present_finds_commands_and_globs() {
        assert!(present("sh"));
        assert!(present("/bin/s*"));
        assert!(!present("rear-no-such-command"));
        assert!(!present("/nonexistent/rear-*"));
    }

    #[test]
    #[should_panic(expected = "rear-no-such-command is not in .ci/tools")]
    fn missing_refuses_a_name_the_table_lacks() {
        missing(&["rear-no-such-command"]);
    }
}
