//! A small stderr logger for the binaries: `name: warning: text`, more with `-v`.
//!
//! Log lines go to stderr so stdout stays clean for data (`inspect`, `--json` to `-`).

use std::io::Write as _;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Stderr {
    name: &'static str,
}

impl Log for Stderr {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let level = match r.level() {
            Level::Error => "error: ",
            Level::Warn => "warning: ",
            Level::Info => "",
            Level::Debug => "debug: ",
            Level::Trace => "trace: ",
        };
        // PID 1 logs through this too: a console write error must not panic it.
        let _ = writeln!(std::io::stderr(), "{}: {level}{}", self.name, r.args());
    }

    fn flush(&self) {}
}

/// Installs the logger: warnings and info by default, debug with `-v`, trace with `-vv`.
/// A second call is ignored.
pub fn init(name: &'static str, verbose: u8) {
    let level = match verbose {
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    if log::set_boxed_logger(Box::new(Stderr { name })).is_ok() {
        log::set_max_level(level);
    }
}
